"""`agentplane demo`: build a small repo with a failing test and run the job on it.

It drives the real commands, as a user would type them, and says plainly that
the model is the scripted provider replaying recorded turns.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from bot.adapters.git import run_git

PROJECT = Path(__file__).resolve().parent / "shipped"
"""The demo's policy, jobs and model scripts, laid out as in a repository. Package data,
so the demo runs from an installed wheel (the bot image) and not only from a checkout;
they are copies of the checkout's examples (a test keeps them the same)."""
DEVELOPER = ("Dana Developer", "dana@example.com")
MAINTAINER = ("Maya Maintainer", "maya@example.com")

CALC = '''"""A tiny calculator (the agentplane demo's code under test)."""


def add(a: int, b: int) -> int:
    return a - b


def mul(a: int, b: int) -> int:
    return a * b
'''
TESTS = """import sys
import unittest

sys.path.insert(0, "src")
from calc import add, mul  # noqa: E402


class CalcTest(unittest.TestCase):
    def test_add(self) -> None:
        self.assertEqual(add(2, 3), 5)

    def test_mul(self) -> None:
        self.assertEqual(mul(2, 3), 6)


if __name__ == "__main__":
    unittest.main()
"""
SHIPPED = [
    "policies/default.yaml",
    "policies/routing.yaml",
    ".agentplane/jobs/fix-failing-test.yaml",
    ".agentplane/scripts/fix-failing-test.yaml",
]


def git_env(who: tuple[str, str]) -> dict[str, str]:
    name, email = who
    return {
        **os.environ,
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }


def build_repo(dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    (dest / "src").mkdir(parents=True)
    (dest / "tests").mkdir()
    (dest / "src" / "calc.py").write_text(CALC)
    (dest / "tests" / "test_calc.py").write_text(TESTS)
    (dest / ".gitignore").write_text("__pycache__/\n")
    for rel in SHIPPED:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PROJECT / rel, dest / rel)
    run_git("init", "-q", "-b", "main", cwd=dest)
    commit_all(dest, "calculator with a failing test")


def commit_all(dest: Path, message: str) -> None:
    """Commit everything in dest as the developer."""
    env = git_env(DEVELOPER)
    run_git("add", "-A", cwd=dest, env=env)
    run_git("commit", "-q", "-m", message, cwd=dest, env=env)


def step(title: str, args: list[str], cwd: Path, who: tuple[str, str], check: bool = True) -> str:
    print(f"\n== {title}\n$ agentplane {' '.join(args)}    # as {who[1]}", flush=True)
    proc = subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=git_env(who),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    print((proc.stdout + proc.stderr).rstrip(), flush=True)
    if check and proc.returncode != 0:
        raise SystemExit(f"demo step failed: agentplane {' '.join(args)} exited {proc.returncode}")
    return proc.stdout + proc.stderr


def run_to_approval(title: str, job: str, dest: Path) -> str:
    """`agentplane run JOB` as the developer, with no terminal; the run id it waits on."""
    out = step(title, ["run", job], dest, DEVELOPER)
    match = re.search(r"Waiting for approval: (\S+)", out)
    if not match:
        raise SystemExit("demo: the run did not stop for approval")
    return match.group(1)


def main(dest: Path) -> None:
    print(f"Building the example repo at {dest} (a calculator whose add() test fails).")
    print(
        "Note: the model is agentplane's scripted litellm provider replaying the recorded\n"
        "turns in .agentplane/scripts/fix-failing-test.yaml, not a live model. Policy,\n"
        "sandbox, broker, approval and audit are the real ones."
    )
    build_repo(dest)
    step("Validate job and policy files", ["validate"], dest, DEVELOPER)
    step(
        "Plan: what policy grants, denies and gates", ["plan", "fix-failing-test"], dest, DEVELOPER
    )
    run_id = run_to_approval(
        "Run the job in the bubblewrap sandbox (no terminal: it waits for approval)",
        "fix-failing-test",
        dest,
    )
    step(
        "The author tries to approve their own run",
        ["approve", run_id],
        dest,
        DEVELOPER,
        check=False,
    )
    step(
        "A maintainer approves; the approved diff is committed to a branch",
        ["approve", run_id],
        dest,
        MAINTAINER,
    )
    print(f"\n$ git log --stat -1 agentplane/run/{run_id}", flush=True)
    print(run_git("--no-pager", "log", "--stat", "-1", f"agentplane/run/{run_id}", cwd=dest).stdout)
    step("The audit trail", ["audit", "log"], dest, DEVELOPER)
    step("Prove the audit chain and every artifact", ["audit", "verify"], dest, DEVELOPER)
    print(f"\nDone. Explore {dest}: `git log agentplane/audit`, `agentplane audit show {run_id}`.")
