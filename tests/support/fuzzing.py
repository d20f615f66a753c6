"""What the fuzz suites share: seeded hypothesis settings, the check every error must
pass, and the figures each suite prints (cases generated, failures)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings

from bot.core.errors import SourceError

SEEDED = settings(
    derandomize=True,  # the same cases on every run and machine: a failure reproduces
    database=None,
    deadline=None,  # time is bounded by the parser's caps, shown by figures, not a timer
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)


@dataclass
class Figures:
    """Counts one suite reports; `slowest` is the longest single case, in seconds."""

    name: str
    cases: int = 0
    rejected: int = 0
    accepted: int = 0
    failures: list[str] = field(default_factory=list)
    slowest: float = 0.0
    refusal: str = "refused with located errors"

    @contextmanager
    def case(self) -> Iterator[None]:
        started = time.perf_counter()
        self.cases += 1
        try:
            yield
        finally:
            self.slowest = max(self.slowest, time.perf_counter() - started)

    def line(self) -> str:
        return (
            f"[fuzz] {self.name}: {self.cases} cases generated, {self.accepted} accepted, "
            f"{self.rejected} {self.refusal}, failures = {len(self.failures)}, "
            f"slowest case {self.slowest * 1000:.0f} ms"
        )

    def report(self, config: pytest.Config) -> None:
        """Written by pytest's terminal reporter, past its capture, so CI's log holds it."""
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        capture = config.pluginmanager.get_plugin("capturemanager")
        if reporter is None or capture is None:
            sys.stderr.write(self.line() + "\n")
            return
        with capture.global_and_fixture_disabled():
            reporter.write_line(self.line())


def located(err: SourceError, path: str, text: str) -> str | None:
    """Why err does not locate itself in text (None when it does): the file it names, a line
    and column inside the text, and a message a user can act on."""
    lines = text.count("\n") + 2
    if err.path != path:
        return f"names {err.path!r}, not {path!r}"
    if not (1 <= err.line <= lines and err.col >= 1):
        return f"line {err.line} col {err.col} is outside a {lines - 1}-line file"
    if not err.message.strip():
        return "has no message"
    if "Traceback" in err.message or "\n" in err.message:
        return f"message is not one line: {err.message[:200]!r}"
    return None
