"""The terminal door as a user drives it: real processes, real repo, no TTY unless given one."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from bot.demo.code import MAINTAINER
from tests.conftest import Scripted, git


def agentplane(
    repo: Path,
    *args: str,
    who: tuple[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if who:
        env.update(GIT_COMMITTER_NAME=who[0], GIT_COMMITTER_EMAIL=who[1])
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=repo,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_validate_reports_every_error_with_position_and_no_traceback(tmp_path: Path) -> None:
    jobs = tmp_path / ".agentplane" / "jobs"
    jobs.mkdir(parents=True)
    (jobs / "x.yaml").write_text(
        "name: x\ntools: [filesystem]\nscope:\n  filesystem:\n"
        "    read: ['**']\n    write:\n      - /abs\n  sqll: 1\n"
    )
    (jobs / "ok.yaml").write_text("prompt: hi\n")
    out = agentplane(tmp_path, "validate")
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    lines = out.stderr.splitlines()
    assert lines[0].startswith(".agentplane/jobs/x.yaml:6:5: scope.filesystem.write: ")
    assert lines[1].startswith(".agentplane/jobs/x.yaml:8:3: scope.sqll: unknown field")


def test_validate_explicit_paths_and_ok(tmp_path: Path) -> None:
    (tmp_path / "j.yaml").write_text("prompt: hi\n")
    out = agentplane(tmp_path, "validate", "j.yaml")
    assert out.returncode == 0 and out.stdout.strip() == "ok: 1 file(s) valid"
    out = agentplane(tmp_path, "validate", "missing.yaml")
    assert out.returncode == 1 and "missing.yaml:1:1: cannot read" in out.stderr


def test_validate_policy_files(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "p.yaml").write_text(
        "gates:\n  - id: g\n    actions: [launch]\n    approvers: {any_of: [a]}\n"
    )
    out = agentplane(tmp_path, "validate")
    assert out.returncode == 1 and out.stderr.startswith(
        "policies/p.yaml:3:15: gates[0].actions[0]:"
    )


def test_schema_is_json(tmp_path: Path) -> None:
    schema = json.loads(agentplane(tmp_path, "schema").stdout)
    assert schema["title"] == "agentplane job"


def test_errors_outside_a_repo_are_one_line(tmp_path: Path) -> None:
    out = agentplane(tmp_path, "plan", "x")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.startswith("error: ") and "not inside a git repository" in out.stderr


def test_plan_prints_rules(demo_repo: Path) -> None:
    out = agentplane(demo_repo, "plan", "fix-failing-test")
    assert out.returncode == 0, out.stderr
    assert "[policies/default.yaml#gates.code-changes]" in out.stdout


def test_run_without_tty_waits_then_approve_and_audit(demo_repo: Path) -> None:
    out = agentplane(demo_repo, "run", "fix-failing-test")
    assert out.returncode == 0, out.stderr
    run_id = re.search(r"Waiting for approval: (\S+)", out.stdout).group(1)  # type: ignore[union-attr]
    assert agentplane(demo_repo, "approve", run_id).returncode == 2  # the author
    ok = agentplane(demo_repo, "approve", run_id, who=MAINTAINER)
    assert ok.returncode == 0 and "applied" in ok.stdout
    assert "Applied: committed " in ok.stdout and f"on branch agentplane/run/{run_id}" in ok.stdout
    log = agentplane(demo_repo, "audit", "log").stdout
    assert run_id in log and "applied" in log
    shown = json.loads(agentplane(demo_repo, "audit", "show", run_id).stdout)
    assert shown["state"] == "applied" and shown["approvals"][-1]["approver"] == MAINTAINER[1]
    verified = agentplane(demo_repo, "audit", "verify")
    assert verified.returncode == 0 and verified.stdout.startswith("ok: ")


def test_killed_while_awaiting_approval_resumes_with_nothing_lost(demo_repo: Path) -> None:
    """A real terminal: the run asks for approval, the process is SIGKILLed, approval resumes."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "run", "fix-failing-test"],
        cwd=demo_repo,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        start_new_session=True,
    )
    os.close(follower)
    seen, deadline = b"", time.monotonic() + 120
    while b"Approve run" not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 1)
        if ready:
            try:
                seen += os.read(leader, 65536)
            except OSError:
                break
    assert b"Approve run" in seen, seen.decode(errors="replace")[-2000:]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    os.close(leader)
    run_id = re.search(rb"Approve run (\S+) as", seen).group(1).decode()  # type: ignore[union-attr]
    shown = json.loads(agentplane(demo_repo, "audit", "show", run_id).stdout)
    assert shown["state"] == "awaiting_approval" and shown["proposal"]["changed"] == ["src/calc.py"]
    done = agentplane(demo_repo, "approve", run_id, who=MAINTAINER)
    assert done.returncode == 0, done.stderr
    assert "return a + b" in git(demo_repo, "show", f"agentplane/run/{run_id}:src/calc.py")
    assert agentplane(demo_repo, "audit", "verify").returncode == 0


