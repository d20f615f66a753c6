"""Verdicts on entries, in chain order: trusted, unknown, revoked, back-dated, downgraded."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bot.adapters.audit.signing import Signer
from bot.adapters.audit.trust import ChainJudge, Trust, TrustedKey, signed_payload
from bot.core.errors import AuditError, ValidationFailed
from bot.core.policy import merge_policy

BOT = Signer.generate("bot")
OLD = Signer.generate("old-bot")


def entry(seq: int, signer: Signer | None, at: str = "2025-06-01T00:00:00Z") -> dict[str, Any]:
    doc: dict[str, Any] = {"v": 1, "seq": seq, "prev": None, "run_id": "r", "record": {}}
    if signer is None:
        return doc
    doc.update(v=2, at=at, signer={"name": signer.name, "key": signer.key})
    doc["sig"] = signer.sign(signed_payload(doc))
    return doc


def when(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def statuses(trust: Trust, *docs: dict[str, Any]) -> list[str]:
    judge = ChainJudge(trust)
    return [judge.judge(doc).status for doc in docs]


def test_trusted_unknown_and_altered() -> None:
    trust = Trust((TrustedKey("bot", BOT.key),))
    altered = entry(1, BOT)
    altered["record"] = {"changed": [".github/workflows/x.yml"]}
    assert statuses(trust, entry(0, BOT), altered) == ["signed", "bad_signature"]
    assert statuses(trust, entry(0, Signer.generate("bot"))) == ["unknown"]


def test_revocation_is_judged_at_the_entry_time() -> None:
    trust = Trust((TrustedKey("old", OLD.key, when("2025-06-15T00:00:00Z")),))
    assert statuses(trust, entry(0, OLD, "2025-06-01T00:00:00Z")) == ["later_revoked"]
    assert statuses(trust, entry(0, OLD, "2025-07-01T00:00:00Z")) == ["revoked"]


def test_a_stolen_revoked_key_cannot_back_date_past_a_newer_entry() -> None:
    trust = Trust(
        (TrustedKey("bot", BOT.key), TrustedKey("old", OLD.key, when("2025-06-15T00:00:00Z")))
    )
    newer = entry(0, BOT, "2025-07-01T00:00:00Z")
    backdated = entry(1, OLD, "2025-06-01T00:00:00Z")  # claims a time before revocation
    assert statuses(trust, newer, backdated) == ["signed", "revoked"]


def test_unsigned_entries_before_signing_and_after() -> None:
    trust = Trust((TrustedKey("bot", BOT.key),))
    assert statuses(trust, entry(0, None), entry(1, BOT), entry(2, None)) == [
        "unsigned",
        "signed",
        "downgrade",
    ]
    required = Trust(trust.keys, require_signatures_from=1)
    assert statuses(required, entry(0, None), entry(1, None)) == ["unsigned", "unsigned_required"]


def test_own_key_and_policy_listing_twice() -> None:
    revoked = TrustedKey("bot", BOT.key, when("2025-01-01T00:00:00Z"))
    # Policy revoked our own key: it stays revoked, the own key does not override policy.
    assert Trust((revoked,)).with_own("me", BOT.key).lookup(BOT.key) == revoked
    # Listed twice, the stricter entry wins.
    assert Trust((TrustedKey("bot", BOT.key), revoked)).lookup(BOT.key) == revoked
    assert Trust().with_own("me", BOT.key).lookup(BOT.key) == TrustedKey("me", BOT.key)
    with pytest.raises(AuditError, match="not an Ed25519 public key"):
        Trust((TrustedKey("typo", "ed25519:AAAA"),))


def test_trust_from_policy_on_the_default_branch() -> None:
    text = (
        "audit:\n"
        "  require_signatures_from: 3\n"
        "  signers:\n"
        f"    - {{name: bot, key: {BOT.key}}}\n"
        f"    - {{name: old-bot, key: {OLD.key}, revoked_at: '2025-06-15T00:00:00Z'}}\n"
    )
    audit = merge_policy([("policies/audit.yaml", text)]).audit
    trust = Trust.from_policy(audit.signers, audit.require_signatures_from)
    assert trust.require_signatures_from == 3
    assert trust.lookup(OLD.key) == TrustedKey("old-bot", OLD.key, when("2025-06-15T00:00:00Z"))
    with pytest.raises(ValidationFailed, match=r"policies/audit.yaml:3:.*ed25519:<base64"):
        merge_policy([("policies/audit.yaml", "audit:\n  signers:\n  - {name: x, key: AAAA}\n")])
    naive = f"audit:\n  signers:\n  - {{name: x, key: {BOT.key}, revoked_at: '2025-06-15'}}\n"
    with pytest.raises(ValidationFailed, match="timezone"):
        merge_policy([("policies/audit.yaml", naive)])
