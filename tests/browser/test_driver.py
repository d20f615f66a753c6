"""Chromium runs confined by bubblewrap: another mount namespace, no host files, not root."""

from __future__ import annotations

import os
from pathlib import Path

from bot.browser.driver import Chromium
from tests.browser.conftest import needs_chromium

pytestmark = [needs_chromium]


def chromium_processes() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().split(b"\0")[0]
            except OSError:
                continue
            if cmd.endswith(b"/chromium/chromium"):
                pids.append(int(entry.name))
    return pids


def test_chromium_runs_inside_the_sandbox() -> None:
    before = set(chromium_processes())
    chromium = Chromium(["127.0.0.1"])
    try:
        page = chromium.run(chromium.browser().new_page())
        chromium.run(page.set_content("<p id=x>confined</p>"))
        assert chromium.run(page.inner_text("#x")) == "confined"
        ours = [p for p in chromium_processes() if p not in before]
        assert ours, "no Chromium process found"
        own_mnt = os.readlink("/proc/self/ns/mnt")
        for pid in ours:
            assert os.readlink(f"/proc/{pid}/ns/mnt") != own_mnt  # not the host's filesystem
            uid = int((Path(f"/proc/{pid}/status").read_text().split("Uid:")[1]).split()[0])
            assert uid != 0 or os.geteuid() != 0  # never host root
            assert not Path(f"/proc/{pid}/root/root").exists()  # the host home is absent
    finally:
        chromium.close()


def test_unconfined_only_when_asked() -> None:
    chromium = Chromium(["127.0.0.1"], {**os.environ, "AGENTPLANE_BROWSER_BWRAP": "0"})
    try:
        chromium.browser()
        assert chromium._confined is None
    finally:
        chromium.close()
