"""`make demo` (`agentplane demo`): the README's first command, end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_demo_proposes_refuses_the_author_applies_and_verifies(tmp_path: Path) -> None:
    dest = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "demo", "--dir", str(dest)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    # The recorded model's attempt to rewrite the test is denied by the write scope.
    assert "fs_write  tests/test_calc.py" in out and " deny  [policies/default.yaml#" in out
    assert "authors cannot approve their own run" in out
    assert "Applied: committed " in out and "ok: 6 records" in out
    assert "return a - b" in (dest / "src/calc.py").read_text()  # the checkout is untouched
    branch = subprocess.run(
        ["git", "-C", str(dest), "branch", "--list", "agentplane/run/*"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[-1]
    fixed = subprocess.run(
        ["git", "-C", str(dest), "show", f"{branch}:src/calc.py"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "return a + b" in fixed.stdout
