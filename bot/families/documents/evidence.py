"""Documents as evidence: one Section per changed document, the same in a terminal and in
a PR comment, folded when long; picture and raw-file links where the door uploaded them.

Everything from inside a document (cell values, sheet names, paragraphs) is untrusted
text: in Markdown it stays inside a fenced block, and titles keep only plain characters,
since a heading or a <details> summary would render anything else.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from bot.core.render import fenced
from bot.families.documents.formats import NAMES
from bot.families.documents.model import CsvDiff, DocumentDiff, DocumentsEvidence, TableDiff
from bot.families.documents.package import git_blob_id
from bot.families.interface import Section

Read = Callable[[str], bytes | None]
MAX_VALUE = 80
FOLD_AT = 25
"""Text lines past which a document's section starts folded."""
_UNSAFE_TITLE = re.compile(r"[^\w./ -]")
_DIFF_GIT = re.compile(r"^diff --git (\S+|\"(?:[^\"\\]|\\.)*\") (\S+|\"(?:[^\"\\]|\\.)*\")$")
_INDEX = re.compile(r"^index ([0-9a-f]+)\.\.([0-9a-f]+)")


def _v(value: str) -> str:
    if value == "":
        return "(empty)"
    text = value.replace("\n", "\\n")
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def _row(cells: list[str]) -> str:
    return " | ".join(_v(c) if c else "" for c in cells) or "(empty)"


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def table_lines(
    t: TableDiff, indent: str = "    ", row: str = "row", col: str = "column"
) -> list[str]:
    lines = []
    if not t.aligned:
        lines.append(f"{indent}(too large to align: compared cell by cell in place)")
    lines += [f"{indent}{col} {c.at} inserted: {_row(c.cells)}" for c in t.cols_inserted]
    lines += [f"{indent}{col} {c.at} deleted (was): {_row(c.cells)}" for c in t.cols_deleted]
    lines += [f"{indent}{row} {r.at} inserted: {_row(r.cells)}" for r in t.rows_inserted]
    lines += [f"{indent}{row} {r.at} deleted (was): {_row(r.cells)}" for r in t.rows_deleted]
    for c in t.cells:
        was = f" (was {c.was_at})" if c.was_at else ""
        lines.append(f"{indent}{c.at}{was}: {_v(c.old)} -> {_v(c.new)}")
    if t.cut:
        lines.append(f"{indent}... {t.cut} more changes not listed")
    return lines


def table_summary(t: TableDiff) -> str:
    parts = [
        _count(len(t.cells), "cell") + " changed" if t.cells else "",
        _count(len(t.rows_inserted), "row") + " inserted" if t.rows_inserted else "",
        _count(len(t.rows_deleted), "row") + " deleted" if t.rows_deleted else "",
        _count(len(t.cols_inserted), "column") + " inserted" if t.cols_inserted else "",
        _count(len(t.cols_deleted), "column") + " deleted" if t.cols_deleted else "",
    ]
    return ", ".join(p for p in parts if p) or "no cell changes"


def _xlsx(d: DocumentDiff) -> tuple[str, list[str]]:
    lines: list[str] = []
    for s in d.sheets:
        if s.status == "added":
            lines.append(f"  sheet {s.name}: added ({s.size})")
            lines += table_lines(s.table)
            continue
        if s.status == "removed":
            lines.append(f"  sheet {s.name}: removed (had {s.size})")
            continue
        renamed = f" (renamed from {s.renamed_from})" if s.renamed_from else ""
        lines.append(f"  sheet {s.name}{renamed}: {table_summary(s.table)}")
        lines += table_lines(s.table)
        lines += [f"    merged {m} added" for m in s.merged_added]
        lines += [f"    merged {m} removed" for m in s.merged_removed]
        if s.state:
            lines.append(f"    visibility {s.state}")
    counts = [
        (sum(1 for s in d.sheets if s.status == k), k)
        for k in ("changed", "renamed", "added", "removed")
    ]
    return ", ".join(f"{_count(n, 'sheet')} {k}" for n, k in counts if n), lines


