"""The egress proxy: an HTTP(S) proxy in the controller, the sandbox's only way out.

It parses every request on a client connection with h11 and judges each on its own:
an absolute-form `http://` request goes to its own upstream (a keep-alive connection
that asks for host A, then host B, reaches A, then B), with Host set to the name it
checked. A CONNECT is a byte tunnel judged once, unless the proxy holds a per-run CA
(tls.py): then it terminates TLS with a leaf for the checked name and judges every
request inside the same way, forwarding each over its own verified TLS connection. A
tunnel whose client speaks plain HTTP/1.1 instead (Chromium sends `ws://` so) is served
the same way, as `http` to the checked name.

A GET that upgrades to a WebSocket is judged as a GET; once the server has switched,
its bytes reach the client and the client's are dropped at the proxy, counted but never
sent: a page's messages may change state, and a socket has nothing to hold for approval.

It resolves each name once per upstream connection, checks every answer, and connects
to the address it checked, so a second, different DNS answer (rebinding) can never be
what it connects to. Every connection and every judged request, allowed or denied,
becomes an EgressEvent.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import selectors
import shutil
import socket
import socketserver
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import h11

from bot.adapters.sandbox.egress import Allowlist, ip_literal, normalise_host
from bot.adapters.sandbox.http1 import (
    Refused,
    Target,
    check_host_header,
    parse_connect,
    parse_target,
    response_headers,
    switched_headers,
    tunnel_target,
    upstream_headers,
    websocket_upgrade,
)
from bot.adapters.sandbox.spec import UNREACHABLE, EgressEvent, HttpRequest, RequestGate
from bot.adapters.sandbox.tls import RunCA

MAX_HEAD = 16 << 10
MAX_BODY = 32 << 20
"""Request bodies are read whole before they are judged (the gate sees their digest)."""
REQUEST_SECONDS = 120.0
"""From waiting for a request to having read its body: a slow client cannot hold a thread."""
READ_SECONDS = 60.0
"""How long an upstream may be silent while it answers."""
FIRST_BYTE_SECONDS = 30.0
"""How long a client may wait, once its CONNECT is answered, before it says anything."""
WEBSOCKET_IDLE_SECONDS = 120.0
"""A WebSocket the server has sent nothing on for this long is closed (the page's own
frames, dropped, do not keep it open)."""
WEBSOCKET_DROPPED = "websocket: the page's frames are not sent (nothing to hold for approval)"
TLS_RECORD = 0x16
"""The first byte of a TLS handshake record: a ClientHello."""
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


class _Unreached(Refused):
    """The destination was refused by address, or did not answer: the event says which."""

    def __init__(self, event: EgressEvent) -> None:
        super().__init__(502 if event.decision == UNREACHABLE else 403, _reason(event))
        self.event = event


class _Stale(Refused):
    """A reused upstream connection failed before any answer: worth one fresh try."""


class _Upstream:
    """One connection upstream, reused while requests keep naming its destination."""

    def __init__(self, target: Target, sock: socket.socket, event: EgressEvent) -> None:
        self.key = (target.scheme, target.host, target.port)
        self.sock = sock
        self.event = event
        self.http = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        self.up = 0
        self.down = 0
        self.answered = 0
        """Answers it gave: a reused connection the server has since closed is retried once."""
        self.closed = False

    def send(self, data: bytes | None) -> None:
        if data:
            self.sock.sendall(data)
            self.up += len(data)

    def next_event(self) -> object:
        while True:
            try:
                event = self.http.next_event()
            except h11.RemoteProtocolError as exc:
                raise Refused(502, f"upstream sent an invalid response: {exc}") from None
            if event is not h11.NEED_DATA:
                return event
            data = self.sock.recv(1 << 16)
            self.down += len(data)
            self.http.receive_data(data)


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
        self._upstream_tls = tls.upstream() if tls is not None else None
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
        """Connections and requests finished so far; complete once close() has returned."""
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
        try:
            client.settimeout(self._timeout)
            conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
            try:
                first = _next_request(conn, client)
            except Refused as exc:
                client.sendall(_reply(exc.status, exc.reason))
                return
            if first is None:
                return
            if first.method == b"CONNECT":
                self._connect(client, conn, first)
            else:
                self._serve(client, conn, None, first, None)
        except (OSError, h11.ProtocolError):
            return  # the client went away, or broke HTTP after its answer began
        finally:
            self._untrack(client)

    def _connect(self, client: socket.socket, conn: h11.Connection, request: h11.Request) -> None:
        began = time.monotonic()
        try:
            host, port = parse_connect(request.target)
        except Refused as exc:
            client.sendall(_reply(exc.status, exc.reason))
            return
        url = f"{host}:{port}"
        while conn.next_event() not in (h11.PAUSED, h11.NEED_DATA):
            pass  # a CONNECT's body, if it claims one, is dropped unread
        early = conn.trailing_data[0]
        if self._tls is not None:
            self._intercept(client, host, port, early)
            return
        verdict = self.allowlist.check_name(host, port)
        reason = ""
        if verdict.allowed and self._gate is not None:
            # Judged before connecting: a refused tunnel never touches its destination.
            name = normalise_host(host) or host
            allowed, reason = self._judge(HttpRequest("CONNECT", url, name, port, None))
            if not allowed:
                refused = EgressEvent(host, port, "deny", verdict.rule, method="CONNECT")
                self._record(dataclasses.replace(refused, url=url, reason=reason), began)
                client.sendall(_reply(403, f"egress gate refused CONNECT {url}: {reason}"))
                return
        event, upstream = self._open_upstream(host, port)
        event = dataclasses.replace(event, method="CONNECT", url=url, reason=reason)
        if upstream is None:
            self._record(event, began)
            client.sendall(_refusal(event))
            return
        self._track(upstream)
        up = down = 0
        try:
            with upstream:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                client.settimeout(None)
                up, down = _splice(client, upstream, early)
        except OSError as exc:
            # The client left before the tunnel opened: an attempt all the same.
            broke = f"the tunnel broke off: {exc}"
            event = dataclasses.replace(event, reason=f"{reason}; {broke}" if reason else broke)
            raise
        finally:
            self._untrack(upstream)
            self._record(event, began, up, down)

    def _intercept(self, client: socket.socket, host: str, port: int, early: bytes) -> None:
        """Serve the requests inside the tunnel, as the checked name: over TLS terminated
        with the run's leaf when the client starts one, else as plain HTTP/1.1."""
        assert self._tls is not None
        began = time.monotonic()
        url = f"{host}:{port}"
        verdict = self.allowlist.check_name(host, port)
        if not verdict.allowed:
            denied = EgressEvent(host, port, "deny", verdict.rule, method="CONNECT")
            self._record(dataclasses.replace(denied, url=url), began)
            client.sendall(_reply(403, f"egress denied: {verdict.rule}"))
            return
        if early:  # a ClientHello sent before the tunnel was open: nothing a browser does
            client.sendall(_reply(400, "data sent before the tunnel was established"))
            return
        # Connected before the answer, so a refused address or a dead server is the
        # CONNECT's own 403 or 502; TLS upstream waits until the client shows it wants it.
        event, sock = self._open_upstream(host, port)
        opened = dataclasses.replace(event, method="CONNECT", url=url)
        if sock is None:
            self._record(opened, began)
            client.sendall(_refusal(opened))
            return
        upstream: _Upstream | None = None
        try:
            try:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            except OSError as exc:
                why = f"the client left before the tunnel opened: {exc}"
                self._record(dataclasses.replace(opened, reason=why), began)
                raise
            first = _peek(client, FIRST_BYTE_SECONDS)
            if not first:
                why = "the client sent nothing in the tunnel"
                self._record(dataclasses.replace(opened, reason=why), began)
                return
            tunnel = tunnel_target(host, port, "https" if first[0] == TLS_RECORD else "http")
            try:
                upstream = self._upstream_on(tunnel, event, sock)
            except _Unreached as exc:
                failed = dataclasses.replace(exc.event, method="CONNECT", url=url)
                self._record(failed, began)
                self._refuse_inside(client, tunnel, exc)
                return
            if tunnel.scheme == "http":
                conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
                self._serve(client, conn, tunnel, None, upstream)
                return
            self._serve_tls(client, tunnel, upstream, opened, began)
        finally:
            if upstream is not None:
                self._close_upstream(upstream)
            else:
                with contextlib.suppress(OSError):
                    sock.close()

    def _serve_tls(
        self,
        client: socket.socket,
        tunnel: Target,
        upstream: _Upstream,
        opened: EgressEvent,
        began: float,
    ) -> None:
        assert self._tls is not None
        try:
            inner = self._tls.leaf(tunnel.host).wrap_socket(client, server_side=True)
        except (OSError, ValueError) as exc:
            # Allowed, but nothing went through: the client refused the run's certificate,
            # or asked (by SNI) for another name than the one checked.
            why = f"TLS with the client failed: {exc}"
            self._record(dataclasses.replace(opened, reason=why), began)
            return
        self._track(inner)
        try:
            conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
            self._serve(inner, conn, tunnel, None, upstream)
        finally:
            self._untrack(inner)
            with contextlib.suppress(OSError):
                inner.close()

    def _refuse_inside(self, client: socket.socket, tunnel: Target, refused: Refused) -> None:
        """The tunnel is open but its upstream failed (an unverifiable certificate): the
        client's first request, in the protocol it chose, is told why."""
        assert self._tls is not None
        sock = client
        try:
            if tunnel.scheme == "https":
                sock = self._tls.leaf(tunnel.host).wrap_socket(client, server_side=True)
            conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
            if _next_request(conn, sock) is not None:
                sock.sendall(_reply(refused.status, refused.reason))
        except (OSError, ValueError, Refused):
            pass
        finally:
            if sock is not client:
                with contextlib.suppress(OSError):
                    sock.close()

    def _serve(
        self,
        client: socket.socket,
        conn: h11.Connection,
        tunnel: Target | None,
        pending: h11.Request | None,
        upstream: _Upstream | None,
    ) -> None:
        """Judge and forward each request of one client connection until either side ends."""
        try:
            while True:
                try:
                    request = pending or _next_request(conn, client)
                    pending = None
                    if request is None:
                        return
                    began = time.monotonic()  # from its head: keep-alive idling is not its time
                    upstream = self._exchange(client, conn, tunnel, request, upstream, began)
                except Refused as exc:
                    client.sendall(_reply(exc.status, exc.reason))
                    return
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    return  # Connection: close, HTTP/1.0, or an answer framed by closing
                conn.start_next_cycle()
        finally:
            if upstream is not None:
                self._close_upstream(upstream)

    def _exchange(
        self,
        client: socket.socket,
        conn: h11.Connection,
        tunnel: Target | None,
        request: h11.Request,
        upstream: _Upstream | None,
        began: float,
    ) -> _Upstream | None:
        """One request: judge it, forward it, relay its answer; the upstream left open."""
        method = request.method.decode("ascii", "replace")
        url = request.target.decode("ascii", "replace")[:2000]
        host, port, rule, reason = "", 0, "", ""
        sent_on: _Upstream | None = None
        counted = (0, 0)  # sent_on's byte counts before this request
        try:
            target = parse_target(request.target, tunnel)
            host, port, url = target.host, target.port, target.url
            headers = list(request.headers)
            check_host_header(headers, target)
            if request.method == b"CONNECT":
                raise Refused(400, "CONNECT is not forwarded here")
            websocket = websocket_upgrade(request.method, headers)  # any other: Refused
            verdict = self.allowlist.check_name(target.host, target.port)
            rule = verdict.rule
            if not verdict.allowed:
                raise Refused(403, f"egress denied: {verdict.rule}")
            body = _read_body(conn, client, began + REQUEST_SECONDS, headers)
            if websocket and body:
                raise Refused(400, "a WebSocket handshake carries no body")
            body = None if websocket else body
            digest = hashlib.sha256(body).hexdigest() if body else None
            allowed, reason = self._judge(HttpRequest(method, url, host, port, digest))
            if not allowed:
                raise Refused(403, f"egress gate refused {method} {target.url}: {reason}")
            if upstream is not None and upstream.key != (target.scheme, host, port):
                self._close_upstream(upstream)
                upstream = None
            upstream = upstream or self._upstream_for(target)
            exchange = (client, conn, request, target, headers, body, websocket)
            sent_on, counted = upstream, (upstream.up, upstream.down)
            try:
                up, down, switched = self._forward(upstream, *exchange)
            except _Stale:
                # An idle keep-alive the server closed meanwhile: what browsers retry too.
                self._close_upstream(upstream)
                upstream = sent_on = self._upstream_for(target)
                counted = (0, 0)
                up, down, switched = self._forward(upstream, *exchange)
        except Refused as exc:
            decision = UNREACHABLE if exc.status == 502 else "deny"
            refused = EgressEvent(host, port, decision, rule or "refused", method=method)
            if isinstance(exc, _Unreached):  # the connection's own verdict says more
                refused = dataclasses.replace(exc.event, method=method)
            elif upstream is not None:
                refused = dataclasses.replace(refused, address=upstream.event.address)
            self._record(dataclasses.replace(refused, url=url, reason=exc.reason), began)
            if upstream is not None and exc.status == 502:
                self._close_upstream(upstream)  # it broke its answer: it cannot be reused
            raise
        except OSError as exc:
            # A reset, a timeout, the client gone: the connection ends, but the attempt is
            # still an event. Once forwarded it went out, so it stays `allow`, saying so.
            up = down = 0
            if sent_on is None:
                broken = EgressEvent(host, port, "deny", rule or "refused", method=method)
                why = f"the client broke off its request: {exc}"
            else:
                broken = dataclasses.replace(sent_on.event, method=method)
                why = f"the exchange broke off after the request was sent: {exc}"
                up, down = sent_on.up - counted[0], sent_on.down - counted[1]
                self._close_upstream(sent_on)
            self._record(dataclasses.replace(broken, url=url, reason=why), began, up, down)
            raise
        address = upstream.event.address
        event = EgressEvent(host, port, "allow", rule, address, method=method, url=url)
        if switched:
            reason = f"{reason}; {WEBSOCKET_DROPPED}" if reason else WEBSOCKET_DROPPED
        self._record(dataclasses.replace(event, reason=reason), began, up, down)
        if upstream.http.our_state is h11.DONE and upstream.http.their_state is h11.DONE:
            upstream.http.start_next_cycle()
            return upstream
        self._close_upstream(upstream)
        return None

    def _forward(
        self,
        upstream: _Upstream,
        client: socket.socket,
        conn: h11.Connection,
        request: h11.Request,
        target: Target,
        headers: list[tuple[bytes, bytes]],
        body: bytes | None,
        websocket: bool,
    ) -> tuple[int, int, bool]:
        """Send the request upstream and relay the answer; returns (bytes up, bytes down,
        whether it switched to a WebSocket, now ended)."""
        sent, received = upstream.up, upstream.down
        fields = upstream_headers(headers, target, body, websocket=websocket)
        head = h11.Request(method=request.method, target=target.path.encode(), headers=fields)
        # Only a safe method is sent twice: a server may have acted on a POST and then closed.
        safe = request.method in (b"GET", b"HEAD", b"OPTIONS")
        failed = _Stale if upstream.answered and safe else Refused
        silent = upstream.down
        try:
            upstream.send(upstream.http.send(head))
            if body:
                upstream.send(upstream.http.send(h11.Data(data=body)))
            upstream.send(upstream.http.send(h11.EndOfMessage()))
            upstream.sock.settimeout(READ_SECONDS)
            while not isinstance(answer := upstream.next_event(), h11.Response):
                if not isinstance(answer, h11.InformationalResponse):
                    raise failed(502, f"upstream {target.authority} closed without answering")
                if answer.status_code == 101:  # h11 takes it only as the answer to ours
                    break
        except OSError as exc:
            raise failed(502, f"upstream {target.authority} did not answer: {exc}") from None
        except Refused as exc:
            if upstream.down != silent:
                raise
            raise failed(502, f"upstream {target.authority} closed without answering") from exc
        upstream.answered += 1
        if isinstance(answer, h11.InformationalResponse):
            up, down = self._switch(upstream, client, conn, target, answer)
            return upstream.up - sent + up, upstream.down - received + down, True
        client.sendall(conn.send(h11.Response(
            status_code=answer.status_code,
            headers=response_headers(list(answer.headers)),
            reason=answer.reason,
        )) or b"")  # fmt: skip
        # The answer has begun: from here a failure can only end the connection.
        while True:
            part = upstream.next_event()
            if isinstance(part, h11.Data):
                client.sendall(conn.send(h11.Data(data=part.data)) or b"")
            elif isinstance(part, h11.EndOfMessage):
                client.sendall(conn.send(h11.EndOfMessage()) or b"")
                return upstream.up - sent, upstream.down - received, False
            else:
                raise OSError(f"upstream {target.authority} broke off its answer")

    def _switch(
        self,
        upstream: _Upstream,
        client: socket.socket,
        conn: h11.Connection,
        target: Target,
        answer: h11.InformationalResponse,
    ) -> tuple[int, int]:
        """The server switched to a WebSocket: tell the client, then relay the server's
        bytes to it and drop its own until either side ends or the server goes quiet.
        Returns (bytes the client sent and the proxy dropped, bytes relayed past the 101)."""
        fields = switched_headers(list(answer.headers))
        if fields is None:
            raise Refused(502, f"upstream {target.authority} switched to another protocol")
        head = h11.InformationalResponse(status_code=101, headers=fields, reason=answer.reason)
        client.sendall(conn.send(head) or b"")
        # Both h11 state machines are now SWITCHED_PROTOCOL: what each already read past
        # the heads is the other protocol's (the server's first frame, the page's early ones).
        ahead = upstream.http.trailing_data[0]
        early = conn.trailing_data[0]
        upstream.sock.settimeout(READ_SECONDS)
        dropped, relayed = _relay_down(client, upstream.sock, ahead, WEBSOCKET_IDLE_SECONDS)
        return len(early) + dropped, relayed

    def _judge(self, request: HttpRequest) -> tuple[bool, str]:
        if self._gate is None:
            return True, ""
        try:
            allowed, reason = self._gate(request)
        except Exception as exc:  # a broken gate fails closed, never open
            return False, f"request gate failed: {type(exc).__name__}: {exc}"
        return bool(allowed), str(reason)

    def _upstream_for(self, target: Target) -> _Upstream:
        """A new connection to target's destination, checked; _Unreached if not."""
        event, sock = self._open_upstream(target.host, target.port)
        if sock is None:
            raise _Unreached(event)
        return self._upstream_on(target, event, sock)

    def _upstream_on(self, target: Target, event: EgressEvent, sock: socket.socket) -> _Upstream:
        """The upstream over sock (connected to the checked address), TLS first for https;
        _Unreached, with sock closed, if that fails."""
        if target.scheme == "https":
            assert self._upstream_tls is not None
            bare = target.host.strip("[]")
            try:
                sock.settimeout(self._timeout)
                sock = self._upstream_tls.wrap_socket(sock, server_hostname=bare)
            except (OSError, ValueError) as exc:
                sock.close()
                failed = f"{event.rule}; TLS: {exc}"
                raise _Unreached(
                    dataclasses.replace(event, decision=UNREACHABLE, rule=failed)
                ) from None
        self._track(sock)
        return _Upstream(target, sock, event)

    def _close_upstream(self, upstream: _Upstream) -> None:
        if upstream.closed:
            return
        upstream.closed = True
        self._untrack(upstream.sock)
        with contextlib.suppress(OSError):
            upstream.sock.close()

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
        done = dataclasses.replace(event, bytes_up=up, bytes_down=down, duration_ms=ms)
        with self._lock:
            self._events.append(done)

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.add(sock)

    def _untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)


