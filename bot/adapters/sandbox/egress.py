"""Egress allowlist rules: which host:port a sandbox may reach, and which addresses.

Kept apart from the proxy so the decisions are pure and testable without sockets.
A name is checked twice: against the job's allowlist before resolving, then every
address it resolves to against the public-address rule, so an allowed name that
points at the controller's own network (DNS rebinding) is still refused.

An IP address is reachable only through a rule naming exactly that address in its
canonical form (`10.0.0.7`, `[fd00::7]`), and, being private in practice, only when
policy opens its network too (private_ok): one rule can never open a range.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from bot.core.errors import SandboxError

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


def ip_literal(host: str) -> Address | None:
    """The address host spells in canonical form (`10.0.0.7`, `[fd00::7]`), else None.

    Canonical only: `127.1`, `0x7f.0.0.1` or `010.0.0.7` are refused rather than read
    the way libc would, so an address rule matches one spelling of one address.
    """
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ip = ipaddress.ip_address(bare)
    except ValueError:
        return None
    if (bare != host) != isinstance(ip, ipaddress.IPv6Address) or str(ip) != bare.lower():
        return None  # IPv6 must be bracketed, IPv4 must not be; both in canonical form
    return ip


@dataclass(frozen=True)
class Rule:
    text: str
    suffix: str
    """The name, or for a wildcard the part after `*.`; for an address rule its text."""
    wildcard: bool
    ports: tuple[int, ...] | None
    """None: any port (`host:*`)."""
    address: Address | None = None

    def matches(self, name: str, port: int) -> bool:
        if self.ports is not None and port not in self.ports:
            return False
        if self.wildcard:
            return name.endswith("." + self.suffix)
        return name == self.suffix


def parse_rule(text: str) -> Rule:
    entry = text.strip()
    host, sep, port_text = entry.rpartition(":")
    if not sep or (":" in host and not host.endswith("]")):
        host, port_text = entry, ""  # no port, or an unbracketed IPv6 address (refused below)
    wildcard = host.startswith("*.")
    address = ip_literal(host)
    name = str(address) if address is not None else normalise_host(host[2:] if wildcard else host)
    if name is None or "*" in host[2 if wildcard else 0 :]:
        raise SandboxError(
            f"allowed domain {text!r} is neither a DNS name nor an IP address; write "
            "`example.com`, `*.example.com`, `10.0.0.7` or `[fd00::7]`, each optionally with "
            "`:port` or `:*` (any port)"
        )
    if port_text == "*":
        ports: tuple[int, ...] | None = None
    elif not port_text:
        ports = DEFAULT_PORTS
    elif port_text.isdigit() and 0 < int(port_text) < 65536:
        ports = (int(port_text),)
    else:
        raise SandboxError(f"allowed domain {text!r} has an invalid port {port_text!r}")
    return Rule(entry, name, wildcard, ports, address)


@dataclass(frozen=True)
class EgressVerdict:
    allowed: bool
    rule: str


class Allowlist:
    def __init__(self, domains: Iterable[str], private_ok: Iterable[str] = ()) -> None:
        self.rules = [parse_rule(d) for d in domains]
        try:
            self.private_ok: list[Network] = [ipaddress.ip_network(n) for n in private_ok]
        except ValueError as exc:
            raise SandboxError(f"egress_private_ok: {exc}") from exc

    def check_name(self, host: str, port: int) -> EgressVerdict:
        """May host:port be asked for? Addresses only by a rule naming exactly them."""
        address = ip_literal(host)
        name = str(address) if address is not None else normalise_host(host)
        if name is None:
            return EgressVerdict(False, "not-a-dns-name")
        for i, rule in enumerate(self.rules):
            if (rule.address is None) != (address is None):
                continue
            if rule.matches(name, port):
                return EgressVerdict(True, f"allow_domains[{i}]={rule.text}")
        return EgressVerdict(False, "default-deny")

    def check_addresses(self, addresses: Iterable[str]) -> EgressVerdict:
        """Every address must be usable: one bad answer among good ones is a rebinding tell."""
        for text in addresses:
            ip: Address = ipaddress.ip_address(text.split("%", 1)[0])
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped
            if any(ip in net for net in self.private_ok):
                continue
            if not ip.is_global or ip.is_multicast:
                return EgressVerdict(False, f"non-public-address={ip}")
        return EgressVerdict(True, "public-address")
