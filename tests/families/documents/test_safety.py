"""Hostile files are refused before a parser acts on them, with a typed error and its rule:
a recorded tool refusal for the model, an explained "not diffed" in the evidence."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest

from bot.families.base import ToolFailure, ToolRefused
from bot.families.documents.diff import diff_document
from bot.families.documents.errors import ExternalContent, HugeDocument, UnsafeDocument, ZipBomb
from bot.families.documents.formats import Format
from bot.families.documents.safety import vet
from tests.families.documents.conftest import Call
from tests.families.documents.files import document, repack, workbook

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def zip_bomb() -> bytes:
    """A real workbook with one extra part that inflates 1000x (4 MiB of zeros)."""
    base = workbook({"S": [["a"]]})
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(base)) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            dst.writestr(info, src.read(info))
        dst.writestr("xl/media/padding.bin", b"\0" * (4 << 20))
    return out.getvalue()


def external_workbook_link() -> bytes:
    def add(parts: dict[str, bytes]) -> None:
        parts["xl/externalLinks/externalLink1.xml"] = b'<externalLink xmlns="x"/>'

    return repack(workbook({"S": [["=[1]Prices!A1"]]}), add)


def remote_image() -> bytes:
    def add(parts: dict[str, bytes]) -> None:
        rels = parts["word/_rels/document.xml.rels"]
        link = (
            f'<Relationship Id="rId99" Type="{REL}/image" '
            'Target="https://tracker.example.com/pixel.png" TargetMode="External"/>'
        ).encode()
        parts["word/_rels/document.xml.rels"] = rels.replace(
            b"</Relationships>", link + b"</Relationships>"
        )

    return repack(document(["hello"]), add)


def include_field() -> bytes:
    """An INCLUDETEXT field whose instruction is split over two runs."""

    def add(parts: dict[str, bytes]) -> None:
        runs = (
            f'<w:p xmlns:w="{W}"><w:r><w:fldChar w:fldCharType="begin"/></w:r>'
            '<w:r><w:instrText xml:space="preserve"> INCLUDE</w:instrText></w:r>'
            '<w:r><w:instrText>TEXT "/etc/passwd"</w:instrText></w:r>'
            '<w:r><w:fldChar w:fldCharType="end"/></w:r></w:p>'
        ).encode()
        body = parts["word/document.xml"]
        parts["word/document.xml"] = body.replace(b"<w:sectPr", runs + b"<w:sectPr", 1)

    return repack(document(["hello"]), add)


def billion_laughs() -> bytes:
    def add(parts: dict[str, bytes]) -> None:
        parts["docProps/custom.xml"] = (
            b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "ha"><!ENTITY b "&a;&a;&a;">]><l>&b;</l>'
        )

    return repack(workbook({"S": [["a"]]}), add)


def macros() -> bytes:
    def add(parts: dict[str, bytes]) -> None:
        parts["xl/vbaProject.bin"] = b"\xd0\xcf\x11\xe0 not really"

    return repack(workbook({"S": [["a"]]}), add)


HOSTILE: list[tuple[str, Format, bytes, type[UnsafeDocument], str]] = [
    ("bomb.xlsx", "xlsx", zip_bomb(), ZipBomb, r"inflates 1\d{3}x, over 200x"),
    ("linked.xlsx", "xlsx", external_workbook_link(), ExternalContent, "links to other workbooks"),
    (
        "pixel.docx",
        "docx",
        remote_image(),
        ExternalContent,
        "has an external image 'https://tracker",
    ),
    ("include.docx", "docx", include_field(), ExternalContent, "has the field INCLUDETEXT"),
    ("laughs.xlsx", "xlsx", billion_laughs(), UnsafeDocument, "declares a DTD"),
    ("macro.xlsx", "xlsx", macros(), ExternalContent, "has macros"),
]


@pytest.mark.parametrize(
    ("name", "fmt", "data", "kind", "why"), HOSTILE, ids=[h[0] for h in HOSTILE]
)
def test_a_hostile_file_is_refused_by_the_tools_and_not_diffed(
    workspace: Path,
    call: Call,
    name: str,
    fmt: Format,
    data: bytes,
    kind: type[UnsafeDocument],
    why: str,
) -> None:
    with pytest.raises(kind, match=why):
        vet(name, data, fmt)
    (workspace / name).write_bytes(data)
    with pytest.raises(ToolRefused, match=why) as refused:
        call("doc_read", path=name)
    assert refused.value.rule == kind.rule
    d = diff_document(name, fmt, None, data)
    assert d.rule == kind.rule and why.split(r"\d")[0].split("'")[0] in d.error
    assert not d.sheets and not d.blocks


def test_a_huge_sheet_is_refused_before_it_is_diffed(workspace: Path, call: Call) -> None:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws["A1"], ws["Z10000"] = "corner", "far corner"  # two cells, a 260,000-cell grid
    buf = io.BytesIO()
    wb.save(buf)
    (workspace / "huge.xlsx").write_bytes(buf.getvalue())
    with pytest.raises(ToolRefused, match=r"spans 10000 rows x 26 columns, over 250000 cells"):
        call("doc_read", path="huge.xlsx")
    d = diff_document("huge.xlsx", "xlsx", None, buf.getvalue())
    assert d.rule == HugeDocument.rule


def test_a_hyperlink_is_not_an_external_fetch() -> None:
    def add(parts: dict[str, bytes]) -> None:
        rels = parts["word/_rels/document.xml.rels"]
        link = (
            f'<Relationship Id="rId98" Type="{REL}/hyperlink" '
            'Target="https://example.com/" TargetMode="External"/>'
        ).encode()
        parts["word/_rels/document.xml.rels"] = rels.replace(
            b"</Relationships>", link + b"</Relationships>"
        )

    vet("ok.docx", repack(document(["see the site"]), add), "docx")  # no error


def test_a_document_is_never_read_or_written_through_a_symlink(
    workspace: Path, call: Call, tmp_path: Path
) -> None:
    outside = tmp_path / "secret.xlsx"
    outside.write_bytes(workbook({"S": [["host file"]]}))
    os.symlink(outside, workspace / "link.xlsx")
    with pytest.raises(ToolFailure, match="is a symlink"):
        call("doc_read", path="link.xlsx")
    with pytest.raises(ToolFailure, match="is a symlink"):
        call("xlsx_set_cells", path="link.xlsx", sheet="S", cells={"A1": "overwritten"})
    assert b"overwritten" not in outside.read_bytes()
