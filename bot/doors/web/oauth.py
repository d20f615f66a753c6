"""Sign-in through the GitHub App's user authorisation (OAuth web application flow).

1. `authorize_url`: the person is sent to `{web_url}/login/oauth/authorize` with the App's
   client id, our callback and an unguessable `state` (also held in a signed cookie).
2. GitHub sends them back with `code` and the same `state`; `exchange` trades the code for
   a user access token at `{web_url}/login/oauth/access_token` (POST, `Accept:
   application/json`). GitHub answers 200 even for a refused code, with `error`,
   `error_description` and `error_uri` instead of a token.
3. `whoami` reads `GET /user` with that token: the numeric id is who they are. The token
   is then dropped: it is never stored, logged, put in a cookie or in a record. What the
   person may read is asked with the App's installation token (access.py).

These two /login/oauth endpoints are not in GitHub's REST description; this module and
the test double's `tests/support/github/oauth.py` follow GitHub's documentation for them.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlencode

import github
from github import Auth, Github
from pydantic import BaseModel, ValidationError

from bot.core.errors import AgentplaneError

TIMEOUT = 10.0
MAX_ANSWER = 64 * 1024


class OAuthError(AgentplaneError):
    """Sign-in did not complete; the message says what to do."""


class TokenAnswer(BaseModel):
    """GitHub's JSON answer to the code exchange: a token, or an error (both with 200)."""

    access_token: str | None = None
    token_type: str | None = None
    error: str | None = None
    error_description: str | None = None


@dataclass(frozen=True)
class Person:
    id: int
    login: str

    @property
    def key(self) -> str:
        """The identity key runs and approvals name (bot.core.identity)."""
        return f"github:{self.id}"


def authorize_url(web_url: str, client_id: str, redirect_uri: str, state: str) -> str:
    query = urlencode({"client_id": client_id, "redirect_uri": redirect_uri, "state": state})
    return f"{web_url}/login/oauth/authorize?{query}"


def exchange(web_url: str, client_id: str, client_secret: str, code: str, redirect_uri: str) -> str:
    """The user access token for code; OAuthError if GitHub refuses or cannot be read."""
    body = urlencode(
        {
            "client_id": client_id,
            "client_secret": client_secret,
            "code": code,
            "redirect_uri": redirect_uri,
        }
    ).encode()
    request = urllib.request.Request(
        f"{web_url}/login/oauth/access_token",
        data=body,
        method="POST",
        headers={
            "Accept": "application/json",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            raw = response.read(MAX_ANSWER + 1)
    except (urllib.error.URLError, OSError) as exc:
        raise OAuthError(f"cannot reach GitHub to finish signing in: {exc}") from None
    if len(raw) > MAX_ANSWER:
        raise OAuthError("GitHub's answer to the sign-in was too large; try again")
    try:
        answer = TokenAnswer.model_validate(json.loads(raw))
    except (ValueError, ValidationError):
        raise OAuthError("GitHub's answer to the sign-in was not the JSON expected") from None
    if answer.error:
        why = (answer.error_description or answer.error)[:300]
        raise OAuthError(f"GitHub refused the sign-in ({answer.error[:60]}): {why}")
    if not answer.access_token or (answer.token_type or "").lower() != "bearer":
        raise OAuthError("GitHub's answer to the sign-in held no bearer token")
    return answer.access_token


def whoami(api_url: str, token: str) -> Person:
    """`GET /user` with the person's token: their numeric id and current login."""
    gh = Github(auth=Auth.Token(token), base_url=api_url, timeout=int(TIMEOUT), retry=None)
    try:
        _, data = gh.requester.requestJsonAndCheck("GET", "/user")
    except github.GithubException as exc:
        raise OAuthError(f"GitHub did not say who signed in (HTTP {exc.status})") from None
    except OSError as exc:
        raise OAuthError(f"cannot reach GitHub to finish signing in: {exc}") from None
    finally:
        gh.close()
    uid = data.get("id") if isinstance(data, dict) else None
    login = data.get("login") if isinstance(data, dict) else None
    if type(uid) is not int or uid <= 0 or not isinstance(login, str) or not login:
        raise OAuthError("GitHub's /user answer has no numeric id and login")
    return Person(uid, login)
