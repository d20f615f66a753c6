"""`agentplane serve` with its run pages, over the GitHub double: three repositories with a
run each (octo/demo, octo/other, octo/third, from a pull request through the real door),
octo/web whose default branch holds a job for the web door (no run yet), and people who
can read one, the other, or neither."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from bot.demo.code import PROJECT
from bot.doors.github.flow import PullRequestDoor
from bot.doors.github.queue import SqliteQueue
from bot.doors.github.runners import SCHEDULE_EVENT
from bot.doors.github.sansio import Delivery
from bot.doors.github.server import create_app
from bot.doors.web.hub import Hub
from bot.doors.web.wiring import attach_pages
from tests.support.github import GitHubDouble
from tests.support.github.door import JOB, REPO, door_for, repo_files

OTHER = "octo/other"
THIRD = "octo/third"
"""maya's too: the browser test approves its run, the HTTP test octo/demo's."""
WEB = "octo/web"
"""The job is on main: the web door's tests start it from its page. maya and wes can
write (wes is not in policy), ray can only read."""
PUBLIC = "http://testserver"
SESSION_SECRET = "s" * 40


@dataclass
class Serve:
    github: GitHubDouble
    door: PullRequestDoor
    queue: SqliteQueue
    app: FastAPI
    runs: dict[str, str]
    """repository -> the id of its run (awaiting approval)."""
    pulls: dict[str, int]
    public: str = PUBLIC
    viewer: str | None = None
    hub: Hub | None = None

    def client(self) -> TestClient:
        return TestClient(self.app, base_url=self.public)

    def sign_in(self, client: TestClient, login: str, next: str = "/repos") -> Any:
        """The OAuth web flow as a browser goes through it: to GitHub and back."""
        start = client.get("/login", params={"next": next}, follow_redirects=False)
        assert start.status_code == 302, start.text
        back = self.github.oauth.authorize(login, start.headers["location"])
        url = urlsplit(back)
        assert f"{url.scheme}://{url.netloc}" == self.public
        return client.get(f"{url.path}?{url.query}", follow_redirects=False)

    def sync(self, repo: str) -> None:
        """What any delivery for repo does first: the bot's clone fetches the default
        branch (here a schedule delivery, with nothing due)."""
        inst = self.github.installations.get(repo.split("/")[0])
        payload = {"repository": {"full_name": repo}, "installation": {"id": inst}}
        self.door.handle(Delivery(SCHEDULE_EVENT, f"sync-{time.time_ns()}", "test", payload))

    def work(self) -> list[str]:
        """What the bot's worker does: handle every queued delivery."""
        done = []
        while (item := self.queue.lease()) is not None:
            done.append(self.door.handle(item.delivery))
            self.queue.done(item)
        return done


def open_job_pr(github: GitHubDouble, door: PullRequestDoor, repo: str) -> int:
    github.commit(repo, "add-job", {JOB: (PROJECT / JOB).read_text()}, start="main")
    number, payload = github.open_pull(repo, "add-job", author="dana")
    result = door.handle(Delivery("pull_request", f"pr-{repo}", "1", payload))
    assert result == "ran 1 of 1 job(s)", result
    return number


def serve_world(tmp: Path, public: str = PUBLIC, viewer: str | None = None) -> Iterator[Serve]:
    with GitHubDouble(tmp) as gh:
        gh.oauth.callback = f"{public}/login/callback"
        door = door_for(
            gh,
            tmp,
            public_url=public,
            viewer_url=viewer,
            oauth_client_id=gh.oauth.client_id,
            oauth_client_secret=gh.oauth.client_secret,
            session_secret=SESSION_SECRET,
            web_url=gh.oauth.web_url,
        )
        gh.create_repo(OTHER, repo_files())
        gh.create_repo(THIRD, repo_files())
        gh.set_permission(REPO, "maya", "write")
        gh.set_permission(THIRD, "maya", "write")
        gh.set_permission(REPO, "dana", "write")
        gh.set_permission(OTHER, "eve", "read")
        gh.create_repo(WEB, {**repo_files(), JOB: (PROJECT / JOB).read_text()})
        for login, permission in (("maya", "write"), ("wes", "write"), ("ray", "read")):
            gh.set_permission(WEB, login, permission)
        pulls = {repo: open_job_pr(gh, door, repo) for repo in (REPO, OTHER, THIRD)}
        runs = {repo: door.state.runs(repo, n)[0][2] for repo, n in pulls.items()}
        queue = SqliteQueue(tmp / "bot" / "queue.db")
        app = create_app(door.settings, queue)
        hub = attach_pages(
            app, door.settings, door.state, queue, door.client_for, list(door.redact.secrets)
        )
        yield Serve(gh, door, queue, app, runs, pulls, public, viewer, hub)
        violations = list(gh.violations)
    assert violations == [], "off-spec GitHub traffic:\n" + "\n".join(violations)


@contextmanager
def listening(app: FastAPI, port: int) -> Iterator[None]:
    """The app on 127.0.0.1:port, in a thread, for as long as the block lasts."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "serve did not start"
        threading.Event().wait(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(5)
