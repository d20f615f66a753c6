"""The egress proxy judges every request, counted from the servers' side.

Real HTTP/1.1 keep-alive servers (http.server with protocol_version HTTP/1.1) log
every request they receive; clients are http.client on one keep-alive connection.
Names resolve to 127.0.0.1 through a scripted resolver, opened with private_ok.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import http.server
import json
import os
import socket
import socketserver
import ssl
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from bot.adapters.sandbox.proxy import WEBSOCKET_DROPPED, EgressProxy
from bot.adapters.sandbox.spec import HttpRequest, Limits, SandboxBackend, SandboxSpec
from bot.adapters.sandbox.tls import RunCA
from bot.families.browser.driver import chromium_sandbox, find_chromium
from bot.families.browser.errors import BrowserUnavailable

LOCAL = ("127.0.0.1/32",)


@dataclass
class Origin:
    name: str
    port: int = 0
    seen: list[tuple[str, str, str, bytes]] = field(default_factory=list)
    """(method, path, Host, body) of every request that arrived."""
    connections: int = 0
    drops: bool = False
    """Close every connection after one answer, as an idle timeout would."""


class _KeepAlive(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.origin.connections += 1

    def _answer(self) -> None:
        size = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(size) if size else b""
        origin = self.server.origin
        origin.seen.append((self.command, self.path, self.headers.get("Host", ""), body))
        reply = f"{origin.name} {self.command} {self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = _answer

    def handle_one_request(self) -> None:
        super().handle_one_request()
        # An idle timeout, at once: the connection ends without a Connection: close.
        self.close_connection = self.close_connection or self.server.origin.drops

    def log_message(self, *args: object) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    origin: Origin


def _serve(origin: Origin, tls: ssl.SSLContext | None = None) -> Iterator[Origin]:
    server = _Server(("127.0.0.1", 0), _KeepAlive)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    server.origin = origin
    origin.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield origin
    server.shutdown()
    server.server_close()


@pytest.fixture
def a() -> Iterator[Origin]:
    yield from _serve(Origin("a.test"))


@pytest.fixture
def b() -> Iterator[Origin]:
    yield from _serve(Origin("b.test"))


def proxy_for(*origins: Origin | WsOrigin, **kwargs: object) -> EgressProxy:
    rules = [f"{o.name}:{o.port}" for o in origins]
    return EgressProxy(rules, private_ok=LOCAL, resolve=lambda h, p: ["127.0.0.1"], **kwargs)  # type: ignore[arg-type]


def get(conn: http.client.HTTPConnection, method: str, url: str, **kw: object) -> tuple[int, str]:
    conn.request(method, url, **kw)  # type: ignore[arg-type]
    reply = conn.getresponse()
    return reply.status, reply.read().decode()


def test_each_request_on_a_keep_alive_connection_reaches_its_own_server(
    a: Origin, b: Origin
) -> None:
    """Before, the first request chose the upstream: B's request, cookie and all, went to A."""
    with proxy_for(a, b) as proxy:
        conn = http.client.HTTPConnection(*proxy.serve_tcp(), timeout=5)
        first = get(conn, "GET", f"http://a.test:{a.port}/one")
        client_socket = conn.sock
        second = get(conn, "GET", f"http://b.test:{b.port}/two", headers={"Cookie": "b=secret"})
        third = get(conn, "GET", f"http://a.test:{a.port}/three")
        assert conn.sock is client_socket  # one client connection throughout
        conn.close()
    assert [first, second, third] == [
        (200, "a.test GET /one\n"), (200, "b.test GET /two\n"), (200, "a.test GET /three\n")
    ]  # fmt: skip
    assert [(m, p, h) for m, p, h, _ in a.seen] == [
        ("GET", "/one", f"a.test:{a.port}"), ("GET", "/three", f"a.test:{a.port}")
    ]  # fmt: skip
    assert [(m, p, h) for m, p, h, _ in b.seen] == [("GET", "/two", f"b.test:{b.port}")]
    judged = [(e.host, e.method, e.url, e.address) for e in proxy.log]
    assert judged == [
        ("a.test", "GET", f"http://a.test:{a.port}/one", "127.0.0.1"),
        ("b.test", "GET", f"http://b.test:{b.port}/two", "127.0.0.1"),
        ("a.test", "GET", f"http://a.test:{a.port}/three", "127.0.0.1"),
    ]
    assert all(e.bytes_up > 0 and e.bytes_down > 0 for e in proxy.log)


