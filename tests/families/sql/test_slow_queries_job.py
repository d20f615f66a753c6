"""The example job `.agentplane/jobs/slow-queries.yaml` end to end, on the real standby."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.git import GitRepo
from bot.adapters.model.client import LiteLLMClient, ModelTurn
from bot.adapters.sandbox.bwrap import BwrapBackend
from bot.core.record import ToolCall
from bot.core.render import render_evidence
from bot.families.sql.evidence import render_sql_evidence
from bot.families.sql.family import sql_evidence
from bot.run.engine import Engine
from tests.conftest import git
from tests.support.postgres import PASSWORD, PROJECT, Cluster

FILES = (".agentplane/jobs/slow-queries.yaml", ".agentplane/scripts/slow-queries.yaml")


class Recording:
    """The real litellm client, keeping every message the model was shown."""

    def __init__(self, params: dict[str, Any], seen: list[str]) -> None:
        self.inner, self.seen = LiteLLMClient(params), seen

    def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> ModelTurn:
        self.seen.append(json.dumps([messages, tools]))
        return self.inner.complete(messages, tools)


def test_slow_queries_job_explains_the_top_queries(
    demo_repo: Path, pg_cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    for rel in FILES:
        shutil.copyfile(PROJECT / rel, demo_repo / rel)
    git(demo_repo, "add", "-A")
    git(demo_repo, "commit", "-qm", "slow-queries job")
    monkeypatch.setenv("AGENTPLANE_SQL_REPLICA_DSN", pg_cluster.standby_dsn)

    seen: list[str] = []
    engine = Engine(GitRepo(demo_repo), BwrapBackend(), model_factory=lambda p: Recording(p, seen))
    rec = engine.start(engine.request("slow-queries"))
    evidence = sql_evidence(rec, engine.audit.artifact)

    assert rec.state == "completed", rec.transitions
    assert rec.model is not None and rec.model.rule == "policies/routing.yaml#models.routes.sql"
    calls: list[ToolCall] = rec.tool_calls
    assert [c.tool for c in calls] == ["top_queries", *["sql_query"] * 4]
    assert [c.decision for c in calls] == ["allow", "allow", "allow", "deny", "allow"]
    assert calls[3].rule == "sql#statement-type"
    assert calls[0].ok and "shop.orders" in calls[0].result
    assert "Hash Join" in calls[1].result and "Seq Scan on orders" in calls[2].result
    assert calls[3].result.startswith("DENIED by sql#statement-type: IndexStmt")
    assert "seq_scan" in calls[4].result
    assert "CREATE INDEX ON shop.orders (customer_id)" in (rec.final_message or "")
    assert [e.status for e in evidence] == ["ok", "ok", "ok", "refused", "ok"]

    # The evidence a reviewer reads, and everything recorded or shown to the model.
    rendered = render_sql_evidence(evidence)
    assert "Plan (EXPLAIN (FORMAT JSON)):" in rendered and "(cost=" in rendered
    audit = subprocess.run(
        ["git", "log", "-p", "agentplane/audit"], cwd=demo_repo, capture_output=True, text=True
    ).stdout
    assert rec.run_id in audit
    for text in (
        audit,
        rendered,
        render_evidence(rec, "", engine.evidence_sections(rec)),
        *seen,
        rec.model_dump_json(),
    ):
        assert PASSWORD not in text
