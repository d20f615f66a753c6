"""Slide decks (python-pptx): read slides; set a slide's title, text and notes; add a slide.
Slides are numbered 1-based in deck order; the diff follows each slide by its id, so a
moved slide is one slide moved, not every slide after it changed.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import pptx
from pptx.presentation import Presentation
from pptx.slide import Slide
from pptx.text.text import TextFrame
from pptx.util import Inches

from bot.families.documents.errors import DocumentError, HugeDocument
from bot.families.documents.loading import parse, save
from bot.families.documents.marks import cut

MAX_SLIDES = 500
MAX_READ_CHARS = 60_000


def load(path: str, data: bytes) -> Presentation:
    prs: Presentation = parse(path, data, "pptx", pptx.Presentation)
    if len(prs.slides) > MAX_SLIDES:
        raise HugeDocument(path, f"{len(prs.slides)} slides, over {MAX_SLIDES}")
    return prs


def new() -> Presentation:
    return pptx.Presentation()


def dump(path: str, prs: Presentation, before: bytes | None) -> bytes:
    return save(path, "pptx", before, prs.save)


@dataclass(frozen=True)
class SlideView:
    id: int
    number: int
    title: str
    text: str
    """Every other shape's text (tables row by row), one line per paragraph."""
    notes: str


def _text(slide: Slide) -> str:
    title = slide.shapes.title
    lines: list[str] = []
    for shape in slide.shapes:
        if title is not None and shape.shape_id == title.shape_id:
            continue
        if shape.has_text_frame and shape.text_frame.text:  # type: ignore[attr-defined]
            lines += shape.text_frame.text.split("\n")  # type: ignore[attr-defined]
        if getattr(shape, "has_table", False):
            lines += [" | ".join(c.text for c in row.cells) for row in shape.table.rows]  # type: ignore[attr-defined]
    return "\n".join(lines)


def _notes(slide: Slide) -> str:
    if not slide.has_notes_slide:
        return ""
    frame = slide.notes_slide.notes_text_frame
    return frame.text if frame is not None else ""


def views(prs: Presentation) -> list[SlideView]:
    return [
        SlideView(
            id=s.slide_id,
            number=i,
            title=s.shapes.title.text if s.shapes.title is not None else "",
            text=_text(s),
            notes=_notes(s),
        )
        for i, s in enumerate(prs.slides, 1)
    ]


def describe(path: str, prs: Presentation) -> str:
    lines = [
        f"{path}: {len(prs.slides)} slides; layouts: "
        + ", ".join(layout.name for layout in prs.slide_layouts)
    ]
    for v in views(prs):
        lines.append(f"slide {v.number}: {v.title or '(no title)'}")
        lines += [f"  {line}" for line in v.text.split("\n") if line]
        if v.notes:
            lines.append(f"  notes: {v.notes}")
    return cut("\n".join(lines), MAX_READ_CHARS)


def slide(path: str, prs: Presentation, number: int) -> Slide:
    if not 1 <= number <= len(prs.slides):
        raise DocumentError(path, f"has no slide {number} (it has {len(prs.slides)})")
    found: Slide = prs.slides[number - 1]
    return found


def set_slide(
    path: str,
    prs: Presentation,
    number: int,
    title: str | None,
    text: str | None,
    notes: str | None,
) -> None:
    s = slide(path, prs, number)
    if title is not None:
        if s.shapes.title is None:
            raise DocumentError(path, f"slide {number} has no title placeholder")
        s.shapes.title.text = title
    if text is not None:
        _body(s).text = text
    if notes is not None:
        frame = s.notes_slide.notes_text_frame
        if frame is None:
            raise DocumentError(path, f"slide {number}'s notes page has no text placeholder")
        frame.text = notes


def _body(s: Slide) -> TextFrame:
    """The slide's body: its first placeholder other than the title, else its first other
    text shape, else a new text box under the title."""
    title_id = s.shapes.title.shape_id if s.shapes.title is not None else None
    for shape in [*s.placeholders, *s.shapes]:
        if shape.shape_id != title_id and shape.has_text_frame:
            frame: TextFrame = shape.text_frame
            return frame
    box: TextFrame = s.shapes.add_textbox(Inches(0.5), Inches(2), Inches(9), Inches(4)).text_frame
    return box


def add_slide(
    path: str,
    prs: Presentation,
    title: str,
    text: str | None,
    notes: str | None,
    layout: str | None,
    position: int | None,
) -> int:
    """Add a slide (at position, default the end); its number."""
    layouts = {la.name: la for la in prs.slide_layouts}
    if layout is not None and layout not in layouts:
        raise DocumentError(path, f"has no slide layout {layout!r} ({', '.join(layouts)})")
    chosen = layouts.get(layout or "Title and Content") or prs.slide_layouts[0]
    count = len(prs.slides)
    if position is not None and not 1 <= position <= count + 1:
        raise DocumentError(path, f"position {position} is not 1..{count + 1}")
    prs.slides.add_slide(chosen)
    number = count + 1
    if position is not None and position != number:
        ids = prs.slides._sldIdLst  # python-pptx has no API to move a slide
        moved = list(ids)[-1]
        ids.remove(moved)
        ids.insert(position - 1, moved)
        number = position
    set_slide(path, prs, number, title, text, notes)
    return number


def only_slide(prs: Presentation, number: int) -> bytes:
    """A copy showing only slide `number` (1-based): what its picture shows. The other
    slides' parts stay in the package, unlisted, so nothing is rewritten."""
    ids = prs.slides._sldIdLst
    for i, entry in enumerate(list(ids), 1):
        if i != number:
            ids.remove(entry)
    shown = prs.slides[0]._element
    shown.attrib.pop("show", None)  # a hidden slide is still pictured
    out = io.BytesIO()
    prs.save(out)
    return out.getvalue()
