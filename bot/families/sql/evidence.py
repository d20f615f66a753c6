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
    explain: str = ""
    """The options of the EXPLAIN agentplane ran (`ANALYZE, BUFFERS, FORMAT JSON`); empty
    when the plan is the statement's own EXPLAIN output."""
    notes: list[str] = Field(default_factory=list)
    """What agentplane did to the text or the plan that a reader must know (a generic plan)."""
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


# Keys the head line already shows, or that only say how the JSON is laid out: every
# other key of a node is a detail line, so nothing EXPLAIN said is dropped from the tree.
_IN_HEAD = frozenset(
    {
        "Node Type", "Relation Name", "Schema", "Alias", "Index Name", "Startup Cost",
        "Total Cost", "Plan Rows", "Plan Width", "Actual Startup Time", "Actual Total Time",
        "Actual Rows", "Actual Loops", "Plans", "Parallel Aware", "Async Capable",
        "Parent Relationship", "Subplan Name", "Partial Mode", "Strategy", "Join Type",
        "Scan Direction", "CTE Name", "Function Name", "Command",
    }
)  # fmt: skip
# Shown first, in PostgreSQL's text order; the rest follow as EXPLAIN emitted them.
DETAILS = (
    "Output", "Workers Planned", "Workers Launched", "Group Key", "Sort Key",
    "Presorted Key", "Hash Cond", "Merge Cond", "Index Cond", "Recheck Cond", "Join Filter",
    "Rows Removed by Join Filter", "Filter", "Rows Removed by Filter",
    "Rows Removed by Index Recheck", "One-Time Filter", "Heap Fetches",
)  # fmt: skip
_BUFFER_KINDS = (
    ("shared", ("Hit", "Read", "Dirtied", "Written")),
    ("local", ("Hit", "Read", "Dirtied", "Written")),
    ("temp", ("Read", "Written")),
)
_IO_TIMES = (("shared", "Shared I/O"), ("temp", "Temp I/O"), ("", "I/O"))


def _buffer_keys() -> frozenset[str]:
    keys = {f"{k.title()} {w} Blocks" for k, ws in _BUFFER_KINDS for w in ws}
    for _, prefix in _IO_TIMES:
        keys |= {f"{prefix} Read Time", f"{prefix} Write Time"}
    return frozenset(keys)


BUFFER_KEYS = _buffer_keys()


def _prefix(node: dict[str, Any]) -> str:
    """The words PostgreSQL's text format puts before a node type, which JSON keeps apart."""
    words = []
    if node.get("Partial Mode") and node["Partial Mode"] != "Simple":
        words.append(str(node["Partial Mode"]))  # Partial / Finalize Aggregate
    if node.get("Parallel Aware"):
        words.append("Parallel")
    if node.get("Async Capable") and node.get("Node Type") == "Foreign Scan":
        words.append("Async")
    return " ".join([*words, ""])


def _node_name(node: dict[str, Any]) -> str:
    kind = str(node.get("Node Type", "?"))
    strategy = node.get("Strategy")
    if kind == "Aggregate" and strategy in ("Hashed", "Sorted", "Mixed"):
        kind = {"Hashed": "HashAggregate", "Sorted": "GroupAggregate", "Mixed": "MixedAggregate"}[
            strategy
        ]
    elif kind == "SetOp" and strategy == "Hashed":
        kind = "HashSetOp"
    if node.get("Join Type") and node["Join Type"] != "Inner":
        jt = node["Join Type"]  # Hash Left Join, Nested Loop Anti Join
        kind = kind.replace(" Join", f" {jt} Join") if " Join" in kind else f"{kind} {jt} Join"
    if node.get("Command") and kind in ("SetOp", "HashSetOp"):
        kind += f" {node['Command']}"
    name = _prefix(node) + kind
    if node.get("Scan Direction") == "Backward":
        name += " Backward"
    if node.get("Index Name"):
        name += f" using {node['Index Name']}"
    if node.get("Relation Name"):
        alias = node.get("Alias")
        rel = f"{node.get('Schema', '')}.{node['Relation Name']}".lstrip(".")
        name += f" on {rel}" + (f" {alias}" if alias and alias != node["Relation Name"] else "")
    elif node.get("CTE Name"):
        name += f" on {node['CTE Name']}"
    elif node.get("Function Name"):
        name += f" on {node['Function Name']}"
    return name


SHOWN_VALUE = 4000
"""A value longer than this is cut in the text shown; the evidence keeps it whole."""


