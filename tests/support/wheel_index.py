"""A PEP 503 package index on 127.0.0.1, serving wheels downloaded from PyPI on the host.

The wheels are fetched once (`pip download`, on the host, never from a sandbox) into
`build/setup-wheels/` and reused by later test sessions; the index serves them over a
real HTTP/1.1 server and counts what it was asked for, so a test can tell an install
from a reuse.
"""

from __future__ import annotations

import hashlib
import html
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

PROJECT = Path(__file__).resolve().parents[2]
WHEELS = PROJECT / "build" / "setup-wheels"
REQUIREMENTS = ("pytest==9.2.0", "sortedcontainers==2.4.0")
"""What the test project installs: pytest and one more package (plus pytest's own deps)."""


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def wheelhouse(requirements: tuple[str, ...] = REQUIREMENTS) -> Path:
    """The directory of wheels for requirements, downloaded on the host the first time."""
    stamp = WHEELS / ".requirements"
    wanted = "\n".join(requirements)
    if stamp.is_file() and stamp.read_text() == wanted:
        return WHEELS
    WHEELS.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:"]
    subprocess.run(
        [*pip, "--dest", str(WHEELS), *requirements],
        check=True,
        timeout=300,
    )
    stamp.write_text(wanted)
    return WHEELS


@dataclass
class Index:
    url: str
    """`http://127.0.0.1:<port>/simple/`: pip's --index-url."""
    port: int
    requests: list[str] = field(default_factory=list)
    """Every path asked for, in order."""

    @property
    def downloads(self) -> list[str]:
        return [p for p in self.requests if p.startswith("/files/")]


@contextmanager
def serve_index(wheels: Path) -> Iterator[Index]:
    """Serve wheels as a PEP 503 simple index on 127.0.0.1 (HTTP/1.1, keep-alive)."""
    files = {w.name: w for w in sorted(wheels.glob("*.whl"))}
    projects: dict[str, list[str]] = {}
    for name in files:
        projects.setdefault(_normalise(name.split("-", 1)[0]), []).append(name)
    digests = {n: hashlib.sha256(p.read_bytes()).hexdigest() for n, p in files.items()}
    index = Index(url="", port=0)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, status: int, body: bytes, kind: str = "text/html") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = unquote(self.path.split("?", 1)[0])
            if "://" in path:  # absolute form, as a proxy forwards it
                path = "/" + path.split("://", 1)[1].split("/", 1)[1]
            with lock:
                index.requests.append(path)
            parts = [p for p in path.split("/") if p]
            if parts == ["simple"]:
                links = "".join(f'<a href="/simple/{p}/">{p}</a>\n' for p in sorted(projects))
                self._send(200, f"<!DOCTYPE html><html><body>{links}</body></html>".encode())
            elif len(parts) == 2 and parts[0] == "simple" and parts[1] in projects:
                links = "".join(
                    f'<a href="/files/{html.escape(n)}#sha256={digests[n]}">{html.escape(n)}</a>\n'
                    for n in projects[parts[1]]
                )
                self._send(200, f"<!DOCTYPE html><html><body>{links}</body></html>".encode())
            elif len(parts) == 2 and parts[0] == "files" and parts[1] in files:
                self._send(200, files[parts[1]].read_bytes(), "application/octet-stream")
            else:
                self._send(404, b"not found", "text/plain")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    index.port = server.server_address[1]
    index.url = f"http://127.0.0.1:{index.port}/simple/"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield index
    finally:
        server.shutdown()
        server.server_close()
