"""A run awaiting approval when the host is upgraded to signed records survives the upgrade."""

from __future__ import annotations

from pathlib import Path

from bot.adapters.audit.verify import verify
from bot.adapters.git import GitRepo
from bot.adapters.sandbox.bwrap import BwrapBackend
from bot.demo.code import MAINTAINER
from bot.run.engine import Engine
from tests.adapters.audit.conftest import downgrade_to_v1, git


def test_a_v1_run_awaiting_approval_is_decided_after_the_upgrade(demo_repo: Path) -> None:
    before = Engine(GitRepo(demo_repo), BwrapBackend())
    rec = before.start(before.request("fix-failing-test"))
    assert rec.state == "awaiting_approval"
    downgrade_to_v1(demo_repo)  # as the old version left it: v1 entries, no signing key
    written = verify(before.audit)
    assert written.ok and written.signed == 0 and written.unsigned > 0

    after = Engine(GitRepo(demo_repo), BwrapBackend())
    assert after.load(rec.run_id).state == "awaiting_approval"
    done = after.decide(rec.run_id, MAINTAINER[1], "approve").record
    assert done.state == "applied"
    report = verify(after.audit)
    assert report.ok, report.findings
    assert (report.unsigned, report.signed) == (written.unsigned, report.entries - written.unsigned)
    assert report.signed >= 1


FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "audit-v1-awaiting.bundle"


def test_a_branch_written_by_the_old_code_is_read_and_decided(tmp_path: Path) -> None:
    repo = tmp_path / "demo"
    git(tmp_path, "clone", "-q", str(FIXTURE), str(repo))
    git(repo, "fetch", "-q", "origin", "agentplane/audit:agentplane/audit")
    engine = Engine(GitRepo(repo), BwrapBackend())
    written = verify(engine.audit)
    assert written.ok and written.signed == 0 and written.unsigned == written.entries > 0
    (run_id,) = engine.audit.run_ids()
    assert engine.load(run_id).state == "awaiting_approval"
    done = engine.decide(run_id, MAINTAINER[1], "approve").record
    assert done.state == "applied"
    report = verify(engine.audit)
    assert report.ok, report.findings
    assert (report.unsigned, report.signed) == (written.unsigned, report.entries - written.unsigned)
