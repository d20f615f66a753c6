"""The SQL tools through the real broker, against a real streaming hot standby."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import psycopg
import pytest

from bot.core.plan import Plan
from bot.core.record import ToolCall
from bot.families.sql.classify import SqlVerdict
from bot.families.sql.evidence import render_sql_evidence
from bot.families.sql.execute import SqlSession
from bot.families.sql.tools import SqlTools
from bot.run.broker import Broker
from tests.families.sql.conftest import Make
from tests.support.jobs import SQL_JOB as JOB
from tests.support.jobs import sql_plan
from tests.support.postgres import PASSWORD, Cluster


def brokered(tools: SqlTools, p: Plan | None = None) -> tuple[Broker, list[ToolCall]]:
    calls: list[ToolCall] = []
    return Broker(p or sql_plan(), tools.specs(), calls.append, tools.redact), calls


def call(broker: Broker, tool: str, **args: Any) -> str:
    return broker.call(tool, json.dumps(args))


def test_reads_run_on_the_standby_and_produce_evidence(make_tools: Make) -> None:
    tools, evidence = make_tools()
    broker, calls = brokered(tools)
    out = call(broker, "sql_query", sql="select id, status from shop.orders where customer_id = 42")
    assert calls[-1].decision == "allow" and calls[-1].ok
    assert calls[-1].rule == "policies/default.yaml#job_types.sql.tools"
    ev = evidence[-1]
    assert ev.status == "ok" and ev.columns == ["id", "status"] and ev.row_count == 15
    assert ev.sql.startswith("SELECT id\n     , status\nFROM shop.orders")
    assert ev.plan and ev.plan[0]["Plan"]["Node Type"] == "Seq Scan" and ev.duration_ms > 0
    assert "Seq Scan on orders  (cost=" in out and "Filter: (customer_id = 42)" in out
    assert "15 row(s), first 10 shown" in out and ev.connection.startswith("replica (host=")
    show = call(broker, "sql_query", sql="SHOW transaction_read_only")
    assert "on" in show.splitlines()[-1]  # every statement runs in a READ ONLY transaction
    stats = call(broker, "sql_query", sql="SELECT count(*) FROM pg_stat_user_tables")
    assert "1 row(s)" in stats


def test_top_queries_reads_pg_stat_statements(make_tools: Make) -> None:
    tools, evidence = make_tools()
    broker, calls = brokered(tools)
    out = call(broker, "top_queries", limit=3)
    assert calls[-1].ok, out
    ev = evidence[-1]
    assert ev.columns == ["queryid", "calls", "total_ms", "mean_ms", "rows", "query"]
    assert "JOIN shop.customers" in ev.rows[0][-1] or "shop.orders" in ev.rows[0][-1]
    assert all("pg_stat_statements" not in r[-1] for r in ev.rows)
    # The control plane's own queries (role check, per-transaction guards) are not the
    # replica's workload.
    call(broker, "top_queries", order_by="calls", limit=50)
    texts = [r[-1] for r in evidence[-1].rows]
    assert texts and not [t for t in texts if "pg_has_role" in t or "pg_is_in_recovery" in t]
    assert call(broker, "top_queries", order_by="slowest").startswith("ERROR: order_by")


REFUSALS = [
    ("SELECT 1; DELETE FROM shop.orders", "sql#multi-statement"),
    ("COPY (SELECT 1) TO PROGRAM 'id'", "sql#copy-program"),
    ("SELECT pg_terminate_backend(pg_backend_pid())", "sql#side-effect-function"),
    ("SELECT set_config('statement_timeout', '0', false)", "sql#side-effect-function"),
    (
        "SELECT dblink_exec('dbname=postgres', 'DELETE FROM shop.orders')",
        "sql#sql-text-function",
    ),
    (
        "SELECT * FROM ts_stat('SELECT to_tsvector(name) FROM shop.customers')",
        "sql#sql-text-function",
    ),
    ("SELECT shop.touch_order(1)", "sql#function-not-allowed"),
    ("SELECT lo_import('/etc/passwd')", "sql#side-effect-function"),
    ("SELECT nextval('shop.invoice_no')", "sql#side-effect-function"),
    ("EXPLAIN ANALYZE SELECT count(*) FROM shop.orders", "sql#explain-analyze"),
    ("SET statement_timeout = 0", "sql#statement-type"),
    ("UPDATE shop.orders SET status = 'x'", "sql#statement-type"),
    ("SELECT * FROM shop.orders FOR UPDATE", "sql#locking-clause"),
]


def test_every_refused_class_is_refused_and_recorded_with_its_rule(make_tools: Make) -> None:
    tools, evidence = make_tools()
    broker, calls = brokered(tools)
    for sql, rule in REFUSALS:
        out = call(broker, "sql_query", sql=sql)
        assert out.startswith(f"DENIED by {rule}: "), (sql, out)
        assert not calls[-1].ok and (calls[-1].decision, calls[-1].rule) == ("deny", rule)
        assert (evidence[-1].status, evidence[-1].rule) == ("refused", rule)
    out = call(broker, "sql_query", sql="SELECT 1", analyze=True)
    assert "DENIED by sql#explain-analyze" in out and "allow_analyze is false" in out
    assert len(evidence) == len(REFUSALS) + 1
    assert "refused [sql#copy-program]" in render_sql_evidence(evidence)


def test_analyze_runs_when_policy_allows_it(make_tools: Make) -> None:
    tools, evidence = make_tools(allow_analyze=True)
    broker, _ = brokered(tools)
    out = call(broker, "sql_query", sql="SELECT count(*) FROM shop.orders", analyze=True)
    assert "(actual time=" in out and "Execution Time:" in out and evidence[-1].analyze
    out = call(broker, "sql_query", sql="EXPLAIN (ANALYZE, FORMAT JSON) SELECT 1")
    assert "Result  (cost=" in out and "(actual time=" in out


def test_write_past_the_classifier_is_refused_by_the_server(
    make_tools: Make, pg_cluster: Cluster
) -> None:
    # touch_order() is a SECURITY DEFINER function that UPDATEs. Were policy to allow it by
    # name, the classifier sees only a call: the standby (and the READ ONLY transaction)
    # refuse it.
    tools, evidence = make_tools(allow_functions=["shop.touch_order"])
    broker, calls = brokered(tools)
    out = call(broker, "sql_query", sql="SELECT shop.touch_order(1)")
    assert out.startswith("DENIED by sql#server-read-only: the server refused a write")
    assert "cannot execute UPDATE in a read-only transaction" in out
    assert evidence[-1].rule == "sql#server-read-only" and not calls[-1].ok
    # The session survives the refusal.
    assert "1 row(s)" in call(broker, "sql_query", sql="SELECT 1")
    with pg_cluster.admin(pg_cluster.primary_port) as pg:
        row = pg.execute(b"SELECT status FROM shop.orders WHERE id = 1").fetchone()
    assert row is not None and row[0] != "touched"


def test_sql_text_in_a_function_cannot_end_another_session(
    make_tools: Make, pg_cluster: Cluster
) -> None:
    # The attack: ts_stat runs its argument as a query, which the classifier never parses.
    # A session of the same role may signal its peers, so the role alone does not stop it.
    with (
        psycopg.connect(pg_cluster.standby_dsn) as victim,
        psycopg.connect(pg_cluster.standby_dsn, autocommit=True) as attacker,
    ):
        pid = victim.info.backend_pid
        attack = f"SELECT * FROM ts_stat($$SELECT to_tsvector(pg_terminate_backend({pid})::text)$$)"
        tools, evidence = make_tools()
        out = call(brokered(tools)[0], "sql_query", sql=attack)
        assert out.startswith("DENIED by sql#sql-text-function: ts_stat() runs SQL text"), out
        assert evidence[-1].status == "refused"
        assert victim.execute(b"SELECT 1").fetchone() == (1,)  # still alive
        # What the classifier stopped is real: sent straight to the server, it kills.
        attacker.execute(attack.encode()).fetchall()
        with pytest.raises(psycopg.OperationalError):
            victim.execute(b"SELECT 1")


def test_server_rejects_multiple_statements_even_if_the_classifier_missed(
    make_tools: Make,
) -> None:
    # Pretend the classifier was fooled: the extended protocol still allows one statement.
    tools, _ = make_tools()
    session: SqlSession = tools.sessions["replica"]
    for kind in ("select", "show"):
        with pytest.raises(Exception, match="cannot insert multiple commands"):
            session.run(
                "SELECT 1; DELETE FROM shop.notes", SqlVerdict(True, "x", "x", kind), False, False
            )


def test_the_role_itself_cannot_write_on_the_primary(pg_cluster: Cluster) -> None:
    with (
        psycopg.connect(pg_cluster.primary_dsn) as pg,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        pg.execute(b"INSERT INTO shop.notes VALUES (9, 'x')")


def test_a_primary_is_refused_when_policy_requires_a_standby(
    make_tools: Make, pg_cluster: Cluster
) -> None:
    tools, evidence = make_tools(pg_cluster.primary_dsn)
    broker, _ = brokered(tools)
    out = call(broker, "sql_query", sql="SELECT 1")
    rule = "policies/default.yaml#sql_connections.replica.require_standby"
    assert out.startswith(f"DENIED by {rule}: ") and "not a hot standby" in out
    assert evidence[-1].rule == rule


def test_statement_timeout_holds(make_tools: Make) -> None:
    tools, evidence = make_tools(statement_timeout_ms=300)
    broker, calls = brokered(tools)
    began = time.monotonic()
    out = call(broker, "sql_query", sql="SELECT pg_sleep(5)")
    assert time.monotonic() - began < 3
    assert out.startswith("DENIED by sql#statement-timeout: statement_timeout hit")
    assert evidence[-1].rule == "sql#statement-timeout" and not calls[-1].ok
    # The planner's own work is not slow, so a plain query still runs in the same session.
    assert "1 row(s)" in call(broker, "sql_query", sql="SELECT 1")


def test_lock_timeout_holds(make_tools: Make, pg_cluster: Cluster) -> None:
    # An ACCESS EXCLUSIVE lock on the primary is replayed on the standby, where a reader
    # must wait for it: lock_timeout ends that wait.
    release = threading.Event()
    locked = threading.Event()

    def hold() -> None:
        with pg_cluster.admin(pg_cluster.primary_port) as pg, pg.transaction():
            pg.execute(b"LOCK TABLE shop.customers IN ACCESS EXCLUSIVE MODE")
            pg.execute(b"SELECT pg_switch_wal()")  # flush, so the standby sees it now
            locked.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(10)
        deadline = time.monotonic() + 10
        with pg_cluster.admin(pg_cluster.standby_port) as pg:
            while not pg.execute(
                b"SELECT 1 FROM pg_locks WHERE relation = 'shop.customers'::regclass"
                b" AND mode = 'AccessExclusiveLock'"
            ).fetchone():
                assert time.monotonic() < deadline, "the lock never reached the standby"
                time.sleep(0.05)
        tools, evidence = make_tools(lock_timeout_ms=200)
        broker, _ = brokered(tools)
        out = call(broker, "sql_query", sql="SELECT count(*) FROM shop.customers")
        assert out.startswith("DENIED by sql#lock-timeout: lock_timeout hit"), out
        assert evidence[-1].rule == "sql#lock-timeout"
    finally:
        release.set()
        holder.join()


def test_row_cap_holds(make_tools: Make) -> None:
    tools, evidence = make_tools(row_cap=25)
    broker, _ = brokered(tools)
    out = call(broker, "sql_query", sql="SELECT id FROM shop.orders ORDER BY id")
    ev = evidence[-1]
    assert ev.row_count == 25 and len(ev.rows) == 25 and ev.capped
    assert "25 row(s) (row cap 25 hit: more rows not fetched), first 10 shown" in out


def test_an_ungranted_connection_is_denied_by_the_plan(make_tools: Make) -> None:
    tools, _ = make_tools()
    job = JOB.replace("scope: {sql: {connection: replica}}", "scope: {sql: {connection: prod}}")
    broker, calls = brokered(tools, sql_plan(job))
    out = call(broker, "sql_query", sql="SELECT 1")
    assert out.startswith("DENIED by policies/default.yaml#job_types.sql.scope.sql.connection")
    assert calls[-1].decision == "deny"


def test_credentials_never_leave_the_broker(make_tools: Make, pg_cluster: Cluster) -> None:
    tools, evidence = make_tools()
    broker, calls = brokered(tools)
    outputs = [
        call(broker, "sql_query", sql="SELECT body FROM shop.notes"),
        call(broker, "sql_query", sql=f"SELECT 'password={PASSWORD}' AS leak"),
        call(broker, "sql_query", sql="SELECT current_setting('primary_conninfo')"),
        call(broker, "sql_query", sql="SELECT conninfo FROM pg_stat_wal_receiver"),
    ]
    assert "[redacted]" in outputs[0]
    bad, bad_ev = make_tools(pg_cluster.dsn(pg_cluster.standby_port, password=PASSWORD + "x"))
    bad_broker, bad_calls = brokered(bad)
    outputs.append(call(bad_broker, "sql_query", sql="SELECT 1"))
    assert "password authentication failed" in outputs[-1]
    everything = json.dumps(
        [
            outputs,
            [c.model_dump() for c in calls + bad_calls],
            [e.model_dump() for e in evidence + bad_ev],
            render_sql_evidence(evidence + bad_ev),
        ]
    )
    assert PASSWORD not in everything
