"""Classify a prompt into a job type when the job file leaves it out.

Deliberately simple and explainable: keyword evidence per type, with the
matched words as the reason and a confidence the plan can require clarification on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SIGNALS: dict[str, tuple[str, ...]] = {
    "sql": (
        "sql",
        "query",
        "queries",
        "postgres",
        "database",
        "table",
        "index",
        "explain",
        "pg_stat",
    ),
    "browser": (
        "browser",
        "page",
        "click",
        "form",
        "website",
        "url",
        "login",
        "admin console",
        "screenshot",
        "submit",
    ),
    "doc": ("document", "spreadsheet", "report", "slides", "docx", "xlsx", "memo", "summary"),
    "code": (
        "code",
        "test",
        "tests",
        "bug",
        "fix",
        "refactor",
        "function",
        "compile",
        "lint",
        "repo",
        "commit",
        "python",
        "failing",
    ),
}


@dataclass(frozen=True)
class Classification:
    job_type: str
    confidence: float
    reason: str


def classify(prompt: str) -> Classification:
    words = prompt.lower()
    hits = {
        kind: [w for w in signals if re.search(rf"\b{re.escape(w)}\b", words)]
        for kind, signals in _SIGNALS.items()
    }
    ranked = sorted(hits.items(), key=lambda kv: len(kv[1]), reverse=True)
    (best, best_hits), (_, runner_up) = ranked[0], ranked[1]
    if not best_hits:
        return Classification("code", 0.0, "no signal in the prompt; defaulted to code")
    confidence = round(len(best_hits) / (len(best_hits) + len(runner_up)), 2)
    return Classification(best, confidence, f"prompt mentions {', '.join(best_hits)}")
