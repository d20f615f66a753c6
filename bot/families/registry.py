"""The tool families an engine runs by default, in order.

Order matters in two places: tools are offered to the model in it, and a proposal's
parts are applied in it, so a family whose apply can be undone (a commit on a run
branch) comes before one whose apply cannot (a released request): a refusal of the
first then leaves nothing sent.
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.families.ask.family import AskFamily
from bot.families.browser.family import BrowserFamily
from bot.families.documents.family import DocumentsFamily
from bot.families.filesystem.family import FilesystemFamily
from bot.families.interface import ToolFamily
from bot.families.mcp.family import McpFamily
from bot.families.shell.family import ShellFamily
from bot.families.sql.family import SqlFamily


def default_families() -> tuple[ToolFamily, ...]:
    # Documents stage no part of their own (their edits ride in the filesystem patch), so
    # their place only orders the tools the model is offered.
    return (
        FilesystemFamily(),
        ShellFamily(),
        AskFamily(),
        DocumentsFamily(),
        SqlFamily(),
        # MCP calls are released like browser requests (they may act outside the repo).
        McpFamily(),
        BrowserFamily(),
    )


def tool_names(families: Iterable[ToolFamily]) -> tuple[str, ...]:
    """Every job-file tool name the families serve, in order."""
    return tuple(dict.fromkeys(c for f in families for c in f.capabilities))
