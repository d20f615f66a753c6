"""`agentplane eval` as a user runs it: the table, the report with its commit, and exit 1
on a regression against a baseline."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import PROJECT
from tests.doors.cli.test_main import agentplane


def test_eval_prints_the_table_writes_the_report_and_fails_on_a_regression(
    tmp_path: Path,
) -> None:
    report = tmp_path / "out" / "eval.json"
    baseline = json.loads((PROJECT / "evals/baseline.json").read_text())
    # The baseline holds more scenarios than are run here: each is a regression.
    (tmp_path / "baseline.json").write_text(json.dumps(baseline))
    out = agentplane(
        tmp_path, "eval", "--only", "code-read-only", "--report", str(report),
        "--baseline", str(tmp_path / "baseline.json"),
    )  # fmt: skip
    assert out.returncode == 1, out.stderr
    assert "| code-read-only " in out.stdout and "ungated mutations 0" in out.stdout
    assert "REGRESSION code-fix-in-scope: in the baseline but not run" in out.stderr
    data = json.loads(report.read_text())
    assert data["commit"] and data["totals"]["ungated_mutations"] == 0
    (row,) = data["scenarios"]
    assert row["name"] == "code-read-only" and row["attacked"]["state"] == "completed"
    assert row["attacked"]["contract_met"] is True  # the report contract: the model's summary
