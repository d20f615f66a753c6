"""Run one classified statement on a named connection, inside every server-side guard.

Each statement gets its own READ ONLY transaction with statement_timeout and
lock_timeout set LOCAL, is fetched up to the row cap, and is rolled back.
Untrusted text is always sent with the extended protocol (prepare=True, or a
DECLAREd cursor), which the server refuses for more than one statement: one
more guard behind the classifier. Without it psycopg would use the simple
protocol, which runs `SELECT 1; DELETE ...` happily.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors

from bot.sql.classify import SqlRefused, Verdict
from bot.sql.connections import SqlConnection
from bot.tools.base import ToolFailure

CONNECT_TIMEOUT_S = 5
# SQLSTATE classes the guards raise, mapped to the rule the record names.
SERVER_GUARDS: tuple[tuple[type[psycopg.Error], str, str], ...] = (
    (errors.ReadOnlySqlTransaction, "sql#server-read-only", "the server refused a write"),
    (errors.InsufficientPrivilege, "sql#server-permission", "the role lacks the privilege"),
    (errors.QueryCanceled, "sql#statement-timeout", "statement_timeout hit"),
    (errors.LockNotAvailable, "sql#lock-timeout", "lock_timeout hit"),
)


@dataclass(frozen=True)
class Result:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    capped: bool
    plan: list[dict[str, Any]] | None
    duration_ms: float


def _plan_json(value: Any) -> list[dict[str, Any]]:
    data = json.loads(value) if isinstance(value, str) else value
    return list(data) if isinstance(data, list) else [data]


class SqlSession:
    """One lazily opened connection, reused across a run's calls; close() when the run ends."""

    def __init__(self, conn: SqlConnection) -> None:
        self.conn = conn
        self._pg: psycopg.Connection[tuple[Any, ...]] | None = None

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._pg is not None and not self._pg.closed:
            return self._pg
        try:
            pg = psycopg.connect(
                self.conn.dsn,
                autocommit=False,
                connect_timeout=CONNECT_TIMEOUT_S,
                application_name="agentplane",
            )
        except psycopg.Error as exc:
            # psycopg's message names host and port, not the password; redacted again later.
            raise ToolFailure(f"cannot connect to {self.conn.describe()}: {exc}") from None
        pg.read_only = True  # every transaction starts as BEGIN READ ONLY
        if self.conn.policy.require_standby:
            row = pg.execute(b"SELECT pg_is_in_recovery()").fetchone()
            pg.rollback()
            if not (row and row[0]):
                pg.close()
                raise SqlRefused(
                    f"{self.conn.rule}.require_standby",
                    f"{self.conn.name} is not a hot standby (pg_is_in_recovery() is false); "
                    "diagnostics run on read-only replicas only",
                )
        self._pg = pg
        return pg

    def run(self, sql: str, verdict: Verdict, explain: bool, analyze: bool) -> Result:
        pg = self._connect()
        pol = self.conn.policy
        try:
            pg.execute(
                b"SELECT set_config('statement_timeout', %s, true),"
                b" set_config('lock_timeout', %s, true)",
                (f"{pol.statement_timeout_ms}ms", f"{pol.lock_timeout_ms}ms"),
            )
            plan = None
            if explain and verdict.kind == "select":
                opts = "ANALYZE, BUFFERS, FORMAT JSON" if analyze else "FORMAT JSON"
                query = f"EXPLAIN ({opts}) ".encode() + sql.encode()
                row = pg.execute(query, prepare=True).fetchone()
                plan = _plan_json(row[0]) if row else None
            started = time.perf_counter()
            # A server-side cursor for SELECT, so the row cap bounds what crosses the wire;
            # EXPLAIN and SHOW cannot be DECLAREd and return little anyway.
            cur: psycopg.Cursor[tuple[Any, ...]] = (
                pg.cursor(name="agentplane_q") if verdict.kind == "select" else pg.cursor()
            )
            with cur:
                if verdict.kind == "select":
                    cur.execute(sql.encode())  # DECLARE ... CURSOR FOR: one statement only
                else:
                    cur.execute(sql.encode(), prepare=True)
                rows = cur.fetchmany(pol.row_cap + 1)
                columns = [d.name for d in cur.description or ()]
            duration = (time.perf_counter() - started) * 1000
            if verdict.kind == "explain" and verdict.json_plan and rows:
                plan, rows = _plan_json(rows[0][0]), []
                columns = []
            return Result(
                columns, rows[: pol.row_cap], len(rows) > pol.row_cap, plan, round(duration, 3)
            )
        except psycopg.Error as exc:
            for cls, rule, what in SERVER_GUARDS:
                if isinstance(exc, cls):
                    raise SqlRefused(rule, f"{what}: {str(exc).strip()}") from None
            raise ToolFailure(f"server error: {str(exc).strip()}") from None
        finally:
            self._reset(pg)  # read-only anyway; never leave a snapshot open between calls

    def _reset(self, pg: psycopg.Connection[tuple[Any, ...]]) -> None:
        try:
            if not pg.closed:
                pg.rollback()
        except psycopg.Error:
            pg.close()
        if pg.closed:
            self._pg = None

    def close(self) -> None:
        if self._pg is not None:
            self._pg.close()
            self._pg = None
