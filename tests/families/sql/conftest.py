"""The real primary + hot standby, built once per session, and SQL tools pointed at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bot.core.policy import SqlConnectionPolicy
from bot.families.sql.connections import SqlConnection
from bot.families.sql.evidence import SqlEvidence
from bot.families.sql.tools import SqlTools
from tests.support.postgres import Cluster

Make = Callable[..., tuple[SqlTools, list[SqlEvidence]]]


@pytest.fixture
def make_tools(pg_cluster: Cluster) -> Iterator[Make]:
    """SqlTools on one connection named `replica` (the standby unless dsn= says otherwise)."""
    made: list[SqlTools] = []

    def make(dsn: str | None = None, **policy: Any) -> tuple[SqlTools, list[SqlEvidence]]:
        conn = SqlConnection(
            "replica",
            SqlConnectionPolicy(**policy),
            "policies/default.yaml#sql_connections.replica",
            dsn or pg_cluster.standby_dsn,
        )
        evidence: list[SqlEvidence] = []
        tools = SqlTools({"replica": conn}, evidence.append)
        made.append(tools)
        return tools, evidence

    yield make
    for t in made:
        t.close()
