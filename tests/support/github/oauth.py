"""The double's one exception to GitHub's OpenAPI description: the OAuth web flow.

`/login/oauth/authorize` and `/login/oauth/access_token` live on github.com, not the REST
API, and are not in the description, so they are modelled here from GitHub's
documentation ("Generating a user access token for a GitHub App", "Troubleshooting OAuth
app access token request errors"):

- authorize (GET): the signed-in browser (a `gh_session` cookie, set by `/session?login=`,
  stands in for github.com's own sign-in) is sent back to `redirect_uri` with `code` and
  the `state` it came with. A `redirect_uri` other than the App's callback is refused.
- access_token (POST, form or JSON): `client_id`, `client_secret`, `code`, `redirect_uri`.
  Codes are single-use and last ten minutes. Errors come with status 200 and `error`,
  `error_description`, `error_uri`, as GitHub sends them. Without `Accept:
  application/json` the answer is form-encoded, as GitHub's is.
Every request is kept in `requests`, and anything the documentation does not allow is a
violation of the double, like an off-spec REST call.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlencode, urlsplit

from .state import Token

if TYPE_CHECKING:
    from .server import GitHubDouble

CODE_SECONDS = 600
TOKEN_SECONDS = 8 * 3600
DOCS = "/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/"
Answer = tuple[int, bytes, dict[str, str]]


@dataclass
class Code:
    login: str
    redirect_uri: str
    expires: float
    used: bool = False


@dataclass
class OAuthFlow:
    gh: GitHubDouble
    client_id: str = field(default_factory=lambda: "Iv1." + secrets.token_hex(8))
    client_secret: str = field(default_factory=lambda: secrets.token_hex(20))
    callback: str = ""
    """The App's registered callback URL (the test sets it to the bot's /login/callback)."""
    codes: dict[str, Code] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, list[str]]]] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    """Every user access token handed out."""

    @property
    def web_url(self) -> str:
        return self.gh.api_url.rsplit("/api/v3", 1)[0]

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> Answer:
        url = urlsplit(raw_path)
        query = parse_qs(url.query, keep_blank_values=True)
        self.requests.append((method, url.path, query))
        if method == "GET" and url.path == "/session":
            return self._session(query)
        if method == "GET" and url.path == "/login/oauth/authorize":
            return self._authorize(query, headers)
        if method == "POST" and url.path == "/login/oauth/access_token":
            return self._token(headers, body)
        if url.path == "/favicon.ico":  # what a browser asks any site for
            return 404, b"", {}
        self.gh._violate(f"{method} {url.path}: not a documented OAuth web flow endpoint")
        return 404, b"Not Found", {"Content-Type": "text/plain"}

    def authorize(self, login: str, authorize_url: str) -> str:
        """What the browser of `login` is sent back to after approving (for HTTP tests)."""
        url = urlsplit(authorize_url)
        status, _, headers = self._authorize(
            parse_qs(url.query, keep_blank_values=True), {"Cookie": f"gh_session={login}"}
        )
        assert status == 302, f"the double refused the authorize request ({status})"
        return headers["Location"]

    def _session(self, query: dict[str, list[str]]) -> Answer:
        login = query.get("login", [""])[0]
        self.gh.user_id(login)
        return (
            200,
            f"<p>signed in to the double as {login}</p>".encode(),
            {"Content-Type": "text/html", "Set-Cookie": f"gh_session={login}; Path=/; HttpOnly"},
        )

    def _authorize(self, query: dict[str, list[str]], headers: dict[str, str]) -> Answer:
        one = {k: v[0] for k, v in query.items()}
        if one.get("client_id") != self.client_id:
            return 404, b"<p>no such application</p>", {"Content-Type": "text/html"}
        redirect = one.get("redirect_uri") or self.callback
        if redirect != self.callback:
            return 400, b"<p>redirect_uri_mismatch</p>", {"Content-Type": "text/html"}
        if "state" not in one:
            self.gh._violate("authorize without state: GitHub strongly recommends one")
        cookie = SimpleCookie({k.lower(): v for k, v in headers.items()}.get("cookie", "")).get(
            "gh_session"
        )
        if cookie is None or not cookie.value:
            return 200, b"<p>Sign in to GitHub to continue</p>", {"Content-Type": "text/html"}
        code = secrets.token_hex(10)
        self.codes[code] = Code(cookie.value, redirect, time.time() + CODE_SECONDS)
        back = urlencode({"code": code, **({"state": one["state"]} if "state" in one else {})})
        return 302, b"", {"Location": f"{redirect}?{back}"}

    def _token(self, headers: dict[str, str], body: bytes) -> Answer:
        h = {k.lower(): v for k, v in headers.items()}
        try:
            if h.get("content-type", "").startswith("application/json"):
                form = {k: str(v) for k, v in json.loads(body or b"{}").items()}
            else:
                form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        except (ValueError, AttributeError, UnicodeDecodeError):
            self.gh._violate("access_token: a body that is neither a form nor a JSON object")
            return 400, b"", {}
        as_json = "application/json" in h.get("accept", "")
        if (
            form.get("client_id") != self.client_id
            or form.get("client_secret") != self.client_secret
        ):
            return self._error(
                as_json,
                "incorrect_client_credentials",
                "The client_id and/or client_secret passed are incorrect.",
            )
        code = self.codes.get(form.get("code", ""))
        if (
            code is not None
            and "redirect_uri" in form
            and form["redirect_uri"] != code.redirect_uri
        ):
            return self._error(
                as_json,
                "redirect_uri_mismatch",
                "The redirect_uri MUST match the registered callback URL for this application.",
            )
        if code is None or code.used or code.expires <= time.time():
            return self._error(
                as_json, "bad_verification_code", "The code passed is incorrect or expired."
            )
        code.used = True
        token = "ghu_" + secrets.token_hex(18)
        expires = datetime.now(UTC) + timedelta(seconds=TOKEN_SECONDS)
        self.gh.tokens[token] = Token(token, None, code.login, expires)
        self.issued.append(token)
        answer = {
            "access_token": token,
            "expires_in": TOKEN_SECONDS,
            "refresh_token": "ghr_" + secrets.token_hex(30),
            "refresh_token_expires_in": 15897600,
            "scope": "",
            "token_type": "bearer",
        }
        return self._answer(as_json, answer)

    def _error(self, as_json: bool, error: str, description: str) -> Answer:
        anchor = error.replace("_", "-")
        answer = {"error": error, "error_description": description, "error_uri": DOCS + anchor}
        return self._answer(as_json, answer)

    @staticmethod
    def _answer(as_json: bool, answer: dict[str, object]) -> Answer:
        if as_json:
            return 200, json.dumps(answer).encode(), {"Content-Type": "application/json"}
        body = urlencode({k: str(v) for k, v in answer.items()}).encode()
        return 200, body, {"Content-Type": "application/x-www-form-urlencoded"}
