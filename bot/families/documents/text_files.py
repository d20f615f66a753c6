"""CSV and Markdown: rows in, rows out; Markdown by section (a heading and what follows it
up to the next heading of the same or a higher level)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence

from bot.families.documents.errors import DocumentError, HugeDocument
from bot.families.documents.marks import cut
from bot.families.documents.safety import MAX_CELLS, text_of, vet

MAX_READ_CHARS = 60_000
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def _dialect(text: str) -> type[csv.Dialect] | csv.Dialect:
    try:
        return csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        return csv.excel


def read_csv(path: str, data: bytes) -> list[list[str]]:
    vet(path, data, "csv")
    text = text_of(path, data)
    try:
        rows = list(csv.reader(io.StringIO(text), _dialect(text)))
    except csv.Error as exc:
        raise DocumentError(path, f"is not CSV: {exc}") from None
    width = max((len(r) for r in rows), default=0)
    if len(rows) * width > MAX_CELLS:
        raise HugeDocument(path, f"{len(rows)} rows x {width} columns, over {MAX_CELLS} cells")
    return rows


def write_csv(rows: Sequence[Sequence[str]], before: bytes | None) -> bytes:
    """rows as CSV, in the delimiter the file had (a comma for a new one), \\n line ends."""
    delimiter = ","
    if before is not None:
        delimiter = getattr(_dialect(before.decode("utf-8-sig", "replace")), "delimiter", ",")
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


def describe_csv(path: str, rows: list[list[str]]) -> str:
    width = max((len(r) for r in rows), default=0)
    lines = [f"{path}: {len(rows)} lines x {width} columns (line 1 is the header)"]
    lines += [f"{i}: " + " | ".join(r) for i, r in enumerate(rows, 1)]
    return cut("\n".join(lines), MAX_READ_CHARS)


def read_markdown(path: str, data: bytes) -> str:
    vet(path, data, "md")
    return text_of(path, data)


def headings(text: str) -> list[tuple[int, int, str]]:
    """(line index, level, title) of every heading outside fenced code."""
    found = []
    fenced = False
    for i, line in enumerate(text.splitlines()):
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced and (m := _HEADING.match(line)):
            found.append((i, len(m.group(1)), m.group(2)))
    return found


def describe_markdown(path: str, text: str) -> str:
    outline = [f"  line {i + 1}: {'#' * level} {title}" for i, level, title in headings(text)]
    return cut("\n".join([f"{path}: outline", *outline, "", text]), MAX_READ_CHARS)


def replace_section(text: str, heading: str, body: str, level: int = 2) -> tuple[str, bool]:
    """text with the section under `heading` replaced by body (appended as a new section at
    `level` when no heading has that title); and whether it existed. Ends with a newline."""
    lines = text.splitlines()
    marks = headings(text)
    block = body.strip("\n").splitlines()
    found = next(((i, lv) for i, lv, title in marks if title == heading.strip()), None)
    if found is None:
        gap = [""] if lines and lines[-1].strip() else []
        out = [*lines, *gap, f"{'#' * level} {heading.strip()}", "", *block]
        return "\n".join(out) + "\n", False
    start, lv = found
    end = next((i for i, lev, _ in marks if i > start and lev <= lv), len(lines))
    out = [*lines[: start + 1], "", *block, *([""] if end < len(lines) else []), *lines[end:]]
    return "\n".join(out) + "\n", True
