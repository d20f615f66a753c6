"""`plan` exits 3 when it says `! clarify`; a fresh clone's audit commands print none of
git's hint blocks; policy errors name the ref they were read from."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bot.doors.cli.main import CLARIFY_EXIT
from tests.conftest import Scripted, git
from tests.doors.cli.test_main import agentplane


def test_plan_exits_3_when_it_asks_to_clarify(demo_repo: Path, scripted_job: Scripted) -> None:
    job = scripted_job("vague-fix", [{"content": "x"}], prompt="make it better")
    out = agentplane(demo_repo, "plan", job)
    assert "! clarify" in out.stdout
    assert out.returncode == CLARIFY_EXIT == 3


def test_audit_commands_in_a_fresh_clone_print_no_git_hints(
    demo_repo: Path, tmp_path: Path
) -> None:
    """With no init.defaultBranch anywhere, a `git init` without -b prints git's
    "hint: Using 'master'..." block: no command may run one where a user sees it."""
    home = tmp_path / "home"
    home.mkdir()
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(demo_repo), str(clone))
    env = {**os.environ, "HOME": str(home), "GIT_CONFIG_GLOBAL": "/dev/null",
           "GIT_CONFIG_NOSYSTEM": "1", "XDG_CONFIG_HOME": str(home)}  # fmt: skip
    for args in (["audit", "verify"], ["audit", "show", "no-such-run"], ["validate"]):
        out = subprocess.run(
            [sys.executable, "-m", "bot", *args],
            cwd=clone, env=env, capture_output=True, text=True, timeout=300,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert "hint:" not in out.stdout + out.stderr, (args, out.stderr)
        assert "Traceback" not in out.stderr, (args, out.stderr)
    assert "policy: runs read policies/ from origin/main" in out.stdout


def test_no_policy_on_the_default_branch_names_the_ref(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("x\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "first")
    (repo / "policies").mkdir()
    (repo / "policies/default.yaml").write_text("roles: {developer: [dana@example.com]}\n")
    out = agentplane(repo, "validate")
    assert out.returncode == 1, out.stdout
    assert "main:policies/:1:1: no policy files found on the default branch (main)" in out.stderr
    assert "warning: policies/default.yaml: differs from main" in out.stderr
    assert "commit it and merge it into main" in out.stderr
