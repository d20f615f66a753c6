"""A remote MCP server (streamable HTTP), reached by the broker from the host only.

Policy names the endpoint and the headers it needs, each value from a broker credential;
the job's sandbox never reaches the server and never holds the credential. The SDK's own
streamable HTTP client speaks the protocol (it follows a redirect only within the
endpoint's origin); this module gives it an HTTP client whose every response is bounded
in bytes and in time, and that logs each request it makes for the run record.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from urllib.parse import urlsplit

import httpx2
from mcp.client._transport import TransportStreams
from mcp.client.streamable_http import streamable_http_client

from bot.adapters.sandbox.spec import EgressEvent
from bot.core.policy import McpServerPolicy
from bot.families.mcp.errors import McpError
from bot.families.mcp.stdio import Transcript


def credential_env(name: str) -> str:
    return "AGENTPLANE_CREDENTIAL_" + name.upper().replace("-", "_").replace(".", "_")


def remote_headers(
    name: str, policy: McpServerPolicy, environ: Mapping[str, str]
) -> tuple[dict[str, str], list[str]]:
    """(headers, secret values) for a remote server, from the host's broker credentials."""
    headers: dict[str, str] = {}
    secrets: list[str] = []
    for header, source in policy.headers.items():
        host_var = credential_env(source.credential)
        value = environ.get(host_var)
        if not value:
            raise McpError(
                f"MCP server {name!r} needs credential {source.credential!r} for its "
                f"{header} header: set ${host_var} on the host that runs agentplane (the "
                "broker sends it; the job's sandbox never sees it)"
            )
        headers[header] = source.prefix + value
        secrets += [value, headers[header]]
    return headers, secrets


_HINTS = {
    401: " (it refused the credential: check the broker credential policy's headers name)",
    403: " (the credential may not use this server)",
    404: " (no MCP endpoint at that path: check policy's url)",
}


class _Bounded(httpx2.AsyncByteStream):
    """A response body that stops at `limit` bytes: the SDK reads a JSON answer whole."""

    def __init__(self, inner: httpx2.AsyncByteStream, limit: int, transcript: Transcript) -> None:
        self.inner = inner
        self.limit = limit
        self.transcript = transcript

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self.inner:
            seen += len(chunk)
            if seen > self.limit:
                self.transcript.failure = (
                    f"the server answered more than {self.limit} bytes in one response "
                    "(policy's max_message_bytes); it was cut off"
                )
                raise httpx2.ReadError(self.transcript.failure)
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


class _Logged(httpx2.AsyncBaseTransport):
    """Every request the broker makes to the server: bounded, and logged like egress."""

    def __init__(
        self, name: str, policy: McpServerPolicy, log: list[EgressEvent], transcript: Transcript
    ) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.name = name
        self.policy = policy
        self.log = log
        self.transcript = transcript

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        began = time.monotonic()
        try:
            response = await self.inner.handle_async_request(request)
        except httpx2.HTTPError as exc:
            self.log.append(
                self._event(request, began, "unreachable", f"{type(exc).__name__}: {exc}")
            )
            raise
        status = response.status_code
        self.log.append(self._event(request, began, "allow", f"answered {status}"))
        if request.method == "POST" and status >= 400:
            # The SDK reports only "an error response"; the status is what a user acts on.
            self.transcript.failure = f"the server answered HTTP {status}{_HINTS.get(status, '')}"
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        # Only a message's answer (POST) says why a call failed; the GET stream reconnects.
        transcript = self.transcript if request.method == "POST" else Transcript()
        response.stream = _Bounded(response.stream, self.policy.max_message_bytes, transcript)
        return response

    def _event(
        self, request: httpx2.Request, began: float, decision: str, reason: str
    ) -> EgressEvent:
        url = request.url
        return EgressEvent(
            host=url.host,
            port=url.port or (443 if url.scheme == "https" else 80),
            decision=decision,
            rule=f"mcp_servers.{self.name}.url",
            duration_ms=(time.monotonic() - began) * 1000,
            method=request.method,
            # Without the query: it is the server's business, and may carry a session key.
            url=str(url.copy_with(query=None, fragment=None)),
            reason=reason[:300],
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


@contextlib.asynccontextmanager
async def remote_transport(
    name: str,
    policy: McpServerPolicy,
    headers: dict[str, str],
    log: list[EgressEvent],
    transcript: Transcript,
) -> AsyncIterator[TransportStreams]:
    """The session's streams to policy's endpoint, over a client only this server uses."""
    assert policy.url is not None
    timeout = httpx2.Timeout(policy.timeout_seconds)
    client = httpx2.AsyncClient(
        headers=headers,
        timeout=timeout,
        transport=_Logged(name, policy, log, transcript),
        follow_redirects=False,
    )
    async with (
        client,
        streamable_http_client(
            policy.url, http_client=client, max_sse_event_size=policy.max_message_bytes
        ) as streams,
    ):
        yield streams


def endpoint(policy: McpServerPolicy) -> str:
    """The endpoint as error messages name it: scheme, host, port and path."""
    parts = urlsplit(policy.url or "")
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
