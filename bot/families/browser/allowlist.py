"""Pure domain decisions: may the browser talk to this URL under scope.browser.domains?

An entry is a host (`admin.internal.example.com`), a wildcard (`*.example.com`,
never the apex itself) or either with a port (`127.0.0.1:8123`); an entry
without a port allows every port of that host. Anything not proven allowed is
blocked: unknown schemes, file URLs, userinfo tricks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from bot.core.globs import domain_covers

NETWORK_SCHEMES = frozenset({"http", "https", "ws", "wss"})
# Never leave the browser: no request for routing to judge.
LOCAL_SCHEMES = frozenset({"about", "data", "blob"})
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


@dataclass(frozen=True)
class UrlVerdict:
    allowed: bool
    host: str
    entry: str | None
    reason: str


def _split_entry(entry: str) -> tuple[str, int | None]:
    # IPv6 literals must be bracketed in entries, as in URLs: `[::1]:8080`.
    host, sep, port = entry.rpartition(":")
    if sep and port.isdigit() and host and (":" not in host or host.endswith("]")):
        return host, int(port)
    return entry, None


def check_url(url: str, domains: Sequence[str]) -> UrlVerdict:
    try:
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError as exc:
        return UrlVerdict(False, "", None, f"unparseable URL: {exc}")
    if scheme in LOCAL_SCHEMES:
        return UrlVerdict(True, "", None, f"{scheme}: URLs make no network request")
    if scheme not in NETWORK_SCHEMES:
        return UrlVerdict(False, host, None, f"scheme {scheme!r} is never allowed")
    if not host:
        return UrlVerdict(False, host, None, "no host in the URL")
    if ":" in host:  # urlsplit strips brackets from IPv6 literals; entries keep them
        host = f"[{host}]"
    for entry in domains:
        entry_host, entry_port = _split_entry(entry.strip().lower())
        if entry_port is not None and entry_port != port:
            continue
        if domain_covers(entry_host, host):
            return UrlVerdict(True, host, entry, f"{host} is covered by {entry!r}")
    shown = ", ".join(domains) or "(none)"
    return UrlVerdict(False, host, None, f"{host}:{port} is outside scope.browser.domains {shown}")


def normal_url(url: str) -> str:
    """One spelling per URL, so the proxy's and Playwright's agree: lower-case scheme and
    host, no default port, no fragment, `/` for an empty path."""
    try:
        parts = urlsplit(url)
        scheme, host, port = parts.scheme.lower(), (parts.hostname or "").lower(), parts.port
    except ValueError:
        return url
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None or port == DEFAULT_PORTS.get(scheme) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
