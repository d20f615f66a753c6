"""The Playwright adapter: find Chromium, launch it, and run the async API on its own loop.

Tools are called synchronously by the broker, from whatever thread the door
runs the engine in; Playwright's async API lives on one private event loop
thread, so no caller's loop is ever borrowed or blocked.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import tempfile
import threading
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from playwright.async_api import Browser, HttpCredentials, Playwright, async_playwright
from playwright.async_api import Error as PlaywrightError

from bot.browser.allowlist import _split_entry
from bot.browser.errors import BrowserUnavailable
from bot.errors import SandboxError
from bot.sandbox.bwrap import BwrapSandbox
from bot.sandbox.spec import Limits, Sandbox, SandboxSpec

T = TypeVar("T")
ENV_CHROMIUM = "AGENTPLANE_CHROMIUM"
ENV_SANDBOX = "AGENTPLANE_CHROMIUM_SANDBOX"
ENV_CONFINE = "AGENTPLANE_BROWSER_BWRAP"
"""`0` runs Chromium unconfined (debugging only); by default it runs under bubblewrap."""
DEBIAN_CHROMIUM = "/usr/bin/chromium"
DEBIAN_REAL = "/usr/lib/chromium/chromium"
CALL_TIMEOUT_S = 90.0
# Chromium's own background traffic (updates, sync, safe browsing) is not the job's.
QUIET_ARGS = (
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--no-first-run",
    "--no-default-browser-check",
    "--metrics-recording-only",
)


@dataclass(frozen=True)
class BrowserCredential:
    """A login the broker holds for the browser: HTTP auth for one origin, never shown."""

    name: str
    username: str
    password: str = field(repr=False)
    origin: str

    def for_playwright(self) -> HttpCredentials:
        # Bound to its origin: an allowed third-party domain never receives it.
        return {"username": self.username, "password": self.password, "origin": self.origin}


def find_chromium(environ: Mapping[str, str], playwright_own: str | None) -> tuple[str, str]:
    """(path, why): $AGENTPLANE_CHROMIUM, else Playwright's own browser, else Debian's."""
    configured = environ.get(ENV_CHROMIUM)
    if configured:
        if not os.access(configured, os.X_OK):
            raise BrowserUnavailable(f"${ENV_CHROMIUM}={configured} is not an executable file")
        return configured, f"${ENV_CHROMIUM}"
    if playwright_own and os.access(playwright_own, os.X_OK):
        return playwright_own, "Playwright's own Chromium"
    if os.access(DEBIAN_CHROMIUM, os.X_OK):
        return DEBIAN_CHROMIUM, "Debian's chromium package"
    raise BrowserUnavailable(
        f"no Chromium found: set ${ENV_CHROMIUM}, or install Debian's `chromium` package "
        "(scripts/host-deps does, as root)"
    )


def chromium_sandbox(environ: Mapping[str, str]) -> bool:
    """Chromium's own sandbox; it cannot start as root, so root runs without it."""
    value = environ.get(ENV_SANDBOX)
    if value is not None:
        return value not in ("0", "false", "no")
    return os.geteuid() != 0


def resolver_rules(domains: Sequence[str]) -> str:
    """A second fence under routing: hostnames outside the allowlist do not even resolve."""
    hosts = dict.fromkeys(_split_entry(d.strip().lower())[0] for d in domains)
    return ", ".join(["MAP * ~NOTFOUND", *(f"EXCLUDE {h}" for h in hosts)])


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="agentplane-browser", daemon=True
        )
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = CALL_TIMEOUT_S) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


# Chromium reserves tens of GiB of address space for V8's cage, so RLIMIT_AS cannot
# bound its memory; pids, CPU time and file sizes still hold.
BROWSER_LIMITS = Limits(
    memory_bytes=1 << 42, pids=512, cpu_seconds=3600, wall_seconds=3600.0, file_size_bytes=512 << 20
)


@dataclass
class Confined:
    """Chromium under the bubblewrap spec: a launcher script Playwright executes."""

    script: str
    sandbox: Sandbox
    dirs: list[tempfile.TemporaryDirectory[str]]

    def close(self) -> None:
        self.sandbox.close()
        for d in self.dirs:
            d.cleanup()


def confine(path: str) -> Confined:
    """Run Chromium in a bubblewrap sandbox: its own empty workspace, no host files beyond
    the system's read-only /usr, no host environment, a non-root uid. The network stays the
    host's (caller-fenced): every request is routed through the job's allowlist by the Tab."""
    from bot.sandbox.backends import get_backend

    # Debian's /usr/bin/chromium is a shell wrapper that reads /etc/chromium.d; run the binary.
    real = DEBIAN_REAL if path == DEBIAN_CHROMIUM and os.access(DEBIAN_REAL, os.X_OK) else path
    # Two directories: the sandbox may write its workspace, never the launcher beside it.
    home = tempfile.TemporaryDirectory(prefix="agentplane-ws-browser-")
    bin_dir = tempfile.TemporaryDirectory(prefix="agentplane-browser-bin-")
    try:
        spec = SandboxSpec(Path(home.name), ("**",), network="caller-fenced", limits=BROWSER_LIMITS)
        box = get_backend("bwrap").start(spec)
    except SandboxError as exc:
        home.cleanup()
        bin_dir.cleanup()
        raise BrowserUnavailable(f"cannot confine Chromium: {exc}") from None
    assert isinstance(box, BwrapSandbox)
    launcher = Path(bin_dir.name) / "chromium"
    line = " ".join(shlex.quote(a) for a in box.command([real, "--no-sandbox"]))
    launcher.write_text(f'#!/bin/sh\nexec {line} "$@"\n')
    launcher.chmod(0o755)
    return Confined(str(launcher), box, [home, bin_dir])


class Chromium:
    """One launched Chromium for one run (or one apply), with its loop thread."""

    def __init__(self, domains: Sequence[str], environ: Mapping[str, str] | None = None) -> None:
        self.environ = os.environ if environ is None else environ
        self.domains = list(domains)
        self.loop = LoopThread()
        self._pw: Playwright | None = None
        self._browser: Browser | None = None
        self.executable = ""
        self.sandboxed = False
        self._closed = False
        self._confined: Confined | None = None

    async def _launch(self) -> Browser:
        self._pw = await async_playwright().start()
        path, _why = find_chromium(self.environ, self._pw.chromium.executable_path)
        self.executable, self.sandboxed = path, chromium_sandbox(self.environ)
        launch_path = path
        if self.environ.get(ENV_CONFINE, "1") != "0":
            self._confined = confine(path)
            launch_path = self._confined.script
            self.sandboxed = False  # bubblewrap is the sandbox; Chromium's own needs userns
        try:
            return await self._pw.chromium.launch(
                executable_path=launch_path,
                chromium_sandbox=self.sandboxed,
                args=[*QUIET_ARGS, f"--host-resolver-rules={resolver_rules(self.domains)}"],
            )
        except PlaywrightError as exc:
            raise BrowserUnavailable(f"Chromium at {path} would not start: {exc}") from None

    def browser(self) -> Browser:
        if self._browser is None:
            try:
                self._browser = self.loop.run(self._launch())
            except BaseException:
                self.close()
                raise
        return self._browser

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = CALL_TIMEOUT_S) -> T:
        return self.loop.run(coro, timeout)

    async def _shutdown(self) -> None:
        if self._browser is not None:
            await self._browser.close()
        if self._pw is not None:
            await self._pw.stop()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.loop.run(self._shutdown(), timeout=30)
        finally:
            self._browser, self._pw = None, None
            self.loop.stop()
            if self._confined is not None:
                self._confined.close()
