"""A held MCP call: the exact call (server, tool, arguments) that apply makes once."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict

from bot.core.canonical import canonical_json, digest_of
from bot.core.record import ProposalPart

FAMILY = "mcp"
HELD_CALL = "held_call"
MAX_ARGUMENTS_BYTES = 64 * 1024


class HeldCall(BaseModel):
    model_config = ConfigDict(frozen=True)
    seq: int
    server: str
    tool: str
    arguments: dict[str, Any]
    action: str
    rule: str
    reason: str
    backend: str = ""
    """The sandbox backend the job ran the server under (apply starts it under the same);
    not part of what an approval binds. Empty in records made before it was kept."""

    def digest(self) -> str:
        """What an approval binds: the server, the tool and the exact arguments."""
        return digest_of({"server": self.server, "tool": self.tool, "arguments": self.arguments})

    @property
    def artifact_name(self) -> str:
        return f"mcp-held-{self.seq}.json"

    def artifact(self) -> bytes:
        return canonical_json(self.model_dump(mode="json"))

    def part(self) -> ProposalPart:
        return ProposalPart(
            family=FAMILY,
            kind=HELD_CALL,
            digest=self.digest(),
            actions=[self.action],
            summary=f"the held MCP call {self.server}.{self.tool}",
            detail={
                "server": self.server,
                "tool": self.tool,
                # Display only: the stored record redacts it; apply uses the artifact.
                "arguments": json.dumps(self.arguments, sort_keys=True, ensure_ascii=False),
                "artifact": self.artifact_name,
                "rule": self.rule,
                "reason": self.reason,
            },
        )
