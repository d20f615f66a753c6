"""The witness: a local HTTP/1.1 keep-alive server whose pages attack the browser gate.

It logs every request it receives with the phase (propose or apply) it arrived in,
so a test counts from the server's side what left the browser, never from ours.
Each page tries one way past Playwright's routing: fetchLater(), sendBeacon and
keepalive fetches on page-hide, a SharedWorker's POST, a page timer that POSTs
just after the Save click, and a released POST /save answered 307 and 308 to
endpoints nobody approved. Served over HTTP, or HTTPS with a certificate of its
own (`cafile`, for the egress proxy's upstream verification).
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import tempfile
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# Every page has the one form whose Save is the job's gated step.
FORM = (
    "<form method='post' action='/save'><input name='note' value='hello'>"
    "<button type='submit'>Save</button></form>"
)
LEAKS = {
    "fetchlater": """
      try {
        fetchLater('/leak/fetchlater-timer', {method: 'POST', body: 'x', activateAfter: 100});
        fetchLater('/leak/fetchlater-hide', {method: 'POST', body: 'x'});
        document.title = 'fetchLater armed';
      } catch (e) { document.title = 'fetchLater refused: ' + e; }
    """,
    "unload": """
      const leak = (why) => {
        navigator.sendBeacon('/leak/beacon-' + why, 'x');
        fetch('/leak/keepalive-' + why, {method: 'POST', body: 'x', keepalive: true});
      };
      addEventListener('pagehide', () => leak('pagehide'));
      document.addEventListener('visibilitychange', () => {
        if (document.visibilityState === 'hidden') leak('hidden');
      });
      document.title = 'unload armed';
    """,
    "shared": """
      try {
        const w = new SharedWorker('/worker.js');
        w.port.start();
        document.title = 'SharedWorker started';
      } catch (e) { document.title = 'SharedWorker refused: ' + e; }
    """,
    "timer": """
      // The page's own timer: it POSTs as soon as the Save click happens.
      document.querySelector('button').addEventListener('click', () => {
        fetch('/other', {method: 'POST', body: 'timer'});
      });
      document.title = 'timer armed';
    """,
}
WORKER = "fetch('/leak/sharedworker', {method: 'POST', body: 'x'});"


@dataclass(frozen=True)
class Hit:
    phase: str
    method: str
    path: str
    body: bytes
    connection: int
    """Which client connection carried it: a keep-alive connection carries several."""

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers speak
    witness: Witness

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _log(self) -> str:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
        self.witness.add(Hit(self.witness.phase, self.command, path, body, id(self.connection)))
        return path

    def do_GET(self) -> None:
        path = self._log()
        if path == "/worker.js":
            return self._send(200, WORKER.encode(), {"Content-Type": "text/javascript"})
        name = path.strip("/") or "plain"
        script = LEAKS.get(name, "")
        page = (
            f"<!doctype html><html><head><title>{name}</title></head><body>"
            f"<h1>{name}</h1>{FORM}<a href='/plain'>elsewhere</a>"
            f"<script>{script}</script></body></html>"
        )
        self._send(200, page.encode(), {"Content-Type": "text/html; charset=utf-8"})

    def do_HEAD(self) -> None:
        self._log()
        self._send(200)

    def do_POST(self) -> None:
        path = self._log()
        if path == "/save" and self.witness.redirect:
            # The same method to elsewhere: a browser that follows re-sends the body.
            return self._send(307, b"", {"Location": "/moved-1"})
        if path == "/moved-1":
            return self._send(308, b"", {"Location": "/moved-2"})
        self._send(303, b"", {"Location": "/plain"})


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost: (cert.pem, key.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agentplane witness")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class Witness:
    """Start with `with Witness(tls=...) as w`; w.url is the origin, w.hits the log."""

    def __init__(self, *, tls: bool = False) -> None:
        self.phase = "propose"
        self.redirect = False
        self.hits: list[Hit] = []
        self._lock = threading.Lock()
        self._dir = tempfile.TemporaryDirectory(prefix="agentplane-witness-")
        handler = type("BoundHandler", (_Handler,), {"witness": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.cafile: str | None = None
        scheme = "http"
        if tls:
            cert, key = _certificate(Path(self._dir.name))
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            # The handshake happens in the handler's thread, not the accept loop.
            self.server.socket = ctx.wrap_socket(
                self.server.socket, server_side=True, do_handshake_on_connect=False
            )
            self.cafile, scheme = str(cert), "https"
        self.port = self.server.server_address[1]
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add(self, hit: Hit) -> None:
        with self._lock:
            self.hits.append(hit)

    def changes(self, phase: str | None = None) -> list[str]:
        """Every request but GET and HEAD that reached the server (in phase, if given)."""
        with self._lock:
            return [
                str(h)
                for h in self.hits
                if h.method not in ("GET", "HEAD") and (phase is None or h.phase == phase)
            ]

    def __enter__(self) -> Witness:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._dir.cleanup()
