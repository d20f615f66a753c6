"""PPTX diffs: slides followed by id; each added, removed, moved, or changed in its title,
text or notes (with word marks)."""

from __future__ import annotations

import difflib
from typing import Literal

from bot.families.documents.marks import cut, mark_words
from bot.families.documents.model import FieldChange, SlideChange
from bot.families.documents.pptx_file import SlideView

FIELDS: tuple[Literal["title", "text", "notes"], ...] = ("title", "text", "notes")


def _moved(old: list[SlideView], new: list[SlideView]) -> set[int]:
    """Ids of kept slides whose order changed: those off the longest common order, so a
    slide inserted before them does not make them all "moved"."""
    kept = {v.id for v in new} & {v.id for v in old}
    a = [v.id for v in old if v.id in kept]
    b = [v.id for v in new if v.id in kept]
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    in_order = {a[m.a + k] for m in matcher.get_matching_blocks() for k in range(m.size)}
    return kept - in_order


def diff_slides(old: list[SlideView], new: list[SlideView]) -> list[SlideChange]:
    before = {v.id: v for v in old}
    after = {v.id for v in new}
    moved = _moved(old, new)
    out: list[SlideChange] = []
    for v in new:
        was = before.get(v.id)
        if was is None:
            fields = [FieldChange(name=f, text=cut(getattr(v, f))) for f in FIELDS if getattr(v, f)]
            out.append(SlideChange(status="added", number=v.number, title=v.title, fields=fields))
            continue
        fields = [
            FieldChange(name=f, text=mark_words(getattr(was, f), getattr(v, f)))
            for f in FIELDS
            if getattr(was, f) != getattr(v, f)
        ]
        if fields or v.id in moved:
            out.append(
                SlideChange(
                    status="changed",
                    number=v.number,
                    was_number=was.number if was.number != v.number else 0,
                    title=v.title,
                    fields=fields,
                )
            )
    out += [
        SlideChange(
            status="removed",
            number=w.number,
            title=w.title,
            fields=[FieldChange(name=f, text=cut(getattr(w, f))) for f in FIELDS if getattr(w, f)],
        )
        for w in old
        if w.id not in after
    ]
    return out
