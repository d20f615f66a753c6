import json

import pytest

from bot.doors.github.sansio import (
    BadSignature,
    TooLarge,
    WebhookError,
    parse,
    signature,
    verify_signature,
)

# GitHub's documented test vector for X-Hub-Signature-256.
SECRET = "It's a Secret to Everybody"
BODY = b"Hello, World!"
EXPECTED = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_github_documented_vector() -> None:
    assert signature(SECRET, BODY) == EXPECTED
    verify_signature(BODY, EXPECTED, [SECRET])


def test_rotation_accepts_any_configured_secret() -> None:
    verify_signature(BODY, EXPECTED, ["new-secret", SECRET])


@pytest.mark.parametrize("header", [None, "", "sha1=abc", EXPECTED[:-1] + "0", "sha256="])
def test_bad_signatures_are_refused(header: str | None) -> None:
    with pytest.raises(BadSignature):
        verify_signature(BODY, header, [SECRET])


def test_no_secret_fails_closed() -> None:
    with pytest.raises(BadSignature, match="no webhook secret"):
        verify_signature(BODY, EXPECTED, [])


def headers(body: bytes, event: str = "ping") -> dict[str, str]:
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": "guid-1",
        "X-GitHub-Hook-ID": "7",
        "X-Hub-Signature-256": signature("s", body),
    }


def test_parse_returns_the_delivery() -> None:
    body = json.dumps({"action": "opened", "zen": "x"}).encode()
    d = parse(headers(body, "pull_request"), body, ["s"])
    assert (d.event, d.delivery_id, d.hook_id, d.action) == (
        "pull_request",
        "guid-1",
        "7",
        "opened",
    )


def test_parse_rejects_missing_headers_and_non_json() -> None:
    body = b"[]"
    with pytest.raises(WebhookError, match="not a JSON object"):
        parse(headers(body), body, ["s"])
    h = headers(b"{}")
    del h["X-GitHub-Delivery"]
    with pytest.raises(WebhookError, match="X-GitHub-Delivery"):
        parse(h, b"{}", ["s"])


def test_oversized_payload_refused_before_hashing() -> None:
    body = b"x" * (25 * 1024 * 1024 + 1)
    with pytest.raises(TooLarge):
        parse(headers(b"{}"), body, ["s"])
