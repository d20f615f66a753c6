"""Run record v2: typed fields, schema_version, and v1 records read as v2."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from bot.adapters.audit.log import AuditLog
from bot.core.record import SCHEMA_VERSION, EgressEntry, RunRecord

FIXTURE = Path(__file__).parents[1] / "fixtures" / "audit-v1-awaiting.bundle"


@pytest.fixture(scope="module")
def v1(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The newest record of the v1 audit branch today's code was upgraded from."""
    repo = tmp_path_factory.mktemp("v1") / "repo"
    subprocess.run(["git", "clone", "-q", str(FIXTURE), str(repo)], check=True)
    subprocess.run(
        ["git", "-C", str(repo), "fetch", "-q", "origin", "agentplane/audit:agentplane/audit"],
        check=True,
    )
    log = AuditLog(repo)
    (run_id,) = log.run_ids()
    entry = log.latest(run_id)
    assert entry is not None and entry.record["v"] == 1 and "schema_version" not in entry.record
    return dict(entry.record)


def record_v1(v1: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(v1)


def test_a_v1_record_reads_as_v2_with_its_replay_model_in_a_field_of_its_own(
    v1: dict[str, Any],
) -> None:
    data = record_v1(v1)
    data["model"]["override"] = {"model": "scripted/replay-x", "api_base": "/tmp/s"}
    rec = RunRecord.model_validate(data)
    assert rec.schema_version == SCHEMA_VERSION == 2
    assert rec.model_override is not None and rec.model_override.model == "scripted/replay-x"
    assert rec.model is not None and rec.model.model_class == data["model"]["model_class"]
    dumped = rec.model_dump(mode="json")
    assert dumped["schema_version"] == 2 and "v" not in dumped
    assert "override" not in dumped["model"]


def test_v2_fields_are_typed_and_a_wrong_shape_is_refused(v1: dict[str, Any]) -> None:
    rec = RunRecord.model_validate(record_v1(v1))
    again = RunRecord.model_validate_json(rec.model_dump_json())
    assert again == rec
    bad = rec.model_dump(mode="json")
    bad["egress"] = [{"host": "a.example", "port": "eighty", "decision": "allow", "rule": "r"}]
    with pytest.raises(ValidationError, match=r"egress\.0\.port"):
        RunRecord.model_validate(bad)
    bad = rec.model_dump(mode="json")
    bad["plan"] = {"job_name": "x"}
    with pytest.raises(ValidationError, match="plan"):
        RunRecord.model_validate(bad)
    future = rec.model_dump(mode="json") | {"schema_version": 3}
    with pytest.raises(ValidationError, match="schema_version"):
        RunRecord.model_validate(future)


def test_egress_entries_of_v1_records_keep_their_fields() -> None:
    entry = {
        "host": "pypi.org",
        "port": 443,
        "decision": "allow",
        "rule": "policies/default.yaml#job_types.code.scope.network.allow",
        "proxy_rule": "pypi.org",
        "by": "browser",
        "phase": "apply",
        "bytes_up": 10,
    }
    e = EgressEntry.model_validate(entry)
    assert (e.by, e.phase, e.bytes_up, e.network_rule) == ("browser", "apply", 10, "")
    assert json.loads(e.model_dump_json())["proxy_rule"] == "pypi.org"