def render_rows(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A table while every value fits a column; else one record per row, as psql's
    expanded display: a definition is read whole, not cut to the table's width."""
    if all(len(v) <= MAX_VALUE for r in rows for v in r):
        return render_table(columns, rows)
    width = max((len(c) for c in columns), default=0)
    out = []
    for i, row in enumerate(rows, 1):
        out.append(f"-[ RECORD {i} ]" + "-" * max(width - 8, 4))
        for col, value in zip(columns, row, strict=False):
            if len(value) > SHOWN_VALUE:
                value = value[:SHOWN_VALUE] + f"… ({len(value) - SHOWN_VALUE} more characters)"
            out.append(f"{col.ljust(width)} | {value}")
    return "\n".join(out)


def _node_line(node: dict[str, Any]) -> str:
    est = (
        f"(cost={node.get('Startup Cost', 0):.2f}..{node.get('Total Cost', 0):.2f}"
        f" rows={node.get('Plan Rows', '?')} width={node.get('Plan Width', '?')})"
    )
    if node.get("Actual Loops") == 0:
        est += " (never executed)"
    elif "Actual Total Time" in node:
        est += (
            f" (actual time={node['Actual Startup Time']:.3f}..{node['Actual Total Time']:.3f}"
            f" rows={node.get('Actual Rows', '?')} loops={node.get('Actual Loops', '?')})"
        )
    elif "Actual Rows" in node:  # ANALYZE with TIMING off: rows without times
        est += f" (actual rows={node['Actual Rows']} loops={node.get('Actual Loops', '?')})"
    return f"{_node_name(node)}  {est}"


def buffers_line(node: dict[str, Any]) -> str | None:
    """`Buffers: shared hit=12 read=3, temp written=40`, as the text format prints it;
    None when EXPLAIN had no BUFFERS or every count is zero."""
    parts = []
    for kind, words in _BUFFER_KINDS:
        counts = [
            f"{w.lower()}={node[key]}"
            for w in words
            if node.get(key := f"{kind.title()} {w} Blocks")
        ]
        if counts:
            parts.append(f"{kind} " + " ".join(counts))
    return "Buffers: " + ", ".join(parts) if parts else None


def _io_line(node: dict[str, Any]) -> str | None:
    parts = []
    for label, prefix in _IO_TIMES:
        times = [
            f"{w.lower()}={node[key]:.3f}"
            for w in ("Read", "Write")
            if node.get(key := f"{prefix} {w} Time")
        ]
        if times:
            parts.append((f"{label} " if label else "") + " ".join(times))
    return "I/O Timings: " + ", ".join(parts) if parts else None


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render_plan(plan: Sequence[dict[str, Any]]) -> str:
    """EXPLAIN (FORMAT JSON) as an indented tree, like the text format but always complete:
    every key EXPLAIN emitted is on the head line or a detail line under it."""
    lines: list[str] = []

    def walk(node: dict[str, Any], depth: int) -> None:
        # PostgreSQL's own text layout: each level six columns in, details under the name.
        head = " " * (6 * depth - 4) + "->  " if depth else ""
        pad = " " * (6 * depth + 2)
        if node.get("Subplan Name"):  # InitPlan 1 (returns $0), SubPlan 2: a label line
            lines.append(" " * max(6 * depth - 4, 0) + str(node["Subplan Name"]))
        lines.append(head + _node_line(node))
        # A false flag (Inner Unique: false) says nothing a reader needs; a true one does.
        rest = [
            k for k in node if k not in _IN_HEAD and k not in BUFFER_KEYS and node[k] is not False
        ]
        for key in sorted(rest, key=lambda k: DETAILS.index(k) if k in DETAILS else 99):
            if key == "Workers" and isinstance(node[key], list):
                for w in node[key]:  # per-worker actuals (ANALYZE VERBOSE)
                    lines.append(f"{pad}Worker {w.get('Worker Number', '?')}: " + _shown(
                        {k: v for k, v in w.items() if k != "Worker Number"}
                    ))  # fmt: skip
                continue
            lines.append(f"{pad}{key}: {_shown(node[key])}")
        for extra in (buffers_line(node), _io_line(node)):
            if extra:
                lines.append(pad + extra)
        for child in node.get("Plans", []):
            walk(child, depth + 1)

    for entry in plan:
        walk(entry.get("Plan", {}), 0)
        planning = entry.get("Planning")
        if isinstance(planning, dict) and (buf := buffers_line(planning)):
            lines += ["Planning:", f"  {buf}"]
        for key, value in entry.items():
            if key in ("Plan", "Planning"):
                continue
            if key in ("Planning Time", "Execution Time"):
                lines.append(f"{key}: {value:.3f} ms")
            elif key == "Triggers" and isinstance(value, list):
                lines += [f"Trigger {_shown(t)}" for t in value]
            else:
                lines.append(f"{key}: {_shown(value)}")
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
        lines += [f"note: {n}" for n in ev.notes]
        if ev.columns:
            lines.append(render_rows(ev.columns, ev.rows))
        if ev.plan:
            options = ev.explain or ("ANALYZE, FORMAT JSON" if ev.analyze else "FORMAT JSON")
            lines += ["", f"Plan (EXPLAIN ({options})):", render_plan(ev.plan)]
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
