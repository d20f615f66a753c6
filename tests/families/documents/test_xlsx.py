"""Spreadsheets on real files: formulas, merged cells, sheets, inserted and deleted rows."""

from __future__ import annotations

import io
import time
from pathlib import Path

import openpyxl
import pytest

from bot.families.base import ToolFailure, ToolRefused
from bot.families.documents.diff import diff_document
from bot.families.documents.model import SheetDiff
from tests.families.documents.conftest import Call
from tests.families.documents.files import repack, workbook


def sheet_diff(before: bytes, after: bytes, name: str) -> SheetDiff:
    d = diff_document("r.xlsx", "xlsx", before, after)
    assert not d.error, d.error
    return next(s for s in d.sheets if s.name == name)


def test_formulas_are_set_read_and_diffed_as_formulas(workspace: Path, call: Call) -> None:
    before = workbook({"S": [["item", "n"], ["a", 1], ["b", 2], ["total", "=SUM(B2:B3)"]]})
    (workspace / "r.xlsx").write_bytes(before)
    call(
        "xlsx_set_cells",
        path="r.xlsx",
        sheet="S",
        cells={"B4": 3, "B5": "=SUM(B2:B4)", "A6": "'=not a formula"},
    )
    after = (workspace / "r.xlsx").read_bytes()
    wb = openpyxl.load_workbook(io.BytesIO(after))
    assert wb["S"]["B5"].value == "=SUM(B2:B4)" and wb["S"]["A6"].data_type == "s"
    shown = call("doc_read", path="r.xlsx", sheet="S", range="A4:B6").output
    assert "4 | total | 3" in shown and "5 |  | =SUM(B2:B4)" in shown and "'=not a formula" in shown
    t = sheet_diff(before, after, "S").table
    assert [(c.at, c.old, c.new) for c in t.cells] == [("B4", "=SUM(B2:B3)", "3")]
    assert [(r.at, r.cells) for r in t.rows_inserted] == [
        ("5", ["", "=SUM(B2:B4)"]),
        ("6", ["'=not a formula"]),
    ]


def test_an_inserted_and_a_deleted_row_are_one_row_each() -> None:
    rows = [[f"k{i}", i, f"=B{i + 1}*2"] for i in range(30)]
    new = [*rows[:10], ["new", -1, "=B11*2"], *rows[10:20], *rows[21:]]
    t = sheet_diff(workbook({"S": rows}), workbook({"S": new}), "S").table
    assert [(r.at, r.cells) for r in t.rows_inserted] == [("11", ["new", "-1", "=B11*2"])]
    assert [(r.at, r.cells) for r in t.rows_deleted] == [("21", ["k20", "20", "=B21*2"])]
    # Not one of the rows in between, which all moved down one, reads as changed.
    assert t.cells == [] and not t.cols_inserted and not t.cols_deleted


def test_an_inserted_column_and_a_changed_title_row() -> None:
    before = workbook({"S": [["Q2 report"], ["a", 1, 2], ["b", 3, 4], ["c", 5, 6]]})
    after = workbook({"S": [["Q3 report"], ["a", 1, 9, 2], ["b", 3, 9, 4], ["c", 5, 9, 6]]})
    t = sheet_diff(before, after, "S").table
    assert [(c.at, c.cells) for c in t.cols_inserted] == [("C", ["", "9", "9", "9"])]
    assert [(c.at, c.old, c.new) for c in t.cells] == [("A1", "Q2 report", "Q3 report")]
    assert not t.rows_inserted and not t.rows_deleted


def test_merged_cells_added_and_removed_and_a_merged_cell_is_not_written(
    workspace: Path, call: Call
) -> None:
    before = workbook({"S": [["Title"], ["a", "b", "c"]]}, merged={"S": ["A2:B2"]})
    after = workbook({"S": [["Title"], ["a", "b", "c"]]}, merged={"S": ["A1:C1"]})
    s = sheet_diff(before, after, "S")
    assert (s.merged_added, s.merged_removed) == (["A1:C1"], ["A2:B2"])
    (workspace / "m.xlsx").write_bytes(after)
    with pytest.raises(ToolFailure, match=r"S!B1 is inside a merged range"):
        call("xlsx_set_cells", path="m.xlsx", sheet="S", cells={"B1": "x"})


