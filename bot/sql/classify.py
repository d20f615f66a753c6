"""Classify one SQL string before it reaches a server: allowed, or refused with its rule.

Parsed with pglast, i.e. libpg_query, PostgreSQL's own grammar: a generic
multi-dialect parser (sqlglot) can read a string differently from the server,
and that gap is exactly where a write would hide. Pure: no I/O.

This is the first guard, not the only one: statements run in a READ ONLY
transaction, on a hot standby, as a role with read-only grants.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pglast import ast, parse_sql
from pglast.parser import ParseError
from pglast.visitors import Visitor

from bot.tools.base import ToolRefused

# Functions that act instead of read: end sessions, change settings, reach other servers,
# touch files or large objects, write WAL, take advisory locks, advance sequences, or run
# a query string (which this classifier would never see).
SIDE_EFFECT_FUNCTIONS = frozenset(
    {
        "pg_terminate_backend",
        "pg_cancel_backend",
        "set_config",
        "pg_reload_conf",
        "pg_rotate_logfile",
        "pg_switch_wal",
        "pg_create_restore_point",
        "pg_backup_start",
        "pg_backup_stop",
        "pg_start_backup",
        "pg_stop_backup",
        "pg_promote",
        "pg_log_backend_memory_contexts",
        "pg_notify",
        "pg_logical_emit_message",
        "pg_import_system_collations",
        "nextval",
        "setval",
        "txid_current",
        "pg_current_xact_id",
        "query_to_xml",
        "query_to_xml_and_xmlschema",
        "query_to_xmlschema",
        "cursor_to_xml",
        "cursor_to_xmlschema",
        "pg_stat_statements_reset",
    }
)
SIDE_EFFECT_PREFIXES = (
    "dblink",
    "lo_",
    "pg_advisory",
    "pg_try_advisory",
    "pg_stat_reset",
    "pg_replication_",
    "pg_create_",
    "pg_drop_",
    "pg_wal_replay_",
    "pg_read_",
    "pg_ls_",
    "pg_file_",
    "pg_stat_file",
)
# Catalogs that hold password hashes or foreign-server credentials: never evidence.
SECRET_CATALOGS = frozenset({"pg_authid", "pg_shadow", "pg_user_mapping", "pg_user_mappings"})
WRITES = (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)
STATEMENTS = {
    ast.SelectStmt: "select",
    ast.ExplainStmt: "explain",
    ast.VariableShowStmt: "show",
}


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    rule: str
    reason: str
    kind: str = ""
    """select / explain / show when allowed."""
    analyze: bool = False
    json_plan: bool = False
    """An EXPLAIN that already asks for FORMAT JSON (rendered as a tree)."""


class SqlRefused(ToolRefused):
    """Refused before or by the server; carries the rule so the record can name it."""


def refuse(rule: str, reason: str) -> Verdict:
    return Verdict(False, f"sql#{rule}", reason)


def function_refusal(name: str) -> str | None:
    lower = name.lower()
    if lower in SIDE_EFFECT_FUNCTIONS or lower.startswith(SIDE_EFFECT_PREFIXES):
        return f"{lower}() has side effects (or runs SQL the classifier cannot see)"
    return None


class _Walk(Visitor):
    """Collects the first refusal anywhere in the tree: CTEs, subqueries, FROM, targets."""

    def __init__(self) -> None:
        self.refusal: Verdict | None = None

    def visit(self, ancestors: Any, node: Any) -> None:
        if self.refusal is not None:
            return
        if isinstance(node, WRITES):
            kind = type(node).__name__.removesuffix("Stmt").upper()
            self.refusal = refuse("data-modifying", f"{kind} inside the statement writes data")
        elif isinstance(node, ast.FuncCall):
            name = node.funcname[-1].sval if node.funcname else ""
            if (why := function_refusal(name or "")) is not None:
                self.refusal = refuse("side-effect-function", why)
        elif isinstance(node, ast.LockingClause):
            self.refusal = refuse("locking-clause", "FOR UPDATE/SHARE takes row locks")
        elif isinstance(node, ast.RangeVar) and (node.relname or "").lower() in SECRET_CATALOGS:
            self.refusal = refuse("secret-catalog", f"{node.relname} holds credentials")
        elif isinstance(node, ast.SelectStmt) and node.intoClause is not None:
            self.refusal = refuse("select-into", "SELECT INTO creates a table")


def _option_on(arg: Any) -> bool:
    """EXPLAIN option values: bare keyword, true/false/on/off, 0/1."""
    if arg is None:
        return True
    if isinstance(arg, ast.Boolean):
        return bool(arg.boolval)
    if isinstance(arg, ast.Integer):
        return arg.ival != 0
    if isinstance(arg, ast.String):
        return (arg.sval or "").lower() in ("true", "on", "yes", "1")
    return True  # unknown spelling: assume the dangerous reading


def _check(stmt: Any, allow_analyze: bool) -> Verdict:
    if isinstance(stmt, ast.CopyStmt):
        if stmt.is_program:
            return refuse("copy-program", "COPY ... PROGRAM runs a shell command on the server")
        return refuse("copy", "COPY reads or writes server files; use SELECT")
    kind = STATEMENTS.get(type(stmt))
    if kind is None:
        # The parse node's name (IndexStmt, VariableSetStmt): exact, where a keyword may lie.
        return refuse(
            "statement-type",
            f"{type(stmt).__name__} is not allowed: only SELECT, EXPLAIN of a SELECT, SHOW",
        )
    walk = _Walk()
    walk(stmt)
    if walk.refusal is not None:
        return walk.refusal
    if isinstance(stmt, ast.ExplainStmt):
        opts = {(o.defname or "").lower(): o.arg for o in stmt.options or ()}
        analyze = "analyze" in opts and _option_on(opts["analyze"])
        if analyze and not allow_analyze:
            return refuse(
                "explain-analyze",
                "EXPLAIN ANALYZE executes the statement; policy does not allow it "
                "for this connection (sql_connections.<name>.allow_analyze)",
            )
        inner = _check(stmt.query, allow_analyze)
        if not inner.allowed:
            return inner
        if inner.kind != "select":
            return refuse("statement-type", "EXPLAIN is allowed only of a SELECT")
        fmt = opts.get("format")
        json_plan = isinstance(fmt, ast.String) and (fmt.sval or "").lower() == "json"
        return Verdict(True, "sql#read-only", "EXPLAIN of a SELECT", "explain", analyze, json_plan)
    return Verdict(True, "sql#read-only", f"a plain {kind.upper()}", kind)


def classify(sql: str, allow_analyze: bool = False) -> Verdict:
    """Allowed only for exactly one SELECT, EXPLAIN [of a SELECT] or SHOW with no side effects."""
    try:
        stmts = parse_sql(sql)
    except ParseError as exc:
        return refuse("parse-error", f"not valid PostgreSQL: {exc}")
    if not stmts:
        return refuse("empty", "no statement")
    if len(stmts) > 1:
        return refuse(
            "multi-statement", f"{len(stmts)} statements in one string; send one at a time"
        )
    return _check(stmts[0].stmt, allow_analyze)


def check(sql: str, allow_analyze: bool = False) -> Verdict:
    """classify, raising SqlRefused when refused."""
    verdict = classify(sql, allow_analyze)
    if not verdict.allowed:
        raise SqlRefused(verdict.rule, verdict.reason)
    return verdict
