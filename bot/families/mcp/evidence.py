"""The MCP evidence section: each held call with its arguments (as the record keeps them,
redacted), the rule that held it, and the digest an approval binds."""

from __future__ import annotations

from collections.abc import Sequence

from bot.core.record import ProposalPart

MAX_SHOWN = 2000


def render_mcp_evidence(parts: Sequence[ProposalPart]) -> str:
    lines: list[str] = []
    for part in parts:
        d = part.detail
        arguments = str(d.get("arguments", ""))
        if len(arguments) > MAX_SHOWN:
            arguments = arguments[:MAX_SHOWN] + " [...]"
        lines += [
            f"held: {d.get('server')}.{d.get('tool')} ({', '.join(part.actions)})",
            f"  arguments: {arguments}",
            f"  rule: {d.get('rule')}: {d.get('reason')}",
            f"  digest: {part.digest}",
        ]
    lines.append("Apply makes each approved call exactly once; nothing else is sent.")
    return "\n".join(lines)
