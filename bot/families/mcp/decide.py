"""Pure: what the broker does with one MCP tool, from policy and the server's annotations.

Policy decides; the server's own annotations can only tighten that decision: a tool the
server marks destructive is held even where policy allows it, and a tool it marks
read-only is still held or denied where policy says so. A tool policy does not list is
denied, whatever the server says about it.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.policy import McpAction, McpDecision, McpServerPolicy

ANNOTATIONS_RULE = "mcp#annotations"
UNLISTED_RULE_SUFFIX = "tools"


@dataclass(frozen=True)
class Hints:
    """The server's annotations on a tool (MCP ToolAnnotations), None where it says nothing."""

    read_only: bool | None = None
    destructive: bool | None = None


@dataclass(frozen=True)
class McpVerdict:
    decision: McpDecision
    rule: str
    reason: str
    action: McpAction = "submit"


def decide_tool(
    server: str, policy: McpServerPolicy, tool: str, hints: Hints, rule_of: str
) -> McpVerdict:
    """rule_of is the policy rule of the server's section (`file#mcp_servers.<name>`)."""
    rule = policy.rule_for(tool)
    if rule is None:
        return McpVerdict(
            "deny",
            f"{rule_of}.tools",
            f"{server}'s tool {tool!r} is not in policy's allowlist for this server",
        )
    where = f"{rule_of}.tools.{tool}"
    if rule.decision == "deny":
        return McpVerdict("deny", where, f"policy denies {server}'s tool {tool!r}")
    if rule.decision == "needs_approval":
        return McpVerdict(
            "needs_approval", where, f"{tool} is held for approval by policy", rule.action
        )
    if hints.destructive:
        # Tightened: the server says the tool destroys; policy's "allow" cannot outweigh it.
        return McpVerdict(
            "needs_approval",
            ANNOTATIONS_RULE,
            f"{server} marks {tool} destructive (destructiveHint): held for approval "
            f"although {where} allows it",
            "delete",
        )
    return McpVerdict("allow", where, f"policy allows {server}'s tool {tool!r}")
