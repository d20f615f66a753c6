"""Real MCP servers nobody on this team wrote, as policy's servers: mcp-server-time, and
mcp-server-fetch behind the egress proxy against real HTTP/1.1 witnesses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.adapters.git import GitRepo
from bot.adapters.sandbox.bwrap import BwrapBackend
from bot.run.engine import Engine
from tests.conftest import Scripted
from tests.families.mcp.conftest import LOOPBACK, grant_mcp, venv_server
from tests.support.witness import Witness


def call(server: str, tool: str, **arguments: Any) -> dict[str, Any]:
    return {"tool_calls": [{"name": f"mcp__{server}__{tool}", "arguments": arguments}]}


def _job(scripted_job: Scripted, name: str, turns: list[dict[str, Any]]) -> str:
    return scripted_job(
        name, turns, tools=["mcp"], scope={}, prompt="report what you find; done when reported"
    )


def test_mcp_server_time_answers_what_policy_allows_and_never_sees_what_it_denies(
    demo_repo: Path, scripted_job: Scripted
) -> None:
    server = venv_server(
        ["python3", "-m", "mcp_server_time", "--local-timezone", "UTC"],
        # The server marks both read-only; policy still denies one.
        {"get_current_time": "allow", "convert_time": "deny"},
    )
    grant_mcp(demo_repo, {"time": server})
    job = _job(
        scripted_job,
        "mcp-time",
        [
            call("time", "get_current_time", timezone="Europe/Paris"),
            call(
                "time",
                "convert_time",
                source_timezone="UTC",
                time="12:00",
                target_timezone="Asia/Tokyo",
            ),
            {"content": "it is some time in Paris"},
        ],
    )
    e = Engine(GitRepo(demo_repo), BwrapBackend())
    rec = e.start(e.request(job))
    now, convert = rec.tool_calls[-2:]
    assert now.decision == "allow" and '"timezone": "Europe/Paris"' in now.result, now.result
    assert now.rule.endswith("#mcp_servers.time.tools.get_current_time")
    assert convert.decision == "deny"
    assert convert.rule.endswith("#mcp_servers.time.tools.convert_time")
    assert "Asia/Tokyo" not in convert.result
    assert rec.proposal is None or not rec.proposal.parts
    assert rec.egress == []  # the time server has no network at all


def test_mcp_server_fetch_goes_through_the_egress_proxy_and_a_denied_site_never_hears_of_it(
    demo_repo: Path, scripted_job: Scripted
) -> None:
    with Witness() as site, Witness() as elsewhere:
        server = venv_server(
            # Private addresses are the proxy's to judge: the sandbox has no other way out.
            ["python3", "-m", "mcp_server_fetch", "--ignore-robots-txt", "--allow-private-ips"],
            {"fetch": "allow"},
            network=[f"127.0.0.1:{site.port}"],
            private_networks=LOOPBACK,
        )
        grant_mcp(demo_repo, {"fetch": server})
        job = _job(
            scripted_job,
            "mcp-fetch",
            [
                # raw: the page as served. Simplifying HTML runs readabilipy, which on a
                # host with Node tries to npm-install its script (denied by the proxy).
                call("fetch", "fetch", url=f"{site.url}/plain", raw=True),
                call("fetch", "fetch", url=f"{elsewhere.url}/secret", raw=True),
                {"content": "fetched one page"},
            ],
        )
        e = Engine(GitRepo(demo_repo), BwrapBackend())
        rec = e.start(e.request(job))
        fetched, refused = rec.tool_calls[-2:]
        assert fetched.decision == "allow" and "<h1>plain</h1>" in fetched.result, fetched.result
        # The tool was allowed; the proxy refused the site, so the fetch failed.
        assert refused.decision == "allow" and not refused.ok, refused
        assert [str(h) for h in site.hits] == ["GET /plain"]
        assert elsewhere.hits == []
        judged = {(g.port, g.decision, g.method) for g in rec.egress if g.by == "mcp:fetch"}
        assert (site.port, "allow", "GET") in judged, rec.egress
        assert any(port == elsewhere.port and d == "deny" for port, d, _ in judged), judged
