"""The role a connection logs in as: anything beyond read-only grants is refused on connect."""

from __future__ import annotations

import psycopg
import pytest

from bot.families.sql.privilege import DANGEROUS_ATTRIBUTES, RoleRow, role_problems
from tests.families.sql.conftest import Make
from tests.support.postgres import (
    AGENT,
    CREATOR,
    FILE_READER,
    SHADOWED,
    SIGNALLER,
    SUPERUSER,
    Cluster,
)

OVER_PRIVILEGED = [
    (SUPERUSER, ["is a superuser"]),
    (SIGNALLER, ["is a member of pg_signal_backend, which cancels and terminates"]),
    (FILE_READER, ["is a member of pg_read_server_files, which reads any file"]),
    (CREATOR, ["can create roles", "can create databases"]),
]


@pytest.mark.parametrize(("role", "said"), OVER_PRIVILEGED)
def test_an_over_privileged_role_is_refused_before_any_statement(
    make_tools: Make, pg_cluster: Cluster, role: str, said: list[str]
) -> None:
    tools, evidence = make_tools(pg_cluster.dsn(pg_cluster.standby_port, user=role))
    marker = f"marker_{role}"  # an alias survives pg_stat_statements' normalisation
    with pytest.raises(Exception, match="REFUSED by sql#least-privilege") as info:
        tools.query({"sql": f"SELECT count(*) AS {marker} FROM shop.orders"})
    with pg_cluster.admin(pg_cluster.standby_port) as admin:
        ran = admin.execute(
            b"SELECT count(*) FROM pg_stat_statements WHERE query LIKE %s", (f"%{marker}%",)
        ).fetchone()
    message = str(info.value)
    assert f"logs in as role '{role}'" in message and "point the DSN at such a role" in message
    for phrase in said:
        assert phrase in message
    assert (evidence[-1].status, evidence[-1].rule) == ("refused", "sql#least-privilege")
    assert ran == (0,)  # the job's statement never reached the server
    # No connection is kept: each later call is refused again, not run.
    with pytest.raises(Exception, match="least-privilege"):
        tools.query({"sql": "SELECT 1"})


def test_the_read_only_agent_role_passes(make_tools: Make, pg_cluster: Cluster) -> None:
    tools, evidence = make_tools(pg_cluster.dsn(pg_cluster.standby_port, user=AGENT))
    tools.query({"sql": "SELECT 1"})
    assert evidence[-1].status == "ok"


def test_a_superuser_is_named_once_not_per_role_it_belongs_to() -> None:
    off = (False,) * len(DANGEROUS_ATTRIBUTES)
    rows = [
        RoleRow("root", "root", (True, *off[1:])),
        RoleRow("root", "pg_signal_backend", off),
        RoleRow("root", "pg_read_server_files", off),
    ]
    assert role_problems(rows) == ["is a superuser"]
    member = [RoleRow("u", "u", off), RoleRow("u", "admins", (False, True, *off[2:]))]
    assert role_problems(member) == ["is a member of admins, which can create roles"]


def test_a_builtin_name_that_a_schema_on_the_search_path_overloads_must_be_qualified(
    make_tools: Make, pg_cluster: Cluster
) -> None:
    dsn = pg_cluster.dsn(pg_cluster.standby_port, user=SHADOWED)
    with psycopg.connect(dsn) as pg:  # what a bare upper(1) would run
        assert pg.execute(b"SELECT upper(1)").fetchone() == ("shadowed",)
    tools, evidence = make_tools(dsn)
    with pytest.raises(Exception, match="REFUSED by sql#function-shadowed: upper"):
        tools.query({"sql": "SELECT upper(1)"})
    assert "write pg_catalog.upper(...)" in evidence[-1].reason
    out = tools.query({"sql": "SELECT pg_catalog.upper('x') AS u, lower('Y') AS l"}).output
    assert evidence[-1].status == "ok" and "X" in out
