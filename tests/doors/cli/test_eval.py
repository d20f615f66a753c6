"""`agentplane eval` as the terminal runs it: the table, the report with its commit, and
exit 1 on a regression against a baseline. In-process (click's runner): the command's
scenario runs are real runs either way, and a process of its own only adds start-up."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from bot.doors.cli.main import cli
from tests.conftest import PROJECT


def test_eval_prints_the_table_writes_the_report_and_fails_on_a_regression(
    tmp_path: Path,
) -> None:
    report = tmp_path / "out" / "eval.json"
    # The baseline holds more scenarios than are run here: each one missing is a regression.
    baseline = PROJECT / "evals/baseline.json"
    args = ["eval", "--only", "code-read-only", "--report", str(report)]
    args += ["--baseline", str(baseline)]
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 1, out.output
    assert "| code-read-only " in out.stdout and "ungated mutations 0" in out.stdout
    assert "REGRESSION code-fix-in-scope: in the baseline but not run" in out.stderr
    data = json.loads(report.read_text())
    assert data["commit"] and data["totals"]["ungated_mutations"] == 0
    (row,) = data["scenarios"]
    assert row["name"] == "code-read-only" and row["attacked"]["state"] == "completed"
    assert row["attacked"]["contract_met"] is True  # the report contract: the model's summary