def _docx(d: DocumentDiff) -> tuple[str, list[str]]:
    lines: list[str] = []
    for b in d.blocks:
        style = f" [{b.style}]" if b.style else ""
        if b.kind in ("inserted", "deleted", "changed"):
            lines.append(f"  paragraph {b.at} {b.kind}{style}: {b.text}")
        elif b.kind == "table":
            assert b.table is not None
            lines.append(f"  table {b.at}: {table_summary(b.table)}")
            lines += table_lines(b.table)
        else:
            lines.append(f"  table {b.at} {b.kind.split()[1]} ({b.text})")
            if b.table is not None:
                lines += table_lines(b.table)
    kinds = [
        (sum(1 for b in d.blocks if b.kind == k), k) for k in ("changed", "inserted", "deleted")
    ]
    tables = sum(1 for b in d.blocks if b.kind.startswith("table"))
    summary = [f"{_count(n, 'paragraph')} {k}" for n, k in kinds if n]
    summary += [f"{_count(tables, 'table')} changed"] if tables else []
    return ", ".join(summary), lines


def _pptx(d: DocumentDiff) -> tuple[str, list[str]]:
    lines: list[str] = []
    for s in d.slides:
        moved = f" (was slide {s.was_number})" if s.was_number else ""
        lines.append(
            f"  slide {s.number}{moved} {s.status}: {_v(s.title) if s.title else '(no title)'}"
        )
        for f in s.fields:
            body = f.text.replace("\n", "\n" + " " * (6 + len(f.name)))
            lines.append(f"    {f.name}: {body}")
    counts = [
        (sum(1 for s in d.slides if s.status == k), k) for k in ("changed", "added", "removed")
    ]
    return ", ".join(f"{_count(n, 'slide')} {k}" for n, k in counts if n), lines


def _csv(c: CsvDiff) -> tuple[str, list[str]]:
    if c.table is not None:
        return "rows aligned by position (no unique key column): " + table_summary(
            c.table
        ), table_lines(c.table, "  ", row="", col="column")
    lines = [f"  column {n} added" for n in c.columns_added]
    lines += [f"  column {n} removed" for n in c.columns_removed]
    for r in c.rows_changed:
        lines.append(
            f"  {c.key}={_v(r.key)}: "
            + "; ".join(f"{x.at} {_v(x.old)} -> {_v(x.new)}" for x in r.cells)
        )
    for r in c.rows_added:
        lines.append(
            f"  + {c.key}={_v(r.key)}: " + ", ".join(f"{x.at}={_v(x.new)}" for x in r.cells)
        )
    for r in c.rows_removed:
        lines.append(
            f"  - {c.key}={_v(r.key)}: " + ", ".join(f"{x.at}={_v(x.old)}" for x in r.cells)
        )
    if c.cut:
        lines.append(f"  ... {c.cut} more rows not listed")
    summary = [
        f"{_count(len(c.rows_changed), 'row')} changed" if c.rows_changed else "",
        f"{_count(len(c.rows_added), 'row')} added" if c.rows_added else "",
        f"{_count(len(c.rows_removed), 'row')} removed" if c.rows_removed else "",
    ]
    return f"keyed by {c.key}: " + (", ".join(s for s in summary if s) or "no row changes"), lines


def patch_blobs(patch: str) -> dict[str, str]:
    """path -> the object id the patch gives its new content (`index old..new`)."""
    blobs: dict[str, str] = {}
    path = ""
    for line in patch.splitlines():
        if line.startswith("diff --git "):
            path = _new_path(line.removeprefix("diff --git "))
        elif path and (m := _INDEX.match(line)):
            blobs[path] = m.group(2)
            path = ""
    return blobs


def _new_path(names: str) -> str:
    """The b/ path of `a/<path> b/<path>`. Unquoted names may hold spaces, so the line is
    cut where both halves name the same path (a changed file: it has no rename)."""
    if (m := _DIFF_GIT.match("diff --git " + names)) and m.group(2).startswith('"'):
        return _git_path(m.group(2))[2:]
    half = (len(names) - 1) // 2
    a, b = names[:half], names[half + 1 :]
    if a.startswith("a/") and b.startswith("b/") and a[2:] == b[2:]:
        return b[2:]
    return ""


