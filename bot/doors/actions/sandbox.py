"""Which sandbox backend a runner uses: bubblewrap where it can make namespaces, else Docker.

On Ubuntu 24.04 runners AppArmor refuses unprivileged user namespaces unless a profile
allows them for bwrap; action.yml installs such a profile (`userns,` for /usr/bin/bwrap
only) before this probe runs. If bwrap still cannot start, the runner's Docker is used,
and the step says which backend ran and why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.adapters.sandbox.backends import make_backend
from bot.core.errors import SandboxError

Probe = Callable[[str], tuple[bool, str]]
CHOICES = ("auto", "bwrap", "docker")


def probe(name: str) -> tuple[bool, str]:
    return make_backend(name).available()


@dataclass(frozen=True)
class Choice:
    backend: str
    note: str
    """What the step says: which backend, and why not the other one."""


def choose(wanted: str, check: Probe = probe) -> Choice:
    """`auto`: bubblewrap if it works here, else Docker. A named backend must work."""
    if wanted not in CHOICES:
        raise SandboxError(f"backend {wanted!r}: choose one of {', '.join(CHOICES)}")
    if wanted != "auto":
        ok, why = check(wanted)
        if not ok:
            raise SandboxError(f"the {wanted} sandbox backend does not work on this runner: {why}")
        return Choice(wanted, f"sandbox: {wanted} (as the backend input asks)")
    ok, why_bwrap = check("bwrap")
    if ok:
        return Choice("bwrap", "sandbox: bubblewrap")
    ok, why_docker = check("docker")
    if ok:
        return Choice(
            "docker", f"sandbox: Docker, because bubblewrap does not work here: {why_bwrap}"
        )
    raise SandboxError(
        "no sandbox backend works on this runner: bubblewrap: "
        f"{why_bwrap}; Docker: {why_docker}. On ubuntu-latest, let action.yml install its "
        "AppArmor profile for bwrap (it needs sudo), or build the sandbox image "
        "(scripts/sandbox-image) for Docker"
    )
