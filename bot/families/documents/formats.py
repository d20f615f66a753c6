"""Which document format a path is, by its extension, and what each is stored as."""

from __future__ import annotations

from typing import Literal

Format = Literal["xlsx", "docx", "pptx", "csv", "md"]

FORMATS: dict[str, Format] = {
    ".xlsx": "xlsx",
    ".docx": "docx",
    ".pptx": "pptx",
    ".csv": "csv",
    ".md": "md",
    ".markdown": "md",
}

MEDIA_TYPES: dict[Format, str] = {
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "csv": "text/csv",
    "md": "text/markdown",
}

PACKAGES: tuple[Format, ...] = ("xlsx", "docx", "pptx")
"""The zip-based (OOXML) formats: vetted as packages, rendered by LibreOffice."""

NAMES: dict[Format, str] = {
    "xlsx": "spreadsheet",
    "docx": "document",
    "pptx": "slide deck",
    "csv": "CSV",
    "md": "Markdown",
}


def format_of(path: str) -> Format | None:
    """The format of path, or None when it is not a document this family reads.
    Macro-enabled twins (.xlsm, .docm, .pptm) are not documents here: never parsed."""
    dot = path.rfind(".")
    return FORMATS.get(path[dot:].lower()) if dot > path.rfind("/") else None