def _git_path(raw: str) -> str:
    """A path as git prints it: C-quoted ("b/caf\\303\\251.xlsx") when it has odd bytes."""
    if not raw.startswith('"'):
        return raw
    out = bytearray()
    body = raw[1:-1]
    i = 0
    while i < len(body):
        if body[i] == "\\" and body[i + 1 : i + 4].isdigit():
            out.append(int(body[i + 1 : i + 4], 8))
            i += 4
        elif body[i] == "\\" and i + 1 < len(body):
            out += {"n": b"\n", "t": b"\t"}.get(body[i + 1], body[i + 1].encode())
            i += 2
        else:
            out += body[i].encode()
            i += 1
    return out.decode("utf-8", "replace")


def binding(d: DocumentDiff, blobs: Mapping[str, str] | None, read: Read) -> str:
    """Whether the proposal's patch carries exactly the bytes this diff describes: the
    stored after-file, named as git names it, is the object the patch writes."""
    if blobs is None:
        return "WARNING: the proposal has no patch: these changes are not proposed"
    got = blobs.get(d.path)
    if d.status == "removed":
        ok = got is not None and set(got) == {"0"}
    else:
        data = read(d.after_artifact) if d.after_artifact else None
        ok = got is not None and data is not None and got == git_blob_id(data, len(got))
    if ok:
        return f"matches the proposal's patch (blob {(got or '')[:12]})"
    return "WARNING: the proposal's patch does not carry the file this diff describes"


def document_section(
    d: DocumentDiff,
    blobs: Mapping[str, str] | None,
    links: Mapping[str, str],
    renderer: str,
    read: Read,
) -> Section:
    kind = NAMES[d.format]
    head = f"Document {d.path} ({kind}, {d.status})"
    lines: list[str]
    if d.error:
        summary, lines = f"not diffed: {d.error} [{d.rule}]", []
    elif d.format == "xlsx":
        summary, lines = _xlsx(d)
    elif d.format == "docx":
        summary, lines = _docx(d)
    elif d.format == "pptx":
        summary, lines = _pptx(d)
    elif d.format == "csv" and d.csv is not None:
        summary, lines = _csv(d.csv)
    else:
        summary = "text: see the proposal's diff"
    lines = [f"{head}: {summary or 'no visible changes'}", f"  {binding(d, blobs, read)}", *lines]
    pics, links_md = _pictures(d, links, renderer)
    lines += pics
    files = [
        (side, name)
        for side, name in (("before", d.before_artifact), ("after", d.after_artifact))
        if name
    ]
    if files:
        lines.append("  raw files: " + ", ".join(f"{side} {name}" for side, name in files))
    text = "\n".join(lines)
    raw_md = [f"{side}: {_link(name, links)}" for side, name in files]
    markdown = "\n".join(
        [
            fenced(text),
            *(["", *links_md] if links_md else []),
            *(["", "Raw files: " + ", ".join(raw_md)] if raw_md else []),
        ]
    )
    title = "Document " + _UNSAFE_TITLE.sub("_", d.path)
    return Section(title, text, markdown, collapsed=len(lines) > FOLD_AT)


def _pictures(
    d: DocumentDiff, links: Mapping[str, str], renderer: str
) -> tuple[list[str], list[str]]:
    text: list[str] = []
    md: list[str] = []
    if d.pictures:
        text.append(f"  pictures ({renderer}):" if renderer else "  pictures:")
    for i, p in enumerate(d.pictures, 1):
        sides = [(s, n) for s, n in (("before", p.before), ("after", p.after)) if n]
        text.append(f"    {i}. {p.label}: " + ", ".join(f"{s} {n}" for s, n in sides))
        md.append(f"- picture {i}: " + " · ".join(f"{s} {_link(n, links)}" for s, n in sides))
    if d.pictures_missing:
        text.append(f"  pictures missing: {d.pictures_missing}")
    return text, md


def _link(name: str, links: Mapping[str, str]) -> str:
    # Our own artifact names and the door's URLs: nothing here came from the document.
    url = links.get(name)
    return f"[{name}]({url})" if url else f"`{name}`"


def sections(
    ev: DocumentsEvidence, patch: str | None, links: Mapping[str, str], read: Read
) -> list[Section]:
    """patch: the proposal's file patch (None when there is none); read: an artifact of
    the run by name."""
    blobs = patch_blobs(patch) if patch is not None else None
    return [document_section(d, blobs, links, ev.renderer, read) for d in ev.documents]
