"""What the sandbox costs, each number against a baseline from the same run.

- create-and-destroy: start a sandbox and close it, per backend;
- per tool call: `cat` in a started sandbox, per backend, against a bare subprocess.run;
- egress: bytes/s through the allowlist proxy against a direct connection to a local server.
"""

from __future__ import annotations

import http.server
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bot.adapters.sandbox.backends import BACKENDS, make_backend
from bot.adapters.sandbox.proxy import EgressProxy
from bot.adapters.sandbox.spec import SandboxBackend, SandboxSpec

ITERATIONS = 20
PAYLOAD = 64 << 20


def _median_ms(run: Callable[[], None], n: int) -> float:
    run()  # warm-up: page cache, first exec of each binary
    times = []
    for _ in range(n):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def _backend_rows(name: str, backend: SandboxBackend, workspace: Path, bare_ms: float) -> str:
    spec = SandboxSpec(workspace, ("out/*",))

    def create_destroy() -> None:
        backend.start(spec).close()

    cycle_ms = _median_ms(create_destroy, ITERATIONS)
    with backend.start(spec) as box:

        def call() -> None:
            result = box.exec(["cat", "file.txt"])
            assert result.exit_code == 0, result

        call_ms = _median_ms(call, ITERATIONS)
    return (
        f"sandbox {name:<6} create+destroy {cycle_ms:7.1f} ms; tool call (cat) {call_ms:6.1f} ms "
        f"= {call_ms / bare_ms:5.1f}x bare subprocess.run ({bare_ms:.1f} ms)"
    )


class _Blob(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(PAYLOAD))
        self.end_headers()
        chunk = b"x" * (1 << 20)
        for _ in range(PAYLOAD // len(chunk)):
            self.wfile.write(chunk)

    def log_message(self, *args: object) -> None:
        pass


def _download(via: tuple[str, int], port: int, proxied: bool) -> None:
    with socket.create_connection(via) as s:
        if proxied:
            s.sendall(f"CONNECT localhost:{port} HTTP/1.1\r\n\r\n".encode())
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
        s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        got = 0
        while chunk := s.recv(1 << 20):
            got += len(chunk)
    assert got > PAYLOAD, got


def _proxy_row() -> str:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Blob)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        with EgressProxy([f"localhost:{port}"], private_ok=("127.0.0.1/32",)) as proxy:
            via = proxy.serve_tcp()
            direct_ms = _median_ms(lambda: _download(("127.0.0.1", port), port, False), 5)
            proxied_ms = _median_ms(lambda: _download(via, port, True), 5)
    finally:
        server.shutdown()
        server.server_close()
    mb = PAYLOAD / (1 << 20)
    direct, proxied = mb / direct_ms * 1000, mb / proxied_ms * 1000
    return (
        f"egress proxy {proxied:7.0f} MiB/s vs direct {direct:7.0f} MiB/s "
        f"= {proxied / direct:.2f}x ({mb:.0f} MiB over CONNECT)"
    )


def main() -> None:
    workspace = Path(tempfile.mkdtemp(prefix="agentplane-bench-"))
    try:
        target = workspace / "file.txt"
        target.write_text("hello from the workspace\n" * 40)
        bare_ms = _median_ms(
            lambda: subprocess.run(["cat", str(target)], check=True, capture_output=True),
            ITERATIONS,
        )
        for name in BACKENDS:
            backend = make_backend(name)
            ok, why = backend.available()
            print(_backend_rows(name, backend, workspace, bare_ms) if ok else f"{name}: {why}")
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    print(_proxy_row())


if __name__ == "__main__":
    main()
