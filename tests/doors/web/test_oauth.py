"""The OAuth client, the signed values and the access check, each against real servers:
the GitHub double, a closed port, and a real HTTP server that answers badly."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pydantic import BaseModel

from bot.doors.github.client import GitHubClient
from bot.doors.github.settings import Settings
from bot.doors.web.access import Access
from bot.doors.web.oauth import OAuthError, Person, authorize_url, exchange, whoami
from bot.doors.web.serve import free_port
from bot.doors.web.session import BadToken, Signer
from tests.support.github import GitHubDouble

CALLBACK = "http://127.0.0.1:9/login/callback"


@pytest.fixture
def gh(tmp_path: Path) -> Iterator[GitHubDouble]:
    with GitHubDouble(tmp_path) as double:
        double.oauth.callback = CALLBACK
        yield double
        violations = list(double.violations)
    assert violations == [], violations


def _installation_client(gh: GitHubDouble, repo: str) -> GitHubClient:
    settings = Settings(
        app_id=gh.app_id,
        app_private_key=gh.app_private_key_pem,
        api_url=gh.api_url,
        github_throttle=False,
    )
    return GitHubClient(settings, GitHubClient(settings).installation_for(repo))


def _code(gh: GitHubDouble, login: str) -> str:
    back = gh.oauth.authorize(
        login, authorize_url(gh.oauth.web_url, gh.oauth.client_id, CALLBACK, "st")
    )
    assert back.startswith(CALLBACK + "?") and "state=st" in back
    return back.split("code=")[1].split("&")[0]


def test_the_web_flow_against_the_double(gh: GitHubDouble) -> None:
    o = gh.oauth
    token = exchange(o.web_url, o.client_id, o.client_secret, _code(gh, "maya"), CALLBACK)
    assert token.startswith("ghu_")
    assert whoami(gh.api_url, token) == Person(gh.user_id("maya"), "maya")


def test_github_refusals_are_oauth_errors(gh: GitHubDouble) -> None:
    o = gh.oauth
    code = _code(gh, "maya")
    with pytest.raises(OAuthError, match="incorrect_client_credentials"):
        exchange(o.web_url, o.client_id, "wrong", code, CALLBACK)
    with pytest.raises(OAuthError, match="redirect_uri_mismatch"):
        exchange(o.web_url, o.client_id, o.client_secret, code, "http://evil.example/cb")
    exchange(o.web_url, o.client_id, o.client_secret, code, CALLBACK)
    with pytest.raises(OAuthError, match="bad_verification_code"):
        exchange(o.web_url, o.client_id, o.client_secret, code, CALLBACK)
    # An installation token is nobody: /user refuses it.
    gh.create_repo("octo/x")
    with pytest.raises(OAuthError, match="HTTP 403"):
        whoami(gh.api_url, _installation_client(gh, "octo/x").token())


class _Bad(BaseHTTPRequestHandler):
    body = b""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def bad_server() -> Iterator[tuple[str, type[_Bad]]]:
    handler = type("Handler", (_Bad,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_bad_answers_and_no_answer_are_oauth_errors(
    bad_server: tuple[str, type[_Bad]],
) -> None:
    url, handler = bad_server
    handler.body = b"<html>login</html>"
    with pytest.raises(OAuthError, match="not the JSON expected"):
        exchange(url, "id", "secret", "code", CALLBACK)
    handler.body = b'{"access_token": "x", "token_type": "mac"}'
    with pytest.raises(OAuthError, match="no bearer token"):
        exchange(url, "id", "secret", "code", CALLBACK)
    handler.body = b"{" + b" " * (70 * 1024) + b"}"
    with pytest.raises(OAuthError, match="too large"):
        exchange(url, "id", "secret", "code", CALLBACK)
    with pytest.raises(OAuthError, match="cannot reach GitHub"):
        exchange(f"http://127.0.0.1:{free_port()}", "id", "secret", "code", CALLBACK)


class _Value(BaseModel):
    id: int


def test_signed_values_refuse_changes_other_purposes_and_age() -> None:
    session, state = Signer("k" * 32, "session"), Signer("k" * 32, "oauth state")
    token = session.sign(_Value(id=7), ttl=60, now=1000.0)
    assert session.load(_Value, token, now=1001.0) == _Value(id=7)
    body, mac = token.split(".")
    for bad in (f"{body}x.{mac}", f"{body}.{mac[:-1]}A", "", "a.b.c", "x" * 5000):
        with pytest.raises(BadToken):
            session.load(_Value, bad, now=1001.0)
    with pytest.raises(BadToken, match="not signed"):
        state.load(_Value, token, now=1001.0)
    with pytest.raises(BadToken, match="expired"):
        session.load(_Value, token, now=1061.0)
    with pytest.raises(BadToken, match="not signed"):
        Signer("other" * 8, "session").load(_Value, token, now=1001.0)


def test_access_follows_the_account_not_the_login(gh: GitHubDouble, tmp_path: Path) -> None:
    gh.create_repo("octo/app")
    gh.set_permission("octo/app", "ray", "write")
    client = _installation_client(gh, "octo/app")
    now = [0.0]
    access = Access(client.collaborator, ttl=60, clock=lambda: now[0])
    ray = Person(gh.user_id("ray"), "ray")
    assert access.can_read(ray, "octo/app")
    assert not access.can_read(Person(gh.user_id("zed"), "zed"), "octo/app")
    # ray renames away; someone registers "ray" (the double keeps the login's access):
    # the session that says "ray" is the first account, which GitHub no longer calls ray.
    gh.rename_user("ray", "ray-renamed")
    gh.user_id("ray")
    assert access.can_read(ray, "octo/app")  # still the answer kept for a short time
    now[0] = 61.0
    assert not access.can_read(ray, "octo/app")
    # GitHub failing is "no", and is asked again next time.
    gh.fail_next("GET", r"/collaborators/zed/permission", status=404)
    gh.set_permission("octo/app", "zed", "read")
    zed = Person(gh.user_id("zed"), "zed")
    now[0] = 200.0
    assert not access.can_read(zed, "octo/app")
    assert access.can_read(zed, "octo/app")
