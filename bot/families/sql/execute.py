"""Run one classified statement on a named connection, inside every server-side guard.

The role is checked once, when the connection opens: nothing runs as a role
with more than read-only rights (privilege.py). Each statement gets its own
READ ONLY transaction that first re-checks pg_is_in_recovery() (a standby can
be promoted mid-run) and sets statement_timeout and lock_timeout LOCAL; it is
fetched up to the row cap and the byte cap, and rolled back.
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
from psycopg import errors, pq

from bot.families.base import ToolFailure
from bot.families.sql.classify import SqlRefused, SqlVerdict
from bot.families.sql.connections import SqlConnection
from bot.families.sql.functions import ALL_ALLOWED
from bot.families.sql.privilege import ROLE_QUERY, RoleRow, role_problems

CONNECT_TIMEOUT_S = 5
# Rows in the first FETCH from the server-side cursor; later ones are sized from the
# bytes seen so far, so the byte cap stops the fetch about where it is reached rather
# than a row cap of wide rows later, and narrow rows still take few round trips.
FIRST_FETCH = 20
LEAST_PRIVILEGE_RULE = "sql#least-privilege"
# Allowlisted names that a schema on the role's search path defines too. There, an
# overload with a better-matching signature wins over pg_catalog's, so a bare call
# could run a user's function under a built-in's name.
SHADOW_QUERY = (
    b"/* agentplane */ SELECT DISTINCT p.proname FROM pg_catalog.pg_proc p"
    b" JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
    b" WHERE n.nspname <> 'pg_catalog' AND n.nspname = ANY(pg_catalog.current_schemas(false))"
    b" AND p.proname = ANY(%s)"
)
# SQLSTATE classes the guards raise, mapped to the rule the record names.
SERVER_GUARDS: tuple[tuple[type[psycopg.Error], str, str], ...] = (
    (errors.ReadOnlySqlTransaction, "sql#server-read-only", "the server refused a write"),
    (errors.InsufficientPrivilege, "sql#server-permission", "the role lacks the privilege"),
    (errors.QueryCanceled, "sql#statement-timeout", "statement_timeout hit"),
    (errors.LockNotAvailable, "sql#lock-timeout", "lock_timeout hit"),
)


# Marks every statement the control plane composes, so top_queries can leave them out.
MARK = b"/* agentplane */ "
CURSOR = "agentplane_q"
GENERIC = "agentplane_generic"
ANALYZE_OPTIONS = "ANALYZE, BUFFERS, FORMAT JSON"
GENERIC_NOTE = (
    "generic plan: the text has parameters ($1...) with no values, as pg_stat_statements "
    "stores it, so it was prepared with plan_cache_mode = force_generic_plan and EXPLAINed "
    "with NULL for each; estimates hold for any value, and the statement itself did not run"
)
GENERIC_ANALYZE = (
    "EXPLAIN ANALYZE needs values: this text has parameters ($1...) from pg_stat_statements. "
    "Put real values in place of them to ANALYZE it; without analyze you get its generic plan"
)
TYPE_HINT = (
    "; PostgreSQL cannot tell a parameter's type from this text: cast it (e.g. $1::int) "
    "or put a value in its place"
)
BIND_HINT = (
    "; the text has parameters ($1...) with no values: EXPLAIN it without ANALYZE for its "
    "generic plan, or put values in their place"
)


@dataclass(frozen=True)
class Result:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    capped: bool
    plan: list[dict[str, Any]] | None
    duration_ms: float
    byte_capped: bool = False
    """Values were cut at the byte cap; nothing after the cut was fetched."""
    explain: str = ""
    """The options of the EXPLAIN agentplane ran, when it ran one."""
    note: str = ""


def _plan_json(value: Any) -> list[dict[str, Any]]:
    data = json.loads(value) if isinstance(value, str) else value
    return list(data) if isinstance(data, list) else [data]


def value_bytes(value: Any) -> int:
    """A value's size as the evidence will show it: its text, UTF-8."""
    return 0 if value is None else len(str(value).encode())


def cut_row(row: tuple[Any, ...], budget: int) -> tuple[Any, ...]:
    """The row as text, cut so that all its values together fit in budget bytes."""
    out: list[Any] = []
    for value in row:
        if value is None:
            out.append(None)
            continue
        data = str(value).encode()[: max(budget, 0)]
        budget -= len(data)
        out.append(data.decode(errors="ignore"))  # a cut may split a character
    return tuple(out)


