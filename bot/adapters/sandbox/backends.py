"""Which sandbox backends exist, and picking one that works on this host."""

from __future__ import annotations

from collections.abc import Callable

from bot.adapters.sandbox.spec import Sandbox, SandboxBackend, SandboxSpec
from bot.core.errors import SandboxError


def _bwrap() -> SandboxBackend:
    from bot.adapters.sandbox.bwrap import BwrapBackend

    return BwrapBackend()


def _docker() -> SandboxBackend:
    # Imported on demand: docker-py costs startup time that bwrap users never need.
    from bot.adapters.sandbox.dockerbox import DockerBackend

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


class Lazy(SandboxBackend):
    """A named backend probed only when a run really starts a sandbox, not at start-up."""

    def __init__(self, name: str = DEFAULT) -> None:
        self.name = name

    def available(self) -> tuple[bool, str]:
        return make_backend(self.name).available()

    def start(self, spec: SandboxSpec) -> Sandbox:
        return get_backend(self.name).start(spec)

    def base_identity(self) -> str:
        return get_backend(self.name).base_identity()
