from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.sandbox.bwrap import BwrapBackend


@pytest.fixture
def workspace() -> Iterator[Path]:
    """A small repo-like workspace directory.

    Made under /tmp rather than in tmp_path: as root the sandbox runs as uid 65534,
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


@pytest.fixture
def backend() -> BwrapBackend:
    backend = BwrapBackend()
    ok, reason = backend.available()
    if not ok:
        pytest.skip(f"bwrap backend unavailable: {reason}")
    return backend
