"""The SQL tool's overhead per query: through the broker vs the same query via psycopg directly.

Both run against a real hot standby built for the run (tests/support/postgres.py). The
broker path adds what makes it safe and reviewable: classification, a READ ONLY
transaction with timeouts, an EXPLAIN (FORMAT JSON), a capped cursor, rollback,
redaction and rendering of the evidence.
"""

from __future__ import annotations

import json
import time

import psycopg

from bot.core.policy import SqlConnectionPolicy
from bot.families.sql.classify import classify
from bot.families.sql.connections import SqlConnection
from bot.families.sql.tools import SqlTools
from bot.run.broker import Broker
from tests.support.jobs import sql_plan
from tests.support.postgres import cluster

N = 300
QUERY = "SELECT id, name, region FROM shop.customers WHERE id = 7"
JOB = "job_type: sql\nprompt: bench\ntools: [sql]\nscope: {sql: {connection: replica}}\n"


def _per_query_ms(fn: object) -> float:
    assert callable(fn)
    fn()  # warm: connection, plan caches
    began = time.perf_counter()
    for _ in range(N):
        fn()
    return (time.perf_counter() - began) * 1000 / N


def main() -> None:
    with cluster() as c:
        conn = SqlConnection(
            "replica", SqlConnectionPolicy(), "policies/default.yaml#sql_connections.replica",
            c.standby_dsn,
        )  # fmt: skip
        tools = SqlTools({"replica": conn}, lambda ev: None)
        broker = Broker(sql_plan(JOB), tools.specs(), lambda call: None, tools.redact)
        args = json.dumps({"sql": QUERY})
        with psycopg.connect(c.standby_dsn, autocommit=True) as pg:
            direct = _per_query_ms(lambda: pg.execute(QUERY.encode()).fetchall())
        brokered = _per_query_ms(lambda: broker.call("sql_query", args))
        tools.close()
    parse = _per_query_ms(lambda: classify(QUERY))
    print(
        f"sql: broker {brokered:.2f} ms/query (classify, read-only tx + timeouts, EXPLAIN, "
        f"capped cursor, evidence); psycopg direct {direct:.2f} ms/query; "
        f"overhead {brokered - direct:.2f} ms, ratio {brokered / direct:.1f}x ({N} queries; "
        f"of it classification {parse:.2f} ms)"
    )


if __name__ == "__main__":
    main()
