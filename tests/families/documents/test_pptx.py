"""Slide decks on real files: a changed slide, an added one, a removed one; slides followed
by id, so inserting one does not make every later slide "changed"."""

from __future__ import annotations

from pathlib import Path

from bot.families.documents.diff import diff_document
from tests.families.documents.conftest import Call
from tests.families.documents.files import deck

SLIDES = [
    ("Q2 results", "Revenue up 4%\nCosts flat", "thank finance"),
    ("Regions", "eu\nus", ""),
    ("Next steps", "Hire in apac", ""),
]


def test_a_changed_slide_shows_title_text_and_notes_marked(workspace: Path, call: Call) -> None:
    before = deck(SLIDES)
    (workspace / "deck.pptx").write_bytes(before)
    call(
        "pptx_set_slide",
        path="deck.pptx",
        slide=1,
        title="Q3 results",
        text="Revenue up 6%\nCosts flat",
        notes="thank finance and sales",
    )
    d = diff_document("deck.pptx", "pptx", before, (workspace / "deck.pptx").read_bytes())
    (slide,) = d.slides
    assert (slide.status, slide.number, slide.title) == ("changed", 1, "Q3 results")
    assert [(f.name, f.text) for f in slide.fields] == [
        ("title", "[-Q2-]{+Q3+} results"),
        ("text", "Revenue up [-4%-]{+6%+}\nCosts flat"),
        ("notes", "thank finance{+ and sales+}"),
    ]


def test_an_added_slide_moves_no_other_and_a_removed_one_is_listed(
    workspace: Path, call: Call
) -> None:
    before = deck(SLIDES)
    (workspace / "deck.pptx").write_bytes(before)
    call("pptx_add_slide", path="deck.pptx", title="Agenda", text="results\nregions", position=1)
    added = (workspace / "deck.pptx").read_bytes()
    d = diff_document("deck.pptx", "pptx", before, added)
    assert [(s.status, s.number, s.title) for s in d.slides] == [("added", 1, "Agenda")]
    listed = call("doc_read", path="deck.pptx").output
    assert listed.index("slide 1: Agenda") < listed.index("slide 2: Q2 results")
    removed = diff_document("deck.pptx", "pptx", before, deck(SLIDES[:2]))
    assert [(s.status, s.number, s.title) for s in removed.slides] == [("removed", 3, "Next steps")]
