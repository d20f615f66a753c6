"""Word documents on real files: a changed paragraph with word marks, a changed table cell,
paragraphs inserted and deleted, and edits that keep what they do not touch."""

from __future__ import annotations

import io
from pathlib import Path

import docx
import pytest

from bot.families.base import ToolFailure
from bot.families.documents.diff import diff_document
from tests.families.documents.conftest import Call
from tests.families.documents.files import document

MEMO = [
    ("Heading 1", "Quarterly memo"),
    "Revenue rose by 4% in the quarter.",
    "Costs were flat.",
    "Hiring continues in eu.",
]
TABLE = [["Region", "Revenue"], ["eu", "10"], ["us", "12"]]


def test_a_changed_paragraph_is_marked_word_by_word_and_a_table_cell_by_cell(
    workspace: Path, call: Call
) -> None:
    before = document(MEMO, [TABLE])
    (workspace / "memo.docx").write_bytes(before)
    call(
        "docx_replace_paragraph",
        path="memo.docx",
        paragraph=2,
        text="Revenue fell by 4% in the quarter.",
    )
    call(
        "docx_write_table",
        path="memo.docx",
        table=1,
        rows=[["Region", "Revenue"], ["eu", "11"], ["us", "12"]],
    )
    d = diff_document("memo.docx", "docx", before, (workspace / "memo.docx").read_bytes())
    assert [(b.kind, b.at, b.text) for b in d.blocks if b.kind == "changed"] == [
        ("changed", 2, "Revenue [-rose-]{+fell+} by 4% in the quarter.")
    ]
    (table,) = [b for b in d.blocks if b.kind == "table"]
    assert table.table is not None
    assert [(c.at, c.old, c.new) for c in table.table.cells] == [("R2C2", "10", "11")]
    assert len(d.blocks) == 2


def test_paragraphs_inserted_and_deleted_and_styles_kept(workspace: Path, call: Call) -> None:
    before = document(MEMO)
    (workspace / "memo.docx").write_bytes(before)
    call("docx_delete_paragraph", path="memo.docx", paragraph=3)
    call("docx_insert_paragraph", path="memo.docx", before=2, text="Summary", style="Heading 2")
    call("docx_replace_paragraph", path="memo.docx", paragraph=1, text="Q3 memo")
    after = (workspace / "memo.docx").read_bytes()
    paragraphs = docx.Document(io.BytesIO(after)).paragraphs
    assert [(p.style.name if p.style else "", p.text) for p in paragraphs] == [
        ("Heading 1", "Q3 memo"),
        ("Heading 2", "Summary"),
        ("Normal", "Revenue rose by 4% in the quarter."),
        ("Normal", "Hiring continues in eu."),
    ]
    d = diff_document("memo.docx", "docx", before, after)
    assert [(b.kind, b.at, b.style, b.text) for b in d.blocks] == [
        ("changed", 1, "", "[-Quarterly-]{+Q3+} memo"),
        ("inserted", 2, "Heading 2", "Summary"),
        ("deleted", 3, "Normal", "Costs were flat."),
    ]
    listed = call("doc_read", path="memo.docx").output
    assert "¶1 [Heading 1] Q3 memo" in listed and "¶4 Hiring continues in eu." in listed


def test_a_paragraph_that_is_not_there_is_an_error_the_model_can_fix(
    workspace: Path, call: Call
) -> None:
    (workspace / "memo.docx").write_bytes(document(MEMO))
    with pytest.raises(ToolFailure, match=r"has no paragraph 9 \(it has 4\)"):
        call("docx_replace_paragraph", path="memo.docx", paragraph=9, text="x")
    with pytest.raises(ToolFailure, match=r"has no style named 'Fancy'"):
        call("docx_insert_paragraph", path="memo.docx", before=1, text="x", style="Fancy")
