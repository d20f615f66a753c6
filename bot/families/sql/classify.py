"""Classify one SQL string before it reaches a server: allowed, or refused with its rule.

Parsed with pglast, i.e. libpg_query, PostgreSQL's own grammar: a generic
multi-dialect parser (sqlglot) can read a string differently from the server,
and that gap is exactly where a write would hide. Pure: no I/O.

This is the first guard, not the only one: statements run in a READ ONLY
transaction, on a hot standby, as a role with read-only grants that the
connection checks (execute.py). Functions are an allowlist (functions.py), but a
classifier cannot see functions reached through views, operators, casts or
attribute notation (`t.f` calls f(t)): the role is what bounds those.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from pglast import ast, parse_sql
from pglast.parser import ParseError
from pglast.stream import RawStream
from pglast.visitors import Visitor

from bot.families.base import ToolRefused
from bot.families.sql.functions import (
    ALL_ALLOWED,
    REFUSED_SIDE_EFFECT,
    REFUSED_SIDE_EFFECT_PREFIXES,
    REFUSED_SQL_TEXT,
    REFUSED_SQL_TEXT_PREFIXES,
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
class SqlVerdict:
    allowed: bool
    rule: str
    reason: str
    kind: str = ""
    """select / explain / show when allowed."""
    analyze: bool = False
    json_plan: bool = False
    """An EXPLAIN that already asks for FORMAT JSON (rendered as a tree)."""
    unqualified: frozenset[str] = frozenset()
    """Allowlisted built-ins called without `pg_catalog.`: the session refuses them where a
    schema on the search path defines the same name (an overload there could win)."""
    params: int = 0
    """The highest `$n` in the text (pg_stat_statements writes constants as $1, $2...):
    such a text has no values to run with, only a generic plan."""
    inner: str = ""
    """For an EXPLAIN: its SELECT, deparsed, which the generic plan prepares."""


class SqlRefused(ToolRefused):
    """Refused before or by the server; carries the rule so the record can name it."""


def refuse(rule: str, reason: str) -> SqlVerdict:
    return SqlVerdict(False, f"sql#{rule}", reason)


# The built-in TABLESAMPLE methods; others (tsm_system_rows, ...) are extension functions.
SAMPLE_METHODS = frozenset({"system", "bernoulli"})
ALLOW_FUNCTIONS_FIELD = "sql_connections.<name>.allow_functions"


def function_verdict(parts: list[str], allow: Collection[str] = ()) -> SqlVerdict | None:
    """None if the call may run; else the refusal. parts is the name as parsed: [schema,] name.

    A bare or pg_catalog-qualified name on the allowlist is a built-in. Any other
    spelling is a user or extension function, allowed only if policy names it exactly.
    Names that run SQL text or act are refused whatever policy says.
    """
    spelled = ".".join(parts)
    base = parts[-1].lower() if parts else ""
    if base in REFUSED_SQL_TEXT or base.startswith(REFUSED_SQL_TEXT_PREFIXES):
        return refuse(
            "sql-text-function",
            f"{spelled}() runs SQL text (or a query) that the classifier never sees; "
            "it is refused even if policy names it",
        )
    if base in REFUSED_SIDE_EFFECT or base.startswith(REFUSED_SIDE_EFFECT_PREFIXES):
        return refuse(
            "side-effect-function",
            f"{spelled}() has side effects (ends sessions, changes settings or state, "
            "touches files); it is refused even if policy names it",
        )
    builtin = len(parts) == 1 or (len(parts) == 2 and parts[0] == "pg_catalog")
    if (builtin and parts[-1] in ALL_ALLOWED) or spelled in allow:
        return None
    return refuse(
        "function-not-allowed",
        f"{spelled}() is not a built-in function known to be read-only; policy can allow it "
        f"by name in {ALLOW_FUNCTIONS_FIELD}",
    )


class _Walk(Visitor):
    """Collects the first refusal anywhere in the tree: CTEs, subqueries, FROM, targets."""

    def __init__(self, allow: Collection[str]) -> None:
        self.refusal: SqlVerdict | None = None
        self.allow = allow
        self.unqualified: set[str] = set()
        self.params = 0

    def visit(self, ancestors: Any, node: Any) -> None:
        if self.refusal is not None:
            return
        if isinstance(node, ast.ParamRef):
            self.params = max(self.params, node.number or 0)
        if isinstance(node, WRITES):
            kind = type(node).__name__.removesuffix("Stmt").upper()
            self.refusal = refuse("data-modifying", f"{kind} inside the statement writes data")
        elif isinstance(node, ast.FuncCall):
            parts = [n.sval or "" for n in node.funcname or ()]
            self.refusal = function_verdict(parts, self.allow)
            if len(parts) == 1:
                self.unqualified.add(parts[0])
        elif isinstance(node, ast.RangeTableSample):
            parts = [n.sval or "" for n in node.method or ()]
            if not (len(parts) == 1 and parts[0] in SAMPLE_METHODS):
                self.refusal = function_verdict(parts, self.allow)
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


def _check(stmt: Any, allow_analyze: bool, allow: Collection[str]) -> SqlVerdict:
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
    walk = _Walk(allow)
    walk(stmt)
    if walk.refusal is not None:
        return walk.refusal
    bare = frozenset(walk.unqualified)
    if isinstance(stmt, ast.ExplainStmt):
        opts = {(o.defname or "").lower(): o.arg for o in stmt.options or ()}
        analyze = "analyze" in opts and _option_on(opts["analyze"])
        if analyze and not allow_analyze:
            return refuse(
                "explain-analyze",
                "EXPLAIN ANALYZE executes the statement; policy does not allow it "
                "for this connection (sql_connections.<name>.allow_analyze)",
            )
        inner = _check(stmt.query, allow_analyze, allow)
        if not inner.allowed:
            return inner
        if inner.kind != "select":
            return refuse("statement-type", "EXPLAIN is allowed only of a SELECT")
        fmt = opts.get("format")
        json_plan = isinstance(fmt, ast.String) and (fmt.sval or "").lower() == "json"
        return SqlVerdict(
            True,
            "sql#read-only",
            "EXPLAIN of a SELECT",
            "explain",
            analyze,
            json_plan,
            bare,
            walk.params,
            RawStream()(stmt.query) if walk.params and stmt.query is not None else "",
        )
    return SqlVerdict(
        True, "sql#read-only", f"a plain {kind.upper()}", kind, unqualified=bare, params=walk.params
    )


def classify(
    sql: str, allow_analyze: bool = False, allow_functions: Collection[str] = ()
) -> SqlVerdict:
    """Allowed only for exactly one SELECT, EXPLAIN [of a SELECT] or SHOW with no side effects.

    allow_functions: names policy allows beyond the built-in allowlist (bot/sql/functions.py).
    """
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
    return _check(stmts[0].stmt, allow_analyze, frozenset(allow_functions))


# pg_stat_statements replaces the string of a typed literal (`interval '1 day'`) by $n and
# keeps the type name in front: `now() - interval $1`. libpg_query reads that as a cast
# (it is made to parse such texts) but the server calls it a syntax error.
TYPED_PARAM = re.compile(
    r"\b(interval|date|time|timestamp|timestamptz|numeric|json|jsonb|uuid|inet|money)"
    r"(\s+with(?:out)?\s+time\s+zone)?\s+\$(\d+)",
    re.IGNORECASE,
)


def normalised_literals(sql: str) -> str | None:
    """The text with each `type $n` spelled `$n::type`, as the server parses it; None when
    nothing changes. The rewrite is kept only if it parses to the very same tree, so a
    `date $1` inside a string literal (a different tree once rewritten) stays as sent."""
    fixed = TYPED_PARAM.sub(lambda m: f"${m[3]}::{m[1]}{m[2] or ''}", sql)
    if fixed == sql:
        return None
    try:
        same = [s.stmt for s in parse_sql(sql)] == [s.stmt for s in parse_sql(fixed)]
    except ParseError:
        return None
    return fixed if same else None


def check(
    sql: str, allow_analyze: bool = False, allow_functions: Collection[str] = ()
) -> SqlVerdict:
    """classify, raising SqlRefused when refused."""
    verdict = classify(sql, allow_analyze, allow_functions)
    if not verdict.allowed:
        raise SqlRefused(verdict.rule, verdict.reason)
    return verdict
