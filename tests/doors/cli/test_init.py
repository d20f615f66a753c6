"""`agentplane init` in a fresh repository, then the three commands it prints, as typed,
to an approved and applied run."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from bot.demo.code import DEVELOPER, MAINTAINER
from tests.conftest import git
from tests.doors.cli.test_main import agentplane


def _shell(line: str, cwd: Path, bin_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "GIT_AUTHOR_NAME": DEVELOPER[0],
        "GIT_AUTHOR_EMAIL": DEVELOPER[1],
        "GIT_COMMITTER_NAME": DEVELOPER[0],
        "GIT_COMMITTER_EMAIL": DEVELOPER[1],
    }
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", line],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_init_then_its_three_commands_reach_an_applied_run(tmp_path: Path) -> None:
    repo = tmp_path / "mine"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("my project\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "agentplane").write_text(f'#!/bin/sh\nexec {sys.executable} -m bot "$@"\n')
    (bin_dir / "agentplane").chmod(0o755)

    out = agentplane(repo, "init", "--approver", MAINTAINER[1], who=DEVELOPER)
    assert out.returncode == 0, out.stderr
    for rel in (
        "policies/default.yaml",
        "policies/routing.yaml",
        ".agentplane/config.yaml",
        ".agentplane/jobs/first-job.yaml",
        ".agentplane/scripts/first-job.yaml",
        ".github/workflows/agentplane.yml",
    ):
        assert f"wrote {rel}" in out.stdout
    policy = (repo / "policies/default.yaml").read_text()
    assert "developer: [dana@example.com]" in policy and "maintainer: [maya@example.com]" in policy
    assert policy.startswith("# agentplane policy")  # with comments

    commands = out.stdout.split("\nNext", 1)[1].splitlines()[1:]
    assert len(commands) == 3, out.stdout
    commit, check, start = (line.split("  #", 1)[0].strip() for line in commands)

    done = _shell(commit, repo, bin_dir)
    assert done.returncode == 0, done.stderr
    checked = _shell(check, repo, bin_dir)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "ok: 6 file(s) valid" not in checked.stdout  # the workflow is no job file
    assert re.search(r"^ok: \d+ file\(s\) valid$", checked.stdout, re.M)
    assert "policy: runs read policies/ from main" in checked.stdout
    assert "Plan for job first-job" in checked.stdout and "warning" not in checked.stderr
    started = _shell(start, repo, bin_dir)
    assert started.returncode == 0, started.stdout + started.stderr
    run_id = re.search(r"Waiting for approval: (\S+)", started.stdout).group(1)  # type: ignore[union-attr]
    assert "Verification passed: test -s AGENTPLANE.md" in started.stdout

    applied = agentplane(repo, "approve", run_id, who=MAINTAINER)
    assert applied.returncode == 0, applied.stderr
    assert "Applied: committed " in applied.stdout
    shown = git(repo, "show", f"agentplane/run/{run_id}:AGENTPLANE.md")
    assert "agentplane/audit" in shown


def test_init_overwrites_nothing_and_needs_a_repository(tmp_path: Path) -> None:
    outside = agentplane(tmp_path, "init")
    assert outside.returncode == 2
    assert (
        outside.stderr
        == f"error: {tmp_path} is not inside a git repository (run `git init` first)\n"
    )
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies/default.yaml").write_text("mine\n")
    (tmp_path / ".agentplane").symlink_to(tmp_path.parent)
    refused = agentplane(tmp_path, "init", who=DEVELOPER)
    assert refused.returncode == 2, refused.stdout
    assert (
        "policies/default.yaml" in refused.stderr
        and ".agentplane/config.yaml (its path goes through a symlink" in refused.stderr
    )
    assert (tmp_path / "policies/default.yaml").read_text() == "mine\n"
    assert not (tmp_path / "policies/routing.yaml").exists()
