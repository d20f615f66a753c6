"""CSV on real files: rows keyed by a unique id column; by position when none is unique."""

from __future__ import annotations

from pathlib import Path

from bot.families.documents.csv_diff import key_column
from bot.families.documents.diff import diff_document
from bot.families.documents.text_files import read_csv
from tests.families.documents.conftest import Call

BEFORE = b"name,id,price\nwidget,1,10\ngadget,2,5\nthing,3,1\n"


def test_rows_are_keyed_by_id_whatever_their_order(workspace: Path, call: Call) -> None:
    (workspace / "items.csv").write_bytes(BEFORE)
    call(
        "csv_write",
        path="items.csv",
        rows=[
            ["name", "id", "price"],
            ["thing", "3", "1"],
            ["widget XL", "1", "12"],
            ["gizmo", "7", "3"],
        ],
    )
    after = (workspace / "items.csv").read_bytes()
    assert after == b"name,id,price\nthing,3,1\nwidget XL,1,12\ngizmo,7,3\n"
    d = diff_document("items.csv", "csv", BEFORE, after)
    assert d.csv is not None and d.csv.key == "id" and d.csv.table is None
    assert [(r.key, [(c.at, c.old, c.new) for c in r.cells]) for r in d.csv.rows_changed] == [
        ("1", [("name", "widget", "widget XL"), ("price", "10", "12")])
    ]
    assert [(r.key, [(c.at, c.new) for c in r.cells]) for r in d.csv.rows_added] == [
        ("7", [("name", "gizmo"), ("price", "3")])
    ]
    assert [r.key for r in d.csv.rows_removed] == ["2"]  # thing (3) only moved: no change


def test_without_a_unique_column_rows_align_by_content(workspace: Path) -> None:
    before = b"region,n\neu,1\neu,1\nus,3\nus,3\n"
    after = b"region,n\neu,1\napac,9\neu,1\nus,3\nus,4\n"
    assert key_column(read_csv("a.csv", before), read_csv("a.csv", after)) == ""
    d = diff_document("a.csv", "csv", before, after)
    assert d.csv is not None and d.csv.table is not None
    assert [(r.at, r.cells) for r in d.csv.table.rows_inserted] == [("line 3", ["apac", "9"])]
    assert [(c.at, c.old, c.new) for c in d.csv.table.cells] == [("line 6 n", "3", "4")]
