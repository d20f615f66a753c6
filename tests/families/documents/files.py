"""Real documents for the tests, written by the same libraries people's tools use."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Sequence
from typing import Any

import docx
import openpyxl
import pptx

from bot.demo.report import TARGETS_Q3, last_quarter
from bot.families.documents.package import NEW_FILE_STAMP, deterministic

Rows = Sequence[Sequence[Any]]


def workbook(sheets: dict[str, Rows], merged: dict[str, list[str]] | None = None) -> bytes:
    wb = openpyxl.Workbook()
    assert wb.active is not None
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for row in rows:
            ws.append(list(row))
        for ref in (merged or {}).get(name, []):
            ws.merge_cells(ref)
    out = io.BytesIO()
    wb.save(out)
    return deterministic(out.getvalue(), NEW_FILE_STAMP, new_file=True)


def document(paragraphs: Sequence[str | tuple[str, str]], tables: Sequence[Rows] = ()) -> bytes:
    """Paragraphs (text, or (style, text)), then the tables."""
    d = docx.Document()
    for p in paragraphs:
        style, text = p if isinstance(p, tuple) else (None, p)
        d.add_paragraph(text, style)
    for rows in tables:
        t = d.add_table(len(rows), max(len(r) for r in rows))
        for i, row in enumerate(rows):
            for j, value in enumerate(row):
                t.cell(i, j).text = str(value)
    out = io.BytesIO()
    d.save(out)
    return out.getvalue()


def deck(slides: Sequence[tuple[str, str, str]]) -> bytes:
    """Slides of (title, body text, notes)."""
    prs = pptx.Presentation()
    for title, text, notes in slides:
        s = prs.slides.add_slide(prs.slide_layouts[1])
        assert s.shapes.title is not None
        s.shapes.title.text = title
        s.placeholders[1].text_frame.text = text
        if notes:
            frame = s.notes_slide.notes_text_frame
            assert frame is not None
            frame.text = notes
    out = io.BytesIO()
    prs.save(out)
    return out.getvalue()


def repack(data: bytes, change: Callable[[dict[str, bytes]], None]) -> bytes:
    """The package with its parts changed by change(parts), re-zipped as written."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        parts = {name: zf.read(name) for name in zf.namelist()}
    change(parts)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, body in parts.items():
            zf.writestr(name, body)
    return out.getvalue()


# Last quarter's workbook and this quarter's targets, as the shipped job finds them, come
# from bot.demo.report: the demo builds the same bytes.
__all__ = ["TARGETS_Q3", "deck", "document", "last_quarter", "repack", "workbook"]
