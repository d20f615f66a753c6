"""A real audit branch with runs of several kinds, built once per module by running real
jobs through the Engine on the demo repo: the shipped code job (approved and applied),
a denied run with a hostile prompt, and (where Chromium is installed) a held browser run
with its trace."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from bot.adapters.git import GitRepo
from bot.adapters.sandbox.bwrap import BwrapBackend
from bot.demo.browser import POLICY, point_at_console
from bot.demo.code import DEVELOPER, MAINTAINER, build_repo
from bot.demo.console import PASSWORD, USERNAME, AdminSite
from bot.doors.web.app import Origins, build
from bot.doors.web.index import RunIndex
from bot.doors.web.serve import free_port
from bot.doors.web.site import Site, User
from bot.run.engine import Engine
from tests.conftest import git
from tests.doors.web.serve_world import Serve, listening, serve_world
from tests.families.browser.conftest import have_chromium

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)> fix it'
TEST_ORIGINS = Origins(app="http://testserver", app_hosts=frozenset({"testserver"}))


@dataclass
class World:
    repo: Path
    engine: Engine
    runs: dict[str, str] = field(default_factory=dict)
    """kind -> run id: applied, denied, browser."""

    def site(self) -> Site:
        index = RunIndex.for_log(self.engine.audit)
        return Site(self.engine, index, User(DEVELOPER[1], DEVELOPER[0]))


def _browser_job(repo: Path, url: str) -> str:
    name = "admin-edit"
    turns = [
        {"tool_calls": [{"name": "goto", "arguments": {"url": f"{url}/users/2/edit"}}]},
        {"tool_calls": [{"name": "fill", "arguments": {"label": "Email", "text": "b@x.io"}}]},
        {"tool_calls": [{"name": "click", "arguments": {"role": "button", "name": "Save"}}]},
        {"content": "held"},
    ]
    spec = {
        "job_type": "browser",
        "tools": ["browser"],
        "prompt": "Change bob's email to b@x.io; done when the list shows it",
        "scope": {"browser": {"domains": ["127.0.0.1"]}},
        "credentials": ["admin-console"],
        "approval_required_for": ["submit"],
        "model": f"{name}-model",
    }
    (repo / ".agentplane/jobs" / f"{name}.yaml").write_text(yaml.safe_dump(spec))
    (repo / ".agentplane/scripts" / f"{name}.yaml").write_text(yaml.safe_dump({"turns": turns}))
    policy = repo / POLICY
    policy.write_text(point_at_console({POLICY: policy.read_text()}, url)[POLICY])
    routing = repo / "policies" / "routing.yaml"
    routing.write_text(
        routing.read_text().replace(
            "  model_list:\n",
            f"  classes:\n    {name}-model: {{model: scripted/{name}, "
            "api_base: .agentplane/scripts}\n  model_list:\n",
        )
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", f"job {name}")
    return name


@pytest.fixture(scope="package")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GIT_COMMITTER_NAME", DEVELOPER[0])
        mp.setenv("GIT_COMMITTER_EMAIL", DEVELOPER[1])
        repo = tmp_path_factory.mktemp("web") / "demo"
        build_repo(repo)
        engine = Engine(GitRepo(repo), BwrapBackend())
        w = World(repo, engine)
        rec = engine.start(engine.request("fix-failing-test"))
        assert rec.state == "awaiting_approval", rec.transitions
        outcome = engine.decide(rec.run_id, MAINTAINER[1], "approve", name=MAINTAINER[0])
        assert outcome.record.state == "applied", outcome
        w.runs["applied"] = rec.run_id
        denied = engine.start(
            engine.request("fix-failing-test", prompt=HOSTILE, requester="mallory@example.com")
        )
        assert denied.state == "denied"
        w.runs["denied"] = denied.run_id
        if have_chromium():
            with AdminSite() as admin:
                mp.setenv(
                    "AGENTPLANE_CREDENTIAL_ADMIN_CONSOLE", f"{USERNAME}:{PASSWORD}@{admin.url}"
                )
                held = engine.start(engine.request(_browser_job(repo, admin.url)))
            assert held.state == "awaiting_approval", held.transitions
            w.runs["browser"] = held.run_id
        yield w


@pytest.fixture
def site(world: World) -> Site:
    return world.site()


@pytest.fixture
def client(site: Site) -> TestClient:
    return TestClient(build(site, TEST_ORIGINS))


@pytest.fixture(scope="package")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    """serve's app with its run pages over four repositories (serve_world.py), listening
    on loopback for the browser (the viewer's host is localhost, the app's 127.0.0.1); the
    HTTP tests call the same app in process."""
    port, viewer_port = free_port(), free_port()
    public, viewer = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{viewer_port}"
    for world in serve_world(tmp_path_factory.mktemp("serve"), public, viewer):
        # One app on two ports, as a proxy would put two host names on one server: the
        # viewer's requests are told apart by their Host.
        with listening(world.app, port), listening(world.app, viewer_port):
            yield world
