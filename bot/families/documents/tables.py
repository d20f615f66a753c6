"""Aligned table diffs: which rows and columns were inserted or deleted, which cells changed.

daff aligns the two tables (by content, so an inserted row is one inserted row, not every
row below it shifted); the rest is ours: walking its alignment into labelled changes. A
deleted run right next to an inserted run of the same place is read as those rows
changed, since in a grid the same address with new content is a change, not a move.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import daff

from bot.families.documents.model import CellChange, Line, TableDiff

Grid = Sequence[Sequence[str]]
Pairs = list[tuple[int, int]]
"""(old index, new index); -1 on the side where the row or column does not exist."""

MAX_ALIGNED_CELLS = 120_000
"""Both tables together; daff takes about a second per 100k cells, so larger tables are
compared in place, and the evidence says so."""
MAX_LISTED = 300
"""Changes listed per table; the rest are counted."""


@dataclass(frozen=True)
class Labels:
    row: Callable[[int], str]
    col: Callable[[int, bool], str]
    """(index, in the new table) -> label: a letter, C3, or a CSV header name."""
    cell: Callable[[str, str], str]
    """(row label, column label) -> cell label."""


def _a1_col(index: int, _new: bool) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


A1 = Labels(row=lambda r: str(r + 1), col=_a1_col, cell=lambda r, c: f"{c}{r}")
"""Spreadsheet addresses: B4."""
RC = Labels(row=lambda r: f"R{r + 1}", col=lambda c, _n: f"C{c + 1}", cell=lambda r, c: r + c)
"""Table cells by row and column number: R2C3."""


def _width(grid: Grid) -> int:
    return max((len(r) for r in grid), default=0)


def _padded(grid: Grid, width: int) -> list[list[str]]:
    return [[*row, *[""] * (width - len(row))] for row in grid]


def align(old: Grid, new: Grid, header: bool = False) -> tuple[Pairs, Pairs, bool]:
    """(rows, columns, aligned). header: row 0 names the columns (CSV), which daff then
    matches by name; otherwise a blank header row is added, so every row is data."""
    wo, wn = _width(old), _width(new)
    if not old or not new:  # a table added or removed whole: nothing to align
        return _in_place(len(old), len(new)), _in_place(wo, wn), True
    if (len(old) * wo + len(new) * wn) > MAX_ALIGNED_CELLS:
        return _in_place(len(old), len(new)), _in_place(wo, wn), False
    a, b = _padded(old, wo), _padded(new, wn)
    if not header:
        a, b = [[""] * wo, *a], [[""] * wn, *b]
    result = daff.compareTables(daff.PythonTableView(a), daff.PythonTableView(b)).align()
    shift = 0 if header else 1

    def back(i: int) -> int:
        return i - shift if i >= 0 else -1

    # The blank header pairs with itself, and drops out as (-1, -1).
    rows = [(back(p.l), back(p.r)) for p in result.toOrder().getList()]
    rows = [p for p in rows if p != (-1, -1)]
    cols = [(p.l, p.r) for p in result.meta.toOrder().getList()]
    rows = _covering(rows, len(old), len(new))
    cols = _covering(cols, wo, wn)
    return _pair_runs(rows), _pair_runs(cols), True


def _in_place(n_old: int, n_new: int) -> Pairs:
    return [(i if i < n_old else -1, i if i < n_new else -1) for i in range(max(n_old, n_new))]


def _covering(pairs: Pairs, n_old: int, n_new: int) -> Pairs:
    """The alignment if it names every index once, in order; else in place (defensive:
    a diff that loses a row would hide a change)."""
    olds = [p[0] for p in pairs if p[0] >= 0]
    news = [p[1] for p in pairs if p[1] >= 0]
    if olds == list(range(n_old)) and news == list(range(n_new)):
        return pairs
    return _in_place(n_old, n_new)


def _pair_runs(pairs: Pairs) -> Pairs:
    """Adjacent deleted and inserted runs become changed pairs, position by position."""
    out: Pairs = []
    i = 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and -1 in pairs[j]:
            j += 1
        if j == i:
            out.append(pairs[i])
            i += 1
            continue
        run = pairs[i:j]
        dels = [p[0] for p in run if p[1] == -1]
        ins = [p[1] for p in run if p[0] == -1]
        both = min(len(dels), len(ins))
        out += list(zip(dels[:both], ins[:both], strict=True))
        out += [(d, -1) for d in dels[both:]] + [(-1, n) for n in ins[both:]]
        i = j
    return out


def diff_tables(old: Grid, new: Grid, labels: Labels = A1, header: bool = False) -> TableDiff:
    rows, cols, aligned = align(old, new, header)
    wo, wn = _width(old), _width(new)
    a, b = _padded(old, wo), _padded(new, wn)
    out = TableDiff(aligned=aligned)
    listed = 0

    def room() -> bool:
        nonlocal listed
        listed += 1
        if listed > MAX_LISTED:
            out.cut += 1
            return False
        return True

    # A table added or removed whole is its rows; its columns would say it all again.
    whole = not a or not b
    for lo, ln in [] if whole else cols:
        if lo == -1 and room():
            out.cols_inserted.append(Line(at=labels.col(ln, True), cells=_kept(r[ln] for r in b)))
        elif ln == -1 and room():
            out.cols_deleted.append(Line(at=labels.col(lo, False), cells=_kept(r[lo] for r in a)))
    for ro, rn in rows:
        if ro == -1:
            if room():
                out.rows_inserted.append(Line(at=labels.row(rn), cells=_kept(b[rn])))
            continue
        if rn == -1:
            if room():
                out.rows_deleted.append(Line(at=labels.row(ro), cells=_kept(a[ro])))
            continue
        for co, cn in cols:
            if co == -1 or cn == -1 or a[ro][co] == b[rn][cn]:
                continue
            if room():
                at = labels.cell(labels.row(rn), labels.col(cn, True))
                was = labels.cell(labels.row(ro), labels.col(co, False))
                out.cells.append(
                    CellChange(at=at, was_at="" if was == at else was, old=a[ro][co], new=b[rn][cn])
                )
    return out


def _kept(values: Iterable[str]) -> list[str]:
    cells = list(values)
    while cells and not cells[-1]:
        cells.pop()
    return cells
