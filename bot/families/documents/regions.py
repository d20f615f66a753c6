"""What each picture shows: a copy of the document cut down to one changed place.

LibreOffice draws only a file's first page, so every picture is drawn from a copy made for
it: the changed sheet first, printed over the changed cells (highlighted) and fitted to a
page; the changed passage of a document with a block of context each side; one slide.
Copies are for drawing only; the proposal is the file as the tools saved it.
"""

from __future__ import annotations

from dataclasses import dataclass

from openpyxl.styles import PatternFill
from openpyxl.utils.cell import column_index_from_string, coordinate_from_string, get_column_letter
from openpyxl.worksheet.properties import PageSetupProperties
from openpyxl.worksheet.worksheet import Worksheet

from bot.families.documents import docx_file, pptx_file, xlsx_file
from bot.families.documents.docx_diff import changed_spans
from bot.families.documents.model import DocumentDiff, SheetDiff

MAX_ROWS, MAX_COLS = 40, 14
"""The largest sheet region pictured: legible once fitted to one page."""
MAX_PER_DOCUMENT = 4
OLD_FILL, NEW_FILL = "FFD7D5", "FFF2A8"
"""Changed cells: light red in the before picture, yellow in the after one."""

Box = tuple[int, int, int, int]
"""(min col, min row, max col, max row), 1-based."""


@dataclass(frozen=True)
class Shot:
    label: str
    before: tuple[str, bytes] | None
    after: tuple[str, bytes] | None
    """(file extension, bytes of the copy to draw)."""
    crop: bool = True
    """Cut to the ink (a sheet region, a passage); a slide is shown whole."""


def _cell(label: str) -> tuple[int, int] | None:
    try:
        letters, row = coordinate_from_string(label)
    except ValueError:
        return None
    return row, column_index_from_string(letters)


def _marks(sheet: SheetDiff, new: bool) -> list[tuple[int, int]]:
    """Cells to highlight on one side: changed cells, and inserted or deleted rows and
    columns up to their last non-empty cell."""
    t = sheet.table
    cells = [_cell(c.at if new else c.was_at or c.at) for c in t.cells]
    rows = t.rows_inserted if new else t.rows_deleted
    cols = t.cols_inserted if new else t.cols_deleted
    cells += [(int(r.at), c) for r in rows if r.at.isdigit() for c in range(1, len(r.cells) + 1)]
    cells += [
        (r, column_index_from_string(c.at))
        for c in cols
        if c.at.isalpha()
        for r in range(1, len(c.cells) + 1)
    ]
    return [c for c in cells if c is not None]


def _box(marks: list[tuple[int, int]], rows: int, cols: int) -> Box:
    if not marks:
        return 1, 1, min(cols, MAX_COLS), min(rows, MAX_ROWS)
    # From the top-left corner when the changes fit with it: headers give cells meaning.
    low_r, high_r = min(r for r, _ in marks), max(r for r, _ in marks)
    low_c, high_c = min(c for _, c in marks), max(c for _, c in marks)
    r1 = 1 if high_r < MAX_ROWS else max(1, low_r - 1)
    c1 = 1 if high_c < MAX_COLS else max(1, low_c - 1)
    r2 = min(max(rows, 1), high_r + 1, r1 + MAX_ROWS - 1)
    c2 = min(max(cols, 1), high_c + 1, c1 + MAX_COLS - 1)
    return c1, r1, max(c1, c2), max(r1, r2)


def _ref(box: Box) -> str:
    c1, r1, c2, r2 = box
    return f"{get_column_letter(c1)}{r1}:{get_column_letter(c2)}{r2}"