def test_a_host_header_naming_another_site_is_refused(a: Origin, b: Origin) -> None:
    """A shared front end routes by Host: the checked name must be the one it sees."""
    with proxy_for(a, b) as proxy:
        addr = proxy.serve_tcp()
        conn = http.client.HTTPConnection(*addr, timeout=5)
        url = f"http://a.test:{a.port}/"
        mismatched = get(conn, "GET", url, headers={"Host": f"b.test:{b.port}"})
        conn.close()
        conn = http.client.HTTPConnection(*addr, timeout=5)
        respelled = get(conn, "GET", url, headers={"Host": f"A.Test.:{a.port}"})
        conn.close()
    assert mismatched[0] == 403 and "does not match" in mismatched[1], mismatched
    assert respelled[0] == 200
    assert [h for _, _, h, _ in a.seen] == [f"a.test:{a.port}"]  # the checked name, only once
    assert b.seen == []
    refused = next(e for e in proxy.log if e.decision == "deny")
    assert refused.method == "GET" and "does not match" in refused.reason


def only_reads(request: HttpRequest) -> tuple[bool, str]:
    if request.method in ("GET", "HEAD"):
        return True, "reads only"
    return False, f"{request.method} is not the approved request"


def test_a_request_gate_refusing_post_stops_it_at_the_proxy(a: Origin) -> None:
    judged: list[HttpRequest] = []

    def gate(request: HttpRequest) -> tuple[bool, str]:
        judged.append(request)
        return only_reads(request)

    with proxy_for(a, request_gate=gate) as proxy:
        conn = http.client.HTTPConnection(*proxy.serve_tcp(), timeout=5)
        read = get(conn, "GET", f"http://a.test:{a.port}/page")
        # The same keep-alive connection: before, this went unjudged behind the GET.
        post = get(conn, "POST", f"http://a.test:{a.port}/save", body=b"name=x")
        conn.close()
    assert read[0] == 200
    assert post[0] == 403 and "POST is not the approved request" in post[1]
    assert [(m, p) for m, p, _, _ in a.seen] == [("GET", "/page")]  # the POST never arrived
    assert judged[1] == HttpRequest(
        "POST", f"http://a.test:{a.port}/save", "a.test", a.port,
        hashlib.sha256(b"name=x").hexdigest(),
    )  # fmt: skip
    assert judged[0].body_sha256 is None
    (refused,) = [e for e in proxy.log if e.decision == "deny"]
    assert (refused.method, refused.url) == ("POST", f"http://a.test:{a.port}/save")
    assert refused.reason.endswith("POST is not the approved request")


def test_a_keep_alive_the_server_dropped_is_retried_on_a_fresh_connection() -> None:
    for origin in _serve(Origin("a.test", drops=True)):
        with proxy_for(origin) as proxy:
            conn = http.client.HTTPConnection(*proxy.serve_tcp(), timeout=5)
            answers = [get(conn, "GET", f"http://a.test:{origin.port}/{n}") for n in range(3)]
            conn.close()
        assert [status for status, _ in answers] == [200, 200, 200], answers
        assert [p for _, p, _, _ in origin.seen] == ["/0", "/1", "/2"]
        assert origin.connections == 3


def test_a_tunnel_the_gate_refuses_never_reaches_its_destination(a: Origin) -> None:
    """Without interception a CONNECT is judged once, before the proxy connects."""
    with proxy_for(a, request_gate=only_reads) as proxy:
        conn = http.client.HTTPConnection(*proxy.serve_tcp(), timeout=5)
        conn.set_tunnel("a.test", a.port)
        with pytest.raises(OSError, match="403"):
            conn.request("GET", "/")
        conn.close()
    assert a.connections == 0
    (event,) = proxy.log
    assert (event.method, event.url, event.decision) == ("CONNECT", f"a.test:{a.port}", "deny")
    assert event.reason == "CONNECT is not the approved request"


@pytest.fixture
def resets() -> Iterator[Origin]:
    """An origin that starts its answer, then resets the connection mid-body."""
    origin = Origin("r.test")
    listener = socket.create_server(("127.0.0.1", 0))
    origin.port = listener.getsockname()[1]

    def serve() -> None:
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            conn.recv(65536)
            origin.connections += 1
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
            time.sleep(0.2)  # so the proxy has relayed the head before the reset
            # SO_LINGER 0: close() sends RST, so the proxy's next read fails with an OSError.
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield origin
    listener.close()
    thread.join(5)


