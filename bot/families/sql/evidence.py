"""Query evidence: one model per query, rendered as text for the record, the model and the PR.

Pure: values arrive already fetched; here they are truncated, redacted and laid out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from pglast import prettify
from pglast.parser import ParseError
from pydantic import BaseModel, Field

MAX_VALUE = 60
SHOWN_ROWS = 10


class SqlEvidence(BaseModel):
    seq: int
    connection: str
    """Name and host/port/db/user; never the password."""
    sql: str
    """Formatted."""
    status: Literal["ok", "refused", "error"]
    rule: str
    reason: str = ""
    columns: list[str] = Field(default_factory=list)
    rows: list[list[str]] = Field(default_factory=list)
    """The first rows, values already truncated and redacted."""
    row_count: int = 0
    capped: bool = False
    row_cap: int = 0
    byte_capped: bool = False
    """Values were cut at byte_cap; rows after the cut were not fetched."""
    byte_cap: int = 0
    plan: list[dict[str, Any]] | None = None
    """EXPLAIN (FORMAT JSON) output."""
    analyze: bool = False
    duration_ms: float = 0.0


def format_sql(sql: str) -> str:
    try:
        return str(prettify(sql))
    except (ParseError, ValueError, NotImplementedError):
        return sql.strip()  # refused for a parse error: show it as sent


def cell(value: Any, redact: Callable[[str], str] = lambda s: s, limit: int = MAX_VALUE) -> str:
    # Redact before truncating: a cut could leave a secret's prefix that no longer matches.
    text = "NULL" if value is None else str(value)
    text = redact(text).replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(c) for c in columns]
    for row in rows:
        widths = [max(w, len(v)) for w, v in zip(widths, row, strict=False)]

    def line(values: Sequence[str]) -> str:
        return " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=False)).rstrip()

    return "\n".join([line(columns), "-+-".join("-" * w for w in widths), *(line(r) for r in rows)])


def _node_line(node: dict[str, Any]) -> str:
    name = str(node.get("Node Type", "?"))
    if node.get("Relation Name"):
        alias = node.get("Alias")
        rel = f"{node.get('Schema', '')}.{node['Relation Name']}".lstrip(".")
        name += f" on {rel}" + (f" {alias}" if alias and alias != node["Relation Name"] else "")
    elif node.get("Index Name"):
        name += f" using {node['Index Name']}"
    est = (
        f"(cost={node.get('Startup Cost', 0):.2f}..{node.get('Total Cost', 0):.2f}"
        f" rows={node.get('Plan Rows', '?')} width={node.get('Plan Width', '?')})"
    )
    if "Actual Total Time" in node:
        est += (
            f" (actual time={node['Actual Startup Time']:.3f}..{node['Actual Total Time']:.3f}"
            f" rows={node.get('Actual Rows', '?')} loops={node.get('Actual Loops', '?')})"
        )
    return f"{name}  {est}"


DETAILS = ("Filter", "Index Cond", "Hash Cond", "Join Filter", "Sort Key", "Group Key")


def render_plan(plan: Sequence[dict[str, Any]]) -> str:
    """EXPLAIN (FORMAT JSON) as an indented tree, like the text format but always complete."""
    lines: list[str] = []

    def walk(node: dict[str, Any], depth: int) -> None:
        # PostgreSQL's own text layout: each level six columns in, details under the name.
        head = " " * (6 * depth - 4) + "->  " if depth else ""
        pad = " " * (6 * depth + 2)
        lines.append(head + _node_line(node))
        for key in DETAILS:
            if key in node:
                value = node[key]
                shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
                lines.append(f"{pad}{key}: {shown}")
        if "Rows Removed by Filter" in node:
            lines.append(f"{pad}Rows Removed by Filter: {node['Rows Removed by Filter']}")
        for child in node.get("Plans", []):
            walk(child, depth + 1)

    for entry in plan:
        walk(entry.get("Plan", {}), 0)
        for key in ("Planning Time", "Execution Time"):
            if key in entry:
                lines.append(f"{key}: {entry[key]:.3f} ms")
    return "\n".join(lines)


def render_one(ev: SqlEvidence) -> str:
    head = f"-- query {ev.seq} on {ev.connection}: {ev.status}"
    if ev.status != "ok":
        head += f" [{ev.rule}] {ev.reason}"
    lines = [head, ev.sql]
    if ev.status == "ok":
        more = f" (row cap {ev.row_cap} hit: more rows not fetched)" if ev.capped else ""
        if ev.byte_capped:
            more = f" (byte cap {ev.byte_cap} hit: result cut at {ev.byte_cap} bytes)"
        shown = f", first {len(ev.rows)} shown" if len(ev.rows) < ev.row_count else ""
        lines += ["", f"{ev.row_count} row(s){more}{shown}; {ev.duration_ms:.1f} ms"]
        if ev.columns:
            lines.append(render_table(ev.columns, ev.rows))
        if ev.plan:
            label = "EXPLAIN (ANALYZE, FORMAT JSON)" if ev.analyze else "EXPLAIN (FORMAT JSON)"
            lines += ["", f"Plan ({label}):", render_plan(ev.plan)]
    return "\n".join(lines)


def render_sql_evidence(evidence: Sequence[SqlEvidence]) -> str:
    """Every query of a run, for the run page and the PR comment."""
    if not evidence:
        return "SQL: no queries."
    ok = sum(1 for e in evidence if e.status == "ok")
    head = (
        f"SQL evidence: {len(evidence)} queries, {ok} ran, {len(evidence) - ok} refused or failed"
    )
    return "\n\n".join([head, *(render_one(e) for e in evidence)])
