"""DOCX diffs: paragraphs inserted, deleted or changed (with word marks and style changes),
tables inserted, deleted or changed cell by cell, in body order."""

from __future__ import annotations

import difflib

from bot.families.documents.docx_file import Block
from bot.families.documents.marks import cut, mark_words
from bot.families.documents.model import BlockChange
from bot.families.documents.tables import RC, diff_tables

SIMILAR = 0.4
"""Paragraphs at least this alike (difflib ratio) are one paragraph changed, not a deleted
and an inserted one."""


def _key(b: Block) -> tuple[str, str, str]:
    return (b.kind, b.style, b.text if b.kind == "p" else repr(b.grid))


def _ratio(a: Block, b: Block) -> float:
    if a.kind != b.kind:
        return 0.0
    if a.kind == "t":
        return 1.0  # a table next to a table is that table changed
    return difflib.SequenceMatcher(None, a.text, b.text, autojunk=False).ratio()


def diff_blocks(old: list[Block], new: list[Block]) -> list[BlockChange]:
    matcher = difflib.SequenceMatcher(
        None, [_key(b) for b in old], [_key(b) for b in new], autojunk=False
    )
    out: list[BlockChange] = []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op != "equal":
            out += _replace(old[i1:i2], new[j1:j2])
    return out


def _replace(olds: list[Block], news: list[Block]) -> list[BlockChange]:
    """Pair each old block with the next alike new one, in order; the rest are inserted or
    deleted."""
    out: list[BlockChange] = []
    j = 0
    for a in olds:
        best = max(range(j, len(news)), key=lambda k: _ratio(a, news[k]), default=None)
        if best is None or _ratio(a, news[best]) < SIMILAR:
            out.append(_gone(a))
            continue
        out += [_added(b) for b in news[j:best]]
        out.append(_changed(a, news[best]))
        j = best + 1
    out += [_added(b) for b in news[j:]]
    return out


def _gone(b: Block) -> BlockChange:
    if b.kind == "t":
        return BlockChange(kind="table deleted", at=b.number, text=_size(b))
    return BlockChange(kind="deleted", at=b.number, style=b.style, text=cut(b.text))


def _added(b: Block) -> BlockChange:
    if b.kind == "t":
        return BlockChange(
            kind="table inserted", at=b.number, text=_size(b), table=diff_tables([], b.grid, RC)
        )
    return BlockChange(kind="inserted", at=b.number, style=b.style, text=cut(b.text))


def _changed(a: Block, b: Block) -> BlockChange:
    if a.kind == "t":
        return BlockChange(kind="table", at=b.number, table=diff_tables(a.grid, b.grid, RC))
    style = "" if a.style == b.style else f"{a.style} -> {b.style}"
    text = mark_words(a.text, b.text) if a.text != b.text else cut(b.text)
    return BlockChange(kind="changed", at=b.number, style=style, text=text)


def _size(b: Block) -> str:
    return f"{len(b.grid)} rows x {max((len(r) for r in b.grid), default=0)} columns"


def changed_spans(old: list[Block], new: list[Block]) -> list[tuple[int, int, int, int]]:
    """(old start, old end, new start, new end) of each changed run of blocks, as body
    indices (end exclusive): the passages the pictures show."""
    matcher = difflib.SequenceMatcher(
        None, [_key(b) for b in old], [_key(b) for b in new], autojunk=False
    )
    return [(i1, i2, j1, j2) for op, i1, i2, j1, j2 in matcher.get_opcodes() if op != "equal"]
