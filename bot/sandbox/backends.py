"""Which sandbox backends exist, and picking one that works on this host."""

from __future__ import annotations

from bot.errors import SandboxError
from bot.sandbox.bwrap import BwrapBackend
from bot.sandbox.spec import SandboxBackend

BACKENDS: dict[str, type[SandboxBackend]] = {"bwrap": BwrapBackend}
DEFAULT = "bwrap"


def get_backend(name: str = DEFAULT) -> SandboxBackend:
    if name not in BACKENDS:
        raise SandboxError(f"unknown sandbox backend {name!r}; choose from {', '.join(BACKENDS)}")
    backend = BACKENDS[name]()
    ok, why = backend.available()
    if not ok:
        raise SandboxError(f"sandbox backend {name} is not usable here: {why}")
    return backend
