"""The browser image: Debian's Chromium, headless, as nobody on a read-only root, no network."""

from __future__ import annotations

import time

import docker
import pytest

from bot.sandbox.image import BROWSER_IMAGE, CHROMIUM, ensure_browser_image
from bot.sandbox.spec import SandboxBackend

pytestmark = pytest.mark.skipif(
    not CHROMIUM.is_file(), reason=f"{CHROMIUM} not installed (Debian's chromium package)"
)

PAGE = "data:text/html,<p id=x>hello-from-container</p>"


def test_chromium_runs_headless_in_the_browser_image(docker_backend: SandboxBackend) -> None:
    image = ensure_browser_image()
    client = docker.from_env()
    argv = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-dev-shm-usage"]
    container = client.containers.run(
        image,
        [*argv, "--disable-gpu", "--dump-dom", PAGE],
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
    assert status["StatusCode"] == 0, err
    assert "hello-from-container" in out, err
    assert client.images.get(BROWSER_IMAGE).id == image


def test_browser_image_build_is_idempotent(docker_backend: SandboxBackend) -> None:
    first = ensure_browser_image()
    began = time.monotonic()
    second = ensure_browser_image()
    assert first == second
    assert time.monotonic() - began < 10
