"""`agentplane mcp --http`: the MCP door over streamable HTTP, for a shared bot.

The same tools as over stdio (bot.doors.mcp.server); what differs is who the caller is.
Every request carries `Authorization: Bearer <token>`; the SDK's bearer middleware asks
our verifier, which maps the token to a person through the bot's own token file
(bot.doors.mcp.tokens). An unknown or missing token is answered 401 before any tool
runs, and a session opened with one token answers only to that token (the SDK binds a
session to the credential that created it). The run's requester is the token's person,
read from the HTTP request each tool call arrived on, never from a header or argument
the client chose.

It binds 127.0.0.1 by default. Host and Origin are checked against the exact names it
serves (the SDK's DNS-rebinding protection): a web page that rebinds its own name to
127.0.0.1 is refused with 421, a cross-origin browser request with 403. Binding any other
address needs the names clients will use (`--allow-host`), so that check is never off.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import uvicorn
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import AnyHttpUrl
from starlette.applications import Starlette

from bot.core.errors import AgentplaneError
from bot.doors.mcp.server import Caller, build
from bot.doors.mcp.tokens import TokenMap
from bot.run.engine import Engine

PATH = "/mcp"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
MAX_BODY = 1 << 20
"""A request body: prompts and answers are at most 20k characters each."""
MAX_SESSIONS = 256
IDLE_SECONDS = 30 * 60


class McpDoorError(AgentplaneError):
    """The HTTP door cannot start or a request has no authenticated caller."""


class Verifier:
    """The SDK's TokenVerifier over the bot's token map."""

    def __init__(self, tokens: TokenMap) -> None:
        self.tokens = tokens

    async def verify_token(self, token: str) -> AccessToken | None:
        bearer = self.tokens.bearer(token)
        if bearer is None:
            return None
        # client_id is the token's name: a session is bound to the token that opened it.
        # The token itself is not kept (the field is required; the name stands in).
        return AccessToken(
            token=bearer.name, client_id=bearer.name, subject=bearer.person, scopes=[]
        )


def caller_of(ctx: Context[Any, Any] | None) -> Caller:
    """The person whose token authenticated the HTTP request this call came on."""
    request = ctx.request_context.request if ctx is not None else None
    scope = getattr(request, "scope", None)
    user = scope.get("user") if isinstance(scope, dict) else None
    if not isinstance(user, AuthenticatedUser) or not user.access_token.subject:
        raise McpDoorError("this request carries no authenticated token; nothing was done")
    return Caller(user.access_token.subject, user.access_token.client_id)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def accepted_hosts(host: str, port: int, allow_hosts: Sequence[str]) -> list[str]:
    """The Host header values the door answers: the loopback names on its port when
    bound to loopback, and exactly the names given for any other address."""
    if not _is_loopback(host) and not allow_hosts:
        raise McpDoorError(
            f"binding {host} exposes the door beyond this machine: name the Host clients "
            "will use with --allow-host NAME[:PORT] (DNS rebinding is refused by that "
            "check), and put TLS in front of it (tokens travel in every request)"
        )
    names = [f"{name}:{port}" for name in LOOPBACK_NAMES] if _is_loopback(host) else []
    return [*names, *allow_hosts]


def http_app(engine: Engine, tokens: TokenMap, hosts: Sequence[str]) -> Starlette:
    origins = [f"{scheme}://{h}" for h in hosts for scheme in ("http", "https")]
    server = build(
        engine,
        caller_of,
        token_verifier=Verifier(tokens),
        # Bearer tokens only: no OAuth server, no protected-resource metadata (the SDK
        # requires an issuer; nothing is served under it).
        auth=AuthSettings(issuer_url=AnyHttpUrl(f"http://{hosts[0]}"), resource_server_url=None),
    )
    return server.streamable_http_app(
        streamable_http_path=PATH,
        max_request_body_size=MAX_BODY,
        max_sessions=MAX_SESSIONS,
        session_idle_timeout=IDLE_SECONDS,
        transport_security=TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=list(hosts),
            allowed_origins=origins,
        ),
    )


class HttpDoor:
    """The door on a bound socket; serve() blocks, running() serves from a thread."""

    def __init__(
        self,
        engine: Engine,
        tokens: TokenMap,
        *,
        host: str = "127.0.0.1",
        port: int = 8765,
        allow_hosts: Sequence[str] = (),
    ) -> None:
        accepted_hosts(host, port, allow_hosts)  # refuses an unnamed public bind before binding
        family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.bind((host.strip("[]"), port))
            self.socket.listen(128)
        except OSError as exc:
            self.socket.close()
            raise McpDoorError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
        self.port = int(self.socket.getsockname()[1])
        shown = f"[{host.strip('[]')}]" if family == socket.AF_INET6 else host
        self.hosts = accepted_hosts(host, self.port, allow_hosts)
        self.url = f"http://{shown}:{self.port}{PATH}"
        config = uvicorn.Config(
            http_app(engine, tokens, self.hosts),
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
        self.server = uvicorn.Server(config)

    def serve(self) -> None:
        self.server.run(sockets=[self.socket])

    @contextlib.contextmanager
    def running(self) -> Iterator[HttpDoor]:
        thread = threading.Thread(target=self.serve, name="agentplane-mcp-http", daemon=True)
        thread.start()
        try:
            while not self.server.started and thread.is_alive():
                threading.Event().wait(0.02)
            if not self.server.started:
                raise McpDoorError("the MCP HTTP door did not start")
            yield self
        finally:
            self.server.should_exit = True
            thread.join(10)
            self.socket.close()
