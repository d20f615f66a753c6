"""The webhook under hostile and unknown input: schemathesis over the bot's own OpenAPI,
generated bodies (oversized, truncated, unknown events and actions, signed right and
wrong), and every real example payload delivered through the server to the door, whose
log says for each what it decided. Seeded; each suite prints its figures."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.doors.github.queue import Backoff, SqliteQueue
from bot.doors.github.sansio import signature
from bot.doors.github.server import Metrics, Worker, create_app
from bot.doors.github.settings import Settings
from tests.support.fuzzing import SEEDED, Figures
from tests.support.github import GitHubDouble
from tests.support.github.door import REPO, door_for
from tests.support.github.objects import _rebase
from tests.support.shared import GITHUB

LIMIT = 64 << 10  # the server's body cap in these tests, so "oversized" stays cheap
EXAMPLES = [
    (e["name"], i, ex)
    for e in json.loads((GITHUB / "webhook-examples.json").read_text())
    for i, ex in enumerate(e["examples"])
]
EVENTS = sorted({name for name, _, _ in EXAMPLES})
SMALL = [ex for _, _, ex in EXAMPLES if len(json.dumps(ex)) < LIMIT]


@pytest.fixture(scope="module")
def figures(pytestconfig: pytest.Config) -> Iterator[dict[str, Figures]]:
    found: dict[str, Figures] = {}
    yield found
    for fig in found.values():
        fig.report(pytestconfig)


def fresh_app(tmp: Path) -> tuple[Any, SqliteQueue]:
    queue = SqliteQueue(tmp / "q.db", Backoff(base=0))
    return create_app(Settings(webhook_secrets=("s",)), queue, max_body=LIMIT), queue


# -- schemathesis: the bot's own OpenAPI, in-process over ASGI --------------------------

_app, _ = fresh_app(Path(__import__("tempfile").mkdtemp(prefix="fuzz-openapi-")))
schema = schemathesis.openapi.from_asgi("/openapi.json", _app)


@schema.parametrize()
@settings(SEEDED, max_examples=30)
def test_the_servers_openapi_yields_no_5xx(case: schemathesis.Case) -> None:
    response = case.call()
    assert response.status_code < 500, (case.method, case.path, response.status_code)


def test_the_openapi_names_every_route() -> None:
    assert {"/webhook", "/healthz", "/metrics"} <= set(_app.openapi()["paths"])


# -- generated bodies, signed right and wrong -------------------------------------------


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """Real payloads cut short, grown past the cap, retyped, or noise; unknown actions."""
    example = dict(draw(st.sampled_from(SMALL)))
    kind = draw(st.sampled_from(["truncated", "oversized", "action", "retyped", "noise"]))
    if kind == "action":
        example["action"] = draw(st.one_of(st.text(max_size=30), st.integers(), st.none()))
    if kind == "retyped":
        key = draw(st.sampled_from(sorted(example)))
        example[key] = draw(st.one_of(st.text(max_size=5), st.integers(), st.lists(st.none())))
    body = json.dumps(example).encode()
    if kind == "truncated":
        return body[: draw(st.integers(0, max(0, len(body) - 1)))]
    if kind == "oversized":
        return body + b" " * (LIMIT + 1 - len(body))
    if kind == "noise":
        return draw(st.binary(max_size=2000))
    return body


@settings(SEEDED, max_examples=150)
@given(
    body=bodies(),
    event=st.one_of(
        st.sampled_from(EVENTS),
        st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=40),
    ),
    signed=st.sampled_from(["right", "wrong", "none"]),
)
def test_generated_deliveries_are_answered_without_5xx(
    figures: dict[str, Figures], tmp_path_factory: pytest.TempPathFactory, body: bytes,
    event: str, signed: str,
) -> None:  # fmt: skip
    fig = figures.setdefault(
        "webhook bodies", Figures("webhook bodies", refusal="refused 400/401/413")
    )
    app, queue = fresh_app(tmp_path_factory.mktemp("q"))
    headers = {"X-GitHub-Delivery": "d", "X-GitHub-Hook-ID": "1", "X-GitHub-Event": event}
    if signed != "none":
        headers["X-Hub-Signature-256"] = signature("s" if signed == "right" else "x", body)
    with fig.case():
        status = TestClient(app).post("/webhook", content=body, headers=headers).status_code
    assert status < 500
    if status == 202:
        fig.accepted += 1
        assert signed == "right" and len(body) <= LIMIT and queue.counts() == {"queued": 1}
    else:
        fig.rejected += 1
        assert status in (400, 401, 413) and queue.counts() == {}
        assert signed != "right" or len(body) > LIMIT or status == 400


# -- every real example, through the server, to the door --------------------------------


def test_every_real_example_is_handled_or_ignored_and_the_log_says_which(
    github: GitHubDouble, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    pytestconfig: pytest.Config,
) -> None:  # fmt: skip
    """Each of GitHub's example payloads, moved onto the double's repository and one of its
    pull requests (no job files, so nothing runs), is signed, answered 202, and handled by
    the real door: exactly one log line per delivery, naming the decision."""
    door = door_for(github, tmp_path)
    github.commit(REPO, "topic", {"README.md": "# changed\n"}, start="main")
    number, _ = github.open_pull(REPO, "topic")
    owner = REPO.split("/")[0]
    queue = SqliteQueue(tmp_path / "q.db", Backoff(base=0))
    client = TestClient(create_app(door.settings, queue))
    for n, (event, i, example) in enumerate(EXAMPLES):
        old = (example.get("repository") or {}).get("full_name") or "octocat/Hello-World"
        payload = _rebase(example, github.api_url, {old: REPO})
        if isinstance(payload.get("repository"), dict):
            payload["repository"]["full_name"] = REPO
        payload["installation"] = {"id": github.installations[owner]}
        for key in ("pull_request", "issue"):
            if isinstance(payload.get(key), dict):
                payload[key]["number"] = number
        body = json.dumps(payload).encode()
        headers = {
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": f"{event}-{i}-{n}",
            "X-Hub-Signature-256": signature("s", body),
        }
        assert client.post("/webhook", content=body, headers=headers).status_code == 202
    worker = Worker(queue, door.handle, Metrics())
    with caplog.at_level(logging.INFO, logger="agentplane.server"):
        while worker.run_once():
            pass
    lines = [r for r in caplog.records if r.name == "agentplane.server"]
    failed = [r.getMessage() for r in lines if r.levelno >= logging.WARNING]
    assert failed == []
    assert queue.counts() == {"done": len(EXAMPLES)}
    decisions: dict[str, int] = {}
    for n, (event, i, _) in enumerate(EXAMPLES):
        (line,) = [r.getMessage() for r in lines if f" {event}-{i}-{n}: " in r.getMessage()]
        decision = line.split(": ", 1)[1]
        assert decision.strip(), line
        kind = "ignored" if decision.startswith("ignored: ") else "handled"
        decisions[kind] = decisions.get(kind, 0) + 1
    # The events the door acts on reached their handlers: closing and dismissing acted.
    assert decisions.get("handled", 0) >= 3, decisions
    fig = Figures("real example payloads", cases=len(EXAMPLES))
    fig.accepted, fig.rejected = decisions.get("handled", 0), decisions.get("ignored", 0)
    reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
    capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
    assert reporter is not None and capture is not None
    with capture.global_and_fixture_disabled():
        reporter.write_line(
            f"[fuzz] real example payloads: {len(EXAMPLES)} of {len(EVENTS)} events signed "
            f"and delivered, all 202; {decisions.get('handled', 0)} handled, "
            f"{decisions.get('ignored', 0)} ignored on purpose, failures = 0 (one log line each)"
        )


@pytest.mark.parametrize(
    "payload",
    [
        {"action": "opened", "repository": ["octo/demo"]},
        {"action": "opened", "repository": {"full_name": "o/r"}, "pull_request": "7"},
        {"action": "opened", "repository": {"full_name": "o/r"}, "pull_request": {"number": "x"}},
        {"action": "created", "repository": {"full_name": "o/r"}, "comment": None},
        {"action": ["opened"], "repository": {"full_name": "o/r"}},
        {"action": "opened", "repository": {"full_name": "o/r"}, "issue": {"number": -1}},
    ],
)
def test_a_signed_payload_of_the_wrong_shape_is_a_400_not_a_worker_exception(
    tmp_path: Path, payload: dict[str, Any]
) -> None:
    """Handlers read these members as objects; before, such a delivery was queued and each
    retry ended in an AttributeError in the worker."""
    app, queue = fresh_app(tmp_path)
    body = json.dumps(payload).encode()
    headers = {
        "X-GitHub-Event": "pull_request",
        "X-GitHub-Delivery": "d",
        "X-Hub-Signature-256": signature("s", body),
    }
    answer = TestClient(app).post("/webhook", content=body, headers=headers)
    assert answer.status_code == 400 and "not a" in answer.json()["error"]
    assert queue.counts() == {}
