"""A real remote MCP server for the tests: mcp-server-time behind mcp-streamablehttp-proxy
(both from PyPI, nobody here wrote them), served over streamable HTTP by uvicorn.

In front of it, a gate stands where its deployment puts a reverse proxy (the proxy's own
README leaves authentication to one): it answers 401 to a request without the bearer
token, and keeps every request it received, so a test counts from the server's side
what reached it and with which credential.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from mcp_streamablehttp_proxy.proxy import create_app

Scope = dict[str, Any]
Message = dict[str, Any]


@dataclass(frozen=True)
class Hit:
    method: str
    authorization: str
    body: bytes

    def rpc(self) -> dict[str, Any]:
        try:
            value = json.loads(self.body) if self.body else {}
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}


@dataclass
class Gate:
    """Bearer authentication in front of the server, and the requests it saw."""

    app: Any
    token: str
    hits: list[Hit] = field(default_factory=list)
    phase: str = "propose"
    phases: list[str] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        received: list[Message] = []
        more = True
        while more:
            message = await receive()
            received.append(message)
            more = bool(message.get("more_body"))
        headers = dict(scope["headers"])
        hit = Hit(
            scope["method"],
            headers.get(b"authorization", b"").decode(),
            b"".join(m.get("body", b"") for m in received),
        )
        self.hits.append(hit)
        self.phases.append(self.phase)
        if hit.authorization != f"Bearer {self.token}":
            await send({"type": "http.response.start", "status": 401, "headers": []})
            await send({"type": "http.response.body", "body": b"a bearer token is required"})
            return
        replay = iter(received)

        async def again() -> Message:
            return next(replay, None) or await receive()

        await self.app(scope, again, send)

    def calls(self, phase: str) -> list[tuple[str, dict[str, Any]]]:
        """(tool, arguments) of each tools/call that reached the server in a phase."""
        out = []
        for hit, when in zip(self.hits, self.phases, strict=True):
            rpc = hit.rpc()
            if when == phase and rpc.get("method") == "tools/call":
                out.append((rpc["params"]["name"], rpc["params"].get("arguments") or {}))
        return out


@dataclass
class Remote:
    url: str
    port: int
    gate: Gate


@contextmanager
def remote_time_server(token: str) -> Iterator[Remote]:
    app = create_app([sys.executable, "-m", "mcp_server_time", "--local-timezone", "UTC"])
    gate = Gate(app, token)
    config = uvicorn.Config(gate, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the remote MCP server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Remote(f"http://127.0.0.1:{port}/mcp", port, gate)
    finally:
        server.should_exit = True
        thread.join(20)
