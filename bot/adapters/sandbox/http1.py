"""What the egress proxy makes of one parsed HTTP/1.1 request: where it goes, and what it sends.

Pure functions over h11's parsed request: no sockets. The destination comes from the
request line (an absolute `http://` URL, or inside an intercepted CONNECT the tunnel's
own name, as `https` or plain `http`); the Host header must name the same place, and the
request sent upstream carries Host = the checked name, so a shared front end cannot
route an allowed name's request to another site.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from bot.adapters.sandbox.egress import ip_literal, normalise_host

DEFAULT_PORT = {"http": 80, "https": 443}

# Hop-by-hop (RFC 9110 7.6.1) or the proxy's own: never passed on. Framing is h11's job
# on each side, so a body's length is never taken on trust from one side to the other.
_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authorization",
        b"proxy-authenticate",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"expect",
    }
)
_REQUEST_DROP = _HOP | {b"host", b"content-length"}
_RESPONSE_DROP = _HOP - {b"transfer-encoding"}

Headers = list[tuple[bytes, bytes]]


class Refused(Exception):
    """A request the proxy will not forward: status and the reason the client is told."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    """As the allowlist checks it: a normalised name, or a canonical address literal."""
    port: int
    path: str
    """Origin form, as sent upstream: `/path?query`."""

    @property
    def authority(self) -> str:
        default = DEFAULT_PORT[self.scheme] == self.port
        return self.host if default else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.authority}{self.path}"


def _host(hostname: str) -> str:
    """urlsplit's hostname (lower case, unbracketed) in the allowlist's spelling."""
    bracketed = f"[{hostname}]" if ":" in hostname else hostname
    if ip_literal(bracketed) is not None:
        return bracketed
    return normalise_host(bracketed) or bracketed


def _authority(text: str, scheme: str) -> tuple[str, int]:
    try:
        parts = urlsplit(f"//{text}")
        port = parts.port
    except ValueError as exc:
        raise Refused(400, f"bad authority {text[:100]!r}: {exc}") from None
    if not parts.hostname or parts.username is not None or parts.path or parts.query:
        raise Refused(400, f"bad authority {text[:100]!r}")
    return _host(parts.hostname), port or DEFAULT_PORT[scheme]


def parse_connect(target: bytes) -> tuple[str, int]:
    """host and port of `CONNECT host:port` (the port is required)."""
    text = target.decode("ascii", "replace")
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or not host:
        raise Refused(400, "expected CONNECT host:port")
    # The name stays as written: the allowlist refuses what is not a plain name itself.
    return host, int(port)


def tunnel_target(host: str, port: int, scheme: str) -> Target:
    """The checked destination of an intercepted CONNECT: `https` when the client spoke
    TLS inside it, `http` when it spoke plain HTTP/1.1 (Chromium's `ws://`)."""
    return _with_path(scheme, host, port, "/")


def parse_target(raw: bytes, tunnel: Target | None) -> Target:
    """Where a request goes. Without a tunnel: an absolute `http://` URL (a proxy request).
    Inside an intercepted tunnel: origin form, or an absolute URL of the tunnel's own
    scheme naming its own host and port."""
    text = raw.decode("ascii", "replace")
    if tunnel is not None and text.startswith("/"):
        return _with_path(tunnel.scheme, tunnel.host, tunnel.port, text)
    scheme = "http" if tunnel is None else tunnel.scheme
    try:
        url = urlsplit(text)
        port = url.port
    except ValueError as exc:
        raise Refused(400, f"bad request target: {exc}") from None
    if url.scheme != scheme or not url.hostname:
        want = "an absolute http:// URL" if tunnel is None else "a path"
        raise Refused(400, f"expected {want}, not {text[:100]!r}")
    if url.username is not None or url.password is not None:
        raise Refused(400, "credentials in the URL are not forwarded")
    host = _host(url.hostname)
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    target = _with_path(scheme, host, port or DEFAULT_PORT[scheme], path)
    if tunnel is not None and (target.host, target.port) != (tunnel.host, tunnel.port):
        raise Refused(403, f"{target.authority} is not the tunnel's {tunnel.host}:{tunnel.port}")
    return target


def _checked(host: str, port: int) -> tuple[str, int]:
    return (host if ip_literal(host) is not None else normalise_host(host) or host), port


def _with_path(scheme: str, host: str, port: int, path: str) -> Target:
    host, port = _checked(host, port)
    return Target(scheme, host, port, path)


def check_host_header(headers: Headers, target: Target) -> None:
    """The Host header, where given, must name the URL's own host and port."""
    values = [v for k, v in headers if k == b"host"]
    if len(values) > 1:
        raise Refused(400, "more than one Host header")
    if not values:
        return  # HTTP/1.0 (h11 requires Host of 1.1): upstream gets the checked one
    text = values[0].decode("ascii", "replace")
    if _authority(text, target.scheme) != (target.host, target.port):
        raise Refused(
            403, f"Host header {text[:100]!r} does not match the checked {target.authority!r}"
        )


def websocket_upgrade(method: bytes, headers: Headers) -> bool:
    """Whether the request asks to become a WebSocket: a GET whose one Upgrade is
    `websocket`, with `Connection: upgrade`. Any other upgrade (h2c, TLS, several at
    once, or on another method) is Refused: nothing else is forwarded as a protocol switch."""
    offered = [t for k, v in headers if k == b"upgrade" for t in _tokens(v)]
    if not offered:
        return False
    if method == b"GET" and offered == [b"websocket"] and b"upgrade" in _connection_tokens(headers):
        return True
    shown = b", ".join(offered).decode("ascii", "replace")[:100]
    raise Refused(400, f"upgrades other than a GET's to websocket are not forwarded ({shown})")


def upstream_headers(
    headers: Headers, target: Target, body: bytes | None, *, websocket: bool = False
) -> Headers:
    """The request's headers as sent upstream: Host = the checked name, the proxy's own
    and hop-by-hop ones dropped, the body framed by its length. A WebSocket handshake
    keeps its Sec-WebSocket-* headers and asks upstream for the upgrade itself."""
    named = _connection_tokens(headers)
    if websocket:
        named = {t for t in named if not t.startswith(b"sec-websocket-")}
    kept = [(k, v) for k, v in headers if k not in _REQUEST_DROP and k not in named]
    upgrade = [(b"connection", b"Upgrade"), (b"upgrade", b"websocket")] if websocket else []
    framing = [(b"content-length", str(len(body)).encode())] if body is not None else []
    return [(b"host", target.authority.encode("ascii")), *kept, *upgrade, *framing]


def response_headers(headers: Headers) -> Headers:
    named = _connection_tokens(headers)
    return [(k, v) for k, v in headers if k not in _RESPONSE_DROP and k not in named]


def switched_headers(headers: Headers) -> Headers | None:
    """A 101's headers as passed to the client, or None unless it switched to websocket."""
    offered = [t for k, v in headers if k == b"upgrade" for t in _tokens(v)]
    if offered != [b"websocket"]:
        return None
    named = {t for t in _connection_tokens(headers) if not t.startswith(b"sec-websocket-")}
    drop = _RESPONSE_DROP | {b"content-length", b"transfer-encoding"}
    kept = [(k, v) for k, v in headers if k not in drop and k not in named]
    return [(b"connection", b"Upgrade"), (b"upgrade", b"websocket"), *kept]


def _tokens(value: bytes) -> list[bytes]:
    return [t.strip().lower() for t in value.split(b",") if t.strip()]


def _connection_tokens(headers: Headers) -> set[bytes]:
    tokens: set[bytes] = set()
    for k, v in headers:
        if k == b"connection":
            tokens |= set(_tokens(v))
    # Framing is never the sender's to drop: h11 frames each side itself.
    return tokens - {b"content-length", b"transfer-encoding", b"host"}
