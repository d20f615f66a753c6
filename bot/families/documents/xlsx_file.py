"""Spreadsheets (openpyxl): read a range, set cells and formulas, add or rename a sheet,
write a table; and each sheet as a grid of what a reviewer sees in its cells.

Formulas are kept and shown as formulas (`=SUM(B2:B4)`), never as cached values: the file
is what is proposed, and a value openpyxl cannot compute would be a guess. Formulas the
model writes may not reach outside the workbook (another file, a web service): whatever
opens the file next would fetch it.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import openpyxl
from openpyxl.formula import Tokenizer
from openpyxl.formula.tokenizer import Token, TokenizerError
from openpyxl.utils.cell import (
    column_index_from_string,
    coordinate_from_string,
    get_column_letter,
    quote_sheetname,
    range_boundaries,
)
from openpyxl.workbook.workbook import Workbook
from openpyxl.worksheet.worksheet import Worksheet

from bot.families.documents.errors import DocumentError, ExternalContent, HugeDocument
from bot.families.documents.loading import parse, save
from bot.families.documents.safety import MAX_CELLS

Value = str | int | float | bool | None
MAX_SHEET_NAME = 31
_BAD_SHEET_CHARS = re.compile(r"[\[\]:*?/\\]")
_FETCHING = frozenset(
    {"WEBSERVICE", "FILTERXML", "DDE", "RTD", "CALL", "REGISTER.ID", "EXEC", "IMAGE"}
    | {"IMPORTXML", "IMPORTDATA", "IMPORTHTML", "IMPORTRANGE", "IMPORTFEED"}
)
"""Functions that fetch or run something outside the workbook (Excel's, LibreOffice's,
and the Google Sheets ones other suites import)."""


def load(path: str, data: bytes) -> Workbook:
    # keep_links=False: external link caches are never loaded (and safety refused them).
    return parse(
        path, data, "xlsx", lambda f: openpyxl.load_workbook(f, data_only=False, keep_links=False)
    )


def new() -> Workbook:
    return openpyxl.Workbook()


def dump(path: str, wb: Workbook, before: bytes | None) -> bytes:
    return save(path, "xlsx", before, wb.save)


def shown(value: Any, data_type: str = "") -> str:
    """A cell as a reviewer reads it: formulas as formulas, numbers without float noise,
    text that starts with "=" marked as text (Excel's leading apostrophe)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, str):
        return "'" + value if data_type == "s" and value.startswith("=") else value
    text = getattr(value, "text", None)  # array and data-table formulas
    return str(text) if isinstance(text, str) else str(value)


def sheet(path: str, wb: Workbook, name: str) -> Worksheet:
    if name not in wb.sheetnames:
        raise DocumentError(path, f"has no sheet {name!r} (sheets: {', '.join(wb.sheetnames)})")
    ws = wb[name]
    if not isinstance(ws, Worksheet):
        raise DocumentError(path, f"{name!r} is a chart sheet, not a worksheet")
    found: Worksheet = ws
    return found


def size_of(path: str, ws: Worksheet) -> tuple[int, int]:
    """(rows, cols) of the used range from A1; refused past MAX_CELLS, since diffs and
    reads treat it as a dense grid."""
    rows, cols = ws.max_row, ws.max_column
    if rows * cols > MAX_CELLS:
        raise HugeDocument(
            path, f"sheet {ws.title!r} spans {rows} rows x {cols} columns, over {MAX_CELLS} cells"
        )
    return rows, cols


def grid(path: str, ws: Worksheet) -> list[list[str]]:
    rows, cols = size_of(path, ws)
    if rows == 1 and cols == 1 and ws.cell(1, 1).value is None:
        return []
    return [
        [shown(c.value, c.data_type) for c in row]
        for row in ws.iter_rows(min_row=1, max_row=rows, min_col=1, max_col=cols)
    ]


@dataclass(frozen=True)
class SheetView:
    name: str
    state: str
    grid: list[list[str]]
    merged: list[str]


def views(path: str, wb: Workbook) -> list[SheetView]:
    """Every worksheet as a reviewer sees it, in tab order (chart sheets have no cells)."""
    return [
        SheetView(
            ws.title, ws.sheet_state, grid(path, ws), sorted(map(str, ws.merged_cells.ranges))
        )
        for ws in wb.worksheets
        if isinstance(ws, Worksheet)
    ]


# -- edits -------------------------------------------------------------------------------


def check_formula(path: str, formula: str) -> None:
    """Refuse a formula that does not parse, or reaches another file or the network."""
    try:
        tokens = Tokenizer(formula).items
    except TokenizerError as exc:
        raise DocumentError(path, f"formula {formula!r} does not parse: {exc}") from None
    for t in tokens:
        if t.type == Token.FUNC and t.subtype == Token.OPEN:
            name = t.value.rstrip("(").upper().removeprefix("_XLFN.").removeprefix("_XLWS.")
            if name in _FETCHING:
                raise ExternalContent(path, f"formula {formula!r} calls {name}, which fetches")
        if t.type == Token.OPERAND and t.subtype == Token.RANGE and "!" in t.value:
            where = t.value.rsplit("!", 1)[0]
            if "[" in where or "://" in where or where.strip("'").lower().startswith("file"):
                raise ExternalContent(path, f"formula {formula!r} refers to another workbook")


def put(path: str, ws: Worksheet, ref: str, value: Value) -> None:
    """One cell: a string starting "=" is a formula, one starting "'" is literal text."""
    try:
        cell = ws[ref]
    except (ValueError, KeyError):
        raise DocumentError(path, f"{ref!r} is not a cell reference like B7") from None
    if isinstance(cell, tuple) or not hasattr(cell, "value"):
        raise DocumentError(path, f"{ref!r} is a range; name one cell")
    if type(cell).__name__ == "MergedCell":
        raise DocumentError(path, f"{ws.title}!{ref} is inside a merged range; set its first cell")
    if isinstance(value, str) and value.startswith("'"):
        cell.value = value[1:]
        cell.data_type = "s"  # "'=x" is the text "=x", as in Excel
        return
    if isinstance(value, str) and value.startswith("="):
        check_formula(path, value)
    cell.value = value


def set_cells(path: str, ws: Worksheet, cells: Mapping[str, Value]) -> None:
    for ref, value in cells.items():
        put(path, ws, ref.strip().upper(), value)


def write_table(path: str, ws: Worksheet, start: str, rows: Sequence[Sequence[Value]]) -> str:
    """rows written from start, row by row; the range written, e.g. "A1:C4"."""
    try:
        col_letter, row = coordinate_from_string(start.strip().upper())
    except ValueError:
        raise DocumentError(path, f"{start!r} is not a cell reference like A1") from None
    col = column_index_from_string(col_letter)
    width = max((len(r) for r in rows), default=0)
    if len(rows) * max(width, 1) > MAX_CELLS:
        raise HugeDocument(path, f"a table of {len(rows)} x {width} cells is over {MAX_CELLS}")
    for i, values in enumerate(rows):
        for j, value in enumerate(values):
            put(path, ws, f"{get_column_letter(col + j)}{row + i}", value)
    end = f"{get_column_letter(col + max(width, 1) - 1)}{row + max(len(rows), 1) - 1}"
    return f"{col_letter}{row}:{end}"


def check_sheet_name(path: str, wb: Workbook, name: str) -> None:
    if not name or len(name) > MAX_SHEET_NAME or _BAD_SHEET_CHARS.search(name):
        raise DocumentError(
            path, f"{name!r} is not a sheet name (1-31 characters, none of []:*?/\\)"
        )
    if name.lower() in (n.lower() for n in wb.sheetnames):
        raise DocumentError(path, f"already has a sheet named {name!r}")


def add_sheet(path: str, wb: Workbook, name: str, index: int | None = None) -> Worksheet:
    check_sheet_name(path, wb, name)
    made: Worksheet = wb.create_sheet(name, index)
    return made


def rename_sheet(path: str, wb: Workbook, old: str, new_name: str) -> int:
    """Rename, and rewrite every formula and defined name that refers to it (as Excel does;
    openpyxl alone would leave them pointing at a sheet that is gone). Formulas rewritten."""
    ws = sheet(path, wb, old)
    check_sheet_name(path, wb, new_name)
    ws.title = new_name
    rewritten = 0
    for other in wb.worksheets:
        for row in other.iter_rows():
            for cell in row:
                if cell.data_type == "f" and isinstance(cell.value, str):
                    fixed = _renamed(cell.value, old, new_name)
                    if fixed != cell.value:
                        cell.value, rewritten = fixed, rewritten + 1
    for defined in wb.defined_names.values():
        if defined.attr_text:
            defined.attr_text = _renamed("=" + defined.attr_text, old, new_name)[1:]
    return rewritten


def _renamed(formula: str, old: str, new_name: str) -> str:
    try:
        tok = Tokenizer(formula)
    except TokenizerError:
        return formula
    for t in tok.items:
        if t.type == Token.OPERAND and t.subtype == Token.RANGE and "!" in t.value:
            where, ref = t.value.rsplit("!", 1)
            bare = where[1:-1].replace("''", "'") if where.startswith("'") else where
            if bare == old:
                t.value = f"{quote_sheetname(new_name)}!{ref}"
    return "=" + "".join(str(t.value) for t in tok.items)


# -- reading, for the model ---------------------------------------------------------------

MAX_SHOWN_CELLS = 2000
MAX_SHOWN_VALUE = 60


def describe(path: str, wb: Workbook, name: str | None, ref: str | None) -> str:
    """The sheets, then one range (default: the used range of the sheet, or the first)."""
    lines = [f"{path}: sheets " + ", ".join(_sheet_line(path, ws) for ws in wb.worksheets)]
    ws = sheet(path, wb, name) if name else wb.worksheets[0]
    if not isinstance(ws, Worksheet):
        return "\n".join(lines)
    rows, cols = size_of(path, ws)
    try:
        bounds = range_boundaries(ref.upper()) if ref else (1, 1, cols, rows)
    except (ValueError, TypeError):
        raise DocumentError(path, f"{ref!r} is not a range like A1:D20") from None
    c1, r1 = bounds[0] or 1, bounds[1] or 1
    c2, r2 = bounds[2] or cols, bounds[3] or rows
    cut = ""
    if (r2 - r1 + 1) * (c2 - c1 + 1) > MAX_SHOWN_CELLS:
        r2 = r1 + max(1, MAX_SHOWN_CELLS // (c2 - c1 + 1)) - 1
        cut = f"(cut at row {r2}: read a smaller range for the rest)"
    shown_ref = f"{get_column_letter(c1)}{r1}:{get_column_letter(c2)}{r2}"
    lines.append(
        f"{ws.title}!{shown_ref}"
        + (
            f"; merged {', '.join(map(str, ws.merged_cells.ranges))}"
            if ws.merged_cells.ranges
            else ""
        )
    )
    header = ["", *(get_column_letter(c) for c in range(c1, c2 + 1))]
    body = [
        [
            str(r),
            *(
                _short(shown(ws.cell(r, c).value, ws.cell(r, c).data_type))
                for c in range(c1, c2 + 1)
            ),
        ]
        for r in range(r1, r2 + 1)
    ]
    lines += [" | ".join(row).rstrip() for row in [header, *body]]
    return "\n".join([*lines, *([cut] if cut else [])])


def _sheet_line(path: str, ws: Any) -> str:
    if not isinstance(ws, Worksheet):
        return f"{ws.title} (chart)"
    rows, cols = size_of(path, ws)
    hidden = "" if ws.sheet_state == "visible" else f", {ws.sheet_state}"
    return f"{ws.title} (A1:{get_column_letter(cols)}{rows}{hidden})"


def _short(text: str) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= MAX_SHOWN_VALUE else text[: MAX_SHOWN_VALUE - 1] + "…"


def as_bytes(wb: Workbook) -> bytes:
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
