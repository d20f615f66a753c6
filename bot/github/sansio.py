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

from bot.errors import AgentplaneError

MAX_BODY = 25 * 1024 * 1024  # GitHub does not send payloads over 25 MB


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
    if not isinstance(payload, dict):
        raise WebhookError("body is not a JSON object")
    # Dedupe per hook (or App installation target): a redelivery keeps its GUID.
    hook = h.get("x-github-hook-id") or str((payload.get("installation") or {}).get("id") or "")
    return Delivery(event=event, delivery_id=delivery, hook_id=hook, payload=payload)
