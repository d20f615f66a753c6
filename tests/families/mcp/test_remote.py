"""A remote MCP server (policy's `url`, streamable HTTP): the broker reaches it from the host
with the credential policy names; the job's sandbox neither reaches it nor holds the
credential; every call is decided per tool; the credential is in no record or evidence."""

from __future__ import annotations

import contextlib
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.git import GitRepo
from bot.adapters.sandbox.bwrap import BwrapBackend
from bot.core.policy import McpServerPolicy
from bot.core.render import render_evidence
from bot.demo.code import MAINTAINER
from bot.families.mcp.connection import Connection
from bot.families.mcp.errors import McpError
from bot.run.engine import Engine
from tests.conftest import Scripted
from tests.families.mcp.conftest import grant_mcp
from tests.families.mcp.remote_server import Remote, remote_time_server
from tests.families.mcp.test_third_party import call

TOKEN = "remote-mcp-token-93c1d7e2"
"""A value nothing else in these tests holds: found anywhere, it leaked."""


@pytest.fixture
def remote(monkeypatch: pytest.MonkeyPatch) -> Iterator[Remote]:
    monkeypatch.setenv("AGENTPLANE_CREDENTIAL_TIME_TOKEN", TOKEN)
    with remote_time_server(TOKEN) as server:
        yield server


def remote_policy(url: str, **more: Any) -> dict[str, Any]:
    return {
        "url": url,
        "headers": {"Authorization": {"credential": "time-token", "prefix": "Bearer "}},
        "tools": {
            "get_current_time": "allow",
            "convert_time": {"decision": "needs_approval", "action": "submit"},
        },
        "timeout_seconds": 30,
        **more,
    }


