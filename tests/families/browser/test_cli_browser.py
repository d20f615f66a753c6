"""`agentplane browser export | trace` read a browser run's artifacts from the audit branch."""

from __future__ import annotations

import subprocess
from pathlib import Path

from click.testing import CliRunner

from bot.adapters.audit.log import AuditLog
from bot.core.canonical import canonical_json, sha256_hex
from bot.core.record import ArtifactRef, RunRecord
from bot.doors.cli.browser import browser
from bot.families.browser.model import BrowserRun, Step
from tests.support.jobs import browser_plan


def test_export_and_trace_from_the_audit_branch(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    run = BrowserRun(
        domains=["127.0.0.1"],
        steps=[
            Step(n=1, action="goto", value="http://127.0.0.1:1/", url_after="http://127.0.0.1:1/")
        ],
    )
    files = {"browser-run.json": canonical_json(run.model_dump(mode="json")), "trace.zip": b"PK"}
    rec = RunRecord(
        run_id="r-1",
        job_name="j",
        job_path="j.yaml",
        job_digest="d",
        repo="r",
        commit="c",
        door="cli",
        requester="dana",
        prompt=None,
        plan=browser_plan(),
        tools_granted=[],
        model=None,
        artifacts=[
            ArtifactRef(name=n, sha256=sha256_hex(d), size=len(d), media_type="x")
            for n, d in files.items()
        ],
    )
    AuditLog(tmp_path).append(
        "r-1", rec.model_dump(mode="json"), {sha256_hex(d): d for d in files.values()}
    )
    cli = CliRunner()
    out = cli.invoke(browser, ["export", "r-1", "--repo", str(tmp_path)])
    assert out.exit_code == 0, out.output
    test = tmp_path / "tests/agentplane/test_r_1.py"
    assert "page.goto('http://127.0.0.1:1/')" in test.read_text()
    out = cli.invoke(
        browser, ["trace", "r-1", "--repo", str(tmp_path), "--out", str(tmp_path / "t.zip")]
    )
    assert "playwright show-trace" in out.output and (tmp_path / "t.zip").read_bytes() == b"PK"
    missing = cli.invoke(browser, ["trace", "r-1", "--apply", "--repo", str(tmp_path)])
    assert missing.exit_code != 0 and "no apply-trace.zip" in str(missing.exception)
