"""Pictures drawn by the real LibreOffice in its own sandbox (one render: it is slow)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from bot.adapters.sandbox.bwrap import BwrapBackend
from bot.families.documents import pictures, regions
from bot.families.documents.diff import diff_document
from tests.families.documents.files import deck, workbook

ROWS = [["region", "orders"], ["eu", 10], ["us", 20], ["apac", 30]]


def colours(png: bytes) -> set[tuple[int, int, int]]:
    with Image.open(io.BytesIO(png)) as img:
        return {c for _, c in img.convert("RGB").getcolors(1 << 20) or []}


@pytest.mark.skipif(pictures.pictures_unavailable() is not None, reason="no LibreOffice here")
def test_a_changed_sheet_and_slide_are_drawn_before_and_after_with_changes_marked() -> None:
    before, after = workbook({"S": ROWS}), workbook({"S": [*ROWS[:2], ["us", 25], ROWS[3]]})
    sheet = diff_document("r.xlsx", "xlsx", before, after)
    slides = diff_document("d.pptx", "pptx", deck([("Q2", "up", "")]), deck([("Q3", "up", "")]))
    shots = regions.shots(sheet, before, after) + regions.shots(
        slides, deck([("Q2", "up", "")]), deck([("Q3", "up", "")])
    )
    assert [s.label for s in shots] == ["sheet S A1:B4", "slide 1"]
    jobs = [
        pictures.Job(f"{i}-{side}", copy[0], copy[1], shot.crop)
        for i, shot in enumerate(shots)
        for side, copy in (("before", shot.before), ("after", shot.after))
        if copy is not None
    ]
    launcher = pictures.soffice()
    assert launcher is not None
    drawn = pictures.render(jobs, launcher, BwrapBackend())
    assert sorted(drawn) == ["0-after", "0-before", "1-after", "1-before"]
    old_fill = tuple(int(regions.OLD_FILL[i : i + 2], 16) for i in (0, 2, 4))
    new_fill = tuple(int(regions.NEW_FILL[i : i + 2], 16) for i in (0, 2, 4))
    assert old_fill in colours(drawn["0-before"]) and new_fill not in colours(drawn["0-before"])
    assert new_fill in colours(drawn["0-after"])
    with Image.open(io.BytesIO(drawn["1-after"])) as slide:
        assert slide.width > slide.height > 100  # the whole 4:3 slide, not cropped to its text