def audit_objects(repo: Path) -> bytes:
    """Every object the audit branch reaches: commit messages, trees, blobs."""
    listed = subprocess.run(
        ["git", "rev-list", "--objects", "refs/heads/agentplane/audit"],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    ids = "\n".join(o for o in listed if len(o) == 40) + "\n"
    return subprocess.run(
        ["git", "cat-file", "--batch"],
        cwd=repo,
        input=ids.encode(),
        check=True,
        capture_output=True,
    ).stdout


def test_the_broker_reaches_a_remote_server_with_its_credential_and_the_sandbox_does_neither(
    demo_repo: Path, scripted_job: Scripted, remote: Remote
) -> None:
    grant_mcp(demo_repo, {"time": remote_policy(remote.url)})
    probe = (
        "env; python3 -c \"import urllib.request as u; u.urlopen('"
        + remote.url
        + "', timeout=3)\" 2>&1 | tail -1"
    )
    job = scripted_job(
        "mcp-remote",
        [
            call("time", "get_current_time", timezone="Europe/Paris"),
            call(
                "time",
                "convert_time",
                source_timezone="UTC",
                time="12:00",
                target_timezone="Asia/Tokyo",
            ),
            call("time", "set_time", time="12:00"),  # the server lists no such tool
            # The server echoes a bad zone in its error: here, the credential itself.
            call("time", "get_current_time", timezone=TOKEN),
            {"tool_calls": [{"name": "shell", "arguments": {"command": probe}}]},
            {"content": "it is some time in Paris; the conversion waits for approval"},
        ],
        tools=["mcp", "shell"],
        scope={},
        prompt="tell the time; done when told",
    )
    e = Engine(GitRepo(demo_repo), BwrapBackend())
    rec = e.start(e.request(job))
    assert rec.state == "awaiting_approval", rec.transitions[-1]
    now, convert, unknown, echoed, shell = rec.tool_calls[-5:]
    assert now.decision == "allow" and '"timezone": "Europe/Paris"' in now.result, now.result
    assert now.rule.endswith("#mcp_servers.time.tools.get_current_time")
    assert convert.decision == "needs_approval" and "HELD" in convert.result
    assert unknown.decision == "deny"
    assert "Invalid timezone" in echoed.result and TOKEN not in echoed.result, echoed.result
    assert TOKEN not in str(echoed.arguments)
    # The job's sandbox has no route to the server and no credential in its environment.
    assert TOKEN not in shell.result and "AGENTPLANE_CREDENTIAL" not in shell.result
    assert "URLError" in shell.result or "Errno" in shell.result, shell.result
    # From the server's side: only the allowed call arrived, each request with the token;
    # nothing unauthenticated (the sandbox's attempt never got there).
    assert remote.gate.calls("propose") == [
        ("get_current_time", {"timezone": "Europe/Paris"}),
        ("get_current_time", {"timezone": TOKEN}),
    ]
    assert remote.gate.hits and {h.authorization for h in remote.gate.hits} == {f"Bearer {TOKEN}"}
    # The broker's requests are in the record like egress, by the family, without the token.
    made = [g for g in rec.egress if g.by == "mcp:time"]
    assert made and {(g.host, g.port, g.decision) for g in made} == {
        ("127.0.0.1", remote.port, "allow")
    }
    remote.gate.phase = "apply"
    done = e.decide(rec.run_id, MAINTAINER[1], "approve")
    assert done.kind == "applied", done.reason
    assert remote.gate.calls("apply") == [
        (
            "convert_time",
            {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"},
        )
    ]
    final = e.load(rec.run_id)
    evidence = render_evidence(final, e.patch(final), e.evidence_sections(final), e.redactor)
    assert TOKEN not in evidence
    assert TOKEN.encode() not in audit_objects(demo_repo)


def test_a_remote_server_without_its_credential_on_the_host_fails_the_run_with_how_to_fix_it(
    demo_repo: Path, scripted_job: Scripted, remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AGENTPLANE_CREDENTIAL_TIME_TOKEN")
    grant_mcp(demo_repo, {"time": remote_policy(remote.url)})
    job = scripted_job(
        "mcp-remote-nocred",
        [call("time", "get_current_time", timezone="UTC"), {"content": "done"}],
        tools=["mcp"],
        scope={},
        prompt="tell the time; done when told",
    )
    e = Engine(GitRepo(demo_repo), BwrapBackend())
    rec = e.start(e.request(job))
    assert rec.state == "failed"
    assert "$AGENTPLANE_CREDENTIAL_TIME_TOKEN" in rec.transitions[-1].reason
    assert remote.gate.hits == []  # nothing was sent without it


def test_a_remote_server_that_refuses_the_credential_fails_the_run_naming_the_endpoint(
    demo_repo: Path, scripted_job: Scripted, remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTPLANE_CREDENTIAL_TIME_TOKEN", "a-stale-token")
    grant_mcp(demo_repo, {"time": remote_policy(remote.url)})
    job = scripted_job(
        "mcp-remote-refused",
        [call("time", "get_current_time", timezone="UTC"), {"content": "done"}],
        tools=["mcp"],
        scope={},
        prompt="tell the time; done when told",
    )
    e = Engine(GitRepo(demo_repo), BwrapBackend())
    rec = e.start(e.request(job))
    assert rec.state == "failed"
    reason = rec.transitions[-1].reason
    assert remote.url in reason and "401" in reason, reason
    assert "a-stale-token" not in reason


class _Huge(BaseHTTPRequestHandler):
    """Answers every POST with 8 MiB of JSON: one response a broker must not hold whole."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        body = b'{"jsonrpc": "2.0", "id": 1, "result": "' + b"x" * (8 << 20) + b'"}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        with contextlib.suppress(OSError):  # the broker hangs up once past its bound
            self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_remote_answer_over_the_bound_is_cut_off_with_policys_name_for_it() -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Huge)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/mcp"
        policy = McpServerPolicy.model_validate(
            {"url": url, "tools": {"t": "allow"}, "max_message_bytes": 64 << 10}
        )
        with pytest.raises(McpError) as err:
            Connection("huge", policy, {}, None).close()
        assert "more than 65536 bytes in one response" in str(err.value), err.value
        assert "max_message_bytes" in str(err.value)
    finally:
        httpd.shutdown()
        httpd.server_close()
