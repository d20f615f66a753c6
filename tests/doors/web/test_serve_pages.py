"""Serve's run pages at the HTTP level: GitHub sign-in (state, signed cookies, no token
kept), per-repository access from GitHub's permission endpoint, two repositories and
two people, the PR comment's link, and approvals from the run page."""

from __future__ import annotations

import logging
import re
import subprocess
from pathlib import Path

import pygit2
import pytest
from fastapi.testclient import TestClient
from httpx import Response

from bot.doors.github.settings import Settings
from bot.doors.web.hub import SESSION_COOKIE, STATE_COOKIE, safe_next
from tests.doors.web.serve_world import OTHER, Serve, open_job_pr
from tests.support.github import GitHubDouble
from tests.support.github.door import REPO, door_for

VIEW = re.compile(r'name="view" value="([^"]+)"')
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def signed_in(serve: Serve, login: str) -> TestClient:
    client = serve.client()
    done = serve.sign_in(client, login)
    assert done.status_code == 303 and done.headers["location"] == "/repos", done.text
    return client


def test_unauthenticated_requests_are_sent_to_sign_in_or_refused(serve: Serve) -> None:
    client = serve.client()
    for path in ("/repos", f"/repos/{REPO}/runs", f"/repos/{REPO}/runs/{serve.runs[REPO]}"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), path
    api = client.get(f"/repos/{REPO}/api/runs")
    assert api.status_code == 401 and serve.runs[REPO] not in api.text
    forged = client.get(
        f"/repos/{REPO}/api/runs", cookies={SESSION_COOKIE: "eyJ2Ijp7ImlkIjoxfX0.AAAA"}
    )
    assert forged.status_code == 401


