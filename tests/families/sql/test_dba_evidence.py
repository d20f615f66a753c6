"""SQL evidence a DBA would accept (#14, section 7), on the real standby: buffers under
ANALYZE, generic plans of pg_stat_statements texts, the whole plan tree, whole
definitions, and top-N without agentplane's own statements."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot.families.sql.classify import SqlVerdict
from bot.families.sql.execute import GENERIC_ANALYZE, SqlSession
from bot.families.sql.tools import SqlTools
from bot.run.broker import Broker
from tests.families.sql.conftest import Make
from tests.support.jobs import sql_plan
from tests.support.postgres import Cluster

ORDERS_BY_CUSTOMER = "SELECT * FROM shop.orders WHERE customer_id = $1"
RECENT = "SELECT count(*) FROM shop.orders WHERE created_at > now() - interval $1"


def call(tools: SqlTools, tool: str, **args: Any) -> str:
    broker = Broker(sql_plan(), tools.specs(), lambda c: None, tools.redact)
    return broker.call(tool, json.dumps(args))


def test_analyze_shows_actual_rows_timing_and_buffers(make_tools: Make) -> None:
    tools, evidence = make_tools(allow_analyze=True)
    out = call(tools, "sql_query", sql="SELECT count(*) FROM shop.orders", analyze=True)
    assert "Plan (EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)):" in out
    assert "(actual time=" in out and "rows=300000 loops=1)" in out
    assert "Buffers: shared hit=" in out and "Planning Time:" in out
    assert evidence[-1].explain == "ANALYZE, BUFFERS, FORMAT JSON" and evidence[-1].analyze


def test_parameterised_texts_get_a_generic_plan(make_tools: Make) -> None:
    tools, evidence = make_tools()
    top = call(tools, "top_queries", order_by="calls", limit=50)
    texts = [r[-1] for r in evidence[-1].rows]
    assert ORDERS_BY_CUSTOMER in texts and RECENT in texts, top
    for sql in (ORDERS_BY_CUSTOMER, f"EXPLAIN {ORDERS_BY_CUSTOMER}", RECENT, ORDERS_BY_CUSTOMER):
        out = call(tools, "sql_query", sql=sql)
        assert "bind message" not in out and not out.startswith("ERROR"), out
        assert "note: generic plan" in out, out
        assert "Filter: (customer_id = $1)" in out or "created_at > (now() - $1)" in out, out
        assert evidence[-1].status == "ok" and evidence[-1].rows == []
    # The typed literal pg_stat_statements leaves (`interval $1`) is what the server refuses.
    assert "CAST($1 AS interval)" in evidence[-2].sql and "typed literal" in evidence[-2].notes[0]
    # The prepared statement is gone after each call, so the session carries on as before.
    assert "1 row(s)" in call(tools, "sql_query", sql="SELECT 1")


def test_generic_plan_failures_say_what_to_do(make_tools: Make) -> None:
    tools, evidence = make_tools(allow_analyze=True)
    out = call(tools, "sql_query", sql=ORDERS_BY_CUSTOMER, analyze=True)
    assert out == f"ERROR: {GENERIC_ANALYZE}" and evidence[-1].status == "error"
    out = call(tools, "sql_query", sql="SELECT * FROM shop.orders WHERE $1 IS NULL")
    assert "could not determine data type of parameter $1" in out and "cast it" in out
    assert "1 row(s)" in call(tools, "sql_query", sql="SELECT 1")


def test_generic_plans_need_postgresql_12(make_tools: Make) -> None:
    class Old:
        class info:  # stands in for psycopg's ConnectionInfo
            server_version = 110000

    tools, _ = make_tools()
    session: SqlSession = tools.sessions["replica"]
    verdict = SqlVerdict(True, "sql#read-only", "x", "select", params=1)
    with pytest.raises(Exception, match="predates plan_cache_mode"):
        session._generic(Old(), ORDERS_BY_CUSTOMER, verdict, False)  # type: ignore[arg-type]


def test_the_plan_tree_keeps_parallel_workers(make_tools: Make, pg_cluster: Cluster) -> None:
    # The shared cluster plans serially; this connection makes parallel plans cheap.
    opts = "-c max_parallel_workers_per_gather=2 -c parallel_setup_cost=0 -c parallel_tuple_cost=0"
    tools, _ = make_tools(f"{pg_cluster.standby_dsn} options='{opts}'")
    out = call(tools, "sql_query", sql="SELECT status, count(*) FROM shop.orders GROUP BY 1")
    assert "Gather" in out and "Workers Planned: " in out, out
    assert "->  Parallel Seq Scan on orders" in out and "Partial " in out, out


def test_definitions_are_not_cut(make_tools: Make) -> None:
    tools, evidence = make_tools()
    out = call(tools, "sql_query", sql="SELECT indexname, indexdef FROM pg_indexes"
               " WHERE schemaname = 'shop' ORDER BY indexname")  # fmt: skip
    whole = "CREATE UNIQUE INDEX customers_pkey ON shop.customers USING btree (id)"
    assert whole in out and "-[ RECORD 1 ]" in out
    assert [whole] == [r[1] for r in evidence[-1].rows if r[0] == "customers_pkey"]


def test_top_queries_leave_out_agentplanes_own_statements(
    make_tools: Make, pg_cluster: Cluster
) -> None:
    tools, _ = make_tools(allow_analyze=True)
    for sql in ("SELECT 1", "SHOW work_mem", "EXPLAIN SELECT 2", ORDERS_BY_CUSTOMER):
        call(tools, "sql_query", sql=sql, analyze=sql == "SELECT 1")
    # Another role's identical text is its own workload, and stays listed.
    with pg_cluster.admin(pg_cluster.standby_port) as pg:
        for _ in range(60):
            pg.execute(b"BEGIN READ ONLY")
            pg.execute(b"ROLLBACK")
    tools, evidence = make_tools()
    call(tools, "top_queries", order_by="calls", limit=50)
    texts = [r[-1] for r in evidence[-1].rows]
    ours = [
        t
        for t in texts
        if "agentplane" in t or t.startswith(("EXPLAIN", "SHOW", "FETCH", "DECLARE", "CLOSE"))
    ]
    assert not ours, ours
    assert "BEGIN READ ONLY" in texts and "ROLLBACK" in texts  # postgres's
    assert "SELECT name FROM shop.customers WHERE id = $1" in texts  # the workload
