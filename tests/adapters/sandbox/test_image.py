"""The browser image: Debian's Chromium, headless, as nobody on a read-only root, no network."""

from __future__ import annotations

import time

import docker
import pytest

from bot.adapters.sandbox.image import BROWSER_IMAGE, CHROMIUM, ensure_browser_image
from bot.adapters.sandbox.spec import SandboxBackend

pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(), reason=f"{CHROMIUM} not installed (Debian's chromium package)"
)

PAGE = "data:text/html,<p id=x>hello-from-container</p>"


def _headless(image: str, command: list[str]) -> tuple[int, str, str]:
    """Run command in image as the sandbox does: nobody, read-only root, no network."""
    container = docker.from_env().containers.run(
        image,
        command,
        user="65534:65534",
        read_only=True,
        network_mode="none",
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        tmpfs={"/tmp": "mode=1777"},
        environment={"HOME": "/tmp"},
        detach=True,
    )
    try:
        status = container.wait(timeout=120)
        out = container.logs(stdout=True, stderr=False).decode()
        err = container.logs(stdout=False, stderr=True).decode()
    finally:
        container.remove(force=True)
    return int(status["StatusCode"]), out, err


CHROMIUM_ARGV = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-dev-shm-usage"]


def test_chromium_runs_headless_in_the_browser_image(docker_backend: SandboxBackend) -> None:
    image = ensure_browser_image()
    status, out, err = _headless(image, [*CHROMIUM_ARGV, "--disable-gpu", "--dump-dom", PAGE])
    assert status == 0, err
    assert "hello-from-container" in out, err
    assert docker.from_env().images.get(BROWSER_IMAGE).id == image


def test_the_image_font_cache_is_current(docker_backend: SandboxBackend) -> None:
    # A stale or missing system cache makes fontconfig scan every font at each start,
    # into a user cache under $HOME: none may appear.
    run = " ".join([*CHROMIUM_ARGV, "--disable-gpu", "--dump-dom", "about:blank"])
    status, out, err = _headless(
        ensure_browser_image(), ["sh", "-c", f"{run} >/dev/null 2>&1; find /tmp -name '*.cache-*'"]
    )
    assert status == 0 and out == "", err


def test_browser_image_build_is_idempotent(docker_backend: SandboxBackend) -> None:
    first = ensure_browser_image()
    began = time.monotonic()
    second = ensure_browser_image()
    assert first == second
    assert time.monotonic() - began < 10