def fetch_capped(
    cur: psycopg.Cursor[tuple[Any, ...]], row_cap: int, byte_cap: int | None
) -> tuple[list[tuple[Any, ...]], bool, bool]:
    """(rows, row cap hit, byte cap hit): stops fetching as soon as either cap is reached.

    The row that crosses the byte cap is kept, cut, so the reviewer sees where it stopped.
    One row still crosses the wire whole: the server sends rows, not parts of them, and
    statement_timeout bounds how large it can grow.
    """
    rows: list[tuple[Any, ...]] = []
    used, want = 0, min(FIRST_FETCH, row_cap + 1)
    while batch := cur.fetchmany(want):
        for row in batch:
            if len(rows) == row_cap:
                return rows, True, False
            size = sum(value_bytes(v) for v in row)
            if byte_cap is not None and used + size > byte_cap:
                rows.append(cut_row(row, byte_cap - used))
                return rows, False, True
            used += size
            rows.append(row)
        if len(batch) < want:
            break  # the cursor is exhausted: no round trip to learn that again
        fits = row_cap + 1 - len(rows)
        if byte_cap is not None:
            fits = min(fits, (byte_cap - used) * len(rows) // max(used, 1) + 1)
        want = max(1, fits)
    return rows, False, False


def _hint(exc: psycopg.Error) -> str:
    """What to do about an error a parameterised text causes, which the server's own
    words ("bind message supplies 0 parameters") do not say."""
    if isinstance(exc, errors.IndeterminateDatatype):
        return TYPE_HINT
    text = str(exc)
    if "bind message supplies" in text or "there is no parameter $" in text:
        return BIND_HINT
    return ""


class SqlSession:
    """One lazily opened connection, reused across a run's calls; close() when the run ends."""

    def __init__(self, conn: SqlConnection) -> None:
        self.conn = conn
        self._pg: psycopg.Connection[tuple[Any, ...]] | None = None
        self.shadowed: frozenset[str] = frozenset()
        self._prepared = False
        """GENERIC exists on the server: prepared statements outlive the transaction."""

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
        try:
            self._check_role(pg)
        except BaseException:
            pg.close()
            raise
        self._pg = pg
        return pg

    def _check_role(self, pg: psycopg.Connection[tuple[Any, ...]]) -> None:
        try:
            rows = [
                RoleRow(r[0], r[1], tuple(bool(v) for v in r[2:]))
                for r in pg.execute(ROLE_QUERY).fetchall()
            ]
            shadows = pg.execute(SHADOW_QUERY, (sorted(ALL_ALLOWED),)).fetchall()
            self.shadowed = frozenset(str(r[0]) for r in shadows)
            pg.rollback()
        except psycopg.Error as exc:
            raise ToolFailure(f"cannot read the role of {self.conn.describe()}: {exc}") from None
        problems = role_problems(rows)
        if problems:
            user = rows[0].user if rows else "?"
            raise SqlRefused(
                LEAST_PRIVILEGE_RULE,
                f"{self.conn.name} logs in as role {user!r}, which "
                + "; ".join(problems)
                + ". Diagnostics run only as a role with SELECT grants (and pg_monitor at "
                "most): point the DSN at such a role",
            )

    def _require_standby(self, in_recovery: object) -> None:
        if self.conn.policy.require_standby and in_recovery is not True:
            raise SqlRefused(
                f"{self.conn.rule}.require_standby",
                f"{self.conn.name} is not a hot standby (pg_is_in_recovery() is false, "
                "checked at the start of this transaction); diagnostics run on read-only "
                "replicas only",
            )

    def _refuse_shadowed(self, verdict: SqlVerdict) -> None:
        if names := sorted(verdict.unqualified & self.shadowed):
            spelled = ", ".join(f"{n}()" for n in names)
            raise SqlRefused(
                "sql#function-shadowed",
                f"{spelled}: a schema on {self.conn.name}'s search path defines the same name, "
                "so the server may pick that function instead of the built-in; write "
                f"pg_catalog.{names[0]}(...) to mean the built-in",
            )

    def run(self, sql: str, verdict: SqlVerdict, explain: bool, analyze: bool) -> Result:
        pg = self._connect()
        pol = self.conn.policy
        self._refuse_shadowed(verdict)
        try:
            # One round trip opens the transaction: a promotion since the last call is
            # seen before the statement runs, not only at connect.
            first = pg.execute(
                b"/* agentplane */ SELECT pg_catalog.pg_is_in_recovery(),"
                b" pg_catalog.set_config('statement_timeout', %s, true),"
                b" pg_catalog.set_config('lock_timeout', %s, true)",
                (f"{pol.statement_timeout_ms}ms", f"{pol.lock_timeout_ms}ms"),
            ).fetchone()
            self._require_standby(first[0] if first else None)
            if verdict.params and verdict.kind in ("select", "explain"):
                return self._generic(pg, verdict.inner or sql, verdict, analyze)
            plan, opts = None, ""
            if explain and verdict.kind == "select":
                opts = ANALYZE_OPTIONS if analyze else "FORMAT JSON"
                query = MARK + f"EXPLAIN ({opts}) ".encode() + sql.encode()
                row = pg.execute(query, prepare=True).fetchone()
                plan = _plan_json(row[0]) if row else None
            started = time.perf_counter()
            # A server-side cursor for SELECT, so the row cap bounds what crosses the wire;
            # EXPLAIN and SHOW cannot be DECLAREd and return little anyway.
            cur: psycopg.Cursor[tuple[Any, ...]] = (
                pg.cursor(name=CURSOR) if verdict.kind == "select" else pg.cursor()
            )
            with cur:
                if verdict.kind == "select":
                    cur.execute(sql.encode())  # DECLARE ... CURSOR FOR: one statement only
                else:
                    cur.execute(MARK + sql.encode(), prepare=True)
                # A plan is JSON that a cut would break; its size follows the statement's.
                byte_cap = pol.byte_cap if verdict.kind != "explain" else None
                rows, capped, byte_capped = fetch_capped(cur, pol.row_cap, byte_cap)
                columns = [d.name for d in cur.description or ()]
            duration = (time.perf_counter() - started) * 1000
            if verdict.kind == "explain" and verdict.json_plan and rows:
                plan, rows = _plan_json(rows[0][0]), []
                columns = []
            return Result(columns, rows, capped, plan, round(duration, 3), byte_capped, opts)
        except psycopg.Error as exc:
            for cls, rule, what in SERVER_GUARDS:
                if isinstance(exc, cls):
                    raise SqlRefused(rule, f"{what}: {str(exc).strip()}") from None
            raise ToolFailure(f"server error: {str(exc).strip()}{_hint(exc)}") from None
        finally:
            self._reset(pg)  # read-only anyway; never leave a snapshot open between calls

    def _generic(
        self, pg: psycopg.Connection[tuple[Any, ...]], select: str, v: SqlVerdict, analyze: bool
    ) -> Result:
        """The generic plan of a text with $n and no values. One path for every server
        from 12 on (plan_cache_mode), rather than EXPLAIN (GENERIC_PLAN) on 16+: that one
        must go by the simple protocol, which would drop the one-statement guard. Here
        the SELECT goes alone in a protocol-level Parse, which refuses a second statement,
        and the server infers each parameter's type from the text as PREPARE does."""
        if analyze or v.analyze:
            raise ToolFailure(GENERIC_ANALYZE)
        if pg.info.server_version < 120000:
            raise ToolFailure(
                "this server predates plan_cache_mode (PostgreSQL 12), so a text with "
                "parameters ($1...) cannot be planned here: put values in their place"
            )
        started = time.perf_counter()
        pg.execute(
            MARK + b"SELECT pg_catalog.set_config('plan_cache_mode', 'force_generic_plan', true)"
        )
        res = pg.pgconn.prepare(GENERIC.encode(), select.encode())
        if res.status != pq.ExecStatus.COMMAND_OK:
            raise errors.error_from_result(res, encoding=pg.info.encoding)
        self._prepared = True
        nulls = ", ".join(["NULL"] * v.params)
        opts = "FORMAT JSON"
        row = pg.execute(
            MARK + f"EXPLAIN ({opts}) EXECUTE {GENERIC}({nulls})".encode(), prepare=True
        ).fetchone()
        plan = _plan_json(row[0]) if row else None
        duration = round((time.perf_counter() - started) * 1000, 3)
        return Result([], [], False, plan, duration, explain=opts, note=GENERIC_NOTE)

    def _reset(self, pg: psycopg.Connection[tuple[Any, ...]]) -> None:
        try:
            if not pg.closed:
                pg.rollback()
            if self._prepared and not pg.closed:
                # A prepared statement outlives ROLLBACK: gone, so the next one can take
                # its name. DEALLOCATE opens a read-only transaction of its own.
                pg.execute(MARK + f"DEALLOCATE {GENERIC}".encode())
                pg.rollback()
                self._prepared = False
        except psycopg.Error:
            pg.close()
        if pg.closed:
            self._pg = None

    def close(self) -> None:
        if self._pg is not None:
            self._pg.close()
            self._pg = None
