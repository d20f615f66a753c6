"""Spreadsheet diffs: per sheet, cells changed, rows and columns inserted or deleted, merged
ranges, visibility; sheets added, removed or renamed (same cells under a new name)."""

from __future__ import annotations

from bot.families.documents.model import SheetDiff
from bot.families.documents.tables import A1, diff_tables
from bot.families.documents.xlsx_file import SheetView

RENAMED = 0.5
"""At least this share of cells alike, and a sheet gone under one name and added under
another is one sheet renamed."""


def _size(view: SheetView) -> str:
    cols = max((len(r) for r in view.grid), default=0)
    return f"{len(view.grid)} rows x {cols} columns"


def _alike(a: SheetView, b: SheetView) -> float:
    """The share of cells, by address, that hold the same thing in both sheets."""
    cells = {(r, c): v for r, row in enumerate(a.grid) for c, v in enumerate(row) if v}
    other = {(r, c): v for r, row in enumerate(b.grid) for c, v in enumerate(row) if v}
    union = cells.keys() | other.keys()
    same = sum(1 for k in union if cells.get(k) == other.get(k))
    return same / len(union) if union else 0.0


def _renames(old: list[SheetView], new: list[SheetView]) -> dict[str, str]:
    """new name -> old name for sheets that went under one name and came under another
    with mostly the same cells (a renamed sheet, perhaps edited as well)."""
    after = {v.name for v in new}
    before = {v.name for v in old}
    gone = [v for v in old if v.name not in after]
    renamed: dict[str, str] = {}
    for v in new:
        if v.name in before:
            continue
        left = [g for g in gone if g.name not in renamed.values()]
        best = max(left, key=lambda g: _alike(g, v), default=None)
        if best is not None and _alike(best, v) >= RENAMED:
            renamed[v.name] = best.name
    return renamed


def diff_sheets(old: list[SheetView], new: list[SheetView]) -> list[SheetDiff]:
    """Sheets in the new tab order, then the removed ones; unchanged sheets are left out."""
    before = {v.name: v for v in old}
    after = {v.name: v for v in new}
    gone = [v for v in old if v.name not in after]
    renamed = _renames(old, new)
    out: list[SheetDiff] = []
    for v in new:
        was = before.get(v.name) or before.get(renamed.get(v.name, ""))
        if was is None:
            out.append(
                SheetDiff(name=v.name, status="added", size=_size(v), table=diff_tables([], v.grid))
            )
            continue
        sheet = SheetDiff(
            name=v.name,
            status="renamed" if v.name in renamed else "changed",
            renamed_from=renamed.get(v.name, ""),
            table=diff_tables(was.grid, v.grid, A1),
            merged_added=[m for m in v.merged if m not in was.merged],
            merged_removed=[m for m in was.merged if m not in v.merged],
            state="" if was.state == v.state else f"{was.state} -> {v.state}",
        )
        if sheet.status == "renamed" or not (
            sheet.table.empty()
            and not sheet.merged_added
            and not sheet.merged_removed
            and not sheet.state
        ):
            out.append(sheet)
    out += [
        SheetDiff(name=g.name, status="removed", size=_size(g))
        for g in gone
        if g.name not in renamed.values()
    ]
    return out
