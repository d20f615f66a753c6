"""The Playwright adapter: find Chromium, launch it, and run the async API on its own loop.

Tools are called synchronously by the broker, from whatever thread the door
runs the engine in; Playwright's async API lives on one private event loop
thread, so no caller's loop is ever borrowed or blocked.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shlex
import tempfile
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from playwright.async_api import Browser, HttpCredentials, Playwright, async_playwright
from playwright.async_api import Error as PlaywrightError

from bot.adapters.sandbox.image import BROWSER_IMAGE
from bot.adapters.sandbox.proxy import FORWARD_PORT
from bot.adapters.sandbox.spec import EgressEvent, Limits, Sandbox, SandboxBackend, SandboxSpec
from bot.adapters.sandbox.tls import RunCA
from bot.core.errors import SandboxError
from bot.core.policy import FormLogin
from bot.families.browser.allowlist import _split_entry, normal_url
from bot.families.browser.errors import BrowserUnavailable
from bot.families.browser.netgate import NetworkGate

T = TypeVar("T")
ENV_CHROMIUM = "AGENTPLANE_CHROMIUM"
ENV_SANDBOX = "AGENTPLANE_CHROMIUM_SANDBOX"
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
# Requests routing cannot hold: fetchLater() fires after the page is gone, a SharedWorker's
# fetches are not routed at all. Blink's switch and Chromium's own (not --disable-features,
# which would replace the list Playwright passes). Beacons and keepalive fetches on unload
# have no switch: the network gate (netgate.py) refuses them at the proxy.
GATE_ARGS = (
    "--disable-blink-features=FetchLaterAPI",
    "--disable-shared-workers",
)


@dataclass(frozen=True)
class BrowserCredential:
    """A login the broker holds for the browser, for one origin, never shown: HTTP auth,
    or the login form policy declares (`form`), which the broker fills in itself."""

    name: str
    username: str
    password: str = field(repr=False)
    origin: str
    form: FormLogin | None = None
    form_rule: str = ""
    """Where policy declares the form (`policies/x.yaml#credentials.<name>.form`)."""

    def for_playwright(self) -> HttpCredentials | None:
        # Bound to its origin: an allowed third-party domain never receives it.
        if self.form is not None:
            return None  # a form credential is typed into its form, never sent as HTTP auth
        return {"username": self.username, "password": self.password, "origin": self.origin}

    def on_origin(self, url: str) -> bool:
        return normal_url(url).split("/", 3)[:3] == normal_url(self.origin).split("/", 3)[:3]

    def authorization(self, url: str) -> str | None:
        """The Basic header for a request to url, if url is on this credential's origin."""
        if self.form is not None or not self.on_origin(url):
            return None
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return f"Basic {token}"


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
    """Chromium's own sandbox, for Chromium outside ours (exported tests, the bare bench);
    it cannot start as root, so root runs without it."""
    value = environ.get(ENV_SANDBOX)
    if value is not None:
        return value not in ("0", "false", "no")
    return os.geteuid() != 0


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


# Chromium reserves tens of GiB of address space for V8's cage, so RLIMIT_AS (all bwrap
# has) cannot bound its memory; Docker's cgroup can, and does.
BROWSER_LIMITS = Limits(
    memory_bytes=2 << 30,
    address_space_bytes=1 << 42,
    pids=512,
    cpu_seconds=3600,
    wall_seconds=3600.0,
    file_size_bytes=512 << 20,
)
IN_SANDBOX_ARGS = (
    "--no-sandbox",  # the sandbox is ours: Chromium's own would need user namespaces
    f"--proxy-server=http://127.0.0.1:{FORWARD_PORT}",
    "--proxy-bypass-list=<-loopback>",  # 127.0.0.1 too goes through the proxy, and its rules
    "--disable-dev-shm-usage",  # Docker's /dev/shm is 64 MiB
)


def proxy_rules(domains: Sequence[str]) -> tuple[str, ...]:
    """scope.browser.domains as egress rules: an entry without a port means any port."""
    return tuple(d if _split_entry(d.strip())[1] else f"{d.strip()}:*" for d in domains)


def browser_backend(required: str | None) -> tuple[SandboxBackend, str]:
    """(backend, why): policy's choice if the job type names one, else Docker where it can
    run Chromium (the browser image is built), else bubblewrap."""
    from bot.adapters.sandbox.backends import make_backend
    from bot.adapters.sandbox.dockerbox import DockerBackend

    skipped: list[str] = []
    for name in [required] if required else ["docker", "bwrap"]:
        backend = DockerBackend(image=BROWSER_IMAGE) if name == "docker" else make_backend(name)
        ok, reason = backend.available()
        if ok:
            why = "required by policy" if required else "preferred"
            return backend, "; ".join([f"{name}: {why}", *skipped])
        skipped.append(f"{name}: {reason}")
    raise BrowserUnavailable("no sandbox here can run Chromium: " + "; ".join(skipped))


@dataclass
class Confined:
    """Chromium in a sandbox: the launcher script Playwright executes, and the sandbox."""

    script: str
    sandbox: Sandbox
    dirs: list[tempfile.TemporaryDirectory[str]]

    def close(self) -> None:
        try:
            self.sandbox.close()
        finally:
            for d in self.dirs:
                d.cleanup()


