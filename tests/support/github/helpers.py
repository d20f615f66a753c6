"""Wire helpers for the server and routes: pagination, base64, path quoting, App JWTs."""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import jwt

from .state import HTTPError

if TYPE_CHECKING:
    from .server import GitHubDouble


def paginate(
    ctx_url: str, items: list[Any], query: Mapping[str, list[str]]
) -> tuple[list[Any], dict[str, str]]:
    """GitHub's page/per_page with a Link header, which PyGithub's PaginatedList follows."""
    per_page = min(int((query.get("per_page") or ["30"])[0]), 100)
    page = max(int((query.get("page") or ["1"])[0]), 1)
    chunk = items[(page - 1) * per_page : page * per_page]
    links = []
    last = max(1, -(-len(items) // per_page))

    def link(n: int, rel: str) -> str:
        params = {k: v[0] for k, v in query.items()} | {"page": str(n), "per_page": str(per_page)}
        return f'<{ctx_url}?{urlencode(params)}>; rel="{rel}"'

    if page < last:
        links += [link(page + 1, "next"), link(last, "last")]
    if page > 1:
        links += [link(1, "first"), link(page - 1, "prev")]
    return chunk, ({"Link": ", ".join(links)} if links else {})


def b64(data: bytes) -> str:
    # GitHub wraps base64 content at 60 columns; clients must cope, so we do it too.
    text = base64.b64encode(data).decode()
    return "\n".join(text[i : i + 60] for i in range(0, len(text), 60)) + "\n"


def quote_path(path: str) -> str:
    return quote(path, safe="/")


def jwt_claims(double: GitHubDouble, token: str) -> dict[str, Any]:
    """Verify an App JWT the way GitHub does: RS256 by the App's key, iss, short expiry."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            double._public_key,
            algorithms=["RS256"],
            options={"require": ["iat", "exp", "iss"]},
            leeway=60,
        )
    except jwt.PyJWTError as e:
        raise HTTPError(401, f"A JSON web token could not be decoded ({e})") from None
    if str(claims["iss"]) != str(double.app_id):
        raise HTTPError(401, "'Issuer' claim ('iss') must be the App id")
    if claims["exp"] - time.time() > 660:
        raise HTTPError(401, "'Expiration time' claim ('exp') is too far in the future")
    return claims