def _next_request(conn: h11.Connection, sock: socket.socket) -> h11.Request | None:
    """The next request's head, or None once the client has closed between requests."""
    deadline = time.monotonic() + REQUEST_SECONDS
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise Refused(exc.error_status_hint, f"bad request: {exc}") from None
        if isinstance(event, h11.Request):
            return event
        if event is not h11.NEED_DATA:
            return None  # closed, or paused after a message h11 will not go past
        # Small reads: h11 bounds only a head it has not seen the end of yet.
        _receive(conn, sock, deadline, 4096)


def _read_body(
    conn: h11.Connection, sock: socket.socket, deadline: float, headers: list[tuple[bytes, bytes]]
) -> bytes | None:
    """The request's whole body (None when it declares none), bounded in size and time."""
    if conn.they_are_waiting_for_100_continue:
        sock.sendall(conn.send(h11.InformationalResponse(status_code=100, headers=[])) or b"")
    declared = any(k in (b"content-length", b"transfer-encoding") for k, _ in headers)
    parts: list[bytes] = []
    size = 0
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise Refused(exc.error_status_hint, f"bad request body: {exc}") from None
        if isinstance(event, h11.Data):
            size += len(event.data)
            if size > MAX_BODY:
                raise Refused(413, f"request body over {MAX_BODY >> 20} MiB")
            parts.append(event.data)
        elif isinstance(event, h11.EndOfMessage):
            return b"".join(parts) if declared else None
        elif event is h11.NEED_DATA:
            _receive(conn, sock, deadline, 1 << 16)
        else:
            raise Refused(400, "the request ended before its body")


