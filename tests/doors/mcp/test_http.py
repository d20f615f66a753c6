"""The MCP door over streamable HTTP: a real uvicorn server on 127.0.0.1, driven by the
SDK's own client as the chat panel, and by raw HTTP/1.1 requests for what a hostile
client or a rebinding web page would send."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import Implementation, TextContent

from bot.adapters.git import GitRepo
from bot.adapters.sandbox.bwrap import BwrapBackend
from bot.doors.cli.main import cli
from bot.doors.mcp.http_door import HttpDoor, McpDoorError
from bot.doors.mcp.tokens import add_token, load_tokens, new_token
from bot.run.engine import Engine
from tests.conftest import PROJECT

JOB = "fix-failing-test"
PANEL = Implementation(name="chat-panel", version="1.0")
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"},
    },
}


@dataclass
class Door:
    url: str
    port: int
    engine: Engine
    tokens: dict[str, str]
    """person's short name -> the bearer token their client holds."""


@pytest.fixture
def door(demo_repo: Path, tmp_path: Path) -> Iterator[Door]:
    file = tmp_path / "etc" / "mcp-tokens.yaml"
    file.parent.mkdir()
    tokens = {
        "dana": add_token(file, "dana@example.com", "dana-laptop")[0],
        "maya": add_token(file, "maya@example.com", "maya-laptop")[0],
        "eve": add_token(file, "eve@example.com", "eve")[0],
    }
    engine = Engine(GitRepo(demo_repo), BwrapBackend())
    served = HttpDoor(engine, load_tokens(file, demo_repo), port=0)
    with served.running():
        yield Door(served.url, served.port, engine, tokens)


def _text(result: Any) -> str:
    return "\n".join(b.text for b in result.content if isinstance(b, TextContent))


def panel(url: str, token: str, calls: list[tuple[str, dict[str, Any]]]) -> list[Any]:
    """The SDK's client over streamable HTTP with a bearer token: [tool names, results...]."""

    async def go() -> list[Any]:
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
        async with (
            http,
            Client(streamable_http_client(url, http_client=http), client_info=PANEL) as c,
        ):
            out: list[Any] = [[t.name for t in (await c.list_tools()).tools]]
            for name, args in calls:
                out.append(await c.call_tool(name, args))
            return out

    return anyio.run(go)


