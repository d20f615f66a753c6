"""Signed, expiring values for cookies and forms: the session, the OAuth state, the view
token an approval form carries.

Each value is `base64url(JSON).base64url(HMAC-SHA256)`, keyed per purpose (a state cookie
cannot be replayed as a session, nor a session as a view token). Nothing secret is put in
one: they say who someone is and when, and are signed so that nobody can change that. The
user's GitHub token is never in one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from bot.core.errors import AgentplaneError

T = TypeVar("T", bound=BaseModel)
MAX_VALUE = 4096
"""A cookie or field longer than this is refused before any decoding."""


class BadToken(AgentplaneError):
    """A cookie or field that is not one this server signed, or one that expired."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    def __init__(self, secret: str, purpose: str) -> None:
        # One key per purpose, derived from the one secret the operator configures.
        self._key = hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).digest()
        self.purpose = purpose

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())

    def sign(self, value: BaseModel, ttl: float, now: float | None = None) -> str:
        payload = {"v": value.model_dump(mode="json"), "exp": (now or time.time()) + ttl}
        body = _b64(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode())
        return f"{body}.{self._mac(body)}"

    def load(self, kind: type[T], token: str, now: float | None = None) -> T:
        """The value signed into token; BadToken if it was not signed here for this
        purpose, was changed, or expired."""
        if not token or len(token) > MAX_VALUE or token.count(".") != 1:
            raise BadToken(f"no valid {self.purpose}")
        body, mac = token.split(".")
        if not hmac.compare_digest(mac.encode(), self._mac(body).encode()):
            raise BadToken(f"the {self.purpose} is not signed by this server")
        try:
            payload: Any = json.loads(_unb64(body))
            expires = float(payload["exp"])
            value = kind.model_validate(payload["v"])
        except (ValueError, KeyError, TypeError, ValidationError):
            raise BadToken(f"the {self.purpose} cannot be read") from None
        if expires <= (now or time.time()):
            raise BadToken(f"the {self.purpose} has expired: sign in or reload the page")
        return value
