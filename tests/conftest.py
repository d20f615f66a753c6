"""Fixtures that build real things: git repositories with jobs, policy and model scripts."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.demo.code import DEVELOPER, MAINTAINER, build_repo
from tests.support.model_server import KEY, KEY_ENV, ModelServer
from tests.support.postgres import Cluster, ClusterUnavailable, cluster

PROJECT = Path(__file__).resolve().parents[1]


def git(repo: Path, *args: str, who: tuple[str, str] = DEVELOPER) -> str:
    name, email = who
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def as_developer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_COMMITTER_NAME", DEVELOPER[0])
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", DEVELOPER[1])


@pytest.fixture
def demo_repo(tmp_path: Path, as_developer: None) -> Path:
    """The demo repo: a calculator with a failing test, the shipped policy, job and script."""
    repo = tmp_path / "demo"
    build_repo(repo)
    return repo


Scripted = Callable[..., str]


@pytest.fixture
def scripted_job(demo_repo: Path) -> Scripted:
    """Commit a job and its model script into the demo repo; returns the job name."""

    def make(name: str, turns: list[dict[str, Any]], **job: Any) -> str:
        spec = {
            "job_type": "code",
            "prompt": "fix the failing test; done when the tests pass",
            "tools": ["filesystem", "shell"],
            "scope": {"filesystem": {"write": ["src/**"]}},
        }
        spec.update(job)
        (demo_repo / ".agentplane/jobs" / f"{name}.yaml").write_text(yaml.safe_dump(spec))
        (demo_repo / ".agentplane/scripts" / f"{name}.yaml").write_text(
            yaml.safe_dump({"turns": turns})
        )
        policy = demo_repo / "policies" / "routing.yaml"
        text = policy.read_text()
        if f"  {name}-model:" not in text:
            text = text.replace(
                "  model_list:\n",
                f"  classes:\n    {name}-model: {{model: scripted/{name}, "
                "api_base: .agentplane/scripts}\n  model_list:\n",
            )
            policy.write_text(text)
        git(demo_repo, "add", "-A")
        git(demo_repo, "commit", "-qm", f"job {name}")
        spec_path = demo_repo / ".agentplane/jobs" / f"{name}.yaml"
        spec_path.write_text(yaml.safe_dump({**spec, "model": f"{name}-model"}))
        git(demo_repo, "commit", "-qam", f"job {name} uses its script")
        return name

    return make


__all__ = ["MAINTAINER", "PROJECT", "git"]


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """The real primary and hot standby, built once per session for every test that needs
    one (SQL, documents, the three-kinds pull request)."""
    try:
        with cluster() as c:
            yield c
    except ClusterUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture
def model_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The key every model-server deployment names (os.environ/...), as a real host would
    hold it (tests/support/model_server)."""
    monkeypatch.setenv(KEY_ENV, KEY)


@pytest.fixture
def server() -> Iterator[ModelServer]:
    """A model server speaking OpenAI's and Anthropic's wire formats, for one test."""
    with ModelServer() as s:
        yield s
