"""One document's semantic diff, before against after, whatever its format.

Either side may be missing (a file added or deleted). A file that cannot be read safely
gets a diff with the error and its rule instead of changes: the evidence says why it
could not be shown, and the reviewer knows the patch carries a file nobody looked into.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from bot.families.documents import docx_file, pptx_file, xlsx_file
from bot.families.documents.csv_diff import diff_csv
from bot.families.documents.docx_diff import diff_blocks
from bot.families.documents.errors import DocumentError
from bot.families.documents.formats import Format
from bot.families.documents.model import DocumentDiff
from bot.families.documents.pptx_diff import diff_slides
from bot.families.documents.text_files import read_csv
from bot.families.documents.xlsx_diff import diff_sheets


def diff_document(
    path: str, fmt: Format, before: bytes | None, after: bytes | None
) -> DocumentDiff:
    status: Literal["changed", "added", "removed"] = (
        "added" if before is None else "removed" if after is None else "changed"
    )
    out = DocumentDiff(path=path, format=fmt, status=status)
    try:
        _fill(out, path, fmt, before, after)
    except DocumentError as exc:
        out.error, out.rule = exc.reason, exc.rule
    except Exception as exc:  # a parsed hostile file can still make a library raise anything
        out.error, out.rule = f"cannot be diffed: {type(exc).__name__}: {exc}", DocumentError.rule
    return out


def _fill(
    out: DocumentDiff, path: str, fmt: Format, before: bytes | None, after: bytes | None
) -> None:
    if fmt == "xlsx":
        old = xlsx_file.views(path, xlsx_file.load(path, before)) if before is not None else []
        new = xlsx_file.views(path, xlsx_file.load(path, after)) if after is not None else []
        out.sheets = diff_sheets(old, new)
    elif fmt == "docx":
        a = docx_file.blocks(path, docx_file.load(path, before)) if before is not None else []
        b = docx_file.blocks(path, docx_file.load(path, after)) if after is not None else []
        out.blocks = diff_blocks(a, b)
    elif fmt == "pptx":
        s = pptx_file.views(pptx_file.load(path, before)) if before is not None else []
        t = pptx_file.views(pptx_file.load(path, after)) if after is not None else []
        out.slides = diff_slides(s, t)
    elif fmt == "csv":
        out.csv = diff_csv(
            read_csv(path, before) if before is not None else [],
            read_csv(path, after) if after is not None else [],
        )
    # Markdown is text: the proposal's own diff shows it line by line.


def texts(path: str, fmt: Format, data: bytes) -> Iterator[tuple[str, str]]:
    """(where, text) of everything a package says, for the control plane's secret checks:
    they read patches, and a package's patch is binary. Text files are in the patch."""
    if fmt == "xlsx":
        for view in xlsx_file.views(path, xlsx_file.load(path, data)):
            for r, row in enumerate(view.grid, 1):
                for c, value in enumerate(row, 1):
                    if value:
                        yield f"{view.name}!{_col(c)}{r}", value
    elif fmt == "docx":
        for b in docx_file.blocks(path, docx_file.load(path, data)):
            if b.kind == "p":
                yield f"paragraph {b.number}", b.text
            for r, row in enumerate(b.grid, 1):
                for c, value in enumerate(row, 1):
                    yield f"table {b.number} R{r}C{c}", value
    elif fmt == "pptx":
        for v in pptx_file.views(pptx_file.load(path, data)):
            for name in ("title", "text", "notes"):
                yield f"slide {v.number} {name}", getattr(v, name)


def _col(n: int) -> str:
    letters = ""
    while n:
        n, rem = divmod(n - 1, 26)
        letters = chr(65 + rem) + letters
    return letters
