"""The GitHub double, driven by PyGithub: the bot's own client against GitHub's own spec."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from github import Auth, Github, GithubException, GithubIntegration

from tests.support.github import SKIPPED_WEBHOOK_EXAMPLES, GitHubDouble

REPO = "octo/demo"


# PyGithub waits 0.25 s between requests and 1 s between writes by default; a double need not.
FAST: dict[str, Any] = {"seconds_between_requests": None, "seconds_between_writes": None}


def installation_client(gh: GitHubDouble) -> Github:
    integration = GithubIntegration(
        auth=Auth.AppAuth(gh.app_id, gh.app_private_key_pem), base_url=gh.api_url, **FAST
    )
    installation = integration.get_repo_installation("octo", "demo")
    token = integration.get_access_token(installation.id).token
    return Github(base_url=gh.api_url, auth=Auth.Token(token), retry=None, **FAST)


def raw(gh: GitHubDouble, method: str, path: str, body: Any = None, token: str = "") -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(gh.api_url + path, data=data, method=method)
    request.add_header("Authorization", f"token {token}")
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read() or b"null"), response.headers
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null"), e.headers


@pytest.fixture
def demo(github: GitHubDouble) -> GitHubDouble:
    github.create_repo(REPO, {"README.md": "hello\n", "src/app.py": "x = 1\n"})
    github.commit(REPO, "feature", {"src/app.py": "x = 2\n", "NEW.md": "new\n"}, message="work")
    return github


def test_app_flow_through_pygithub(demo: GitHubDouble) -> None:
    number, payload = demo.open_pull(REPO, "feature", author="dana", title="Raise x")
    assert payload["pull_request"]["number"] == number
    assert payload["installation"]["id"] == demo.installations["octo"]
    client = installation_client(demo)
    repo = client.get_repo(REPO)
    assert repo.default_branch == "main"
    assert repo.clone_url == demo.clone_url(REPO)
    pr = repo.get_pull(number)
    assert pr.head.sha == demo.head_sha(REPO, number)
    assert {f.filename for f in pr.get_files()} == {"src/app.py", "NEW.md"}

    run = repo.create_check_run("agentplane", pr.head.sha, status="in_progress")
    run.edit(conclusion="success", output={"title": "ok", "summary": "all good"})
    assert [r["conclusion"] for r in demo.check_runs(REPO)] == ["success"]
    # Not via repo.get_commit(): that fetches the commit, an endpoint the bot does not use.
    _, listed = repo.requester.requestJsonAndCheck("GET", f"{repo.url}/commits/feature/check-runs")
    assert [r["name"] for r in listed["check_runs"]] == ["agentplane"]

    comment = pr.create_issue_comment("plan: ...")
    comment.edit("plan: updated")
    comment.create_reaction("eyes")
    assert [c.body for c in demo.comments(REPO, number)] == ["plan: updated"]
    assert demo.comments(REPO, number)[0].user == "agentplane[bot]"
    assert demo.reactions(REPO, comment.id) == ["eyes"]

    demo.set_permission(REPO, "maya", "write")
    assert repo.get_collaborator_permission("maya") == "write"
    assert repo.get_collaborator_permission("stranger") == "none"

    review_id, review_payload = demo.submit_review(REPO, number, "maya")
    assert review_payload["review"]["state"] == "approved"
    reviews = list(pr.get_reviews())
    assert [(r.id, r.state, r.user.login, r.commit_id) for r in reviews] == [
        (review_id, "APPROVED", "maya", pr.head.sha)
    ]

    content = repo.get_contents("src/app.py", ref="feature")
    assert not isinstance(content, list) and content.decoded_content == b"x = 2\n"
    assert repo.get_git_ref("heads/main").object.sha == demo.repo(REPO).tip("main")
    repo.create_git_ref("refs/heads/audit", pr.head.sha)
    assert demo.repo(REPO).tip("audit") == pr.head.sha
    assert client.get_rate_limit().resources.core.limit == 5000
    assert [p.number for p in repo.get_pulls(state="open")] == [number]


def test_pushes_to_the_bare_repo_move_the_pr_head(demo: GitHubDouble, tmp_path: Path) -> None:
    number, _ = demo.open_pull(REPO, "feature")
    client = installation_client(demo)
    before = client.get_repo(REPO).get_pull(number).head.sha
    work = tmp_path / "clone"
    env = {
        "GIT_AUTHOR_NAME": "d",
        "GIT_AUTHOR_EMAIL": "d@x",
        "GIT_COMMITTER_NAME": "d",
        "GIT_COMMITTER_EMAIL": "d@x",
        "PATH": "/usr/bin:/bin",
    }

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=work, env=env, check=True, capture_output=True, text=True
        ).stdout.strip()

    subprocess.run(
        ["git", "clone", "-q", "-b", "feature", demo.clone_url(REPO), str(work)],
        check=True,
        env=env,
    )
    (work / "more.txt").write_text("more\n")
    git("add", "more.txt")
    git("commit", "-qm", "more")
    git("push", "-q", "origin", "feature")
    after = client.get_repo(REPO).get_pull(number).head.sha
    assert after == git("rev-parse", "HEAD") != before
    sync = demo.payloads.pull_request(REPO, number, "synchronize")
    assert sync["pull_request"]["head"]["sha"] == after


def test_off_spec_request_is_rejected(demo: GitHubDouble) -> None:
    client = installation_client(demo)
    repo = client.get_repo(REPO)
    sha = demo.repo(REPO).tip("main") or ""
    with pytest.raises(GithubException) as caught:
        repo.create_check_run("agentplane", sha, status="running")  # not a check-run status
    assert caught.value.status == 500
    assert "'running' is not one of" in demo.violations[0]
    demo.violations.clear()


def test_off_spec_response_is_caught(demo: GitHubDouble, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support import github as double

    def broken(ctx: double.Context) -> double.Result:
        return 200, {"permission": 7}, {}  # wrong type, required fields missing

    monkeypatch.setitem(double.ROUTES, "repos/get-collaborator-permission-level", broken)
    client = installation_client(demo)
    with pytest.raises(GithubException) as caught:
        client.get_repo(REPO).get_collaborator_permission("maya")
    assert caught.value.status == 500
    assert any("200 response is off-spec" in v for v in demo.violations)
    demo.violations.clear()


def test_unknown_route_is_a_violation(demo: GitHubDouble) -> None:
    token = demo.add_personal_token("dana")
    status, body, _ = raw(demo, "GET", "/repos/octo/demo/no-such-thing", token=token)
    assert status == 404 and body["message"] == "Not Found"
    assert demo.violations == [
        "GET /repos/octo/demo/no-such-thing: no such operation in GitHub's OpenAPI description"
    ]
    demo.violations.clear()


def test_auth_is_checked(demo: GitHubDouble) -> None:
    assert raw(demo, "GET", "/repos/octo/demo", token="nope")[0] == 401
    assert raw(demo, "GET", "/app", token="not-a-jwt")[0] == 401
    forged = GithubIntegration(
        auth=Auth.AppAuth(demo.app_id, GitHubDouble(demo.root / "other").app_private_key_pem),
        base_url=demo.api_url,
        **FAST,
    )
    with pytest.raises(GithubException) as caught:
        forged.get_app()
    assert caught.value.status == 401
    token = demo.add_personal_token("dana")
    assert raw(demo, "GET", "/repos/octo/demo", token=token)[1]["permissions"]["push"] is False
    client = installation_client(demo)
    demo.expire_tokens()
    with pytest.raises(GithubException) as caught:
        client.get_repo(REPO)
    assert caught.value.status == 401


def test_fault_injection(demo: GitHubDouble) -> None:
    token = demo.add_personal_token("octo")
    demo.fail_next("GET", r"^/repos/octo/demo$", status=502, times=2)
    assert raw(demo, "GET", "/repos/octo/demo", token=token)[0] == 502
    assert raw(demo, "GET", "/repos/octo/demo", token=token)[0] == 502
    assert raw(demo, "GET", "/repos/octo/demo", token=token)[0] == 200
    demo.fail_next("POST", r"/check-runs$", secondary_rate_limit=True, retry_after=7)
    status, body, headers = raw(
        demo, "POST", "/repos/octo/demo/check-runs", {"name": "x", "head_sha": "0" * 40}, token
    )
    assert (status, headers["Retry-After"]) == (403, "7")
    assert "secondary rate limit" in body["message"]


def test_deliveries_and_redelivery(demo: GitHubDouble) -> None:
    number, opened = demo.open_pull(REPO, "feature")
    _, commented = demo.add_comment(REPO, number, "maya", "/agentplane run")
    assert commented["issue"]["pull_request"]["url"].endswith(f"/pulls/{number}")
    edited = demo.edit_comment(commented["comment"]["id"], "/agentplane apply")
    assert edited["changes"] == {"body": {"from": "/agentplane run"}}
    ok = demo.record_delivery("pull_request", opened)
    failed = demo.record_delivery("issue_comment", commented, status_code=500)
    integration = GithubIntegration(
        auth=Auth.AppAuth(demo.app_id, demo.app_private_key_pem), base_url=demo.api_url, **FAST
    )
    jwt = integration.create_jwt()
    requester = Github(base_url=demo.api_url, auth=Auth.Token(jwt), retry=None, **FAST).requester
    _, listed = requester.requestJsonAndCheck("GET", "/app/hook/deliveries")
    assert [(d["id"], d["status_code"]) for d in listed] == [(failed.id, 500), (ok.id, 200)]
    requester.requestJsonAndCheck("POST", f"/app/hook/deliveries/{failed.id}/attempts")
    assert demo.redelivered == [failed.id]
    assert demo.deliveries[-1].redelivery and demo.deliveries[-1].guid == failed.guid
    headers, body = demo.signed("issue_comment", commented, "s3cret")
    assert headers["X-Hub-Signature-256"].startswith("sha256=") and json.loads(body) == commented


def test_spec_loads_fast(github_spec: Any) -> None:
    from tests.support import openapi

    start = time.perf_counter()
    openapi.load.cache_clear()
    openapi.load()
    assert time.perf_counter() - start < 2.0


def test_skipped_upstream_examples_are_named() -> None:
    # Builders skip real examples that fail their own schema; say which, so drift is visible.
    for reason in SKIPPED_WEBHOOK_EXAMPLES.values():
        assert reason.startswith("fails its own schema")


def test_users_are_found_by_login_and_a_rename_moves_the_id(demo: GitHubDouble) -> None:
    uid = demo.user_id("maya-gh")
    client = installation_client(demo)
    user = client.get_user("Maya-GH")  # logins ignore case, as on GitHub
    assert (user.login, user.id) == ("maya-gh", uid)
    assert demo.rename_user("maya-gh", "maya-new") == uid
    with pytest.raises(GithubException) as gone:
        client.get_user("maya-gh")
    assert gone.value.status == 404
    assert client.get_user("maya-new").id == uid
    assert demo.user_id("maya-gh") != uid  # someone else registers the freed login
    with pytest.raises(GithubException) as unknown:
        client.get_user("nobody-here")
    assert unknown.value.status == 404


def test_the_bot_resolves_a_login_once_per_client(demo: GitHubDouble) -> None:
    from bot.doors.github.client import GitHubClient
    from bot.doors.github.settings import Settings

    settings = Settings(
        app_id=demo.app_id,
        app_private_key=demo.app_private_key_pem,
        api_url=demo.api_url,
        github_throttle=False,
    )
    client = GitHubClient(settings, demo.installations["octo"])
    assert client.user_id("lee") is None  # no such account yet: asked again next time
    uid = demo.user_id("lee")
    assert client.user_id("lee") == client.user_id("LEE") == uid
    assert len(demo.calls("GET", r"^/users/")) == 2
