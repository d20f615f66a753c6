"""`agentplane demo --browser`: the shipped admin-edit job and script, end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.families.browser.conftest import needs_chromium

pytestmark = [needs_chromium]


def test_browser_demo_holds_the_save_then_releases_it_once(tmp_path: Path) -> None:
    dest = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "demo", "--browser", "--dir", str(dest)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    # The shipped script, routed by the shipped policy, drives the shipped job.
    assert "scripted/admin-edit (class recorded-browser: route browser" in out
    assert "6. click button 'Save' [held]" in out
    assert "The console has received 0 state-changing requests so far." in out
    assert "Applied: released POST http://127.0.0.1:" in out
    landed = "The console's own count: {'POST /users/2': 1}; bob's email is bob@new.example.com"
    assert landed in out
    assert "ok: 5 records" in out
    assert list((dest / "tests/agentplane").glob("test_admin_edit_*.py"))
    assert (dest / "trace.zip").stat().st_size > 0