def test_clarification_on_the_terminal(demo_repo: Path, scripted_job: Scripted) -> None:
    from tests.run.test_engine import ASKS

    job = scripted_job("asker", ASKS)
    out = agentplane(demo_repo, "run", job)
    assert out.returncode == 0, out.stderr
    assert "The agent asks: Should b.py use tabs or spaces?" in out.stdout
    run_id = re.search(r"agentplane answer (\S+)", out.stdout).group(1)  # type: ignore[union-attr]
    answered = agentplane(demo_repo, "answer", run_id, "spaces")
    assert answered.returncode == 0, answered.stderr
    assert "Waiting for approval" in answered.stdout and "src/b.py" in answered.stdout


def test_a_run_killed_mid_flight_is_resolved_by_the_next_command(
    demo_repo: Path, scripted_job: Scripted
) -> None:
    # The process carrying a run dies with SIGKILL while its sandbox runs a command: the run
    # must not stay `running` for good; the next command that moves runs forward fails it
    # with the reason, and the audit chain still verifies. The calls it made before dying
    # were journaled one by one, and are in the record it is failed with.
    read = {"name": "fs_read", "arguments": {"path": "src/calc.py"}}
    slow = {"name": "shell", "arguments": {"command": "sleep 30"}}
    job = scripted_job(
        "slow", [{"tool_calls": [read]}, {"tool_calls": [slow]}, {"content": "done"}]
    )
    journal = demo_repo / ".git/agentplane/journal"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "run", job, "--deny"],
        cwd=demo_repo,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while _journaled(journal, "model") != 2:  # asked to sleep: in the sandbox now
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.2)
    finally:
        proc.kill()
        proc.wait()
    log = agentplane(demo_repo, "audit", "log").stdout
    assert "running" in log
    before = git(demo_repo, "rev-parse", "agentplane/audit")
    stale = agentplane(demo_repo, "audit", "verify")
    assert "STALE slow-" in stale.stderr and "died" in stale.stderr
    assert git(demo_repo, "rev-parse", "agentplane/audit") == before  # verify writes nothing
    run_id = re.search(r"slow-\d+-[0-9a-f]+", log).group(0)  # type: ignore[union-attr]
    done = agentplane(demo_repo, "deny", run_id)
    assert f"recovered {run_id}: failed: the process carrying it" in done.stderr
    assert "died while running; run it again" in done.stderr
    assert "(kept from its journal: 2 model calls, 1 tool calls)" in done.stderr
    assert f"run {run_id} is failed" in done.stderr  # resolved before the command looked
    assert agentplane(demo_repo, "audit", "verify").returncode == 0
    shown = json.loads(agentplane(demo_repo, "audit", "show", run_id).stdout)
    assert [c["tool"] for c in shown["tool_calls"]] == ["fs_read"]
    assert [m["seq"] for m in shown["model_calls"]] == [1, 2]
    assert not list(journal.glob("*.jsonl"))  # folded into the record, then emptied


def _journaled(directory: Path, kind: str) -> int:
    lines = [p.read_text().splitlines() for p in directory.glob("*.jsonl")]
    return sum(f'"kind":"{kind}"' in line for file in lines for line in file)


def _audit_subjects(repo: Path) -> str:
    out = subprocess.run(
        ["git", "log", "--format=%s", "agentplane/audit"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout


def test_schema_record_describes_the_records_on_the_audit_branch(demo_repo: Path) -> None:
    # Outside tools read an audit branch by this schema: a real run's records validate.
    import jsonschema

    printed = agentplane(demo_repo, "schema", "--record")
    assert printed.returncode == 0, printed.stderr
    schema = json.loads(printed.stdout)
    assert "proposal" in schema["properties"] and "approvals" in schema["properties"]
    agentplane(demo_repo, "run", "fix-failing-test", who=MAINTAINER)
    shown = agentplane(demo_repo, "audit", "log").stdout
    run_id = re.search(r"fix-failing-test-\d+-[0-9a-f]+", shown).group(0)  # type: ignore[union-attr]
    record = json.loads(agentplane(demo_repo, "audit", "show", run_id).stdout)
    jsonschema.validate(record, schema)
