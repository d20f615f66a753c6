"""Egress allowlist rules: which host:port a sandbox may reach, and which addresses.

Kept apart from the proxy so the decisions are pure and testable without sockets.
A name is checked twice: against the job's allowlist before resolving, then every
address it resolves to against the public-address rule, so an allowed name that
points at the controller's own network (DNS rebinding) is still refused.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from bot.errors import SandboxError

DEFAULT_PORTS = (80, 443)
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_NAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def normalise_host(host: str) -> str | None:
    """The lower-case DNS name, or None when host is not one (IP literals included).

    Refusing anything that is not a plain name closes the IP-literal tricks
    (`127.1`, `2130706433`, `0x7f.0.0.1`, `[::ffff:127.0.0.1]`) in one place: libc would
    happily turn each of them into an address without asking DNS.
    """
    name = host.strip().lower().removesuffix(".")
    if not name or len(name) > 253 or not _NAME.match(name):
        return None
    if name.rsplit(".", 1)[-1].isdigit() or name.startswith("0x"):
        return None
    return name


@dataclass(frozen=True)
class Rule:
    text: str
    suffix: str
    """The name, or for a wildcard the part after `*.`."""
    wildcard: bool
    ports: tuple[int, ...]

    def matches(self, name: str, port: int) -> bool:
        if port not in self.ports:
            return False
        if self.wildcard:
            return name.endswith("." + self.suffix)
        return name == self.suffix


def parse_rule(text: str) -> Rule:
    host, sep, port_text = text.strip().rpartition(":")
    if not sep:
        host, port_text = text.strip(), ""
    wildcard = host.startswith("*.")
    name = normalise_host(host[2:] if wildcard else host)
    if name is None or "*" in host[2 if wildcard else 0 :]:
        raise SandboxError(
            f"allowed domain {text!r} is not a DNS name; write `example.com`, `*.example.com` "
            "or either with `:port` (IP addresses are never allowed)"
        )
    if port_text and not (port_text.isdigit() and 0 < int(port_text) < 65536):
        raise SandboxError(f"allowed domain {text!r} has an invalid port {port_text!r}")
    ports = (int(port_text),) if port_text else DEFAULT_PORTS
    return Rule(text.strip(), name, wildcard, ports)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    rule: str


class Allowlist:
    def __init__(self, domains: Iterable[str], private_ok: Iterable[str] = ()) -> None:
        self.rules = [parse_rule(d) for d in domains]
        try:
            self.private_ok: list[Network] = [ipaddress.ip_network(n) for n in private_ok]
        except ValueError as exc:
            raise SandboxError(f"egress_private_ok: {exc}") from exc

    def check_name(self, host: str, port: int) -> Verdict:
        name = normalise_host(host)
        if name is None:
            return Verdict(False, "not-a-dns-name")
        for i, rule in enumerate(self.rules):
            if rule.matches(name, port):
                return Verdict(True, f"allow_domains[{i}]={rule.text}")
        return Verdict(False, "default-deny")

    def check_addresses(self, addresses: Iterable[str]) -> Verdict:
        """Every address must be usable: one bad answer among good ones is a rebinding tell."""
        for text in addresses:
            ip: Address = ipaddress.ip_address(text.split("%", 1)[0])
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped
            if any(ip in net for net in self.private_ok):
                continue
            if not ip.is_global or ip.is_multicast:
                return Verdict(False, f"non-public-address={ip}")
        return Verdict(True, "public-address")
