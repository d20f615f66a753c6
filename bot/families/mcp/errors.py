"""The MCP family's errors: each says what to change (policy, the host, the server)."""

from __future__ import annotations

from bot.families.interface import FamilyError


class McpError(FamilyError):
    """An MCP server could not be started or answered badly; the message says how to fix it."""