def test_an_answer_the_connection_broke_off_is_still_an_event(resets: Origin) -> None:
    """Before, an OSError mid-answer ended the client connection with no event at all."""
    url = f"http://r.test:{resets.port}/big"
    with proxy_for(resets) as proxy, socket.create_connection(proxy.serve_tcp(), timeout=5) as s:
        s.sendall(f"GET {url} HTTP/1.1\r\nHost: r.test:{resets.port}\r\n\r\n".encode())
        got = b""
        with contextlib.suppress(OSError):
            while data := s.recv(4096):
                got += data
    assert got.startswith(b"HTTP/1.1 200"), got
    assert resets.connections == 1
    (event,) = proxy.log
    assert (event.method, event.url, event.decision) == ("GET", url, "allow")
    assert event.address == "127.0.0.1" and event.bytes_up > 0
    assert event.reason.startswith("the exchange broke off after the request was sent:")


def test_oversized_request_heads_are_refused(a: Origin) -> None:
    with proxy_for(a) as proxy, socket.create_connection(proxy.serve_tcp(), timeout=5) as s:
        # A head that never ends: the proxy must stop reading, not buffer it all.
        s.sendall(f"GET http://a.test:{a.port}/ HTTP/1.1\r\nX: {'y' * 20000}".encode())
        reply = s.recv(4096)
    assert reply.startswith(b"HTTP/1.1 431"), reply
    assert a.seen == []


# --- HTTPS, intercepted with the run's CA --------------------------------------


@pytest.fixture(scope="module")
def public_ca() -> Iterator[RunCA]:
    """Stands in for a public CA: it issues the local HTTPS server's certificate."""
    ca = RunCA.create()
    yield ca
    ca.close()


@pytest.fixture
def tls_a(public_ca: RunCA) -> Iterator[Origin]:
    yield from _serve(Origin("a.test"), public_ca.leaf("a.test"))


@pytest.fixture
def run_ca(public_ca: RunCA, tmp_path: Path) -> Iterator[RunCA]:
    cafile = tmp_path / "public-ca.pem"
    cafile.write_bytes(public_ca.ca_pem)
    ca = RunCA.create(upstream_cafile=cafile)
    yield ca
    ca.close()


