"""Fixtures for the sandbox tests, and the escape table printed at the end of the run.

Every test marked `escape("attempt")` runs once per backend; its outcome becomes
one cell of the attempt x backend table: blocked (the test passed), ESCAPED (it
failed) or skipped. Set AGENTPLANE_REQUIRE_BACKENDS=bwrap,docker (CI does) to turn
an unavailable backend into a failure instead of a skip.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.adapters.sandbox.backends import make_backend
from bot.adapters.sandbox.spec import SandboxBackend

BACKEND_NAMES = ("bwrap", "docker")
_TABLE: dict[str, dict[str, str]] = {}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "escape(attempt): an escape attempt for the table")


@pytest.fixture
def workspace() -> Iterator[Path]:
    """A small repo-like workspace directory.

    Made under /tmp rather than in tmp_path: as root the sandbox runs as a uid of its own,
    which cannot traverse pytest's 0700 /tmp/pytest-of-root.
    """
    root = Path(tempfile.mkdtemp(prefix="agentplane-ws-"))
    files = {
        "README.md": "# demo\n",
        "src/pkg/__init__.py": "",
        "src/pkg/mod.py": "def f() -> int:\n    return 1\n",
        "tests/test_mod.py": "def test_f() -> None:\n    assert True\n",
        "docs/guide.md": "guide\n",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    yield root
    shutil.rmtree(root, ignore_errors=True)


_backends: dict[str, SandboxBackend | str] = {}


def _load(name: str) -> SandboxBackend | str:
    """The backend, or why it is unusable; probed once per session."""
    if name not in _backends:
        if name == "docker":
            try:
                from bot.adapters.sandbox.image import ensure_image

                ensure_image()
            except Exception as exc:
                _backends[name] = f"cannot build the sandbox image: {exc}"
                return _backends[name]
        backend = make_backend(name)
        ok, reason = backend.available()
        _backends[name] = backend if ok else reason
    return _backends[name]


def backend_or_skip(name: str) -> SandboxBackend:
    loaded = _load(name)
    if isinstance(loaded, str):
        required = os.environ.get("AGENTPLANE_REQUIRE_BACKENDS", "").split(",")
        if name in required:
            pytest.fail(f"{name} backend required but unavailable: {loaded}")
        pytest.skip(f"{name} backend unavailable: {loaded}")
    return loaded


@pytest.fixture(params=BACKEND_NAMES)
def backend(request: pytest.FixtureRequest) -> SandboxBackend:
    return backend_or_skip(str(request.param))


@pytest.fixture
def docker_backend() -> SandboxBackend:
    return backend_or_skip("docker")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    report = yield
    marker = item.get_closest_marker("escape")
    callspec = getattr(item, "callspec", None)
    if marker is None or callspec is None or "backend" not in callspec.params:
        return report
    attempt, name = str(marker.args[0]), str(callspec.params["backend"])
    cell = _TABLE.setdefault(attempt, {})
    rep: pytest.TestReport = report  # type: ignore[assignment]
    if rep.skipped:
        cell.setdefault(name, "skipped")
    elif rep.failed:
        cell[name] = "ESCAPED" if rep.when == "call" else "error"
    elif rep.when == "call":
        cell.setdefault(name, "blocked")
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _TABLE:
        return
    width = max(len(a) for a in _TABLE)
    tr = terminalreporter
    tr.section("sandbox escape attempts")
    tr.write_line(f"{'attempt':<{width}}  " + "  ".join(f"{b:<8}" for b in BACKEND_NAMES))
    for attempt in sorted(_TABLE):
        cells = [_TABLE[attempt].get(b, "-") for b in BACKEND_NAMES]
        tr.write_line(f"{attempt:<{width}}  " + "  ".join(f"{c:<8}" for c in cells))
    escaped = sum(c == "ESCAPED" for row in _TABLE.values() for c in row.values())
    tr.write_line(f"escaped: {escaped}")
