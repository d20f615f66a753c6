"""The MCP tools a run's model is offered: each policy-listed tool its server lists.

Tools are named `mcp__<server>__<tool>`. A tool the server lists but policy does not is
not registered at all, so the broker denies it as unknown; a tool policy denies is
registered only to be refused with its rule, before anything reaches the server.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from bot.families.base import ToolFailure, ToolOutcome, ToolRefused, ToolSpec
from bot.families.mcp.connection import Connection, ListedTool
from bot.families.mcp.decide import decide_tool
from bot.families.mcp.held import MAX_ARGUMENTS_BYTES, HeldCall

CAPABILITY = "mcp"
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,48}$")


def tool_name(server: str, tool: str) -> str:
    return f"mcp__{server}__{tool}"


def _schema(listed: ListedTool) -> dict[str, Any]:
    schema = listed.input_schema
    if schema.get("type") != "object":
        return {"type": "object", "properties": {}}
    return schema


class McpTools:
    """The tools of the run's servers, and the calls held for approval."""

    def __init__(
        self, connections: list[Connection], rule_of: Callable[[str], str], backend: str = ""
    ) -> None:
        self.connections = connections
        self.backend = backend
        self.rule_of = rule_of
        self.held: list[HeldCall] = []
        self.specs: list[ToolSpec] = []
        for conn in connections:
            for listed in conn.list_tools():
                if conn.policy.rule_for(listed.name) is None or not _NAME.match(listed.name):
                    continue
                self.specs.append(self._spec(conn, listed))

    def _spec(self, conn: Connection, listed: ListedTool) -> ToolSpec:
        def handler(args: dict[str, Any]) -> ToolOutcome:
            return self._call(conn, listed, args)

        return ToolSpec(
            name=tool_name(conn.name, listed.name),
            capability=CAPABILITY,
            description=f"[MCP server {conn.name}] {listed.description}",
            parameters=_schema(listed),
            handler=handler,
        )

    def _call(self, conn: Connection, listed: ListedTool, args: dict[str, Any]) -> ToolOutcome:
        rule = self.rule_of(f"mcp_servers.{conn.name}")
        verdict = decide_tool(conn.name, conn.policy, listed.name, listed.hints, rule)
        if verdict.decision == "deny":
            raise ToolRefused(verdict.rule, verdict.reason)
        if verdict.decision == "needs_approval":
            return self._hold(
                conn.name, listed.name, args, verdict.action, verdict.rule, verdict.reason
            )
        result = conn.call(listed.name, args)
        if result.is_error:
            raise ToolFailure(f"{conn.name}.{listed.name} answered an error: {result.text}")
        return ToolOutcome(result.text, rule=verdict.rule)

    def _hold(
        self, server: str, tool: str, args: dict[str, Any], action: str, rule: str, reason: str
    ) -> ToolOutcome:
        call = HeldCall(
            seq=len(self.held) + 1,
            server=server,
            tool=tool,
            arguments=args,
            action=action,
            rule=rule,
            reason=reason,
            backend=self.backend,
        )
        if len(call.artifact()) > MAX_ARGUMENTS_BYTES:
            raise ToolFailure(
                f"the arguments of {server}.{tool} are over {MAX_ARGUMENTS_BYTES} bytes; "
                "a held call must be small enough for a reviewer to read"
            )
        if any(h.digest() == call.digest() for h in self.held):
            return ToolOutcome(f"{server}.{tool} with these arguments is already held")
        self.held.append(call)
        return ToolOutcome(
            f"HELD: {server}.{tool} was not called. It is staged in the proposal ({reason}); "
            "if an approver approves, agentplane makes exactly this call once.",
            mutates=True,
            held=action,
        )