def tunnel(proxy: EgressProxy, origin: Origin, sni: str, ca: RunCA) -> ssl.SSLSocket:
    """CONNECT to origin, then TLS for sni, trusting the run's CA as Chromium would."""
    raw = socket.create_connection(proxy.serve_tcp(), timeout=5)
    raw.sendall(f"CONNECT {origin.name}:{origin.port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert raw.recv(4096).startswith(b"HTTP/1.1 200")
    trust = ssl.create_default_context(cadata=ca.ca_pem.decode())
    return trust.wrap_socket(raw, server_hostname=sni)


def test_https_is_intercepted_and_each_request_judged(tls_a: Origin, run_ca: RunCA) -> None:
    with proxy_for(tls_a, request_gate=only_reads, tls=run_ca) as proxy:
        trust = ssl.create_default_context(cadata=run_ca.ca_pem.decode())
        conn = http.client.HTTPSConnection(*proxy.serve_tcp(), timeout=5, context=trust)
        conn.set_tunnel("a.test", tls_a.port)
        read = get(conn, "GET", "/page")
        leaf = x509.load_der_x509_certificate(conn.sock.getpeercert(binary_form=True))
        post = get(conn, "POST", "/save", body=b"name=x")
        conn.close()
    assert read == (200, "a.test GET /page\n")
    assert post[0] == 403 and "POST is not the approved request" in post[1]
    assert [(m, p, h) for m, p, h, _ in tls_a.seen] == [("GET", "/page", f"a.test:{tls_a.port}")]
    spki = leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert base64.b64encode(hashlib.sha256(spki).digest()).decode() == run_ca.spki_sha256_b64()
    judged = [(e.method, e.url, e.decision) for e in proxy.log]
    assert judged == [
        ("GET", f"https://a.test:{tls_a.port}/page", "allow"),
        ("POST", f"https://a.test:{tls_a.port}/save", "deny"),
    ]


def test_tls_for_another_name_or_host_inside_a_tunnel_is_refused(
    tls_a: Origin, run_ca: RunCA
) -> None:
    """The SNI and the inner Host are tied to the name the CONNECT was checked for."""
    with proxy_for(tls_a, tls=run_ca) as proxy:
        with pytest.raises(ssl.SSLError):
            tunnel(proxy, tls_a, "b.test", run_ca)
        with tunnel(proxy, tls_a, "a.test", run_ca) as inner:
            inner.sendall(b"GET / HTTP/1.1\r\nHost: b.test\r\n\r\n")
            mismatched = inner.recv(4096)
    assert mismatched.startswith(b"HTTP/1.1 403") and b"does not match" in mismatched
    assert tls_a.seen == []


def test_an_upstream_the_proxy_cannot_verify_is_a_502(tls_a: Origin) -> None:
    """The proxy verifies upstream itself: the sandbox's trust in it must not be wasted."""
    ca = RunCA.create()  # trusts only the system store: not the local server's CA
    # The tunnel opens (the proxy learns only from the client's first byte that it wants
    # TLS), and its first request is told why nothing goes through.
    with proxy_for(tls_a, tls=ca) as proxy, tunnel(proxy, tls_a, "a.test", ca) as inner:
        inner.sendall(f"GET / HTTP/1.1\r\nHost: a.test:{tls_a.port}\r\n\r\n".encode())
        reply = inner.recv(4096)
    ca.close()
    assert reply.startswith(b"HTTP/1.1 502") and b"certificate verify failed" in reply, reply
    assert tls_a.seen == []
    (event,) = proxy.log
    assert event.decision == "unreachable" and "TLS" in event.rule


def test_chromium_trusts_the_run_ca_by_its_spki_only(tls_a: Origin, run_ca: RunCA) -> None:
    """The installed Chromium takes the intercepted leaf by --ignore-certificate-errors-spki-list
    (no trust store changed), and the proxy judges what it sends inside."""
    try:
        chromium, _ = find_chromium(os.environ, None)
    except BrowserUnavailable as exc:
        pytest.skip(str(exc))
    url = f"https://a.test:{tls_a.port}/page"
    with proxy_for(tls_a, request_gate=only_reads, tls=run_ca) as proxy:
        host, port = proxy.serve_tcp()
        with tempfile.TemporaryDirectory() as profile:
            argv = [chromium, "--headless", f"--user-data-dir={profile}", "--no-first-run",
                    f"--proxy-server=http://{host}:{port}", "--proxy-bypass-list=<-loopback>",
                    f"--ignore-certificate-errors-spki-list={run_ca.spki_sha256_b64()}",
                    *([] if chromium_sandbox(os.environ) else ["--no-sandbox"]),
                    "--dump-dom", url]  # fmt: skip
            shown = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert "a.test GET /page" in shown.stdout, shown.stderr[-2000:]
    assert ("GET", "/page", f"a.test:{tls_a.port}") in [(m, p, h) for m, p, h, _ in tls_a.seen]
    assert ("GET", url, "allow") in [(e.method, e.url, e.decision) for e in proxy.log]


def test_a_plain_tunnel_is_served_as_http_and_each_request_judged(a: Origin, run_ca: RunCA) -> None:
    """Chromium sends `ws://` as plain HTTP/1.1 through a CONNECT: with interception on,
    the proxy sees no ClientHello and serves the tunnel as http to the checked name."""
    with proxy_for(a, request_gate=only_reads, tls=run_ca) as proxy:
        conn = http.client.HTTPConnection(*proxy.serve_tcp(), timeout=5)
        conn.set_tunnel("a.test", a.port)  # then plain requests, in origin form
        read = get(conn, "GET", "/plain")
        post = get(conn, "POST", "/save", body=b"name=x")
        conn.close()
        conn = http.client.HTTPConnection(*proxy.serve_tcp(), timeout=5)
        conn.set_tunnel("a.test", a.port)
        mismatched = get(conn, "GET", "/", headers={"Host": "b.test"})
        conn.close()
    assert read == (200, "a.test GET /plain\n")
    assert post[0] == 403 and "POST is not the approved request" in post[1]
    assert mismatched[0] == 403 and "does not match" in mismatched[1]
    assert [(m, p, h) for m, p, h, _ in a.seen] == [("GET", "/plain", f"a.test:{a.port}")]
    judged = [(e.method, e.url, e.decision) for e in proxy.log]
    assert judged == [
        ("GET", f"http://a.test:{a.port}/plain", "allow"),
        ("POST", f"http://a.test:{a.port}/save", "deny"),
        ("GET", f"http://a.test:{a.port}/", "deny"),
    ]


# --- WebSockets: the server's frames reach the client, the client's go nowhere ---

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@dataclass
class WsOrigin:
    name: str = "ws.test"
    port: int = 0
    handshakes: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    """(request line, headers) of every handshake that arrived."""
    frames: list[bytes] = field(default_factory=list)
    """Every frame's payload the server received, close frames included."""
    ended: threading.Event = field(default_factory=threading.Event)


def ws_frame(payload: bytes, opcode: int = 0x1, mask: bool = True) -> bytes:
    key = os.urandom(4) if mask else b""
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload)) if mask else payload
    return bytes([0x80 | opcode, (0x80 if mask else 0) | len(payload)]) + key + masked


