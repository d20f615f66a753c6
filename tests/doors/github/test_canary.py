"""Canaries through the pull request door: comments, check runs, the pushed audit branch
and the commit pushed onto the PR branch, all read back from the GitHub double."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from bot.adapters.sandbox.bwrap import BwrapBackend
from bot.doors.github.flow import PullRequestDoor
from bot.doors.github.settings import Settings
from bot.doors.github.state import PullState
from tests.doors.github.conftest import github, github_spec  # noqa: F401  (fixtures)
from tests.doors.github.test_flow import REPO, deliver, repo_files
from tests.run.test_canary import GH_TOKEN, audit_branch_leaks, echo_turns, leaks, plant
from tests.support.github import GitHubDouble

JOB = ".agentplane/jobs/echo.yaml"


def test_pull_request_door_leaks_no_canary(
    github: GitHubDouble,  # noqa: F811  (the fixture imported above)
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plant(monkeypatch)
    files = repo_files()
    files["policies/routing.yaml"] = files["policies/routing.yaml"].replace(
        "  model_list:\n",
        "  model_list:\n    - model_name: echo-model\n      litellm_params: "
        "{model: scripted/echo, api_base: .agentplane/scripts, api_key: os.environ/CANARY_LLM}\n",
        1,
    )
    files["src/settings.py"] = f'GITHUB_TOKEN = "{GH_TOKEN}"\n'
    github.create_repo(REPO, files)
    settings = Settings(
        webhook_secrets=("s",),
        app_id=github.app_id,
        app_private_key=github.app_private_key_pem,
        api_url=github.api_url,
        data_dir=tmp_path / "bot",
        github_throttle=False,
    )
    door = PullRequestDoor(settings, BwrapBackend(), PullState(tmp_path / "bot" / "state.db"))
    job = {
        "job_type": "code",
        "prompt": "fix the failing test; done when the tests pass",
        "tools": ["filesystem", "shell"],
        "scope": {"filesystem": {"write": ["src/**"]}},
        "model": "echo-model",
    }
    github.commit(
        REPO,
        "add-job",
        {
            JOB: yaml.safe_dump(job),
            ".agentplane/scripts/echo.yaml": yaml.safe_dump({"turns": echo_turns()}),
        },
        start="main",
    )
    number, payload = github.open_pull(REPO, "add-job", author="dana")
    assert deliver(door, "pull_request", payload) == "ran 1 of 1 job(s)"
    head = github.head_sha(REPO, number)
    _, review = github.submit_review(REPO, number, "maya", "approved", commit_id=head)
    assert deliver(door, "pull_request_review", review) == "echo: applied"

    bodies = [c.body for c in github.comments(REPO, number)]
    assert any("Agent says" in b or "Proposal" in b for b in bodies)
    assert leaks("\n".join(bodies)) == []
    assert leaks(json.dumps(github.check_runs(REPO))) == []
    bare = github.repo(REPO).bare
    tip = github.head_sha(REPO, number)
    message = subprocess.run(
        ["git", "--git-dir", str(bare), "log", "-1", "--format=%B", tip],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Agentplane-Run:" in message and leaks(message) == []
    assert audit_branch_leaks(Path(bare)) == []
