"""The egress proxy: an HTTP(S) proxy in the controller, the sandbox's only way out.

It speaks CONNECT (HTTPS and anything else over TCP) and absolute-form plain HTTP
requests, one upstream connection per client connection. It resolves each name
once, checks every answer, and connects to the address it checked, so a second,
different DNS answer (rebinding) can never be what it connects to. Every attempt,
allowed or denied, becomes an EgressEvent.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import socket
import socketserver
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import urlsplit

from bot.sandbox.egress import Allowlist, ip_literal, normalise_host
from bot.sandbox.spec import UNREACHABLE, EgressEvent, RequestGate
from bot.sandbox.tls import RunCA

MAX_HEAD = 16 << 10
Resolver = Callable[[str, int], list[str]]


def system_resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        self.server.proxy.handle(self.request)


class _Server(socketserver.ThreadingMixIn, socketserver.BaseServer):
    daemon_threads = True
    proxy: EgressProxy


class _UnixServer(_Server, socketserver.UnixStreamServer):
    pass


class _TCPServer(_Server, socketserver.TCPServer):
    allow_reuse_address = True


class EgressProxy:
    """Start with serve_unix() or serve_tcp(); close() ends every open connection."""

    def __init__(
        self,
        allow_domains: Iterable[str],
        *,
        private_ok: Iterable[str] = (),
        resolve: Resolver = system_resolve,
        connect_timeout: float = 10.0,
        request_gate: RequestGate | None = None,
        tls: RunCA | None = None,
    ) -> None:
        self.allowlist = Allowlist(allow_domains, private_ok)
        self._gate = request_gate
        self._tls = tls
        self._resolve = resolve
        self._timeout = connect_timeout
        self._events: list[EgressEvent] = []
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._active = 0
        self._idle = threading.Condition(self._lock)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def log(self) -> list[EgressEvent]:
        """Connections finished so far; complete once close() has returned."""
        with self._lock:
            return list(self._events)

    def serve_unix(self, path: str) -> str:
        server = _UnixServer(path, _Handler, bind_and_activate=True)
        # The sandbox runs as another uid; the socket's directory is what guards it.
        os.chmod(path, 0o666)
        self._run(server)
        return path

    def serve_tcp(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        server = _TCPServer((host, port), _Handler)
        self._run(server)
        addr = server.server_address
        return str(addr[0]), int(addr[1])

    def _run(self, server: _Server) -> None:
        server.proxy = self
        self._server = server
        # A short poll: close() waits for the loop to notice, on every sandbox teardown.
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.05,), name="egress-proxy"
        )
        self._thread.daemon = True
        self._thread.start()

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            # So the log is complete: every handler records its connection as it ends.
            self._idle.wait_for(lambda: self._active == 0, timeout=5.0)

    def __enter__(self) -> EgressProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def handle(self, client: socket.socket) -> None:
        with self._lock:
            self._active += 1
        try:
            self._handle(client)
        finally:
            with self._lock:
                self._active -= 1
                self._idle.notify_all()

    def _handle(self, client: socket.socket) -> None:
        self._track(client)
        began = time.monotonic()
        try:
            client.settimeout(self._timeout)
            head, rest = _read_head(client)
            target = _parse_target(head)
            if target is None:
                client.sendall(_reply(400, "Bad Request", "expected CONNECT host:port or http://"))
                return
            host, port, connect = target
            event, upstream = self._open_upstream(host, port)
            if upstream is None:
                self._record(event, began)
                if event.decision == UNREACHABLE:  # allowed, but nothing answered
                    client.sendall(_reply(502, "Bad Gateway", f"egress: {event.rule}"))
                else:
                    client.sendall(_reply(403, "Forbidden", f"egress denied: {event.rule}"))
                return
            self._track(upstream)
            with upstream:
                if connect:
                    client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    first = rest
                else:
                    first = _origin_form(head) + rest
                client.settimeout(None)
                up, down = _splice(client, upstream, first)
            self._record(event, began, up, down)
        except OSError:
            return
        finally:
            self._untrack(client)

    def _open_upstream(self, host: str, port: int) -> tuple[EgressEvent, socket.socket | None]:
        verdict = self.allowlist.check_name(host, port)
        if not verdict.allowed:
            return EgressEvent(host, port, "deny", verdict.rule), None
        literal = ip_literal(host)
        try:
            # Allowed, so an exact address rule matched, or a name to resolve once.
            name = normalise_host(host) or host
            addresses = [str(literal)] if literal is not None else self._resolve(name, port)
        except OSError as exc:
            return EgressEvent(host, port, "deny", f"unresolvable: {exc}"), None
        checked = self.allowlist.check_addresses(addresses)
        if not addresses or not checked.allowed:
            rule = checked.rule if addresses else "unresolvable"
            return EgressEvent(host, port, "deny", f"{verdict.rule}; {rule}"), None
        address = addresses[0]
        try:
            upstream = socket.create_connection((address, port), timeout=self._timeout)
        except OSError as exc:
            failed = f"{verdict.rule}; connect failed: {exc}"
            return EgressEvent(host, port, UNREACHABLE, failed, address=address), None
        upstream.settimeout(None)
        return EgressEvent(host, port, "allow", verdict.rule, address=address), upstream

    def _record(self, event: EgressEvent, began: float, up: int = 0, down: int = 0) -> None:
        ms = round((time.monotonic() - began) * 1000, 1)
        done = EgressEvent(
            event.host, event.port, event.decision, event.rule, event.address, up, down, ms
        )
        with self._lock:
            self._events.append(done)

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.add(sock)

    def _untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk or len(buf) > MAX_HEAD:
            raise OSError("incomplete request head")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head + b"\r\n\r\n", rest


def _parse_target(head: bytes) -> tuple[str, int, bool] | None:
    """(host, port, is_connect) from the request line, or None if it is not a proxy request."""
    try:
        method, target, _version = head.split(b"\r\n", 1)[0].decode("ascii").split(" ")
    except (UnicodeDecodeError, ValueError):
        return None
    if method == "CONNECT":
        host, sep, port = target.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            return None
        return host, int(port), True
    url = urlsplit(target)
    try:
        url_port = url.port or 80
    except ValueError:
        return None
    if url.scheme != "http" or not url.hostname:
        return None
    host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname  # urlsplit unbrackets
    return host, url_port, False


def _origin_form(head: bytes) -> bytes:
    """The request with its absolute URL turned into a path, as origin servers expect."""
    line, _, headers = head.partition(b"\r\n")
    method, target, version = line.split(b" ")
    url = urlsplit(target.decode("ascii"))
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    return b" ".join((method, path.encode("ascii"), version)) + b"\r\n" + headers


def _reply(code: int, reason: str, body: str) -> bytes:
    data = body.encode() + b"\n"
    return (
        f"HTTP/1.1 {code} {reason}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
    ).encode() + data


def _splice(client: socket.socket, upstream: socket.socket, first: bytes) -> tuple[int, int]:
    """Copy both ways until both sides are done; returns (bytes up, bytes down)."""
    if first:
        upstream.sendall(first)
    counts = {client: len(first), upstream: 0}
    peer = {client: upstream, upstream: client}
    with selectors.DefaultSelector() as sel:
        for sock in (client, upstream):
            sel.register(sock, selectors.EVENT_READ)
        while sel.get_map():
            for key, _ in sel.select():
                src: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    data = src.recv(1 << 16)
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(src)
                    with contextlib.suppress(OSError):
                        peer[src].shutdown(socket.SHUT_WR)
                    continue
                try:
                    peer[src].sendall(data)
                except OSError:
                    return counts[client], counts[upstream]
                counts[src] += len(data)
    return counts[client], counts[upstream]


SANDBOX_DIR = "/run/agentplane"
"""Where the proxy socket and the forwarder appear inside the sandbox."""
FORWARD_PORT = 3128


class EgressGate:
    """The controller's half of network=allowlist for one sandbox.

    A private directory holding the proxy's unix socket and the forwarder script;
    backends bind it read-only at SANDBOX_DIR and start the forwarder in the sandbox.
    """

    def __init__(
        self,
        allow_domains: Iterable[str],
        private_ok: Iterable[str] = (),
        *,
        request_gate: RequestGate | None = None,
        tls: RunCA | None = None,
    ) -> None:
        self.proxy = EgressProxy(
            allow_domains, private_ok=private_ok, request_gate=request_gate, tls=tls
        )
        self.dir = tempfile.mkdtemp(prefix="agentplane-egress-")
        try:
            os.chmod(self.dir, 0o755)
            shutil.copy(Path(__file__).with_name("forwarder.py"), self.dir)
            os.chmod(os.path.join(self.dir, "forwarder.py"), 0o644)
            self.proxy.serve_unix(os.path.join(self.dir, "proxy.sock"))
        except BaseException:
            self.close()
            raise

    @property
    def env(self) -> tuple[tuple[str, str], ...]:
        url = f"http://127.0.0.1:{FORWARD_PORT}"
        names = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY")
        return tuple((name, url) for name in names)

    def forwarder(self, command: list[str] | None = None) -> list[str]:
        """argv that runs the forwarder in the sandbox, and then command if given."""
        argv = ["python3", f"{SANDBOX_DIR}/forwarder.py", f"{SANDBOX_DIR}/proxy.sock"]
        argv.append(str(FORWARD_PORT))
        return [*argv, "--", *command] if command else argv

    def close(self) -> None:
        self.proxy.close()
        shutil.rmtree(self.dir, ignore_errors=True)
