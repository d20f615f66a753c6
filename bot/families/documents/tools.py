"""The documents tools: structured reads and edits of the workspace's documents.

The broker checks each call's path against the read or write scope (`access`, the same
check as the filesystem tools, and the same relpath); here every file is opened beneath
the workspace through safefs, never through a link, vetted as hostile input, edited with
its library, saved deterministically and written back. What is written is staged: it
rides in the filesystem family's patch, which is the proposal.

Refusals of hostile content, lossy edits and formulas that reach outside are ToolRefused
(recorded as denied, with their rule); a wrong sheet or paragraph number is a ToolFailure
the model can correct.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bot.adapters import safefs
from bot.families.base import ToolFailure, ToolOutcome, ToolRefused, ToolSpec
from bot.families.documents import docx_file, pptx_file, text_files, xlsx_file
from bot.families.documents.errors import DocumentError, LossyEdit, UnsafeDocument
from bot.families.documents.formats import Format, format_of
from bot.families.documents.safety import MAX_FILE_BYTES
from bot.families.filesystem.tools import relpath

CAPABILITY = "documents"
MAX_TEXT = 32_767
"""Characters in one cell, paragraph or field (Excel's own cell limit)."""

Handler = Callable[[dict[str, Any]], ToolOutcome]


def _str(desc: str) -> dict[str, Any]:
    return {"type": "string", "description": desc}


def _int(desc: str) -> dict[str, Any]:
    return {"type": "integer", "minimum": 1, "description": desc}


_CELL = {"type": ["string", "number", "boolean", "null"]}
_ROWS = {
    "type": "array",
    "items": {"type": "array", "items": _CELL},
    "description": "rows of cells",
}
_TEXT_ROWS = {"type": "array", "items": {"type": "array", "items": {"type": "string"}}}


def _schema(required: list[str], **props: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"path": _str("path relative to the repo root"), **props},
        "required": ["path", *required],
        "additionalProperties": False,
    }


def _text(args: Mapping[str, Any], key: str, optional: bool = False) -> str | None:
    value = args.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ToolFailure(f"{key} must be a string")
    if len(value) > MAX_TEXT:
        raise ToolFailure(f"{key} is {len(value)} characters; at most {MAX_TEXT}")
    return value


def _number(args: Mapping[str, Any], key: str, optional: bool = False) -> int | None:
    value = args.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ToolFailure(f"{key} must be a positive whole number (1 is the first)")
    return value


def _cell(value: Any) -> xlsx_file.Value:
    if value is None or isinstance(value, str | int | float | bool):
        if isinstance(value, str) and len(value) > MAX_TEXT:
            raise ToolFailure(f"a cell holds at most {MAX_TEXT} characters")
        return value
    raise ToolFailure(f"a cell value must be text, a number, true/false or null, not {value!r}")


def _grid(raw: Any, cell: Callable[[Any], Any]) -> list[list[Any]]:
    if not isinstance(raw, list) or not all(isinstance(r, list) for r in raw):
        raise ToolFailure("rows must be a list of rows, each a list of cells")
    return [[cell(v) for v in row] for row in raw]


def _plain(value: Any) -> str:
    if not isinstance(value, str):
        raise ToolFailure(f"a table cell must be text, not {value!r}")
    return value


@contextmanager
def _as_tool_errors(rel: str) -> Iterator[None]:
    """Document errors as the broker records them: hostile content and lossy edits are
    refusals under their rule; anything else a library raises on a file it parsed (a
    hostile file can make it raise anything) is a failure the model is told about."""
    try:
        yield
    except (ToolFailure, OSError, safefs.UnsafePath):
        raise
    except UnsafeDocument as exc:
        raise ToolRefused(exc.rule, str(exc)) from None
    except LossyEdit as exc:
        raise ToolRefused(exc.rule, str(exc)) from None
    except DocumentError as exc:
        raise ToolFailure(str(exc)) from None
    except Exception as exc:
        raise ToolFailure(f"{rel}: cannot be handled: {type(exc).__name__}: {exc}") from None


