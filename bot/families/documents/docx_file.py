"""Word documents (python-docx): read paragraphs and tables; insert, replace or delete a
paragraph; write a table. Numbers are 1-based, paragraphs and tables counted apart, in
body order, as the evidence names them.

python-docx edits the XML in place and keeps every other part of the package, so an edit
changes what it says and nothing else: a replaced paragraph keeps its style and the
formatting of its first run.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import docx
from docx.document import Document
from docx.oxml.ns import qn
from docx.table import Table
from docx.text.paragraph import Paragraph

from bot.families.documents.errors import DocumentError, HugeDocument
from bot.families.documents.loading import parse, save
from bot.families.documents.marks import cut
from bot.families.documents.safety import MAX_CELLS

MAX_BLOCKS = 20_000
MAX_READ_CHARS = 60_000


def load(path: str, data: bytes) -> Document:
    doc: Document = parse(path, data, "docx", docx.Document)
    blocks = sum(1 for _ in doc.iter_inner_content())
    if blocks > MAX_BLOCKS:
        raise HugeDocument(path, f"{blocks} paragraphs and tables, over {MAX_BLOCKS}")
    return doc


def new() -> Document:
    return docx.Document()


def dump(path: str, doc: Document, before: bytes | None) -> bytes:
    return save(path, "docx", before, doc.save)


@dataclass(frozen=True)
class Block:
    """A body paragraph (kind "p": style, text) or table (kind "t": its cells' text)."""

    kind: str
    number: int
    style: str = ""
    text: str = ""
    grid: list[list[str]] = field(default_factory=list)


def table_grid(path: str, table: Table) -> list[list[str]]:
    rows = [[cell.text for cell in row.cells] for row in table.rows]
    if sum(len(r) for r in rows) > MAX_CELLS:
        raise HugeDocument(path, f"a table of over {MAX_CELLS} cells")
    return rows


def blocks(path: str, doc: Document) -> list[Block]:
    out: list[Block] = []
    paragraphs = tables = 0
    for item in doc.iter_inner_content():
        if isinstance(item, Paragraph):
            paragraphs += 1
            style = item.style.name if item.style is not None else ""
            out.append(Block("p", paragraphs, style or "", item.text))
        else:
            tables += 1
            out.append(Block("t", tables, grid=table_grid(path, item)))
    return out


def describe(path: str, doc: Document) -> str:
    items = blocks(path, doc)
    n_p = sum(1 for b in items if b.kind == "p")
    lines = [f"{path}: {n_p} paragraphs, {len(items) - n_p} tables"]
    for b in items:
        if b.kind == "p":
            style = f"[{b.style}] " if b.style and b.style != "Normal" else ""
            lines.append(f"¶{b.number} {style}{b.text}")
        else:
            cols = max((len(r) for r in b.grid), default=0)
            lines.append(f"table {b.number} ({len(b.grid)} rows x {cols} columns):")
            lines += [f"  R{i}: " + " | ".join(r) for i, r in enumerate(b.grid, 1)]
    return cut("\n".join(lines), MAX_READ_CHARS)


def paragraph(path: str, doc: Document, number: int) -> Paragraph:
    ps = doc.paragraphs
    if not 1 <= number <= len(ps):
        raise DocumentError(path, f"has no paragraph {number} (it has {len(ps)})")
    return ps[number - 1]


def _style(path: str, doc: Document, style: str | None) -> Any:
    if not style:
        return None
    try:
        return doc.styles[style]
    except KeyError:
        raise DocumentError(path, f"has no style named {style!r}") from None


def insert_paragraph(path: str, doc: Document, number: int, text: str, style: str | None) -> int:
    """Insert before paragraph `number` (one past the last appends); the new number."""
    count = len(doc.paragraphs)
    if number == count + 1:
        doc.add_paragraph(text, _style(path, doc, style))
        return number
    paragraph(path, doc, number).insert_paragraph_before(text, _style(path, doc, style))
    return number


def replace_paragraph(path: str, doc: Document, number: int, text: str) -> str:
    """The paragraph's text becomes text; its style, and its first run's formatting, stay.
    Returns the old text."""
    p = paragraph(path, doc, number)
    old = p.text
    runs = p.runs
    keep = runs[0]._r if runs else None
    for child in list(p._p):
        if child.tag != qn("w:pPr") and child is not keep:
            p._p.remove(child)
    if runs:
        runs[0].text = text
    else:
        p.add_run(text)
    return old


def delete_paragraph(path: str, doc: Document, number: int) -> str:
    p = paragraph(path, doc, number)
    p._p.getparent().remove(p._p)
    return p.text


def write_table(
    path: str,
    doc: Document,
    rows: Sequence[Sequence[str]],
    table: int | None = None,
    after: int | None = None,
) -> str:
    """Overwrite table `table` in place (its columns, styles and merges kept; rows added
    or removed to fit), or add a new table after paragraph `after` (default: at the end)."""
    width = max((len(r) for r in rows), default=0)
    if not rows or not width:
        raise DocumentError(path, "a table needs at least one row and one column")
    if len(rows) * width > MAX_CELLS:
        raise HugeDocument(path, f"a table of {len(rows)} x {width} cells is over {MAX_CELLS}")
    if table is not None:
        tables = doc.tables
        if not 1 <= table <= len(tables):
            raise DocumentError(path, f"has no table {table} (it has {len(tables)})")
        t = tables[table - 1]
        cols = len(t.columns)
        if any(len(r) != cols for r in rows):
            raise DocumentError(path, f"table {table} has {cols} columns: give {cols} per row")
        while len(t.rows) > len(rows):
            t._tbl.remove(t.rows[-1]._tr)
        while len(t.rows) < len(rows):
            t.add_row()  # type: ignore[no-untyped-call]
        _fill(t, rows)
        return f"table {table} now {len(rows)} rows x {cols} columns"
    styles = {s.name for s in doc.styles}
    t = doc.add_table(len(rows), width, "Table Grid" if "Table Grid" in styles else None)
    _fill(t, [[*r, *[""] * (width - len(r))] for r in rows])
    if after is not None:
        paragraph(path, doc, after)._p.addnext(t._tbl)
    number = 1 + [x._tbl for x in doc.tables].index(t._tbl)
    return f"added table {number} ({len(rows)} rows x {width} columns)"


def _fill(t: Table, rows: Sequence[Sequence[str]]) -> None:
    for i, values in enumerate(rows):
        cells = t.rows[i].cells
        for j, value in enumerate(values):
            if cells[j].text != value:
                cells[j].text = value


def region(doc: Document, first: int, last: int) -> bytes:
    """A copy holding only body blocks first..last (0-based, in body order): what the
    picture of a changed passage shows. Not a proposal: saved as is."""
    body = doc.element.body
    items = [c for c in body.iterchildren() if c.tag in (qn("w:p"), qn("w:tbl"))]
    for i, child in enumerate(items):
        if not first <= i <= last:
            body.remove(child)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()
