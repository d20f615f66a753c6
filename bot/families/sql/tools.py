"""SQL tools on the broker: `sql_query` and `top_queries`, over named read-only connections.

They run in the broker's process, not the sandbox: the DSN never enters the
sandbox, the prompt or a tool result. Every call, refused or not, becomes one
SqlEvidence handed to the evidence sink (the run's artifacts), and the model
reads the same evidence rendered as text.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from bot.families.base import ToolFailure, ToolOutcome, ToolSpec, obj, string
from bot.families.sql.classify import SqlRefused, check, normalised_literals
from bot.families.sql.connections import SqlConnection, redactor
from bot.families.sql.evidence import (
    SHOWN_ROWS,
    SqlEvidence,
    cell,
    format_sql,
    render_one,
)
from bot.families.sql.execute import SqlSession

TOP_ORDER = {"total": "total_exec_time", "mean": "mean_exec_time", "calls": "calls"}
# What the control plane itself sent: its marked statements and the cursor wrapping the
# model's SELECTs carry names no one else uses, whichever role sent them (another run's
# role, too). psycopg's BEGIN READ ONLY and ROLLBACK around them are anyone's words, so
# they are left out only as the connection's own role's: pg_stat_statements has no
# application_name, so its userid is what says whose they were, and the same text from
# any other role stays listed.
OWN_STATEMENTS = (
    "query LIKE '/* agentplane */%'",
    "query LIKE 'DECLARE \"agentplane\\_q\" %'",
    "query LIKE 'FETCH % FROM \"agentplane\\_q\"'",
    "query = 'CLOSE \"agentplane_q\"'",
    "(userid = (SELECT oid FROM pg_roles WHERE rolname = current_user)"
    " AND query IN ('BEGIN READ ONLY', 'ROLLBACK'))",
)
TOP_QUERY = (
    "/* agentplane */ SELECT queryid, calls, round(total_exec_time::numeric, 1) AS total_ms,"
    " round(mean_exec_time::numeric, 1) AS mean_ms, rows, query"
    " FROM pg_stat_statements"
    " WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND NOT (" + " OR ".join(OWN_STATEMENTS) + ")"
    " ORDER BY {order} DESC LIMIT {limit}"
)
TOP_QUERY_TEXT = 200
VALUE_LIMIT = 1_000_000
"""Values are kept whole (a definition cut before its column list is no evidence); the
byte cap is what bounds a result."""


def _flag(description: str) -> dict[str, Any]:
    return {"type": "boolean", "description": description, "optional": True}


class SqlTools:
    """The tool family over the run's granted connections; close() ends their sessions."""

    def __init__(
        self, connections: Mapping[str, SqlConnection], sink: Callable[[SqlEvidence], None]
    ) -> None:
        self.connections = dict(connections)
        self.sessions = {name: SqlSession(c) for name, c in self.connections.items()}
        self.sink = sink
        self.redact = redactor(self.connections.values())
        self.seq = 0

    def _name(self, args: dict[str, Any]) -> str:
        name = args.get("connection") or next(iter(self.connections), "")
        if not isinstance(name, str) or name not in self.connections:
            known = ", ".join(self.connections) or "none"
            raise ToolFailure(f"unknown SQL connection {name!r} (granted: {known})")
        return name

    def access(self, args: dict[str, Any]) -> tuple[str, str]:
        """The broker checks the name against the plan's sql_connection scope."""
        return ("sql_connection", self._name(args))

    def execute(
        self, name: str, sql: str, explain: bool, analyze: bool, width: int = VALUE_LIMIT
    ) -> ToolOutcome:
        conn = self.connections[name]
        self.seq += 1
        notes = []
        if (fixed := normalised_literals(sql)) is not None:
            sql = fixed
            notes.append(
                "`type $n` (as pg_stat_statements writes a typed literal) sent as $n::type"
            )
        ev = SqlEvidence(
            seq=self.seq,
            connection=conn.describe(),
            sql=self.redact(format_sql(sql)),
            status="ok",
            rule="sql#read-only",
            row_cap=conn.policy.row_cap,
            byte_cap=conn.policy.byte_cap,
            analyze=analyze,
            notes=notes,
        )
        try:
            if analyze and not conn.policy.allow_analyze:
                raise SqlRefused(
                    "sql#explain-analyze",
                    f"ANALYZE executes the statement; {conn.rule}.allow_analyze is false",
                )
            verdict = check(sql, conn.policy.allow_analyze, conn.policy.allow_functions)
            result = self.sessions[name].run(sql, verdict, explain, analyze)
        except SqlRefused as exc:
            ev = ev.model_copy(update={"status": "refused", "rule": exc.rule, "reason": exc.reason})
            self.sink(ev)
            raise SqlRefused(exc.rule, self.redact(exc.reason)) from None
        except ToolFailure as exc:
            ev = ev.model_copy(
                update={"status": "error", "rule": "sql#server-error", "reason": str(exc)}
            )
            self.sink(ev.model_copy(update={"reason": self.redact(ev.reason)}))
            raise ToolFailure(self.redact(str(exc))) from None
        plan = json.loads(self.redact(json.dumps(result.plan))) if result.plan else None
        ev = ev.model_copy(
            update={
                "columns": [self.redact(c) for c in result.columns],
                "rows": [[cell(v, self.redact, width) for v in r] for r in result.rows],
                "row_count": len(result.rows),
                "capped": result.capped,
                "byte_capped": result.byte_capped,
                "plan": plan,
                "analyze": (analyze or verdict.analyze) and not result.note,
                "explain": result.explain,
                "notes": [*notes, result.note] if result.note else notes,
                "duration_ms": result.duration_ms,
            }
        )
        self.sink(ev)
        shown = ev.model_copy(update={"rows": ev.rows[:SHOWN_ROWS]})
        return ToolOutcome(self.redact(render_one(shown)))

    def query(self, args: dict[str, Any]) -> ToolOutcome:
        sql = args.get("sql")
        if not isinstance(sql, str) or not sql.strip():
            raise ToolFailure("sql must be a non-empty string")
        return self.execute(self._name(args), sql, True, bool(args.get("analyze")))

    def top(self, args: dict[str, Any]) -> ToolOutcome:
        order = TOP_ORDER.get(str(args.get("order_by") or "total"))
        if order is None:
            raise ToolFailure(f"order_by must be one of {', '.join(TOP_ORDER)}")
        try:
            limit = int(args.get("limit") or 10)
        except (TypeError, ValueError):
            raise ToolFailure("limit must be an integer") from None
        sql = TOP_QUERY.format(order=order, limit=max(1, min(limit, 50)))
        return self.execute(self._name(args), sql, False, False, TOP_QUERY_TEXT)

    def specs(self) -> list[ToolSpec]:
        conn = string("a connection named in policy; default the job's", optional=True)
        return [
            ToolSpec(
                "sql_query",
                "sql",
                "Run one read-only statement (SELECT, EXPLAIN of a SELECT, SHOW) on a read-only"
                " PostgreSQL replica. Returns the formatted SQL, row count, first rows, the"
                " EXPLAIN plan and the duration.",
                obj(
                    sql=string("exactly one statement"),
                    connection=conn,
                    analyze=_flag("EXPLAIN ANALYZE too (only if policy allows it)"),
                ),
                self.query,
                self.access,
            ),
            ToolSpec(
                "top_queries",
                "sql",
                "The replica's top statements from pg_stat_statements: calls, total and mean"
                " time, rows.",
                obj(
                    connection=conn,
                    order_by=string("total (default), mean or calls", optional=True),
                    limit={"type": "integer", "description": "1-50, default 10", "optional": True},
                ),
                self.top,
                self.access,
            ),
        ]

    def close(self) -> None:
        for session in self.sessions.values():
            session.close()


def sql_tools(
    connections: Mapping[str, SqlConnection], evidence_sink: Callable[[SqlEvidence], None]
) -> list[ToolSpec]:
    """The tools alone, for callers that let the connections close with the process."""
    return SqlTools(connections, evidence_sink).specs()
