"""Which sandbox backends exist, and picking one that works on this host."""

from __future__ import annotations

from collections.abc import Callable

from bot.errors import SandboxError
from bot.sandbox.spec import SandboxBackend


def _bwrap() -> SandboxBackend:
    from bot.sandbox.bwrap import BwrapBackend

    return BwrapBackend()


def _docker() -> SandboxBackend:
    # Imported on demand: docker-py costs startup time that bwrap users never need.
    from bot.sandbox.dockerbox import DockerBackend

    return DockerBackend()


BACKENDS: dict[str, Callable[[], SandboxBackend]] = {"bwrap": _bwrap, "docker": _docker}
DEFAULT = "bwrap"


def make_backend(name: str) -> SandboxBackend:
    """The backend called name, whether or not it works here (see available())."""
    if name not in BACKENDS:
        raise SandboxError(f"unknown sandbox backend {name!r}; choose from {', '.join(BACKENDS)}")
    return BACKENDS[name]()


def get_backend(name: str = DEFAULT) -> SandboxBackend:
    backend = make_backend(name)
    ok, why = backend.available()
    if not ok:
        raise SandboxError(f"sandbox backend {name} is not usable here: {why}")
    return backend
