"""CSV diffs: row by row, keyed by a unique header column when there is one (rows added,
removed, and changed cell by cell by column name); aligned by position otherwise."""

from __future__ import annotations

import re

from bot.families.documents.model import CellChange, CsvDiff, KeyedRow
from bot.families.documents.tables import MAX_LISTED, Labels, diff_tables

Rows = list[list[str]]
_KEY_NAME = re.compile(r"(^|[\s_-])(id|key|code|sku)$", re.I)


def _unique(rows: Rows, col: int) -> bool:
    values = [r[col] if col < len(r) else "" for r in rows[1:]]
    return all(values) and len(set(values)) == len(values)


def key_column(old: Rows, new: Rows) -> str:
    """The first column, in both headers, whose values are present and unique in both files:
    one named like an id first (id, sku, order_id), then any in header order."""
    if not old or not new:
        return ""
    names = [
        n for n in new[0] if n and n in old[0] and new[0].count(n) == 1 and old[0].count(n) == 1
    ]
    names.sort(key=lambda n: (n.lower() != "id", not _KEY_NAME.search(n)))
    for name in names:
        if _unique(old, old[0].index(name)) and _unique(new, new[0].index(name)):
            return name
    return ""


def _record(header: list[str], row: list[str]) -> dict[str, str]:
    return {name: (row[i] if i < len(row) else "") for i, name in enumerate(header)}


def diff_csv(old: Rows, new: Rows) -> CsvDiff:
    key = key_column(old, new)
    if not key:
        hold, hnew = (old[0] if old else []), (new[0] if new else [])
        labels = Labels(
            row=lambda r: f"line {r + 1}",
            col=lambda c, in_new: (
                (hnew if in_new else hold)[c]
                if c < len(hnew if in_new else hold)
                else f"column {c + 1}"
            ),
            cell=lambda r, c: f"{r} {c}",
        )
        return CsvDiff(table=diff_tables(old, new, labels, header=True))
    h_old, h_new = old[0], new[0]
    out = CsvDiff(
        key=key,
        columns_added=[n for n in h_new if n not in h_old],
        columns_removed=[n for n in h_old if n not in h_new],
    )
    before = {r[key]: r for r in (_record(h_old, row) for row in old[1:])}
    after = {r[key]: r for r in (_record(h_new, row) for row in new[1:])}
    shared = [n for n in h_new if n in h_old and n != key]
    listed = 0

    def keep(row: KeyedRow, into: list[KeyedRow]) -> None:
        nonlocal listed
        listed += 1
        if listed > MAX_LISTED:
            out.cut += 1
        else:
            into.append(row)

    for k, rec in after.items():
        was = before.get(k)
        if was is None:
            cells = [CellChange(at=n, old="", new=v) for n, v in rec.items() if v and n != key]
            keep(KeyedRow(key=k, cells=cells), out.rows_added)
            continue
        changed = [CellChange(at=n, old=was[n], new=rec[n]) for n in shared if was[n] != rec[n]]
        if changed:
            keep(KeyedRow(key=k, cells=changed), out.rows_changed)
    for k, was in before.items():
        if k not in after:
            cells = [CellChange(at=n, old=v, new="") for n, v in was.items() if v and n != key]
            keep(KeyedRow(key=k, cells=cells), out.rows_removed)
    return out