def test_sign_in_sets_signed_httponly_samesite_cookies_and_keeps_no_token(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    client = serve.client()
    start = client.get("/login", follow_redirects=False)
    state_cookie = start.headers["set-cookie"]
    assert STATE_COOKIE in state_cookie and "HttpOnly" in state_cookie
    assert "SameSite=lax" in state_cookie
    assert "client_id=" + serve.github.oauth.client_id in start.headers["location"]
    back = serve.github.oauth.authorize("maya", start.headers["location"])
    with caplog.at_level(logging.DEBUG):
        done = client.get(back.removeprefix(serve.public), follow_redirects=False)
    assert done.status_code == 303
    session = [v for k, v in done.headers.multi_items() if k == "set-cookie"]
    assert any(SESSION_COOKIE in c and "HttpOnly" in c and "SameSite=lax" in c for c in session)
    token = serve.github.oauth.issued[-1]
    assert all(token not in c for c in session)
    assert token not in caplog.text
    # The token is never in the bot's audit log or anywhere in its clone's history.
    clone = serve.door.settings.data_dir / "repos" / REPO.replace("/", "__")
    log = subprocess.run(
        ["git", "-C", str(clone), "log", "-p", "--all"], capture_output=True, text=True
    ).stdout
    assert token not in log
    assert client.get("/repos").status_code == 200


def test_the_state_must_be_the_one_this_browser_was_given(serve: Serve) -> None:
    client = serve.client()
    start = client.get("/login", follow_redirects=False)
    back = serve.github.oauth.authorize("maya", start.headers["location"])
    path = back.removeprefix(serve.public)
    wrong = re.sub(r"state=[^&]+", "state=guessed", path)
    r = client.get(wrong, follow_redirects=False)
    assert r.status_code == 400 and "state" in r.text and SESSION_COOKIE not in str(r.headers)
    # Another browser (no state cookie) cannot complete this sign-in.
    r = serve.client().get(path, follow_redirects=False)
    assert r.status_code == 400 and "did not start here" in r.text
    # The code is good once: a second sign-in in this browser cannot spend it again.
    assert client.get(path, follow_redirects=False).status_code == 303
    second = client.get("/login", follow_redirects=False).headers["location"]
    state = re.search(r"state=([^&]+)", second)
    assert state is not None
    reused = re.sub(r"state=[^&]+", f"state={state[1]}", path)
    r = client.get(reused, follow_redirects=False)
    assert r.status_code == 502 and "bad_verification_code" in r.text


def test_after_sign_in_only_a_local_path_is_followed() -> None:
    assert safe_next("/repos/octo/demo/runs") == "/repos/octo/demo/runs"
    for evil in ("//evil.example/x", "https://evil.example", "/\\evil.example", "evil"):
        assert safe_next(evil) == "/repos"


def test_two_people_two_repositories_each_sees_only_their_own(serve: Serve) -> None:
    maya, eve = signed_in(serve, "maya"), signed_in(serve, "eve")
    mine, theirs = serve.runs[REPO], serve.runs[OTHER]

    listing = maya.get("/repos").text
    assert REPO in listing and OTHER not in listing
    assert OTHER in eve.get("/repos").text and REPO not in eve.get("/repos").text

    assert mine in maya.get(f"/repos/{REPO}/runs").text
    assert mine in maya.get(f"/repos/{REPO}/api/runs").text
    assert maya.get(f"/repos/{REPO}/runs/{mine}").status_code == 200
    for path in (
        f"/repos/{OTHER}/runs",
        f"/repos/{OTHER}/api/runs",
        f"/repos/{OTHER}/runs/{theirs}",
        f"/repos/{OTHER}/api/runs/{theirs}",
        f"/repos/{OTHER}/runs/{theirs}/artifacts/proposal.diff",
        f"/repos/{OTHER}/openapi.json",
    ):
        r = maya.get(path, follow_redirects=False)
        assert r.status_code == 403, path
        assert theirs not in r.text and "return a + b" not in r.text, path
    # Another repository's run, asked for under a readable one, is not there.
    r = maya.get(f"/repos/{REPO}/api/runs/{theirs}")
    assert r.status_code == 404 and "return a + b" not in r.text

    assert eve.get(f"/repos/{REPO}/runs").status_code == 403
    assert eve.get(f"/repos/{REPO}/api/runs/{mine}").status_code == 403
    assert theirs in eve.get(f"/repos/{OTHER}/api/runs").text
    # A repository the bot does not serve gets the same answer as one you cannot read.
    assert maya.get("/repos/octo/secret/runs").text == maya.get(f"/repos/{OTHER}/runs").text


def test_access_is_gitHubs_answer_kept_for_a_short_time(serve: Serve) -> None:
    lee = signed_in(serve, "lee")
    asked = len(serve.github.calls("GET", r"/collaborators/lee/permission"))
    assert lee.get(f"/repos/{REPO}/api/runs").status_code == 403
    serve.github.set_permission(REPO, "lee", "read")
    assert lee.get(f"/repos/{REPO}/api/runs").status_code == 403  # still the cached answer
    calls = serve.github.calls("GET", r"/collaborators/lee/permission")
    assert len(calls) == asked + 1  # asked once, not per request
    serve.github.set_permission(REPO, "lee", "none")


def test_the_pr_comment_links_to_the_run_page(serve: Serve) -> None:
    number = serve.pulls[REPO]
    bodies = [c.body for c in serve.github.comments(REPO, number) if "run:" in c.body]
    link = f"Run page: {serve.public}/repos/{REPO}/runs/{serve.runs[REPO]}"
    assert any(link in b for b in bodies), bodies
    maya = signed_in(serve, "maya")
    assert maya.get(link.removeprefix(f"Run page: {serve.public}")).status_code == 200


def test_pages_are_off_unless_sign_in_is_configured() -> None:
    assert not Settings(public_url="https://a.example", oauth_client_id="x").pages_enabled
    problems = Settings(public_url="https://a.example", oauth_client_id="x").problems()
    assert any("AGENTPLANE_OAUTH_CLIENT_SECRET" in p for p in problems)
    with pytest.raises(ValueError, match="32 characters"):
        Settings(session_secret="short")


def _field(pattern: re.Pattern[str], page: str) -> str:
    found = pattern.search(page)
    assert found is not None, page
    return found[1]


def _post(client: TestClient, path: str, form: dict[str, str], origin: str = "") -> Response:
    """origin: the Origin header; by default the client's own (the page's origin)."""
    return client.post(
        f"{path}/decision",
        data=form,
        headers={"Origin": origin or str(client.base_url).rstrip("/")},
        follow_redirects=False,
    )


def _decide(client: TestClient, path: str, decision: str) -> Response:
    page = client.get(path).text
    form = {"csrf": _field(CSRF, page), "view": _field(VIEW, page), "decision": decision}
    return _post(client, path, form)


def test_web_approval_goes_through_the_gates_and_is_recorded_with_its_door(
    serve: Serve,
) -> None:
    path = f"/repos/{REPO}/runs/{serve.runs[REPO]}"
    dana, maya = signed_in(serve, "dana"), signed_in(serve, "maya")

    # Refused before any gate: no CSRF token, another origin, a view changed by hand,
    # another person's form.
    page = maya.get(path).text
    assert "Approve as maya" in page
    csrf, view = _field(CSRF, page), _field(VIEW, page)
    r = _post(maya, path, {"view": view, "decision": "approve"})
    assert r.status_code == 403 and "CSRF" in r.text
    r = _post(maya, path, {"csrf": csrf, "view": view[:-2] + "AA", "decision": "approve"})
    assert r.status_code == 403 and "not signed by this server" in r.text
    r = _post(
        maya, path, {"csrf": csrf, "view": view, "decision": "approve"}, "https://evil.example"
    )
    assert r.status_code == 403 and "cross-origin" in r.text
    r = _post(maya, path, {"csrf": csrf, "view": view, "decision": "merge"})
    assert r.status_code == 400
    dana_view = _field(VIEW, dana.get(path).text)
    r = _post(maya, path, {"csrf": csrf, "view": dana_view, "decision": "approve"})
    assert r.status_code == 403 and "another run or person" in r.text
    assert serve.queue.lease() is None  # none of these reached the bot

    # The author's approval is recorded and does not count.
    r = _decide(dana, path, "approve")
    assert r.status_code == 200 and "queue" in r.text
    (done,) = serve.work()
    assert "not counted" in done
    # maya is an approver: her approval counts, the run is applied and pushed.
    assert _decide(maya, path, "approve").status_code == 200
    (done,) = serve.work()
    assert done.endswith("applied"), done
    api = maya.get(f"/repos/{REPO}/api/runs/{serve.runs[REPO]}").json()
    approvals = api["record"]["approvals"]
    assert [(a["door"], a["counted"]) for a in approvals] == [("web", False), ("web", True)]
    maya_id = serve.github.user_id("maya")
    assert approvals[1]["approver"] == f"github:{maya_id}" and approvals[1]["name"] == "maya"
    assert "authors cannot approve" in approvals[0]["reason"]
    assert approvals[1]["proposal_digest"] == api["record"]["proposal"]["digest"]
    assert api["record"]["state"] == "applied"
    # As a review would: the applied commit is pushed onto the PR, whose evidence says so.
    assert serve.github.head_sha(REPO, serve.pulls[REPO]) != api["record"]["commit"]
    evidence = [c.body for c in serve.github.comments(REPO, serve.pulls[REPO]) if "run:" in c.body]
    assert any("applied" in b for b in evidence)
    # Once applied, the page offers no decision.
    assert "Approve as" not in maya.get(path).text


def test_policy_can_refuse_the_web_door(serve: Serve) -> None:
    """approvals.doors on the default branch: a maintainer's web approval is recorded, with
    the rule, and does not count."""
    gh = serve.github
    policy = gh.repo(OTHER).git().revparse_single("refs/heads/main").peel(pygit2.Commit)
    text = policy.tree["policies/default.yaml"].data.decode()
    gh.commit(
        OTHER, "main", {"policies/default.yaml": text + "approvals: {doors: [pull_request]}\n"}
    )
    gh.set_permission(OTHER, "omar", "read")
    omar = signed_in(serve, "omar")
    path = f"/repos/{OTHER}/runs/{serve.runs[OTHER]}"
    assert _decide(omar, path, "approve").status_code == 200
    (done,) = serve.work()
    assert "not counted" in done
    (approval,) = omar.get(f"/repos/{OTHER}/api/runs/{serve.runs[OTHER]}").json()["record"][
        "approvals"
    ]
    assert approval["door"] == "web" and not approval["counted"]
    assert "approvals from the web door do not count here" in approval["reason"]


def test_no_run_page_link_without_a_public_url(tmp_path: Path) -> None:
    with GitHubDouble(tmp_path) as gh:
        door = door_for(gh, tmp_path)
        number = open_job_pr(gh, door, REPO)
        (body,) = [c.body for c in gh.comments(REPO, number) if "run:" in c.body]
        violations = list(gh.violations)
    assert "Record:" in body and "Run page:" not in body
    assert violations == []


def test_serve_builds_its_pages_only_when_sign_in_is_configured(tmp_path: Path) -> None:
    from bot.doors.github.server import build

    base = {"github_token": "ghp_" + "x" * 36, "data_dir": tmp_path, "webhook_secrets": ("s",)}
    pages = {
        "public_url": "https://bot.example",
        "oauth_client_id": "Iv1.abc",
        "oauth_client_secret": "shh",
        "session_secret": "k" * 40,
    }
    on = TestClient(build(Settings(**base, **pages)), base_url="https://bot.example")
    r = on.get(f"/repos/{REPO}/runs", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
    login = on.get("/login", follow_redirects=False)
    assert login.headers["location"].startswith("https://github.com/login/oauth/authorize?")
    assert "Secure" in login.headers["set-cookie"]
    off = TestClient(build(Settings(**base)))
    assert off.get("/repos").status_code == 404 and off.get("/login").status_code == 404
