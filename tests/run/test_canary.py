"""Canaries: secrets the host holds never leave it unmasked, on any path out.

A broker credential's password, a model key in the environment (echoed by the
scripted model) and a GitHub token committed in a file are planted; the run goes
through propose and apply on real parts; every blob and commit message of the
audit branch, the rendered evidence and the applied commit's message are scanned.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.git import GitRepo
from bot.adapters.sandbox.bwrap import BwrapBackend
from bot.core.render import render_evidence
from bot.demo.code import MAINTAINER
from bot.run.engine import Engine
from tests.conftest import Scripted, git

CRED_PW = "canary-cred-pw-7f3a91"
MODEL_KEY = "canary-llm-key-0c55e2d1"
# A GitHub token's format (detect-secrets' pattern): never known to the host, found by shape.
GH_TOKEN = "ghp_" + "Canary0Token1" * 2 + "abcdefghij"
CANARIES = (CRED_PW, MODEL_KEY, GH_TOKEN)


def plant(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AGENTPLANE_CREDENTIAL_ADMIN_CONSOLE", f"admin:{CRED_PW}@https://admin.internal.example.com"
    )
    # A name no heuristic would guess: only routing's `os.environ/CANARY_LLM` says it is a key.
    monkeypatch.setenv("CANARY_LLM", MODEL_KEY)


def name_model_key(repo: Path) -> None:
    """Routing names the key, as a real deployment would (`api_key: os.environ/...`)."""
    routing = repo / "policies/routing.yaml"
    routing.write_text(
        routing.read_text().replace(
            "  model_list:\n",
            "  model_list:\n    - model_name: keyed\n      litellm_params: "
            "{model: openai/x, api_key: os.environ/CANARY_LLM}\n",
            1,
        )
    )


def leaks(text: str | bytes) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [c for c in CANARIES if c.encode() in data]


def audit_branch_leaks(repo: Path) -> list[str]:
    """Every object reachable from the audit branch: commits (messages), trees, blobs."""
    objects = subprocess.run(
        ["git", "rev-list", "--objects", "refs/heads/agentplane/audit"],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    ids = "\n".join(o for o in objects if len(o) == 40) + "\n"
    dump = subprocess.run(
        ["git", "cat-file", "--batch"],
        cwd=repo,
        input=ids.encode(),
        check=True,
        capture_output=True,
    ).stdout
    assert len(dump) > 1000  # the branch really holds the run
    return leaks(dump)


def echo_turns() -> list[dict[str, Any]]:
    return [
        {
            "content": f"The key I was given is {MODEL_KEY}.",
            "tool_calls": [
                {"name": "fs_read", "arguments": {"path": "src/settings.py"}},
                {"name": "shell", "arguments": {"command": f"echo {MODEL_KEY} {CRED_PW}"}},
            ],
        },
        {
            "content": "Fixing add().",
            "tool_calls": [
                {
                    "name": "fs_write",
                    "arguments": {
                        "path": "src/calc.py",
                        "content": "def add(a: int, b: int) -> int:\n    return a + b\n",
                    },
                }
            ],
        },
        {"content": f"Done. The admin password is {CRED_PW}; the key {MODEL_KEY}; {GH_TOKEN}."},
    ]


def test_code_job_leaks_no_canary(
    demo_repo: Path, scripted_job: Scripted, monkeypatch: pytest.MonkeyPatch
) -> None:
    plant(monkeypatch)
    (demo_repo / "src/settings.py").write_text(f'GITHUB_TOKEN = "{GH_TOKEN}"\n')
    name_model_key(demo_repo)
    git(demo_repo, "add", "-A")
    git(demo_repo, "commit", "-qm", "settings with a committed token")
    job = scripted_job("echo", echo_turns())
    e = Engine(GitRepo(demo_repo), BwrapBackend())
    rec = e.start(e.request(job))
    assert rec.state == "awaiting_approval", rec.transitions[-1].reason
    # The secrets did reach the run (so the test can fail): the model said them.
    assert CRED_PW in (rec.final_message or "")
    evidence = render_evidence(rec, e.patch(rec), e.evidence_sections(rec), e.redactor)
    assert leaks(evidence) == []
    done = e.decide(rec.run_id, MAINTAINER[1], "approve").record
    assert done.state == "applied", done.transitions[-1].reason
    message = git(demo_repo, "log", "-1", "--format=%B", done.applied_commit()[0])
    assert "Agentplane-Run:" in message and leaks(message) == []
    assert audit_branch_leaks(demo_repo) == []
    assert e.load(rec.run_id).state == "applied"
