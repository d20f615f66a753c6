"""Webhook verification and parsing with no I/O (after gidgethub's sansio).

HMAC-SHA256 over the raw body, constant-time compare, several secrets for
rotation, and no secret at all means every delivery is refused (fail closed).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.core.errors import AgentplaneError

MAX_BODY = 25 * 1024 * 1024  # GitHub does not send payloads over 25 MB
MAX_DEPTH = 64
"""GitHub's payloads nest about ten deep; far deeper is an attack on the parser and on
everything that walks the payload later."""


class WebhookError(AgentplaneError):
    status = 400


class BadSignature(WebhookError):
    status = 401


class TooLarge(WebhookError):
    status = 413


@dataclass(frozen=True)
class Delivery:
    event: str
    delivery_id: str
    hook_id: str
    payload: dict[str, Any]

    @property
    def action(self) -> str | None:
        action = self.payload.get("action")
        return action if isinstance(action, str) else None


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, header: str | None, secrets: Sequence[str]) -> None:
    if not secrets:
        raise BadSignature("no webhook secret is configured: refusing every delivery")
    if not header or not header.startswith("sha256="):
        raise BadSignature("missing or malformed X-Hub-Signature-256")
    # Check every secret, so timing does not reveal which one matched.
    matched = [hmac.compare_digest(signature(s, body), header) for s in secrets]
    if not any(matched):
        raise BadSignature("signature does not match any configured secret")


def depth(value: Any) -> int:
    """How deep JSON nests, without recursion (a deep value must not blow the stack here)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            if level > MAX_DEPTH:
                return level  # deep enough to refuse: no need to walk the rest
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, level + 1) for child in children)
    return deepest


OBJECTS = ("repository", "installation", "pull_request", "issue", "review", "comment", "sender")
"""Members every handler reads as objects when they are present, as GitHub always sends them."""


def check_shape(payload: dict[str, Any]) -> None:
    """Refuse, at the door, a payload whose members the handlers would read as objects but
    are not: signed garbage must be a 400, not an exception in the worker retried forever."""
    for key in OBJECTS:
        if key in payload and not isinstance(payload[key], dict):
            raise WebhookError(f"{key!r} is not a JSON object")
    action = payload.get("action")
    if action is not None and not isinstance(action, str):
        raise WebhookError("'action' is not a string")
    for key in ("pull_request", "issue"):
        number = payload.get(key, {}).get("number")
        if number is not None and (type(number) is not int or number < 0):
            raise WebhookError(f"{key}.number is not a whole number")


def parse(headers: Mapping[str, str], body: bytes, secrets: Sequence[str]) -> Delivery:
    """Verify and parse one delivery; headers must be case-insensitive (or lower-cased)."""
    if len(body) > MAX_BODY:
        raise TooLarge("payload over 25 MB")
    h = {k.lower(): v for k, v in headers.items()}
    verify_signature(body, h.get("x-hub-signature-256"), secrets)
    event, delivery = h.get("x-github-event"), h.get("x-github-delivery")
    if not event or not delivery:
        raise WebhookError("missing X-GitHub-Event or X-GitHub-Delivery")
    try:
        payload = json.loads(body)
    except ValueError:
        raise WebhookError("body is not JSON") from None
    except RecursionError:
        raise WebhookError(f"body nests deeper than {MAX_DEPTH} levels") from None
    if not isinstance(payload, dict):
        raise WebhookError("body is not a JSON object")
    if depth(payload) > MAX_DEPTH:
        raise WebhookError(f"body nests deeper than {MAX_DEPTH} levels")
    check_shape(payload)
    # Dedupe per hook (or App installation target): a redelivery keeps its GUID.
    hook = h.get("x-github-hook-id") or str((payload.get("installation") or {}).get("id") or "")
    return Delivery(event=event, delivery_id=delivery, hook_id=hook, payload=payload)