def confine(backend: SandboxBackend, path: str, spec_of: Callable[[Path], SandboxSpec]) -> Confined:
    """Start the sandbox spec_of(its workspace) and write a launcher that runs Chromium
    (path, as seen inside) in it; its only network is the egress proxy."""
    # Two directories: the sandbox may write its workspace, never the launcher beside it.
    home = tempfile.TemporaryDirectory(prefix="agentplane-ws-browser-")
    bin_dir = tempfile.TemporaryDirectory(prefix="agentplane-browser-bin-")
    try:
        box = backend.start(spec_of(Path(home.name)))
    except SandboxError as exc:
        home.cleanup()
        bin_dir.cleanup()
        raise BrowserUnavailable(f"cannot start Chromium's {backend.name} sandbox: {exc}") from None
    launcher = Path(bin_dir.name) / "chromium"
    line = " ".join(shlex.quote(a) for a in box.launch_command([path, *IN_SANDBOX_ARGS]))
    launcher.write_text(f'#!/bin/sh\nexec {line} "$@"\n')
    launcher.chmod(0o755)
    return Confined(str(launcher), box, [home, bin_dir])


class Chromium:
    """One launched Chromium for one run (or one apply), in its own sandbox, with its loop.

    Its network is the egress proxy, open to scope.browser.domains and, for non-public
    addresses, to the job type's private_networks; the Tab's routing fences every
    request once more and holds the ones that change state. The proxy asks `gate` about
    every request, HTTPS included: it reads them through a per-run CA that only this
    Chromium trusts, by SPKI (upstream_cafile adds roots the proxy trusts upstream).
    """

    def __init__(
        self,
        domains: Sequence[str],
        environ: Mapping[str, str] | None = None,
        *,
        backend: str | None = None,
        private_networks: Sequence[str] = (),
        upstream_cafile: str | None = None,
    ) -> None:
        self.environ = os.environ if environ is None else environ
        self.gate = NetworkGate()
        self.upstream_cafile = upstream_cafile
        self._ca: RunCA | None = None
        self.domains = list(domains)
        self.required_backend = backend
        self.private_networks = tuple(private_networks)
        self.loop = LoopThread()
        self._pw: Playwright | None = None
        self._browser: Browser | None = None
        self.executable = ""
        self.sandbox = ""
        """Which backend runs Chromium, and why (goes into the run's evidence)."""
        self.egress: list[EgressEvent] = []
        """The proxy's log, complete once closed."""
        self._closed = False
        self._failure = ""
        self._confined: Confined | None = None
        self._installed_at: tuple[Path, ...] = ()

    def _spec(self, workspace: Path) -> SandboxSpec:
        return SandboxSpec(
            workspace,
            ("**",),
            network="allowlist",
            allow_domains=proxy_rules(self.domains),
            egress_private_ok=self.private_networks,
            limits=BROWSER_LIMITS,
            ro_paths=self._installed_at,
            request_gate=self.gate,
            tls=self._ca,
        )

    async def _launch(self) -> Browser:
        self._pw = await async_playwright().start()
        backend, self.sandbox = browser_backend(self.required_backend)
        if backend.name == "docker":
            path = DEBIAN_REAL  # the browser image carries Debian's Chromium
        else:
            path, _why = find_chromium(self.environ, self._pw.chromium.executable_path)
            # Debian's /usr/bin/chromium is a shell wrapper reading /etc/chromium.d: skip it.
            if path == DEBIAN_CHROMIUM and os.access(DEBIAN_REAL, os.X_OK):
                path = DEBIAN_REAL
            if not path.startswith("/usr/"):  # bwrap shows /usr; bring the install dir too
                self._installed_at = (Path(path).resolve().parent,)
        self.executable = path
        self._ca = RunCA.create(self.upstream_cafile)
        self._confined = confine(backend, path, self._spec)
        # Trust the run CA's leaves and nothing else new: the SPKI pins its one leaf key.
        trust = f"--ignore-certificate-errors-spki-list={self._ca.spki_sha256_b64()}"
        try:
            return await self._pw.chromium.launch(
                executable_path=self._confined.script,
                chromium_sandbox=False,
                args=[*QUIET_ARGS, *GATE_ARGS, trust],
            )
        except PlaywrightError as exc:
            raise BrowserUnavailable(
                f"Chromium at {path} would not start in its {backend.name} sandbox: {exc}"
            ) from None

    def browser(self) -> Browser:
        if self._closed:
            # A failed launch closes everything; later steps get its reason, not a dead loop.
            raise BrowserUnavailable(self._failure or "the browser is closed")
        if self._browser is None:
            try:
                self._browser = self.loop.run(self._launch())
            except BaseException as exc:
                self._failure = str(exc) or type(exc).__name__
                self.close()
                raise
        return self._browser

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = CALL_TIMEOUT_S) -> T:
        if self._closed:
            coro.close()
            raise BrowserUnavailable(self._failure or "the browser is closed")
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
            self.loop.run(self._shutdown(), timeout=30)  # the loop's own: run() refuses now
        finally:
            self._browser, self._pw = None, None
            self.loop.stop()
            if self._confined is not None:
                self._confined.close()
                self.egress = self._confined.sandbox.egress_log()
            if self._ca is not None:
                self._ca.close()