def test_sheets_added_renamed_and_removed(workspace: Path, call: Call) -> None:
    before = workbook(
        {"Data": [["a", 1], ["b", 2]], "Old": [["x"]], "Calc": [["=Data!B1+Data!B2"]]}
    )
    (workspace / "w.xlsx").write_bytes(before)
    out = call("xlsx_rename_sheet", path="w.xlsx", sheet="Data", name="Q3 data").output
    assert "1 formula(s) now refer to Q3 data" in out
    call("xlsx_add_sheet", path="w.xlsx", name="Notes", position=1)
    call("xlsx_write_table", path="w.xlsx", sheet="Notes", rows=[["checked", True]])
    wb = openpyxl.load_workbook(io.BytesIO((workspace / "w.xlsx").read_bytes()))
    assert wb.sheetnames == ["Notes", "Q3 data", "Old", "Calc"]
    assert wb["Calc"]["A1"].value == "='Q3 data'!B1+'Q3 data'!B2"
    wb.remove(wb["Old"])
    buf = io.BytesIO()
    wb.save(buf)
    d = diff_document("w.xlsx", "xlsx", before, buf.getvalue())
    assert [(s.name, s.status, s.renamed_from) for s in d.sheets] == [
        ("Notes", "added", ""),
        ("Q3 data", "renamed", "Data"),
        ("Calc", "changed", ""),
        ("Old", "removed", ""),
    ]
    assert d.sheets[0].table.rows_inserted[0].cells == ["checked", "TRUE"]
    assert [(c.at, c.new) for c in d.sheets[2].table.cells] == [
        ("A1", "='Q3 data'!B1+'Q3 data'!B2")
    ]


@pytest.mark.parametrize(
    ("formula", "why"),
    [
        ('=WEBSERVICE("https://example.com/rate")', "calls WEBSERVICE"),
        ("=[1]Prices!A1*2", "refers to another workbook"),
        ("='C:\\x\\[book.xlsx]Prices'!A1", "refers to another workbook"),
    ],
)
def test_a_formula_that_reaches_outside_is_refused(
    workspace: Path, call: Call, formula: str, why: str
) -> None:
    with pytest.raises(ToolRefused, match=why) as refused:
        call("xlsx_set_cells", path="f.xlsx", sheet="S", cells={"A1": formula})
    assert refused.value.rule == "documents#external"
    assert not (workspace / "f.xlsx").exists()


def test_the_same_edit_saves_the_same_bytes(workspace: Path, call: Call) -> None:
    # A replay must reproduce the proposal's digest: no clock in the saved package, whose
    # zip entries and properties the libraries stamp to the second.
    saved = []
    for attempt in range(2):
        if attempt:
            time.sleep(1.1)
        (workspace / "d.xlsx").write_bytes(workbook({"S": [["a", 1]]}))
        call("xlsx_set_cells", path="d.xlsx", sheet="S", cells={"B1": 2})
        (workspace / "new.xlsx").unlink(missing_ok=True)
        call("xlsx_set_cells", path="new.xlsx", sheet="S", cells={"A1": "fresh"})
        saved.append([(workspace / n).read_bytes() for n in ("d.xlsx", "new.xlsx")])
    assert saved[0] == saved[1]


def test_an_edit_that_would_drop_parts_is_refused(workspace: Path, call: Call) -> None:
    def add_custom_part(parts: dict[str, bytes]) -> None:
        parts["customXml/item1.xml"] = b"<root/>"

    (workspace / "c.xlsx").write_bytes(repack(workbook({"S": [["a"]]}), add_custom_part))
    with pytest.raises(ToolRefused, match=r"would drop 1 x customXml/itemN.xml") as refused:
        call("xlsx_set_cells", path="c.xlsx", sheet="S", cells={"A1": "b"})
    assert refused.value.rule == "documents#lossy"
