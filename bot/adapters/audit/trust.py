"""Which signatures on the audit branch count: the trust set, and the verdict per entry.

The trust set comes from policy on the default branch (`audit.signers`, each with an
optional `revoked_at`) plus the verifier's own key. Entries are judged in chain order by
`ChainJudge`, which carries what an entry alone cannot show:

- an entry's time is the latest `at` of the trusted entries up to it, so a stolen key
  that was revoked cannot sign a back-dated entry after a newer one;
- once one signed entry is on the chain, an unsigned one after it is a downgrade (every
  writer since the upgrade signs), and policy's `require_signatures_from` can move that
  point earlier.

Pure apart from the Ed25519 arithmetic: verify's `check` and AuditLog's reads share it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from bot.adapters.audit.signing import parse_public_key, signature_valid
from bot.core.canonical import canonical_json

Status = Literal[
    "unsigned",  # v1, before signatures were required: reported, accepted
    "signed",
    "later_revoked",  # a key revoked after this entry: a warning
    "unsigned_required",
    "downgrade",
    "revoked",
    "unknown",
    "bad_signature",
]
ACCEPTED: frozenset[Status] = frozenset({"unsigned", "signed", "later_revoked"})
TRUSTED: frozenset[Status] = frozenset({"signed", "later_revoked"})


@dataclass(frozen=True)
class TrustedKey:
    name: str
    key: str  # ed25519:<base64>
    revoked_at: datetime | None = None


class SignerLike(Protocol):
    """The shape of policy's `audit.signers` items (bot.core.policy.SignerPolicy)."""

    @property
    def name(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def revoked_at(self) -> datetime | None: ...


@dataclass(frozen=True)
class Trust:
    """The keys whose signatures count, and from which seq on signatures are required."""

    keys: tuple[TrustedKey, ...] = ()
    require_signatures_from: int | None = None
    _by_key: dict[str, TrustedKey] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_key: dict[str, TrustedKey] = {}
        for item in self.keys:
            parse_public_key(item.key)  # a typo in policy fails loudly, not silently
            known = by_key.get(item.key)
            # Listed twice: the earliest revocation wins, never the laxer entry.
            if known is None or _earlier(item.revoked_at, known.revoked_at):
                by_key[item.key] = item
        object.__setattr__(self, "_by_key", by_key)

    @classmethod
    def from_policy(
        cls, signers: Iterable[SignerLike], require_signatures_from: int | None = None
    ) -> Trust:
        keys = tuple(TrustedKey(s.name, s.key, s.revoked_at) for s in signers)
        return cls(keys, require_signatures_from)

    def with_own(self, name: str, key: str) -> Trust:
        """Plus the verifier's own key, unless policy already names it (and maybe revoked it)."""
        if key in self._by_key:
            return self
        return Trust((*self.keys, TrustedKey(name, key)), self.require_signatures_from)

    def lookup(self, key: str) -> TrustedKey | None:
        return self._by_key.get(key)


def _earlier(a: datetime | None, b: datetime | None) -> bool:
    return a is not None and (b is None or a < b)


@dataclass(frozen=True)
class TrustVerdict:
    status: Status
    message: str

    @property
    def accepted(self) -> bool:
        return self.status in ACCEPTED


def signed_payload(doc: dict[str, Any]) -> bytes:
    """What an entry's signature covers: its canonical JSON without `sig`."""
    return canonical_json({k: v for k, v in doc.items() if k != "sig"})


def parse_time(text: str) -> datetime | None:
    """An ISO 8601 time with a zone, None otherwise."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


@dataclass
class ChainJudge:
    """Judges entries in seq order; `copy()` lets a reader try new entries and keep the
    state only if all of them hold."""

    trust: Trust
    first_signed: int | None = None
    high_water: datetime | None = None

    def copy(self) -> ChainJudge:
        return ChainJudge(self.trust, self.first_signed, self.high_water)

    def judge(self, doc: dict[str, Any]) -> TrustVerdict:
        """The verdict on one parsed entry document (see log.parse_entry)."""
        seq = doc["seq"]
        if doc["v"] == 1:
            return self._unsigned(seq)
        signer = doc["signer"]
        name, key = signer["name"], signer["key"]
        if not signature_valid(key, signed_payload(doc), doc["sig"]):
            return TrustVerdict(
                "bad_signature",
                f"entry seq {seq}: the signature does not match its content or its key "
                f"({name}): the entry was altered after it was signed",
            )
        trusted = self.trust.lookup(key)
        if trusted is None:
            return TrustVerdict(
                "unknown",
                f"entry seq {seq} is signed by {name!r} with key {key}, which policy's "
                "audit.signers on the default branch does not list: it was not written by a "
                "trusted writer (add the key to policy only if that writer is yours)",
            )
        stamped = parse_time(doc["at"])
        assert stamped is not None  # parse_entry checked it
        when = stamped if self.high_water is None else max(stamped, self.high_water)
        revoked = trusted.revoked_at
        if revoked is not None and when >= revoked:
            return TrustVerdict(
                "revoked",
                f"entry seq {seq} is signed by {trusted.name!r} at {when.isoformat()}, after "
                f"its key was revoked at {revoked.isoformat()}: treat it as forged",
            )
        if self.first_signed is None:
            self.first_signed = seq
        self.high_water = when
        if revoked is not None:
            return TrustVerdict(
                "later_revoked",
                f"entry seq {seq} is signed by {trusted.name!r}, whose key was revoked later "
                f"({revoked.isoformat()}); it was valid when written",
            )
        return TrustVerdict("signed", f"entry seq {seq} is signed by {trusted.name!r}")

    def _unsigned(self, seq: int) -> TrustVerdict:
        required = self.trust.require_signatures_from
        if required is not None and seq >= required:
            return TrustVerdict(
                "unsigned_required",
                f"entry seq {seq} is unsigned (v1), but policy requires signatures from seq "
                f"{required} on (audit.require_signatures_from)",
            )
        if self.first_signed is not None:
            return TrustVerdict(
                "downgrade",
                f"entry seq {seq} is unsigned (v1) after signed entries (from seq "
                f"{self.first_signed}): agentplane signs every entry since the upgrade, so "
                "it was added outside agentplane",
            )
        return TrustVerdict("unsigned", f"entry seq {seq} is unsigned (v1, written before signing)")
