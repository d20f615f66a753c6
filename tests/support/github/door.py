"""The bot's pull request door on the GitHub double's octo/demo repo, as tests and benches
build it: the shipped demo project, policy people as GitHub logins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.adapters.sandbox.bwrap import BwrapBackend
from bot.demo.code import CALC, PROJECT, SHIPPED, TESTS
from bot.doors.github.flow import PullRequestDoor
from bot.doors.github.settings import Settings
from bot.doors.github.state import PullState
from tests.support.github import GitHubDouble

REPO = "octo/demo"
JOB = ".agentplane/jobs/fix-failing-test.yaml"


def repo_files() -> dict[str, str]:
    files = {rel: (PROJECT / rel).read_text() for rel in SHIPPED if rel != JOB}
    # On GitHub, people are logins.
    policy = files["policies/default.yaml"]
    for who in ("maya", "omar", "lee", "dana"):
        policy = policy.replace(f"{who}@example.com", who)
    files["policies/default.yaml"] = policy
    files["policies/routing.yaml"] = files["policies/routing.yaml"].replace(
        "  model_list:\n",
        "  classes: {asker: {model: scripted/asker, api_base: .agentplane/scripts}}\n"
        "  model_list:\n",
    )
    files.update({"src/calc.py": CALC, "tests/test_calc.py": TESTS, ".gitignore": "__pycache__/\n"})
    return files


def door_for(github: GitHubDouble, root: Path, **settings_kw: Any) -> PullRequestDoor:
    """A door on the double's octo/demo repo, as an installed App ."""
    github.create_repo(REPO, repo_files())
    return app_door(github, root, **settings_kw)


def app_door(github: GitHubDouble, root: Path, **settings_kw: Any) -> PullRequestDoor:
    """The App's door on whatever repos the double already has."""
    settings = Settings(
        webhook_secrets=("s",),
        app_id=github.app_id,
        app_private_key=github.app_private_key_pem,
        api_url=github.api_url,
        data_dir=root / "bot",
        github_throttle=False,
        **settings_kw,
    )
    return PullRequestDoor(settings, BwrapBackend(), PullState(root / "bot" / "state.db"))
