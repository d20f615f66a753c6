"""The MCP family: the tools of the MCP servers policy grants a job type, through the broker.

Policy (never the job file) names the servers a job type may use and, per tool, allow,
deny or needs_approval; the servers' annotations can only tighten that (bot.families.mcp
.decide). A local server runs in a sandbox of its own under the job's backend
(bot.families.mcp.connection); a remote one is reached by the broker from the host
(bot.families.mcp.remote). A call that needs approval is not made: it is held as a
proposal part (tool and argument digest), and apply makes exactly that call, once (a
local server with its workdir writable).
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.adapters.sandbox.backends import DEFAULT, get_backend
from bot.adapters.sandbox.spec import SandboxBackend
from bot.core.canonical import canonical_json
from bot.core.errors import SandboxError
from bot.core.policy import Policy
from bot.core.record import AppliedPart, ProposalPart
from bot.families.base import ToolSpec
from bot.families.interface import (
    ApplyContext,
    ApplyRefused,
    Artifact,
    Egress,
    EvidenceContext,
    FamilySession,
    NotGranted,
    RunContext,
    Section,
    Staged,
    ToolFamily,
    text_section,
)
from bot.families.mcp.connection import Connection, open_all
from bot.families.mcp.decide import decide_tool
from bot.families.mcp.errors import McpError
from bot.families.mcp.evidence import render_mcp_evidence
from bot.families.mcp.held import FAMILY, HELD_CALL, HeldCall
from bot.families.mcp.tools import CAPABILITY, McpTools

MASK = "[REDACTED]"


def granted_servers(policy: Policy, job_type: str) -> list[str]:
    jt = policy.job_types.get(job_type)
    return list(jt.mcp_servers) if jt else []


class _Granted(FamilySession):
    def __init__(self, ctx: RunContext, family: McpFamily) -> None:
        names = granted_servers(ctx.policy, ctx.plan.job_type)
        # The job's own backend: the one its type requires, else the one its sandbox runs in.
        backend_name = ctx.plan.backend or ctx.sandbox.backend_name or DEFAULT
        self.connections = open_all(
            names,
            ctx.policy.mcp_servers,
            ctx.environ,
            lambda _: family.backend_for(backend_name),
        )
        try:
            self.mcp = McpTools(self.connections, ctx.policy.rule, backend=backend_name)
        except BaseException:
            self.close()
            raise
        self.secrets = [s for c in self.connections for s in c.secrets]

    def tools(self) -> Sequence[ToolSpec]:
        return self.mcp.specs

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def finish(self) -> Staged:
        egress = tuple(Egress(e, f"mcp:{c.name}") for c in self.connections for e in c.egress())
        held = self.mcp.held
        artifacts = tuple(
            Artifact(h.artifact_name, h.artifact(), "application/json", "known") for h in held
        )
        return Staged(artifacts=artifacts, egress=egress, parts=tuple(h.part() for h in held))

    def close(self) -> None:
        for c in self.connections:
            c.close()
        self.connections = []


class McpFamily(ToolFamily):
    name = FAMILY
    capabilities = (CAPABILITY,)
    gate_actions = ("submit", "delete", "commit")
    implied_actions = gate_actions

    def __init__(self, backend: SandboxBackend | None = None) -> None:
        self.backend = backend
        """None: each server runs under the job's backend (bot.adapters.sandbox.backends)."""

    def backend_for(self, name: str) -> SandboxBackend:
        if self.backend is not None:
            return self.backend
        try:
            return get_backend(name)
        except SandboxError as exc:
            raise McpError(f"cannot start MCP servers under the job's {name}: {exc}") from None

    def open(self, ctx: RunContext) -> FamilySession:
        if CAPABILITY not in ctx.plan.granted("tool"):
            return NotGranted()
        if not granted_servers(ctx.policy, ctx.plan.job_type):
            return NotGranted()
        return _Granted(ctx, self)

    def apply(self, part: ProposalPart, ctx: ApplyContext) -> AppliedPart:
        """Make the one approved call, after checking it is the one approved and that
        policy, as it stands now, still lets this job type make it."""
        call = _held(part, ctx)
        server = ctx.policy.mcp_servers.get(call.server)
        if server is None or call.server not in granted_servers(ctx.policy, ctx.plan.job_type):
            raise ApplyRefused(
                f"policy no longer grants MCP server {call.server!r} to {ctx.plan.job_type} "
                "jobs; nothing was called"
            )
        # Apply has no job sandbox: the backend the approved plan required, else the one
        # the job ran the server under.
        name = ctx.plan.backend or call.backend or DEFAULT
        try:
            backend = None if server.remote else self.backend_for(name)
            conn = Connection(call.server, server, ctx.environ, backend, writable=True)
        except McpError as exc:
            raise ApplyRefused(f"nothing was called: {exc}") from None
        try:
            listed = {t.name: t for t in conn.list_tools()}
            tool = listed.get(call.tool)
            if tool is None:
                raise ApplyRefused(f"{call.server} no longer lists {call.tool}; nothing was called")
            rule = ctx.policy.rule(f"mcp_servers.{call.server}")
            verdict = decide_tool(call.server, server, call.tool, tool.hints, rule)
            if verdict.decision == "deny":
                raise ApplyRefused(f"{verdict.rule}: {verdict.reason} now; nothing was called")
            result = conn.call(call.tool, call.arguments)
        except McpError as exc:
            raise ApplyRefused(f"the approved call may not have been made: {exc}") from None
        finally:
            for event in conn.egress():
                ctx.log_egress(Egress(event, f"mcp:{call.server}"))
            conn.close()
        ctx.keep(
            Artifact(
                f"mcp-applied-{call.seq}.json",
                canonical_json(
                    {
                        "server": call.server,
                        "tool": call.tool,
                        "result": result.text,
                        "is_error": result.is_error,
                    }
                ),
                "application/json",
            )
        )
        if result.is_error:
            raise ApplyRefused(
                f"{call.server}.{call.tool} was called once and answered an error: "
                f"{result.text[:500]}"
            )
        first = (result.text.strip().splitlines() or ["(no output)"])[0][:200]
        return AppliedPart(
            family=self.name,
            summary=f"called {call.server}.{call.tool} once: {first}",
            details={"server": call.server, "tool": call.tool},
        )

    def unsafe_to_repeat(self, part: ProposalPart) -> str | None:
        return (
            f"while calling {part.detail.get('server')}.{part.detail.get('tool')}; it is never "
            "called again by itself: check what the server acts on"
        )

    def evidence(self, ctx: EvidenceContext) -> list[Section]:
        proposal = ctx.record.proposal
        parts = [p for p in proposal.parts if p.family == FAMILY] if proposal else []
        if not parts:
            return []
        return [text_section("MCP calls held for approval", render_mcp_evidence(parts))]


def _held(part: ProposalPart, ctx: ApplyContext) -> HeldCall:
    if part.kind != HELD_CALL:
        raise ApplyRefused(f"the mcp family applies only {HELD_CALL} parts, not {part.kind!r}")
    name = str(part.detail.get("artifact", ""))
    data = ctx.artifact_named(name)
    if data is None:
        raise ApplyRefused(f"the run's {name or 'held call'} artifact is missing; nothing called")
    call = HeldCall.model_validate_json(data)
    if call.digest() != part.digest:
        raise ApplyRefused(
            f"the stored call {call.server}.{call.tool} is not the one approved "
            f"({call.digest()} != {part.digest}); nothing was called"
        )
    return call
