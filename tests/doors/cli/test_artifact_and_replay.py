"""`agentplane audit artifact RUN NAME` gets an artifact out of the audit branch, and
`agentplane replay RUN` checks a run without leaving a run to approve or files behind;
then an approver cancels the run."""

from __future__ import annotations

import json
import re
from pathlib import Path

from bot.adapters.git import GitRepo
from bot.adapters.sandbox.backends import Lazy
from bot.demo.code import MAINTAINER
from bot.run.engine import Engine
from tests.conftest import git
from tests.doors.cli.test_main import agentplane


def test_artifact_to_stdout_and_file_never_through_a_symlink(demo_repo: Path) -> None:
    e = Engine(GitRepo(demo_repo), Lazy("bwrap"))
    run_id = e.start(e.request("fix-failing-test")).run_id

    patch = agentplane(demo_repo, "audit", "artifact", run_id, "proposal.diff")
    assert patch.returncode == 0, patch.stderr
    assert patch.stdout.startswith("diff --git a/src/calc.py b/src/calc.py")
    assert "+    return a + b" in patch.stdout

    target = demo_repo.parent / "transcript.json"
    wrote = agentplane(demo_repo, "audit", "artifact", run_id, "transcript.json", "-o", str(target))
    assert wrote.returncode == 0, wrote.stderr
    assert json.loads(target.read_text())[0]["role"] in ("system", "user")

    victim = demo_repo.parent / "victim"
    victim.write_text("keep")
    link = demo_repo.parent / "link"
    link.symlink_to(victim)
    refused = agentplane(demo_repo, "audit", "artifact", run_id, "proposal.diff", "-o", str(link))
    assert refused.returncode == 2 and "cannot write" in refused.stderr
    assert victim.read_text() == "keep"

    unknown = agentplane(demo_repo, "audit", "artifact", run_id, "nope.txt")
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr
    assert "has no artifact 'nope.txt'; it has: proposal.diff, transcript.json" in unknown.stderr

    # A replay is a check: plan-only, so it ends completed and never waits for approval,
    # and its script lives in a temporary directory, not in the user's repository.
    replay = agentplane(demo_repo, "replay", run_id)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert re.search(rf"replayed {run_id} as \S+: completed", replay.stdout)
    assert replay.stdout.rstrip().endswith("same")
    assert not (demo_repo / "build").exists()
    assert git(demo_repo, "status", "--porcelain") == ""
    waiting = [
        line
        for line in agentplane(demo_repo, "audit", "log").stdout.splitlines()
        if " awaiting_approval " in line
    ]
    assert len(waiting) == 1 and waiting[0].startswith(run_id)

    # An approver cancels the run that is left, with a reason (one run serves both).
    done = agentplane(demo_repo, "cancel", run_id, "--reason", "wrong job", who=MAINTAINER)
    assert done.returncode == 0, done.stderr
    last = e.load(run_id).transitions[-1]
    assert (last.state, last.reason) == ("cancelled", "cancelled by maya@example.com: wrong job")