def _innermost(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def post(
    port: int, body: dict[str, Any], headers: dict[str, str]
) -> tuple[int, dict[str, str], str]:
    """One raw HTTP/1.1 POST to /mcp, with exactly the headers given (Host included)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest("POST", "/mcp", skip_host=True, skip_accept_encoding=True)
        data = json.dumps(body).encode()
        sent = {
            "Host": f"127.0.0.1:{port}",
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "Content-Length": str(len(data)),
            **headers,
        }
        for name, value in sent.items():
            conn.putheader(name, value)
        conn.endheaders(data)
        response = conn.getresponse()
        return (
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            response.read().decode(),
        )
    finally:
        conn.close()


def test_a_panel_over_http_starts_a_run_as_the_person_its_token_stands_for(door: Door) -> None:
    names, plan, started = panel(
        door.url,
        door.tokens["dana"],
        [("show_plan", {"job": JOB}), ("start_run", {"job": JOB})],
    )
    assert not any("approv" in n for n in names) and "start_run" in names
    assert "requester  dana@example.com via mcp" in _text(plan)
    status = started.structured_content
    assert status["state"] == "awaiting_approval", status
    rec = door.engine.load(status["run_id"])
    assert (rec.door, rec.requester) == ("mcp", "dana@example.com")
    assert rec.door_ref is not None
    assert (rec.door_ref.client, rec.door_ref.token) == ("chat-panel/1.0", "dana-laptop")
    # Another person's token on the same door is that person, call by call; one policy
    # does not let run, and nobody's client can approve.
    _, maya_plan, approve = panel(
        door.url,
        door.tokens["maya"],
        [("show_plan", {"job": JOB}), ("approve", {"run_id": rec.run_id})],
    )
    assert "requester  maya@example.com via mcp" in _text(maya_plan)
    assert approve.is_error
    _, eve_run = panel(door.url, door.tokens["eve"], [("start_run", {"job": JOB})])
    refused = door.engine.load(eve_run.structured_content["run_id"])
    assert (refused.requester, refused.state) == ("eve@example.com", "denied"), refused.state
    assert refused.transitions[-1].reason.endswith("requester is not in role:developer")
    assert door.engine.load(rec.run_id).approvals == []


def test_an_unknown_or_missing_token_is_answered_401_and_nothing_runs(door: Door) -> None:
    for headers in ({}, {"Authorization": f"Bearer {new_token()}"}, {"Authorization": "Basic x"}):
        status, got, body = post(door.port, INITIALIZE, headers)
        assert status == 401, (headers, body)
        assert got["www-authenticate"].startswith('Bearer error="invalid_token"')
    # The SDK's own client with a wrong token does not get as far as listing the tools.
    with pytest.raises(BaseException) as err:
        panel(door.url, new_token(), [])
    assert isinstance(_innermost(err.value), MCPError)
    status, got, _ = post(door.port, INITIALIZE, {"Authorization": f"Bearer {door.tokens['dana']}"})
    assert status == 200 and got.get("mcp-session-id")


def test_a_rebinding_host_or_a_foreign_origin_is_refused_even_with_a_token(door: Door) -> None:
    bearer = {"Authorization": f"Bearer {door.tokens['dana']}"}
    status, _, _ = post(door.port, INITIALIZE, {**bearer, "Host": f"evil.example:{door.port}"})
    assert status == 421
    status, _, _ = post(door.port, INITIALIZE, {**bearer, "Host": "127.0.0.1:1"})
    assert status == 421  # another port of the same name is not this door
    status, _, _ = post(door.port, INITIALIZE, {**bearer, "Origin": "http://evil.example"})
    assert status == 403
    ok, _, _ = post(
        door.port,
        INITIALIZE,
        {**bearer, "Host": f"localhost:{door.port}", "Origin": f"http://localhost:{door.port}"},
    )
    assert ok == 200


def test_a_session_answers_only_to_the_token_that_opened_it(door: Door) -> None:
    status, got, _ = post(door.port, INITIALIZE, {"Authorization": f"Bearer {door.tokens['dana']}"})
    assert status == 200
    session = got["mcp-session-id"]
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}
    for who in ("maya", "eve"):
        status, _, _ = post(
            door.port,
            listing,
            {
                "Authorization": f"Bearer {door.tokens[who]}",
                "Mcp-Session-Id": session,
                "Mcp-Protocol-Version": "2025-11-25",
            },
        )
        assert status == 404, who


def test_binding_beyond_loopback_needs_the_names_clients_use(
    demo_repo: Path, tmp_path: Path
) -> None:
    file = tmp_path / "tokens.yaml"
    token, _ = add_token(file, "dana@example.com")
    engine = Engine(GitRepo(demo_repo), BwrapBackend())
    tokens = load_tokens(file, demo_repo)
    with pytest.raises(McpDoorError, match="--allow-host"):
        HttpDoor(engine, tokens, host="0.0.0.0", port=0)
    named = HttpDoor(engine, tokens, host="0.0.0.0", port=0, allow_hosts=["bot.internal"])
    with named.running():
        bearer = {"Authorization": f"Bearer {token}"}
        status, _, _ = post(named.port, INITIALIZE, {**bearer, "Host": "bot.internal"})
        assert status == 200
        # Bound to every address, the loopback names are not implied.
        status, _, _ = post(named.port, INITIALIZE, {**bearer, "Host": f"127.0.0.1:{named.port}"})
        assert status == 421


def test_the_cli_makes_tokens_and_serves_http_and_refuses_a_token_file_in_the_repo(
    demo_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGENTPLANE_MCP_TOKENS_FILE", raising=False)
    file = tmp_path / "tokens.yaml"
    made = CliRunner().invoke(cli, ["mcp", "token", "dana@example.com", "--file", str(file)])
    assert made.exit_code == 0, made.output
    token = made.stdout.strip()
    assert token.startswith("agentplane_mcp_") and token not in file.read_text()
    no_file = CliRunner().invoke(cli, ["mcp", "--http", "--repo", str(demo_repo)])
    assert no_file.exit_code == 2 and "--http needs the token file" in no_file.output
    inside = demo_repo / "tokens.yaml"
    inside.write_text(file.read_text())
    refused = CliRunner().invoke(
        cli, ["mcp", "--http", "--repo", str(demo_repo), "--tokens", str(inside)]
    )
    assert refused.exit_code == 1 and "inside the repository" in refused.output
    # The real command, as a client would start it: it says where it listens.
    served = subprocess.Popen(
        [sys.executable, "-m", "bot", "mcp", "--http", "--repo", str(demo_repo), "--port", "0"],
        env={**os.environ, "PYTHONPATH": str(PROJECT), "AGENTPLANE_MCP_TOKENS_FILE": str(file)},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert served.stderr is not None
        line = served.stderr.readline()
        assert line.startswith("agentplane MCP door at http://127.0.0.1:"), line
        url = line.split(" at ", 1)[1].split(" ", 1)[0]
        names, jobs = panel(url, token, [("list_jobs", {})])
        assert JOB in _text(jobs) and "start_run" in names
    finally:
        served.kill()
        served.wait(30)
