"""Pure view models for the run page: a record (and its patch and evidence) in, plain
data for the templates and the JSON API out. The templates only loop and escape."""

from __future__ import annotations

from pydantic import BaseModel

from bot.core.record import ArtifactRef, RunRecord
from bot.core.render import Section

PNG = b"\x89PNG\r\n\x1a\n"
JPEG = b"\xff\xd8\xff"
MAX_DIFF_LINES = 5000


class DiffLine(BaseModel):
    kind: str
    """file, hunk, add, del, ctx, meta: one CSS class per kind, so colour needs no JS."""
    text: str
    old: int | None = None
    new: int | None = None


class EvidenceSection(BaseModel):
    title: str
    text: str
    """The family's plain-text body: shown escaped in a <pre>, never as markup."""


class Verification(BaseModel):
    verified: bool
    head: str | None
    findings: list[str]
    entry_seq: int
    entry_digest: str
    entry_commit: str


class RunDetail(BaseModel):
    record: RunRecord
    verification: Verification
    evidence: list[EvidenceSection]
    diff: list[DiffLine]
    duration_s: float | None
    cost_usd: float | None


def _hunk_start(line: str) -> tuple[int, int]:
    # "@@ -a,b +c,d @@": malformed headers count from 0 rather than fail the page.
    try:
        old, new = line.split("@@")[1].split()[:2]
        return int(old[1:].split(",")[0]), int(new[1:].split(",")[0])
    except (IndexError, ValueError):
        return 0, 0


def diff_lines(patch: str, limit: int = MAX_DIFF_LINES) -> list[DiffLine]:
    """A unified diff as classed lines with old/new line numbers."""
    out: list[DiffLine] = []
    old = new = 0
    lines = patch.splitlines()
    for line in lines[:limit]:
        if line.startswith(("diff --git", "--- ", "+++ ")):
            out.append(DiffLine(kind="file", text=line))
        elif line.startswith("@@"):
            old, new = _hunk_start(line)
            out.append(DiffLine(kind="hunk", text=line))
        elif line.startswith("+"):
            out.append(DiffLine(kind="add", text=line, new=new))
            new += 1
        elif line.startswith("-"):
            out.append(DiffLine(kind="del", text=line, old=old))
            old += 1
        elif line.startswith(" "):
            out.append(DiffLine(kind="ctx", text=line, old=old, new=new))
            old, new = old + 1, new + 1
        else:
            out.append(DiffLine(kind="meta", text=line))
    if len(lines) > limit:
        out.append(DiffLine(kind="meta", text=f"... {len(lines) - limit} more lines: download it"))
    return out


def evidence_sections(sections: list[Section]) -> list[EvidenceSection]:
    return [EvidenceSection(title=s.title, text=s.body_text) for s in sections]


def is_trace_name(name: str) -> bool:
    return name.endswith(".zip") and "trace" in name


def is_trace(ref: ArtifactRef) -> bool:
    return is_trace_name(ref.name)


def picture_type(data: bytes) -> str | None:
    """The media type of a PNG or JPEG by its magic bytes, whatever its name says; None
    for anything else (SVG and HTML above all), which is only ever a download."""
    if data.startswith(PNG):
        return "image/png"
    if data.startswith(JPEG):
        return "image/jpeg"
    return None


def is_picture(ref: ArtifactRef) -> bool:
    return ref.media_type in ("image/png", "image/jpeg")


def safe_filename(name: str) -> str:
    """An artifact name as a download's file name: no path, no quotes, no control bytes."""
    base = name.rsplit("/", 1)[-1]
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in base)
    return cleaned.strip(".") or "artifact"


def money(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.4f}"


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 60:
        return f"{value:.0f}s"
    return f"{value // 60:.0f}m {value % 60:02.0f}s"
