"""Canonical JSON and digests: the byte form every record and digest is taken over.

The form: keys sorted by code point, no insignificant whitespace, UTF-8 (no \\u escapes
beyond JSON's required ones), no NaN or infinity, numbers as Python writes them (`0.0`,
`1.5e-05`). An outside verifier recomputes digests over the stored blob bytes, which are
stored in this form (`audit verify` refuses an entry that is not).

Why not RFC 8785 (JCS): it differs from this form only in numbers (JCS writes `0` and
`0.000015`), every record has such a float (`cost_usd`, durations), and the maintained
Python implementation (`rfc8785`) is pure Python: 499 us against 51 us per 8 KB record,
measured on the v1 fixture branch. Audit verification reads every record, so it would
pay that ten times over; and the entries already on audit branches would need a second
canonical form. Why not in-toto Statements: an entry is a link in one hash-chained,
signed log of a run's states (`seq`, `prev`), not a detached attestation about an
artifact; the proposal digest an approval binds to is already the subject a Statement
would carry, and `agentplane schema --record` gives the typed predicate's schema.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no insignificant whitespace, UTF-8: equal values give equal bytes."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest_of(value: Any) -> str:
    """`sha256:<hex>` of the canonical JSON of value."""
    return "sha256:" + sha256_hex(canonical_json(value))
