"""The documents tools on a temporary workspace, called as the broker calls them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.families.base import ToolOutcome
from bot.families.documents.tools import DocumentTools
from tests.support.postgres import Cluster, ClusterUnavailable, cluster

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


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    # The same real primary and standby the SQL family's tests use.
    try:
        with cluster() as c:
            yield c
    except ClusterUnavailable as exc:
        pytest.skip(str(exc))