class DocumentTools:
    def __init__(self, root: Path) -> None:
        self.root = root

    # -- files ----------------------------------------------------------------------------

    def _target(self, args: Mapping[str, Any], *formats: Format) -> tuple[str, Format]:
        rel = relpath(args.get("path"))
        fmt = format_of(rel)
        if fmt is None or fmt not in formats:
            wanted = ", ".join(f".{f}" for f in formats)
            raise ToolFailure(f"{rel!r} is not a {wanted} file")
        return rel, fmt

    def _read(self, rel: str) -> bytes | None:
        """The file's bytes, None if it does not exist; never through a link."""
        with safefs.root(self.root) as fd:
            try:
                data = safefs.read_bytes(fd, rel, MAX_FILE_BYTES + 1)
            except FileNotFoundError:
                return None
            except safefs.IsLink as link:
                raise ToolFailure(
                    f"{rel!r} is a symlink ({link.target}); documents are never read through links"
                ) from None
        return data

    def _write(self, rel: str, data: bytes) -> None:
        with safefs.root(self.root) as fd:
            safefs.write_bytes(fd, rel, data)

    def _edit(
        self,
        args: Mapping[str, Any],
        fmt: Format,
        change: Callable[[str, bytes | None], tuple[bytes, str]],
    ) -> ToolOutcome:
        rel, _ = self._target(args, fmt)
        before = self._read(rel)
        with _as_tool_errors(rel):
            data, said = change(rel, before)
        self._write(rel, data)
        made = "created" if before is None else "saved"
        return ToolOutcome(f"{said}; {made} {rel} (staged for approval)", mutates=True)

    # -- reading --------------------------------------------------------------------------

    def read(self, args: dict[str, Any]) -> ToolOutcome:
        rel, fmt = self._target(args, "xlsx", "docx", "pptx", "csv", "md")
        data = self._read(rel)
        if data is None:
            raise ToolFailure(f"{rel!r} does not exist")
        with _as_tool_errors(rel):
            if fmt == "xlsx":
                sheet, ref = _text(args, "sheet", True), _text(args, "range", True)
                text = xlsx_file.describe(rel, xlsx_file.load(rel, data), sheet, ref)
            elif fmt == "docx":
                text = docx_file.describe(rel, docx_file.load(rel, data))
            elif fmt == "pptx":
                text = pptx_file.describe(rel, pptx_file.load(rel, data))
            elif fmt == "csv":
                text = text_files.describe_csv(rel, text_files.read_csv(rel, data))
            else:
                text = text_files.describe_markdown(rel, text_files.read_markdown(rel, data))
        return ToolOutcome(text)

    # -- spreadsheets ---------------------------------------------------------------------

    def _workbook(self, rel: str, before: bytes | None, first_sheet: str) -> Any:
        if before is not None:
            return xlsx_file.load(rel, before)
        wb = xlsx_file.new()
        if wb.active is not None:
            wb.active.title = first_sheet  # a new workbook's only sheet is the one named
        return wb

    def set_cells(self, args: dict[str, Any]) -> ToolOutcome:
        sheet = _text(args, "sheet") or ""
        cells = args.get("cells")
        if not isinstance(cells, dict) or not cells:
            raise ToolFailure('cells must be an object of cell -> value, e.g. {"B4": "=B2+B3"}')
        values = {str(k): _cell(v) for k, v in cells.items()}

        def change(rel: str, before: bytes | None) -> tuple[bytes, str]:
            wb = self._workbook(rel, before, sheet)
            xlsx_file.set_cells(rel, xlsx_file.sheet(rel, wb, sheet), values)
            return xlsx_file.dump(rel, wb, before), f"set {len(values)} cell(s) on {sheet}"

        return self._edit(args, "xlsx", change)

    def add_sheet(self, args: dict[str, Any]) -> ToolOutcome:
        name = _text(args, "name") or ""
        position = _number(args, "position", True)

        def change(rel: str, before: bytes | None) -> tuple[bytes, str]:
            if before is None:
                wb = self._workbook(rel, None, name)
            else:
                wb = xlsx_file.load(rel, before)
                xlsx_file.add_sheet(rel, wb, name, None if position is None else position - 1)
            return xlsx_file.dump(rel, wb, before), f"added sheet {name}"

        return self._edit(args, "xlsx", change)

    def rename_sheet(self, args: dict[str, Any]) -> ToolOutcome:
        old, name = _text(args, "sheet") or "", _text(args, "name") or ""

        def change(rel: str, before: bytes | None) -> tuple[bytes, str]:
            if before is None:
                raise DocumentError(rel, "does not exist")
            wb = xlsx_file.load(rel, before)
            fixed = xlsx_file.rename_sheet(rel, wb, old, name)
            said = f"renamed sheet {old} to {name}; {fixed} formula(s) now refer to {name}"
            return xlsx_file.dump(rel, wb, before), said

        return self._edit(args, "xlsx", change)

    def write_sheet_table(self, args: dict[str, Any]) -> ToolOutcome:
        sheet = _text(args, "sheet") or ""
        start = _text(args, "start", True) or "A1"
        rows = _grid(args.get("rows"), _cell)

        def change(rel: str, before: bytes | None) -> tuple[bytes, str]:
            wb = self._workbook(rel, before, sheet)
            if sheet not in wb.sheetnames:
                xlsx_file.add_sheet(rel, wb, sheet)
            ref = xlsx_file.write_table(rel, xlsx_file.sheet(rel, wb, sheet), start, rows)
            return xlsx_file.dump(rel, wb, before), f"wrote {sheet}!{ref}"

        return self._edit(args, "xlsx", change)

    # -- Word documents -------------------------------------------------------------------

    def _document(self, rel: str, before: bytes | None) -> Any:
        return docx_file.load(rel, before) if before is not None else docx_file.new()

    def insert_paragraph(self, args: dict[str, Any]) -> ToolOutcome:
        number = _number(args, "before") or 1
        text, style = _text(args, "text") or "", _text(args, "style", True)

        def change(rel: str, before: bytes | None) -> tuple[bytes, str]:
            doc = self._document(rel, before)
            at = docx_file.insert_paragraph(rel, doc, number, text, style)
            return docx_file.dump(rel, doc, before), f"inserted paragraph {at}"

        return self._edit(args, "docx", change)

    def replace_paragraph(self, args: dict[str, Any]) -> ToolOutcome:
        number, text = _number(args, "paragraph") or 1, _text(args, "text") or ""

        def change(rel: str, before: bytes | None) -> tuple[bytes, str]:
            doc = self._document(rel, before)
            docx_file.replace_paragraph(rel, doc, number, text)
            return docx_file.dump(rel, doc, before), f"replaced paragraph {number}"

        return self._edit(args, "docx", change)

    def delete_paragraph(self, args: dict[str, Any]) -> ToolOutcome:
        number = _number(args, "paragraph") or 1

        def change(rel: str, before: bytes | None) -> tuple[bytes, str]:
            doc = self._document(rel, before)
            docx_file.delete_paragraph(rel, doc, number)
            return docx_file.dump(rel, doc, before), f"deleted paragraph {number}"

        return self._edit(args, "docx", change)

    def write_doc_table(self, args: dict[str, Any]) -> ToolOutcome:
        rows = _grid(args.get("rows"), _plain)
        table, after = _number(args, "table", True), _number(args, "after", True)

        def change(rel: str, before: bytes | None) -> tuple[bytes, str]:
            doc = self._document(rel, before)
            said = docx_file.write_table(rel, doc, rows, table, after)
            return docx_file.dump(rel, doc, before), said

        return self._edit(args, "docx", change)

    # -- slide decks ----------------------------------------------------------------------

    def set_slide(self, args: dict[str, Any]) -> ToolOutcome:
        number = _number(args, "slide") or 1
        title, text, notes = (_text(args, k, True) for k in ("title", "text", "notes"))
        if title is None and text is None and notes is None:
            raise ToolFailure("give at least one of title, text, notes")

        def change(rel: str, before: bytes | None) -> tuple[bytes, str]:
            if before is None:
                raise DocumentError(rel, "does not exist: add a slide first")
            prs = pptx_file.load(rel, before)
            pptx_file.set_slide(rel, prs, number, title, text, notes)
            return pptx_file.dump(rel, prs, before), f"set slide {number}"

        return self._edit(args, "pptx", change)

    def add_slide(self, args: dict[str, Any]) -> ToolOutcome:
        title = _text(args, "title") or ""
        text, notes, layout = (_text(args, k, True) for k in ("text", "notes", "layout"))
        position = _number(args, "position", True)

        def change(rel: str, before: bytes | None) -> tuple[bytes, str]:
            prs = pptx_file.load(rel, before) if before is not None else pptx_file.new()
            at = pptx_file.add_slide(rel, prs, title, text, notes, layout, position)
            return pptx_file.dump(rel, prs, before), f"added slide {at}"

        return self._edit(args, "pptx", change)

    # -- CSV and Markdown -----------------------------------------------------------------

    def write_csv(self, args: dict[str, Any]) -> ToolOutcome:
        rows = _grid(args.get("rows"), _plain)

        def change(rel: str, before: bytes | None) -> tuple[bytes, str]:
            if before is not None:
                text_files.read_csv(rel, before)  # vetted like any other: never sniffed raw
            return text_files.write_csv(rows, before), f"wrote {len(rows)} line(s)"

        return self._edit(args, "csv", change)

    def replace_section(self, args: dict[str, Any]) -> ToolOutcome:
        heading, body = _text(args, "heading") or "", _text(args, "body") or ""
        level = _number(args, "level", True) or 2
        if level > 6:
            raise ToolFailure("level is 1 to 6")

        def change(rel: str, before: bytes | None) -> tuple[bytes, str]:
            text = text_files.read_markdown(rel, before) if before is not None else ""
            new, existed = text_files.replace_section(text, heading, body, level)
            said = f"{'replaced' if existed else 'added'} section {heading!r}"
            return new.encode(), said

        return self._edit(args, "md", change)

    # -- specs ----------------------------------------------------------------------------

    def specs(self) -> list[ToolSpec]:
        def at(kind: str) -> Callable[[dict[str, Any]], tuple[str, str]]:
            return lambda args: (kind, relpath(args.get("path")))

        def spec(
            name: str, desc: str, params: dict[str, Any], handler: Handler, kind: str = "write"
        ) -> ToolSpec:
            return ToolSpec(name, CAPABILITY, desc, params, handler, at(kind))

        staged = " Changes are staged as a proposal for human approval."
        return [
            spec(
                "doc_read",
                "Read a document: an .xlsx sheet range (formulas shown as formulas), a .docx's "
                "numbered paragraphs and tables, a .pptx's slides, a .csv, or a .md outline.",
                _schema(
                    [],
                    sheet=_str("xlsx: the sheet (default the first)"),
                    range=_str("xlsx: a range like A1:D20 (default the used range)"),
                ),
                self.read,
                "read",
            ),
            spec(
                "xlsx_set_cells",
                "Set cells of a sheet. A value starting with = is a formula (=SUM(B2:B4)), "
                "one starting with ' is text; null clears a cell." + staged,
                _schema(
                    ["sheet", "cells"],
                    sheet=_str("sheet name"),
                    cells={
                        "type": "object",
                        "additionalProperties": _CELL,
                        "description": 'cell -> value, e.g. {"B4": 12}',
                    },
                ),
                self.set_cells,
            ),
            spec(
                "xlsx_add_sheet",
                "Add a sheet (creates the workbook if it does not exist)." + staged,
                _schema(
                    ["name"], name=_str("new sheet name"), position=_int("tab position, 1 is first")
                ),
                self.add_sheet,
            ),
            spec(
                "xlsx_rename_sheet",
                "Rename a sheet; formulas that refer to it are rewritten." + staged,
                _schema(["sheet", "name"], sheet=_str("current name"), name=_str("new name")),
                self.rename_sheet,
            ),
            spec(
                "xlsx_write_table",
                "Write rows of cells from a start cell (the sheet is added if missing)." + staged,
                _schema(
                    ["sheet", "rows"],
                    sheet=_str("sheet name"),
                    start=_str("top-left cell, default A1"),
                    rows=_ROWS,
                ),
                self.write_sheet_table,
            ),
            spec(
                "docx_insert_paragraph",
                "Insert a paragraph before paragraph `before` (one past the last appends)."
                + staged,
                _schema(
                    ["before", "text"],
                    before=_int("paragraph number"),
                    text=_str("the text"),
                    style=_str("a style of the document, e.g. Heading 1"),
                ),
                self.insert_paragraph,
            ),
            spec(
                "docx_replace_paragraph",
                "Replace a paragraph's text, keeping its style." + staged,
                _schema(
                    ["paragraph", "text"],
                    paragraph=_int("paragraph number"),
                    text=_str("the new text"),
                ),
                self.replace_paragraph,
            ),
            spec(
                "docx_delete_paragraph",
                "Delete a paragraph." + staged,
                _schema(["paragraph"], paragraph=_int("paragraph number")),
                self.delete_paragraph,
            ),
            spec(
                "docx_write_table",
                "Overwrite table `table` in place, or add a table after paragraph `after` "
                "(default at the end)." + staged,
                _schema(
                    ["rows"],
                    rows=_TEXT_ROWS,
                    table=_int("table number to overwrite"),
                    after=_int("paragraph number to add it after"),
                ),
                self.write_doc_table,
            ),
            spec(
                "pptx_set_slide",
                "Set a slide's title, body text (lines separated by \\n) and speaker notes."
                + staged,
                _schema(
                    ["slide"],
                    slide=_int("slide number"),
                    title=_str("title"),
                    text=_str("body text"),
                    notes=_str("speaker notes"),
                ),
                self.set_slide,
            ),
            spec(
                "pptx_add_slide",
                "Add a slide (creates the deck if it does not exist)." + staged,
                _schema(
                    ["title"],
                    title=_str("title"),
                    text=_str("body text"),
                    notes=_str("speaker notes"),
                    layout=_str("layout name, default Title and Content"),
                    position=_int("slide number it gets, default last"),
                ),
                self.add_slide,
            ),
            spec(
                "csv_write",
                "Write a CSV file: every line, the header first." + staged,
                _schema(["rows"], rows=_TEXT_ROWS),
                self.write_csv,
            ),
            spec(
                "md_replace_section",
                "Replace the body of a Markdown section (up to the next heading of its level "
                "or above), or append it as a new section." + staged,
                _schema(
                    ["heading", "body"],
                    heading=_str("the heading's text, without #"),
                    body=_str("the new body"),
                    level=_int("heading level for a new section, default 2"),
                ),
                self.replace_section,
            ),
        ]
