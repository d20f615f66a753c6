"""Hostile input: every document is vetted here before a parser sees a byte of it.

The files come from the repository or from the model, and are parsed on the host, so a
file may be built to hurt the parser (a zip bomb, a billion-laughs DTD), to make a later
reader fetch or run something (links to other workbooks, remote images, include fields,
data connections, macros), or just to be too big to diff. Limits are on what the zip
declares: Python's zipfile never inflates a member past its declared size (a member that
lies fails its CRC), so checking the declarations before opening bounds the work.
"""

from __future__ import annotations

import io
import re
import zipfile
from xml.etree import ElementTree

from bot.families.documents.errors import (
    DocumentError,
    ExternalContent,
    HugeDocument,
    UnsafeDocument,
    ZipBomb,
)
from bot.families.documents.formats import PACKAGES, Format

MAX_FILE_BYTES = 16 << 20
"""A document as stored; larger ones are not read at all."""
MAX_MEMBERS = 2000
MAX_MEMBER_BYTES = 16 << 20
"""One part, inflated: bounds what a parser holds (a 16 MiB sheet is ~1M cells)."""
MAX_TOTAL_BYTES = 64 << 20
MAX_RATIO = 200
"""Inflated / compressed, for parts over RATIO_FLOOR: XML compresses 5-50x, bombs 1000x+."""
RATIO_FLOOR = 1 << 20
MAX_CELLS = 250_000
"""Cells of one sheet (or CSV), counted as rows x columns: what a diff aligns densely."""

_DTD = (b"<!DOCTYPE", b"<!ENTITY")
_CELL = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?c[\s/>]")
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_FETCHING_FIELDS = re.compile(r"\s*(INCLUDETEXT|INCLUDEPICTURE|DDEAUTO|DDE|LINK|IMPORT)\b", re.I)
_RELS_NS = "{http://schemas.openxmlformats.org/package/2006/relationships}Relationship"
_MACROS = ("vbaProject.bin", "vbaData.xml", "activeX/")


def vet(path: str, data: bytes, fmt: Format) -> None:
    """Raise a DocumentError (an UnsafeDocument for hostile content) unless data is safe
    to hand to fmt's parser."""
    if len(data) > MAX_FILE_BYTES:
        raise HugeDocument(path, f"{len(data)} bytes; documents over {MAX_FILE_BYTES} are not read")
    if fmt in PACKAGES:
        vet_package(path, data, fmt)
    else:
        text_of(path, data)


def text_of(path: str, data: bytes) -> str:
    """CSV and Markdown: UTF-8 (a BOM allowed), no NUL bytes."""
    if b"\0" in data:
        raise DocumentError(path, "contains NUL bytes: not a text document")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(path, f"is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def vet_package(path: str, data: bytes, fmt: Format) -> None:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as exc:
        raise DocumentError(path, f"is not a {fmt} file (not a zip package: {exc})") from None
    with zf:
        infos = zf.infolist()
        _declared(path, infos)
        for info in infos:
            name = info.filename
            if any(m in name for m in _MACROS) or (fmt == "xlsx" and _xlsx_external(name)):
                raise ExternalContent(path, f"has {_what(name)} ({name}): not opened")
            if not name.endswith((".xml", ".rels", ".vml")):
                continue
            try:
                xml = zf.read(info)
            except (zipfile.BadZipFile, ValueError, OSError) as exc:
                raise ZipBomb(path, f"part {name} does not inflate as declared ({exc})") from None
            _xml(path, name, xml, fmt)


def _declared(path: str, infos: list[zipfile.ZipInfo]) -> None:
    if len(infos) > MAX_MEMBERS:
        raise ZipBomb(path, f"{len(infos)} parts in the package, over {MAX_MEMBERS}")
    total = 0
    seen: set[str] = set()
    for info in infos:
        name = info.filename
        if name in seen or name.startswith("/") or ".." in name.split("/"):
            raise UnsafeDocument(path, f"part name {name[:80]!r} is duplicated or escapes")
        seen.add(name)
        if info.flag_bits & 0x1:
            raise DocumentError(path, f"part {name} is encrypted: not opened")
        size = info.file_size
        total += size
        if size > MAX_MEMBER_BYTES:
            raise ZipBomb(path, f"part {name} inflates to {size} bytes, over {MAX_MEMBER_BYTES}")
        if size > RATIO_FLOOR and size > MAX_RATIO * max(info.compress_size, 1):
            ratio = size // max(info.compress_size, 1)
            raise ZipBomb(path, f"part {name} inflates {ratio}x, over {MAX_RATIO}x")
        if total > MAX_TOTAL_BYTES:
            raise ZipBomb(path, f"parts inflate to over {MAX_TOTAL_BYTES} bytes")


def _xlsx_external(name: str) -> bool:
    return name.startswith("xl/externalLinks/") or name == "xl/connections.xml"


def _what(name: str) -> str:
    if name.startswith("xl/externalLinks/"):
        return "links to other workbooks"
    if name == "xl/connections.xml":
        return "external data connections"
    return "macros or ActiveX controls"


def _xml(path: str, name: str, xml: bytes, fmt: Format) -> None:
    # OOXML never needs a DTD; one is only there to expand entities (billion laughs).
    if any(marker in xml for marker in _DTD):
        raise UnsafeDocument(path, f"part {name} declares a DTD or entities: not parsed")
    if name.endswith(".rels"):
        _relationships(path, name, xml)
    elif fmt == "docx" and name.startswith("word/") and (field := _fetching_field(xml)):
        raise ExternalContent(path, f"has the field {field} in {name}, which fetches content")
    elif fmt == "xlsx" and name.startswith("xl/worksheets/"):
        cells = len(_CELL.findall(xml))
        if cells > MAX_CELLS:
            raise HugeDocument(path, f"sheet part {name} has {cells} cells, over {MAX_CELLS}")


def _fetching_field(xml: bytes) -> str | None:
    """The first field whose instruction fetches content (INCLUDETEXT, DDE, ...). Parsed,
    not searched: an instruction may be split over runs, under any namespace prefix."""
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return None  # python-docx refuses what does not parse, with its own message
    open_fields: list[str] = []
    instructions: list[str] = []
    for el in root.iter():
        if el.tag == f"{_W}fldSimple":
            instructions.append(el.get(f"{_W}instr") or "")
        elif el.tag == f"{_W}instrText" and open_fields:
            open_fields[-1] += el.text or ""
        elif el.tag == f"{_W}fldChar":
            kind = el.get(f"{_W}fldCharType")
            if kind == "begin":
                open_fields.append("")
            elif kind == "end" and open_fields:
                instructions.append(open_fields.pop())
    # A field never closed is still an instruction some reader may run.
    for text in [*instructions, *open_fields]:
        if m := _FETCHING_FIELDS.match(text):
            return m.group(1).upper()
    return None


def _relationships(path: str, name: str, xml: bytes) -> None:
    """External targets are refused except hyperlinks: those are only followed when a
    person clicks one; every other kind (an image, a template, an OLE object, a linked
    workbook) is fetched by whatever opens the file."""
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as exc:
        raise DocumentError(path, f"part {name} is not well-formed XML ({exc})") from None
    for rel in root.iter(_RELS_NS):
        if rel.get("TargetMode") != "External":
            continue
        kind = (rel.get("Type") or "").rsplit("/", 1)[-1]
        if kind != "hyperlink":
            target = (rel.get("Target") or "")[:100]
            raise ExternalContent(path, f"has an external {kind or 'part'} {target!r} ({name})")