def _receive(conn: h11.Connection, sock: socket.socket, deadline: float, size: int) -> None:
    left = deadline - time.monotonic()
    if left <= 0:
        raise Refused(408, f"request not complete within {REQUEST_SECONDS:.0f}s")
    timeout = sock.gettimeout()
    sock.settimeout(min(left, timeout) if timeout is not None else left)
    try:
        data = sock.recv(size)
    finally:
        sock.settimeout(timeout)
    conn.receive_data(data)


def _peek(sock: socket.socket, seconds: float) -> bytes:
    """The client's first byte, left unread; b"" if it closed or stayed silent."""
    timeout = sock.gettimeout()
    sock.settimeout(seconds)
    try:
        return sock.recv(1, socket.MSG_PEEK)
    except OSError:
        return b""
    finally:
        sock.settimeout(timeout)


def _relay_down(
    client: socket.socket, upstream: socket.socket, first: bytes, idle: float
) -> tuple[int, int]:
    """Copy upstream's bytes to the client and read the client's only to drop them, until
    either side ends or upstream is silent for idle seconds; returns (dropped, relayed)."""
    if first:
        client.sendall(first)
    dropped = relayed = 0
    quiet_until = time.monotonic() + idle
    with selectors.DefaultSelector() as sel:
        sel.register(client, selectors.EVENT_READ)
        sel.register(upstream, selectors.EVENT_READ)
        while (left := quiet_until - time.monotonic()) > 0:
            # TLS may hold decrypted bytes the socket no longer signals.
            ready = [s for s in (upstream, client) if isinstance(s, ssl.SSLSocket) and s.pending()]
            for key, _ in [] if ready else sel.select(left):
                ready.append(key.fileobj)  # type: ignore[arg-type]
            for src in ready:
                try:
                    data = src.recv(1 << 16)
                except OSError:
                    data = b""
                if not data:
                    return dropped, relayed  # either side's end ends both
                if src is client:
                    dropped += len(data)  # never sent: the page's frames stop here
                    continue
                try:
                    client.sendall(data)
                except OSError:
                    return dropped, relayed
                relayed += len(data)
                quiet_until = time.monotonic() + idle
    return dropped, relayed


def _reason(event: EgressEvent) -> str:
    if event.decision == UNREACHABLE:  # allowed, but nothing answered
        return f"egress: {event.rule}"
    return f"egress denied: {event.rule}"


def _refusal(event: EgressEvent) -> bytes:
    status = 502 if event.decision == UNREACHABLE else 403
    reason = _reason(event) + (f" ({event.reason})" if event.reason else "")
    return _reply(status, reason)


_STATUS = {400: "Bad Request", 403: "Forbidden", 408: "Request Timeout", 413: "Content Too Large",
           431: "Request Header Fields Too Large", 502: "Bad Gateway"}  # fmt: skip


def _reply(code: int, body: str) -> bytes:
    data = body.encode() + b"\n"
    return (
        f"HTTP/1.1 {code} {_STATUS.get(code, 'Error')}\r\nContent-Type: text/plain\r\n"
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
