"""Verification by the control plane: the job's verify commands run on the base commit
plus the proposal, in a fresh sandbox; the agent's claim is never the evidence. Shell
calls show their exit status and output in the evidence."""

from __future__ import annotations

from pathlib import Path

from bot.core.render import render_evidence, render_pr_comment
from tests.conftest import Scripted, git
from tests.run.test_engine import start

TESTS = "python3 -m unittest discover -s tests"
WRONG_FIX = (
    "def add(a: int, b: int) -> int:\n    return a * b\n\n\ndef mul(a, b):\n    return a * b\n"
)


def test_the_shipped_job_is_verified_on_its_proposal(demo_repo: Path) -> None:
    _, rec = start(demo_repo)
    assert rec.state == "awaiting_approval", rec.transitions
    (check,) = rec.verification
    assert (check.command, check.exit_code, check.passed) == (TESTS, 0, True)
    assert "OK" in check.output
    comment = render_pr_comment(rec, "plan", "", None)
    assert "#### Verification" in comment and f"✅ `{TESTS}` (exit 0)" in comment


def test_a_wrong_fix_the_agent_calls_done_ends_verify_failed(
    demo_repo: Path, scripted_job: Scripted
) -> None:
    job = scripted_job(
        "liar",
        [
            {
                "tool_calls": [
                    {"name": "fs_write", "arguments": {"path": "src/calc.py", "content": WRONG_FIX}}
                ]
            },
            {"content": "Fixed; all tests pass."},
        ],
        verify=[TESTS],
    )
    _, rec = start(demo_repo, job)
    assert rec.state == "verify_failed", rec.transitions
    assert rec.transitions[-1].reason == f"verification failed: {TESTS} (see the evidence)"
    (check,) = rec.verification
    assert check.exit_code == 1 and "FAILED" in check.output
    shown = render_evidence(rec, "")
    assert f"Verification FAILED: {TESTS} (exit 1" in shown


def test_the_agents_own_commands_are_shown_and_its_claim_never_counts(
    demo_repo: Path, scripted_job: Scripted
) -> None:
    # It tries to empty the tests (the sandbox refuses: outside its write scope), prints a
    # fake "OK" and says the tests pass; verification runs the real tests on the proposal.
    fake = "python3 -c 'print(\"Ran 2 tests\\n\\nOK\")'"
    job = scripted_job(
        "faker",
        [
            {
                "tool_calls": [
                    {"name": "shell", "arguments": {"command": "echo pass > tests/test_calc.py"}},
                    {
                        "name": "fs_write",
                        "arguments": {"path": "src/calc.py", "content": WRONG_FIX},
                    },
                    {"name": "shell", "arguments": {"command": fake}},
                ]
            },
            {"content": "All tests pass."},
        ],
        verify=[TESTS],
    )
    e, rec = start(demo_repo, job)
    assert rec.state == "verify_failed", rec.transitions
    assert rec.proposal is not None and rec.proposal.paths == ["src/calc.py"]
    shell = [c for c in rec.tool_calls if c.tool == "shell"]
    assert shell[0].status != "exit 0" and shell[1].status == "exit 0"
    shown = render_evidence(rec, "", e.evidence_sections(rec))
    assert f"$ echo pass > tests/test_calc.py\n[{shell[0].status}]" in shown
    assert f"$ {fake}\n[exit 0]\nRan 2 tests" in shown
    assert f"Verification FAILED: {TESTS}" in shown


def test_policy_may_let_a_failed_verification_be_approved_with_the_failure_shown(
    demo_repo: Path, scripted_job: Scripted
) -> None:
    policy = demo_repo / "policies/default.yaml"
    text = policy.read_text()
    assert "  code:\n" in text
    policy.write_text(
        text.replace("  code:\n", "  code:\n    approve_failed_verification: true\n", 1)
    )
    git(demo_repo, "commit", "-qam", "failed verification may be approved for code")
    job = scripted_job(
        "liar2",
        [
            {
                "tool_calls": [
                    {"name": "fs_write", "arguments": {"path": "src/calc.py", "content": WRONG_FIX}}
                ]
            },
            {"content": "Fixed."},
        ],
        verify=[TESTS],
    )
    _, rec = start(demo_repo, job)
    assert rec.state == "awaiting_approval", rec.transitions
    assert not rec.verification[0].passed
    assert f"❌ `{TESTS}` (exit 1)" in render_pr_comment(rec, "plan", "", None)