def sheet_copy(
    path: str, data: bytes, name: str, marks: list[tuple[int, int]], fill: str
) -> tuple[bytes, str]:
    """The workbook with sheet `name` first and alone visible, printed over the marked
    region with gridlines and headings, fitted to one page; and the region."""
    wb = xlsx_file.load(path, data)
    ws = xlsx_file.sheet(path, wb, name)
    wb.move_sheet(ws, offset=-wb.index(ws))
    wb.active = 0
    for other in wb.worksheets:
        other.sheet_state = "visible" if other is ws else "hidden"
    rows, cols = xlsx_file.size_of(path, ws)
    box = _box(marks, rows, cols)
    _frame(ws, box)
    c1, r1, c2, r2 = box
    for r, c in marks:
        if r1 <= r <= r2 and c1 <= c <= c2 and type(ws.cell(r, c)).__name__ != "MergedCell":
            ws.cell(r, c).fill = PatternFill("solid", fgColor=fill)
    return xlsx_file.as_bytes(wb), _ref(box)


def _frame(ws: Worksheet, box: Box) -> None:
    ws.print_area = _ref(box)
    ws.print_options.gridLines = True
    ws.print_options.headings = True
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 1
    ws.page_setup.orientation = "landscape" if box[2] - box[0] > 6 else "portrait"
    ws.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)


def _sheet_shots(d: DocumentDiff, before: bytes | None, after: bytes | None) -> list[Shot]:
    shots = []
    for s in d.sheets:
        if s.status in ("added", "removed") and s.size.startswith("0 rows"):
            continue  # an empty sheet: nothing to see
        old_name = s.renamed_from or s.name
        new_marks, old_marks = _marks(s, True), _marks(s, False)
        # Rows only inserted leave the old side without marks: show the same place.
        old_marks = old_marks or new_marks
        new_marks = new_marks or old_marks
        b = a = None
        ref = ""
        if before is not None and s.status != "added":
            data, ref = sheet_copy(
                d.path, before, old_name, old_marks if s.status != "removed" else [], OLD_FILL
            )
            b = ("xlsx", data)
        if after is not None and s.status != "removed":
            data, ref = sheet_copy(
                d.path, after, s.name, new_marks if s.status != "added" else [], NEW_FILL
            )
            a = ("xlsx", data)
        shots.append(Shot(f"sheet {s.name} {ref}".rstrip(), b, a))
    return shots


def _docx_shots(d: DocumentDiff, before: bytes | None, after: bytes | None) -> list[Shot]:
    old_doc = docx_file.load(d.path, before) if before is not None else None
    new_doc = docx_file.load(d.path, after) if after is not None else None
    old = docx_file.blocks(d.path, old_doc) if old_doc is not None else []
    new = docx_file.blocks(d.path, new_doc) if new_doc is not None else []
    shots = []
    for i1, i2, j1, j2 in changed_spans(old, new)[:MAX_PER_DOCUMENT]:
        first = new[j1] if j1 < len(new) else old[min(i1, len(old) - 1)]
        label = f"{'paragraph' if first.kind == 'p' else 'table'} {first.number}"
        # Fresh loads: region() cuts the document it is given.
        b = a = None
        if before is not None and old:
            b = ("docx", docx_file.region(docx_file.load(d.path, before), max(0, i1 - 1), i2))
        if after is not None and new:
            a = ("docx", docx_file.region(docx_file.load(d.path, after), max(0, j1 - 1), j2))
        shots.append(Shot(label, b, a))
    return shots


def _pptx_shots(d: DocumentDiff, before: bytes | None, after: bytes | None) -> list[Shot]:
    shots = []
    for s in d.slides[:MAX_PER_DOCUMENT]:
        old_number = s.was_number or s.number
        b = a = None
        if before is not None and s.status != "added":
            b = ("pptx", pptx_file.only_slide(pptx_file.load(d.path, before), old_number))
        if after is not None and s.status != "removed":
            a = ("pptx", pptx_file.only_slide(pptx_file.load(d.path, after), s.number))
        shots.append(Shot(f"slide {s.number}", b, a, crop=False))
    return shots


def shots(d: DocumentDiff, before: bytes | None, after: bytes | None) -> list[Shot]:
    """The pictures a diff calls for (none for CSV and Markdown: their diff is the text)."""
    if d.error:
        return []
    if d.format == "xlsx":
        return _sheet_shots(d, before, after)[:MAX_PER_DOCUMENT]
    if d.format == "docx":
        return _docx_shots(d, before, after)
    if d.format == "pptx":
        return _pptx_shots(d, before, after)
    return []
