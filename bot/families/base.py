"""What a tool is: a name, a JSON schema for the model, a capability, and a handler."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class ToolFailure(Exception):
    """The call was allowed but failed (bad arguments, missing file): the model is told why."""


class ToolRefused(ToolFailure):
    """The tool itself refused the call under a rule (e.g. a write-shaped SQL statement)."""

    def __init__(self, rule: str, reason: str) -> None:
        self.rule = rule
        self.reason = reason
        super().__init__(f"REFUSED by {rule}: {reason}")


@dataclass(frozen=True)
class ToolOutcome:
    output: str
    mutates: bool = False
    held: str | None = None
    """The action (submit, delete...) of a request the tool holds for approval."""
    status: str = ""
    """How a command ended (`exit 0`, `exit 1`, `timed out`), for the evidence."""
    rule: str = ""
    """The finer policy rule that allowed the call (an MCP server's per-tool grant), where
    the family has one; the record shows it instead of the capability's grant."""


@dataclass(frozen=True)
class ToolSpec:
    name: str
    capability: str
    """The job-file tool that grants it (`filesystem`, `shell`, ...)."""
    description: str
    parameters: dict[str, Any]
    handler: Callable[[dict[str, Any]], ToolOutcome]
    access: Callable[[dict[str, Any]], tuple[str, str] | None] = lambda args: None
    """(kind, path) the call touches, for the broker's scope check (`read`/`write`)."""

    def schema(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


def obj(**props: dict[str, Any]) -> dict[str, Any]:
    required = [k for k, v in props.items() if not v.pop("optional", False)]
    return {
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
    }


def string(description: str, optional: bool = False) -> dict[str, Any]:
    return {"type": "string", "description": description, "optional": optional}
