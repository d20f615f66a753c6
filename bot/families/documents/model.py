"""The semantic diff of one document, as stored (documents.json) and rendered as evidence.

Plain data: everything a reader of the audit branch needs to show the diff without this
family's code. Values are display strings (formulas as formulas), already cut to size.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from bot.families.documents.formats import Format


class CellChange(BaseModel):
    at: str
    """Where the cell is now (B4, R2C3, line 7 price)."""
    was_at: str = ""
    """Where it was, when inserted or deleted rows or columns moved it."""
    old: str
    new: str


class Line(BaseModel):
    """An inserted or deleted row or column: its label and its non-empty cells."""

    at: str
    cells: list[str]


class TableDiff(BaseModel):
    rows_inserted: list[Line] = Field(default_factory=list)
    rows_deleted: list[Line] = Field(default_factory=list)
    cols_inserted: list[Line] = Field(default_factory=list)
    cols_deleted: list[Line] = Field(default_factory=list)
    cells: list[CellChange] = Field(default_factory=list)
    aligned: bool = True
    """False when the tables were too large to align: compared cell by cell, in place."""
    cut: int = 0
    """Changes left out of the lists above (the counts still hold them)."""

    def empty(self) -> bool:
        return not (
            self.rows_inserted
            or self.rows_deleted
            or self.cols_inserted
            or self.cols_deleted
            or self.cells
        )


class SheetDiff(BaseModel):
    name: str
    status: Literal["changed", "added", "removed", "renamed"]
    renamed_from: str = ""
    table: TableDiff = Field(default_factory=TableDiff)
    merged_added: list[str] = Field(default_factory=list)
    merged_removed: list[str] = Field(default_factory=list)
    state: str = ""
    """A visibility change, e.g. "visible -> hidden"."""
    size: str = ""
    """For an added or removed sheet: "12 rows x 4 columns"."""


class BlockChange(BaseModel):
    """A DOCX body change: a paragraph inserted, deleted or changed, or a table."""

    kind: Literal["inserted", "deleted", "changed", "table", "table inserted", "table deleted"]
    at: int
    """Paragraph or table number, 1-based: in the new document, in the old for deletions."""
    style: str = ""
    text: str = ""
    """The paragraph's text; for a change, with word marks: [-old-]{+new+}."""
    table: TableDiff | None = None


class FieldChange(BaseModel):
    name: Literal["title", "text", "notes"]
    text: str
    """With word marks for a change; the whole text for an added or removed slide."""


class SlideChange(BaseModel):
    status: Literal["added", "removed", "changed"]
    number: int
    """Slide number in the new deck (the old one for a removed slide)."""
    was_number: int = 0
    """Its number before, when it moved."""
    title: str = ""
    fields: list[FieldChange] = Field(default_factory=list)


class KeyedRow(BaseModel):
    key: str
    cells: list[CellChange] = Field(default_factory=list)
    """Changed cells by column name; for an added or removed row, every non-empty cell."""


class CsvDiff(BaseModel):
    key: str = ""
    """The unique header column rows are matched by; empty: aligned by position."""
    columns_added: list[str] = Field(default_factory=list)
    columns_removed: list[str] = Field(default_factory=list)
    rows_added: list[KeyedRow] = Field(default_factory=list)
    rows_removed: list[KeyedRow] = Field(default_factory=list)
    rows_changed: list[KeyedRow] = Field(default_factory=list)
    table: TableDiff | None = None
    """The positional diff when no column is a key."""
    cut: int = 0


class Picture(BaseModel):
    label: str
    """What it shows: "sheet Summary A1:E9", "slide 3", "paragraphs 4-6"."""
    before: str = ""
    after: str = ""
    """Artifact names of the PNGs; empty where that side does not exist."""


class DocumentDiff(BaseModel):
    path: str
    format: Format
    status: Literal["changed", "added", "removed"]
    error: str = ""
    """Why no semantic diff could be made (a hostile or unreadable file), with its rule."""
    rule: str = ""
    before_sha256: str = ""
    after_sha256: str = ""
    after_blob: str = ""
    """The git object id of the new bytes: the proposal's patch names the same one."""
    before_artifact: str = ""
    after_artifact: str = ""
    sheets: list[SheetDiff] = Field(default_factory=list)
    blocks: list[BlockChange] = Field(default_factory=list)
    slides: list[SlideChange] = Field(default_factory=list)
    csv: CsvDiff | None = None
    pictures: list[Picture] = Field(default_factory=list)
    pictures_missing: str = ""
    """Why there are no pictures (no LibreOffice here, it failed or timed out)."""


class DocumentsEvidence(BaseModel):
    documents: list[DocumentDiff]
    renderer: str = ""
    """What drew the pictures: "LibreOffice 7.4 in a bwrap sandbox, no network, macros off"."""
