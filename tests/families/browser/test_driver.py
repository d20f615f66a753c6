"""Chromium runs in a sandbox backend, Docker preferred: its own filesystem, not root, no
network but the egress proxy, and (in Docker) a memory cgroup."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import bot.families.browser.driver as driver
from bot.demo.console import AdminSite
from bot.families.browser.driver import BROWSER_LIMITS, Chromium, browser_backend
from bot.families.browser.errors import BrowserUnavailable
from tests.adapters.sandbox.conftest import backend_or_skip
from tests.families.browser.conftest import needs_chromium

pytestmark = [needs_chromium]
LOOPBACK = ("127.0.0.0/8",)


@pytest.fixture
def site() -> Iterator[AdminSite]:
    with AdminSite() as s:
        yield s


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


def memory_limit(pid: int) -> int:
    """The memory cgroup limit the kernel holds pid to (cgroup v1 or v2)."""
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    for line in lines:  # v1 (or hybrid): the memory controller's own hierarchy
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return int(Path(f"/sys/fs/cgroup/memory{path}/memory.limit_in_bytes").read_text())
    path = next(line.split("::", 1)[1] for line in lines if line.startswith("0::"))
    return int(Path(f"/sys/fs/cgroup{path}/memory.max").read_text())


def test_chromium_runs_inside_the_sandbox(backend_name: str) -> None:
    before = set(chromium_processes())
    chromium = Chromium(["127.0.0.1"], backend=backend_name)
    try:
        page = chromium.run(chromium.browser().new_page())
        chromium.run(page.set_content("<p id=x>confined</p>"))
        assert chromium.run(page.inner_text("#x")) == "confined"
        assert chromium.sandbox.startswith(f"{backend_name}: required by policy")
        ours = [p for p in chromium_processes() if p not in before]
        assert ours, "no Chromium process found"
        own_mnt = os.readlink("/proc/self/ns/mnt")
        own_net = os.readlink("/proc/self/ns/net")
        for pid in ours:
            assert os.readlink(f"/proc/{pid}/ns/mnt") != own_mnt  # not the host's filesystem
            assert os.readlink(f"/proc/{pid}/ns/net") != own_net  # nor its network
            uid = int((Path(f"/proc/{pid}/status").read_text().split("Uid:")[1]).split()[0])
            assert uid != 0  # never root, in or out of the sandbox
            assert not Path(f"/proc/{pid}/root/root").exists()  # the host home is absent
        if backend_name == "docker":
            # The cgroup the kernel enforces: Chromium's memory is capped, not just reserved.
            assert memory_limit(ours[0]) == BROWSER_LIMITS.memory_bytes
    finally:
        chromium.close()


def visit(chromium: Chromium, url: str) -> str:
    page = chromium.run(chromium.browser().new_page())
    try:
        response = chromium.run(page.goto(url))
        return f"{response.status if response else 'none'} {chromium.run(page.content())}"
    except Exception as exc:
        return f"failed {exc}"


def test_the_only_way_out_is_the_egress_proxy(backend_name: str, site: AdminSite) -> None:
    """Playwright routing is one fence; the proxy is the one the sandbox cannot go around."""
    port = site.url.rsplit(":", 1)[1]
    opened = Chromium([f"127.0.0.1:{port}"], backend=backend_name, private_networks=LOOPBACK)
    shut = Chromium([f"127.0.0.1:{port}"], backend=backend_name)
    try:
        through = visit(opened, f"{site.url}/login")
        other = visit(opened, "http://example.com/")
        refused = visit(shut, f"{site.url}/login")
    finally:
        opened.close()
        shut.close()
    assert through.startswith("200") and "Sign in" in through, through
    assert "Sign in" not in refused
    allowed = [e for e in opened.egress if e.decision == "allow"]
    assert allowed and all(e.address == "127.0.0.1" for e in allowed)
    assert ("example.com", "deny", "default-deny") in [
        (e.host, e.decision, e.rule) for e in opened.egress
    ], (other, opened.egress)
    assert "127.0.0.1" in {e.host for e in shut.egress}, shut.egress
    for event in shut.egress:
        if event.host == "127.0.0.1":
            assert event.decision == "deny" and event.rule.endswith("non-public-address=127.0.0.1")


def test_docker_is_preferred_and_policy_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    docker_ok = backend_or_skip("docker")
    backend_or_skip("bwrap")
    assert docker_ok
    from bot.adapters.sandbox.image import ensure_browser_image

    ensure_browser_image()
    assert browser_backend(None)[0].name == "docker"
    required, why = browser_backend("bwrap")
    assert required.name == "bwrap" and why == "bwrap: required by policy"
    # Without the browser image, Docker cannot run Chromium: bubblewrap, saying why.
    monkeypatch.setattr(driver, "BROWSER_IMAGE", "agentplane-browser:missing")
    backend, why = browser_backend(None)
    assert backend.name == "bwrap" and "agentplane-browser:missing is missing" in why, why
    with pytest.raises(BrowserUnavailable, match="no sandbox here can run Chromium"):
        browser_backend("docker")  # what policy requires, or nothing


def test_a_failed_launch_fails_every_later_step_the_same_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(driver, "BROWSER_IMAGE", "agentplane-browser:missing")
    chromium = Chromium(["127.0.0.1"], backend="docker")
    for _ in range(2):
        with pytest.raises(BrowserUnavailable, match="missing"):
            chromium.browser()
    chromium.close()


def test_a_configured_chromium_outside_usr_runs_under_bwrap() -> None:
    """$AGENTPLANE_CHROMIUM (or Playwright's own, under ~/.cache) is bound in read-only."""
    backend_or_skip("bwrap")
    own = Path(tempfile.mkdtemp(prefix="agentplane-own-chromium-"))
    try:
        own.chmod(0o755)  # the sandbox uid must traverse it, as it would ~/.cache's
        script = own / "chrome"
        script.write_text(f'#!/bin/sh\nexec {driver.DEBIAN_REAL} "$@"\n')
        script.chmod(0o755)
        env = {**os.environ, "AGENTPLANE_CHROMIUM": str(script)}
        chromium = Chromium(["127.0.0.1"], env, backend="bwrap")
        try:
            page = chromium.run(chromium.browser().new_page())
            chromium.run(page.set_content("<p id=x>own</p>"))
            assert chromium.run(page.inner_text("#x")) == "own"
            assert chromium.executable == str(script)
        finally:
            chromium.close()
    finally:
        shutil.rmtree(own, ignore_errors=True)
