"""`agentplane mcp`: an MCP server whose tools are agentplane's front door.

Tools: list jobs, show a job's plan, start a run, a run's status and evidence, answer a
clarification. Approval is never a tool: the gate stays where policy puts it (a PR review,
the terminal), so an agent in a chat panel cannot approve its own work. The caller is who
the transport says: over stdio, the local git identity (the same person the terminal
door would record); over HTTP, the person the bearer token stands for (bot.doors.mcp.http).
Every run goes through Engine.request(..., door="mcp") and start, and its record names the
client (clientInfo) and, over HTTP, the token's name in door_ref.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer

from bot.core.errors import AgentplaneError
from bot.core.record import DoorRef, RunRecord
from bot.core.render import render_evidence, render_plan
from bot.run.engine import Engine

MAX_PROMPT = 20_000
MAX_ANSWER = 20_000
JOBS_DIR = ".agentplane/jobs"


class _Session(Protocol):
    @property
    def client_params(self) -> Any: ...


def client_of(ctx: Context[Any, Any] | None) -> str | None:
    """`name/version` from the client's initialize request, bounded; None if it sent none."""
    if ctx is None:
        return None
    params = getattr(ctx.session, "client_params", None)
    info = getattr(params, "client_info", None)
    if info is None:
        return None
    return f"{info.name}/{info.version}"[:200]


def _status(rec: RunRecord) -> dict[str, Any]:
    return {
        "run_id": rec.run_id,
        "job": rec.job_name,
        "state": rec.state,
        "reason": rec.transitions[-1].reason if rec.transitions else "",
        "door": rec.door,
        "question": rec.question.text if rec.question else None,
        "approve_with": "a PR review or `agentplane approve RUN` by an allowed approver; "
        "never this door",
    }


@dataclass(frozen=True)
class Caller:
    """Who the transport vouches for: the person, and over HTTP the token's name."""

    person: str
    token: str | None = None


WhoIs = Callable[[Context[Any, Any] | None], Caller]
"""The caller of one request, from its transport; raises AgentplaneError when there is none."""


def local_user(engine: Engine) -> WhoIs:
    """stdio: the local git identity, as the terminal door records it."""
    return lambda ctx: Caller(engine.repo.identity())


def build(
    engine: Engine,
    who: WhoIs,
    *,
    token_verifier: TokenVerifier | None = None,
    auth: AuthSettings | None = None,
) -> MCPServer:
    """The server for one repository; who(ctx) is the caller the transport vouches for."""
    server = MCPServer("agentplane", token_verifier=token_verifier, auth=auth)

    def fail(exc: AgentplaneError) -> str:
        return f"ERROR: {engine.redactor(str(exc))}"

    @server.tool()
    def list_jobs() -> list[str]:
        """The jobs committed on the current HEAD (.agentplane/jobs)."""
        commit = engine.repo.head_commit()
        files = engine.repo.read_dir(commit, JOBS_DIR, (".yaml", ".yml"))
        return [path.rsplit("/", 1)[-1].rsplit(".", 1)[0] for path, _ in files]

    @server.tool()
    def show_plan(job: str, ctx: Context[Any, Any], prompt: str | None = None) -> str:
        """What policy grants, denies and gates for a job, each with its rule."""
        try:
            caller = who(ctx)
            req = engine.request(job, prompt=_bounded(prompt), door="mcp", requester=caller.person)
            return render_plan(engine.plan(req), engine.redactor)
        except AgentplaneError as exc:
            return fail(exc)

    @server.tool()
    def start_run(job: str, ctx: Context[Any, Any], prompt: str | None = None) -> dict[str, Any]:
        """Plan and propose a run of a job in its sandbox; it waits for approval elsewhere."""
        try:
            caller = who(ctx)
            req = engine.request(job, prompt=_bounded(prompt), door="mcp", requester=caller.person)
            ref = DoorRef(repo=req.repo, client=client_of(ctx), token=caller.token)
            rec = engine.start(req, door_ref=ref)
        except AgentplaneError as exc:
            return {"error": fail(exc)}
        return _status(rec)

    @server.tool()
    def run_status(run_id: str) -> dict[str, Any]:
        """A run's state, why, and any open question."""
        try:
            return _status(engine.load(run_id))
        except AgentplaneError as exc:
            return {"error": fail(exc)}

    @server.tool()
    def run_evidence(run_id: str) -> str:
        """What a reviewer reads: every tool call with its decision and rule, the diff, and
        each family's evidence."""
        try:
            rec = engine.load(run_id)
        except AgentplaneError as exc:
            return fail(exc)
        return render_evidence(rec, engine.patch(rec), engine.evidence(rec), engine.redactor)

    @server.tool()
    def answer(run_id: str, text: str, ctx: Context[Any, Any]) -> dict[str, Any]:
        """Answer a run's open question (as the caller); the run resumes where it stopped."""
        if len(text) > MAX_ANSWER:
            return {"error": f"ERROR: an answer is at most {MAX_ANSWER} characters"}
        try:
            return _status(engine.answer(run_id, who(ctx).person, text))
        except AgentplaneError as exc:
            return {"error": fail(exc)}

    return server


def _bounded(prompt: str | None) -> str | None:
    if prompt is not None and len(prompt) > MAX_PROMPT:
        raise _TooLong(f"a prompt is at most {MAX_PROMPT} characters")
    return prompt


class _TooLong(AgentplaneError):
    pass
