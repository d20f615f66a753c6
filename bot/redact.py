"""Redaction: a second line of defence for anything posted or recorded.

The first line is that credentials never reach the sandbox or the prompt; this
masks known secret values and well-known token shapes if something slips.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "[REDACTED]"
PATTERNS = re.compile(
    r"(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"
    r"|(?<=://)[^/\s:@]+:[^/\s@]+(?=@))"
)


class Redactor:
    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        # Longest first, so a secret containing another is masked whole.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return PATTERNS.sub(MASK, text)
