"""GitHub's retry advice, a cap on every wait, and the bot's own pacing of writes.

Waits are recorded by an injected sleep instead of slept: a secondary rate limit asks for
a minute, a spent quota for its reset, and the tests see the figure without waiting it.
"""

from __future__ import annotations

import email.utils
import itertools
import threading
import time
from pathlib import Path

import pytest

import bot.doors.github.client as client_module
from bot.core.errors import AgentplaneError
from bot.doors.github.client import GitHubClient, GitHubError
from bot.doors.github.ratelimit import SECONDARY_WAIT, Pacer, WaitTooLong, retry_wait
from bot.doors.github.settings import Settings
from tests.support.github import GitHubDouble
from tests.support.github.state import SECONDARY_RATE_LIMIT

REPO = "octo/paced"
NOW = 1_900_000_000.0


def test_retry_wait_follows_githubs_order_of_advice() -> None:
    def wait(status: int | None, headers: dict[str, str], message: str = "", n: int = 0) -> float:
        return retry_wait(status, headers, message, n, backoff=0.5, now=NOW)[0]

    assert wait(403, {"Retry-After": "7"}, SECONDARY_RATE_LIMIT) == 7
    assert wait(429, {"retry-after": email.utils.formatdate(NOW + 10, usegmt=True)}) == 10
    spent = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW) + 30)}
    assert wait(403, spent, "API rate limit exceeded") == 31  # the reset, and its second
    # A secondary limit saying nothing more: at least a minute, doubling when met again.
    assert [wait(403, {}, SECONDARY_RATE_LIMIT, n) for n in range(3)] == [
        SECONDARY_WAIT,
        2 * SECONDARY_WAIT,
        4 * SECONDARY_WAIT,
    ]
    assert wait(429, {}, "", 1) == 2 * SECONDARY_WAIT
    # Not a rate limit: a 5xx or a lost answer backs off from the configured first wait.
    assert [wait(502, {}, "Server Error", n) for n in range(3)] == [0.5, 1.0, 2.0]
    assert wait(None, {}, "ReadTimeout", 2) == 2.0


def client(github: GitHubDouble, tmp_path: Path, waits: list[float], **kw: object) -> GitHubClient:
    settings = Settings(
        webhook_secrets=("s",),
        app_id=github.app_id,
        app_private_key=github.app_private_key_pem,
        api_url=github.api_url,
        data_dir=tmp_path / "bot",
        **{"github_throttle": False, **kw},  # type: ignore[arg-type]
    )
    return GitHubClient(
        settings, github.installations["octo"], sleep=waits.append, clock=lambda: NOW
    )


@pytest.fixture
def pull(github: GitHubDouble) -> int:
    github.create_repo(REPO, {"README.md": "paced\n"})
    github.commit(REPO, "topic", {"NOTES.md": "notes\n"}, start="main")
    number, _ = github.open_pull(REPO, "topic")
    return number


def test_a_write_refused_for_a_secondary_limit_waits_a_minute_then_posts_once(
    github: GitHubDouble, tmp_path: Path, pull: int
) -> None:
    waits: list[float] = []
    github.fail_next("POST", r"/comments$", status=403, message=SECONDARY_RATE_LIMIT, times=2)
    client(github, tmp_path, waits).upsert_comment(REPO, pull, "k", "hello")
    assert waits == [SECONDARY_WAIT, 2 * SECONDARY_WAIT]
    assert [r.status for r in github.calls("POST", r"/comments$")] == [403, 403, 201]
    assert len(github.comments(REPO, pull)) == 1


def test_a_read_with_the_quota_spent_waits_until_the_reset(
    github: GitHubDouble, tmp_path: Path, pull: int
) -> None:
    waits: list[float] = []
    spent = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(NOW) + 42)}
    github.fail_next(
        "GET", r"/pulls/\d+$", status=403, message="API rate limit exceeded", headers=spent
    )
    assert client(github, tmp_path, waits).pull(REPO, pull).number == pull
    assert waits == [43]


@pytest.mark.parametrize("method, path", [("POST", r"/comments$"), ("GET", r"/comments$")])
def test_a_wait_beyond_the_cap_fails_the_call_at_once_with_a_typed_error(
    github: GitHubDouble, tmp_path: Path, pull: int, method: str, path: str
) -> None:
    waits: list[float] = []
    github.fail_next(method, path, status=429, retry_after=3600, message="slow down")
    gh = client(github, tmp_path, waits, github_max_wait=120)
    with pytest.raises(WaitTooLong) as caught:
        gh.upsert_comment(REPO, pull, "k", "hello")
    assert isinstance(caught.value, AgentplaneError) and not isinstance(caught.value, GitHubError)
    assert "wait 3600 s" in str(caught.value) and "cap of 120 s" in str(caught.value)
    assert waits == []  # nothing slept: a webhook handler is never stuck on GitHub
    assert github.comments(REPO, pull) == []


def test_a_pacer_spaces_writes_from_the_end_of_the_last_one() -> None:
    t = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        t[0] += s

    pacer = Pacer(1.0, sleep=sleep, clock=lambda: t[0])
    with pacer.hold():
        t[0] += 0.25  # the request itself takes a quarter second
    t[0] += 0.5
    with pacer.hold():
        pass
    with pacer.hold():
        pass
    assert slept == [1.0 - 0.5, 1.0]


def test_under_load_one_installations_writes_reach_github_one_at_a_time_and_spaced(
    github: GitHubDouble, tmp_path: Path, pull: int
) -> None:
    """Three workers post two comments each at once, each with its own client: GitHub
    sees the six writes one after another, never closer than the pause."""
    pause = 0.15
    clients = [
        GitHubClient(
            Settings(
                webhook_secrets=("s",),
                app_id=github.app_id,
                app_private_key=github.app_private_key_pem,
                api_url=github.api_url,
                data_dir=tmp_path / "bot",
                github_write_pause=pause,
            ),
            github.installations["octo"],
        )
        for _ in range(3)
    ]
    for gh in clients:
        gh.token()  # mint the token first: only the comments' pacing is measured
    start = threading.Barrier(len(clients))

    def post(i: int) -> None:
        start.wait()
        for j in range(2):
            clients[i].upsert_comment(REPO, pull, f"w{i}-{j}", "load")

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(clients))]
    began = time.monotonic()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    writes = sorted(r.at for r in github.calls("POST", r"/issues/\d+/comments$") if r.at >= began)
    assert len(writes) == 6 and len(github.comments(REPO, pull)) == 6
    gaps = [b - a for a, b in itertools.pairwise(writes)]
    assert min(gaps) >= pause, gaps


def test_the_apps_key_is_parsed_once_per_process_and_a_bad_one_is_named(
    github: GitHubDouble, tmp_path: Path, pull: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[bytes] = []
    real = client_module.serialization.load_pem_private_key

    def counting(data: bytes, password: bytes | None) -> object:
        parsed.append(data)
        return real(data, password)

    monkeypatch.setattr(client_module.serialization, "load_pem_private_key", counting)
    client_module._app_key.cache_clear()
    for _ in range(2):  # two clients, two JWTs (each mints its installation token)
        client(github, tmp_path, []).upsert_comment(REPO, pull, "k", "hello")
    assert len(github.calls("POST", r"/access_tokens$")) == 2
    assert len(parsed) == 1
    settings = Settings(webhook_secrets=("s",), app_id=1, app_private_key="not a key")
    with pytest.raises(GitHubError, match="not a PEM private key"):
        GitHubClient(settings, 1)
