"""The documents tools on a temporary workspace, called as the broker calls them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.families.base import ToolOutcome
from bot.families.documents.tools import DocumentTools

Call = Callable[..., ToolOutcome]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    return ws


@pytest.fixture
def call(workspace: Path) -> Call:
    """call(tool, **arguments): the tool's handler on the workspace."""
    specs = {s.name: s for s in DocumentTools(workspace).specs()}

    def run(tool: str, **arguments: Any) -> ToolOutcome:
        return specs[tool].handler(arguments)

    return run