def read_ws_frame(stream: BinaryIO) -> bytes | None:
    head = stream.read(2)
    if len(head) < 2:
        return None
    size = head[1] & 0x7F
    if size == 126:
        size = int.from_bytes(stream.read(2), "big")
    elif size == 127:
        size = int.from_bytes(stream.read(8), "big")
    key = stream.read(4) if head[1] & 0x80 else b""
    data = stream.read(size)
    return bytes(b ^ key[i % 4] for i, b in enumerate(data)) if key else data


class _WsHandler(socketserver.StreamRequestHandler):
    """RFC 6455's handshake, then one text frame at once; logs every frame it receives."""

    server: _WsServer

    def handle(self) -> None:
        origin = self.server.origin
        try:
            lines = []
            while (line := self.rfile.readline()) not in (b"\r\n", b""):
                lines.append(line.decode().rstrip("\r\n"))
            if not lines:
                return
            pairs = (h.partition(":") for h in lines[1:])
            headers = {k.strip().lower(): v.strip() for k, _, v in pairs}
            origin.handshakes.append((lines[0], headers))
            digest = hashlib.sha1((headers["sec-websocket-key"] + WS_GUID).encode()).digest()
            self.wfile.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + base64.b64encode(digest)
                + b"\r\n\r\n" + ws_frame(b"hello from the server", mask=False)
            )  # fmt: skip
            while (payload := read_ws_frame(self.rfile)) is not None:
                origin.frames.append(payload)
        finally:
            origin.ended.set()


class _WsServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    origin: WsOrigin


@pytest.fixture
def ws() -> Iterator[WsOrigin]:
    server = _WsServer(("127.0.0.1", 0), _WsHandler)
    origin = WsOrigin(port=server.server_address[1])
    server.origin = origin
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield origin
    server.shutdown()
    server.server_close()


def ws_handshake(target: str, host: str, key: bytes, upgrade: str = "websocket") -> bytes:
    return (
        f"GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: {upgrade}\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


@pytest.mark.parametrize("route", ["tunnel", "absolute"])
def test_a_websocket_relays_the_server_s_frames_and_never_sends_the_client_s(
    ws: WsOrigin, route: str, run_ca: RunCA
) -> None:
    """The boundary's own guarantee, whatever the browser's routing did: after the 101
    every byte the client sends is dropped, including frames sent with the handshake."""
    authority = f"ws.test:{ws.port}"
    tls = run_ca if route == "tunnel" else None
    with (
        proxy_for(ws, request_gate=only_reads, tls=tls) as proxy,
        socket.create_connection(proxy.serve_tcp(), timeout=5) as s,
    ):
        stream = s.makefile("rb")
        target = f"http://{authority}/chat"
        if route == "tunnel":  # Chromium's ws://, with interception on
            s.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
            assert stream.readline().startswith(b"HTTP/1.1 200")
            assert stream.readline() == b"\r\n"
            target = "/chat"
        key = base64.b64encode(os.urandom(16))
        sent = [ws_frame(b"delete 1"), ws_frame(b"delete 2"), ws_frame(b"", opcode=0x8)]
        s.sendall(ws_handshake(target, authority, key) + sent[0])  # a frame with the handshake
        head = []
        while (line := stream.readline()) not in (b"\r\n", b""):
            head.append(line.decode().strip())
        first = read_ws_frame(stream)
        s.sendall(sent[1])
        s.sendall(sent[2])
        s.shutdown(socket.SHUT_WR)
        assert ws.ended.wait(5)  # the server read to its end: all it was ever sent
        assert stream.read() == b""  # and the client's side ended with it
    assert head[0].startswith("HTTP/1.1 101"), head
    digest = hashlib.sha1((key.decode() + WS_GUID).encode()).digest()
    answered = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
    assert answered["sec-websocket-accept"] == base64.b64encode(digest).decode()
    assert (answered["upgrade"], answered["connection"]) == ("websocket", "Upgrade")
    assert first == b"hello from the server"
    assert ws.frames == []  # none of the client's frames, not even the close
    ((line, headers),) = ws.handshakes
    assert line == "GET /chat HTTP/1.1"
    assert headers["host"] == authority and headers["upgrade"] == "websocket"
    assert headers["sec-websocket-key"] == key.decode()
    (event,) = [e for e in proxy.log if e.method == "GET"]
    assert (event.url, event.decision) == (f"http://{authority}/chat", "allow")
    assert event.reason == f"reads only; {WEBSOCKET_DROPPED}"
    assert event.bytes_up >= sum(map(len, sent)) and event.bytes_down > len(first)


def test_upgrades_other_than_a_websocket_s_are_refused(ws: WsOrigin) -> None:
    authority = f"ws.test:{ws.port}"
    key = base64.b64encode(os.urandom(16))
    replies = []
    with proxy_for(ws) as proxy:
        for upgrade in ("h2c", "websocket, h2c", "TLS/1.0"):
            with socket.create_connection(proxy.serve_tcp(), timeout=5) as s:
                s.sendall(ws_handshake(f"http://{authority}/", authority, key, upgrade))
                replies.append(s.recv(4096))
    assert all(r.startswith(b"HTTP/1.1 400") for r in replies), replies
    assert ws.handshakes == []
    assert [e.decision for e in proxy.log] == ["deny"] * 3


# --- the same, from inside each sandbox backend ----------------------------------

KEEP_ALIVE = """
import http.client, json, ssl, sys
pa, pb, pt, cafile = sys.argv[1:]
out = []
plain = http.client.HTTPConnection("127.0.0.1", 3128, timeout=10)
for method, url in [("GET", f"http://localhost:{pa}/one"), ("GET", f"http://localhost:{pb}/two"),
                    ("POST", f"http://localhost:{pa}/save")]:
    plain.request(method, url, body=b"x=1" if method == "POST" else None)
    r = plain.getresponse()
    out.append([r.status, r.read().decode()])
tls = http.client.HTTPSConnection(
    "127.0.0.1", 3128, timeout=10, context=ssl.create_default_context(cafile=cafile))
tls.set_tunnel("localhost", int(pt))
for method in ("GET", "POST"):
    tls.request(method, "/in", body=b"y=2" if method == "POST" else None)
    r = tls.getresponse()
    out.append([r.status, r.read().decode()])
print(json.dumps(out))
"""


@pytest.mark.escape("allowlist: unjudged request on a keep-alive connection")
def test_every_request_from_the_sandbox_is_judged(
    backend: SandboxBackend, workspace: Path, public_ca: RunCA, tmp_path: Path
) -> None:
    """Both backends hand the spec's request_gate and run CA to their proxy."""
    cafile = tmp_path / "public-ca.pem"
    cafile.write_bytes(public_ca.ca_pem)
    run_ca = RunCA.create(upstream_cafile=cafile)
    (workspace / "run-ca.pem").write_bytes(run_ca.ca_pem)
    origins = [
        _serve(Origin("a")),
        _serve(Origin("b")),
        _serve(Origin("t"), public_ca.leaf("localhost")),
    ]
    a, b, t = (next(o) for o in origins)
    spec = SandboxSpec(
        workspace,
        network="allowlist",
        allow_domains=tuple(f"localhost:{o.port}" for o in (a, b, t)),
        egress_private_ok=LOCAL,
        limits=Limits(wall_seconds=30),
        request_gate=only_reads,
        tls=run_ca,
    )
    try:
        with backend.start(spec) as sb:
            argv = [str(o.port) for o in (a, b, t)]
            result = sb.exec(["python3", "-c", KEEP_ALIVE, *argv, "/workspace/run-ca.pem"])
    finally:
        for o in origins:
            next(o, None)
        run_ca.close()
    assert result.exit_code == 0, result
    answers = [tuple(x) for x in json.loads(result.stdout)]
    assert [status for status, _ in answers] == [200, 200, 403, 200, 403], answers
    assert answers[1] == (200, "b GET /two\n")
    assert [p for _, p, _, _ in a.seen] == ["/one"]  # neither B's GET nor the POST arrived
    assert [p for _, p, _, _ in b.seen] == ["/two"]
    assert [(m, p) for m, p, _, _ in t.seen] == [("GET", "/in")]
