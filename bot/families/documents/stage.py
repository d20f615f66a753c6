"""What the documents family stages when the agent is done: evidence, never a part.

The edited bytes are already in the workspace, so the filesystem family's patch carries
them and its commit is the one path that applies them; a second part would apply the same
change twice. Here each changed document (in the write scope, not protected: the files
that patch carries) gets its semantic diff, its raw before and after files (stored by
digest, like every artifact), pictures, and the control plane's secret checks on its text,
which the binary patch hides from them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator
from pathlib import PurePosixPath
from typing import Any

from bot.adapters import safefs
from bot.adapters.sandbox.spec import SandboxBackend
from bot.adapters.sandbox.workspace import writable_dirs
from bot.core.canonical import canonical_json, sha256_hex
from bot.core.errors import ProposalRefused
from bot.core.globs import match_any
from bot.families.documents import pictures, regions
from bot.families.documents.diff import diff_document, texts
from bot.families.documents.errors import DocumentError
from bot.families.documents.formats import MEDIA_TYPES, PACKAGES, Format, format_of
from bot.families.documents.model import DocumentDiff, DocumentsEvidence, Picture
from bot.families.documents.package import git_blob_id
from bot.families.documents.safety import MAX_FILE_BYTES
from bot.families.interface import Artifact, FamilyError, Note, RunContext, Staged

EVIDENCE = "documents.json"
EVIDENCED: tuple[Format, ...] = ("xlsx", "docx", "pptx", "csv")
"""Formats with a semantic diff; Markdown's is the patch's own text diff."""


def _before(ctx: RunContext, path: str) -> bytes | None:
    """The file at the run's commit; None where it did not exist or is not a plain file
    (a link or a submodule is never read as a document)."""
    try:
        blob = ctx.repo.repo.commit(ctx.commit).tree / path
    except (KeyError, ValueError):
        return None
    if getattr(blob, "type", "") != "blob" or blob.mode not in (0o100644, 0o100755):
        return None
    data: bytes = blob.data_stream.read(MAX_FILE_BYTES + 1)
    return data


def _committed(ctx: RunContext, dirs: tuple[str, ...]) -> dict[str, str]:
    """path -> blob id of every document-format file under dirs at the run's commit."""
    tree = ctx.repo.repo.commit(ctx.commit).tree
    found: dict[str, str] = {}
    for rel in dirs:
        try:
            sub = tree if rel == "." else tree / rel
        except KeyError:
            continue
        if getattr(sub, "type", "") != "tree":
            continue
        items: Iterable[Any] = sub.traverse()
        for item in items:
            if item.type == "blob" and format_of(str(item.path)) in EVIDENCED:
                found[item.path] = item.hexsha
    return found


Changed = tuple[str, Format, bytes | None, bytes | None]


def changed_documents(ctx: RunContext, cut: list[str]) -> Iterator[Changed]:
    """(path, format, before, after) of documents the proposal's patch changes: the same
    filter as the patch (the write scope, less protected paths), over the only directories
    the sandbox and the tools could write, compared by git's object ids. Directories whose
    listing was cut (safefs bounds it) are added to cut."""
    writes = ctx.plan.granted("write")
    if not writes:
        return
    dirs = writable_dirs(writes)
    committed = _committed(ctx, dirs)
    seen: set[str] = set()
    with safefs.root(ctx.workspace) as fd:
        for rel in dirs:
            try:
                entries, was_cut = safefs.walk(fd, rel)
            except (OSError, safefs.UnsafePath):
                continue
            if was_cut:
                cut.append(rel)
            for entry in entries:
                fmt = format_of(entry.rel)
                if entry.kind != "file" or fmt not in EVIDENCED or not _proposed(ctx, entry.rel):
                    continue
                seen.add(entry.rel)
                try:
                    after = safefs.read_bytes(fd, entry.rel, MAX_FILE_BYTES + 1)
                except (OSError, safefs.UnsafePath):
                    continue  # swapped or gone since the listing: git's diff has the truth
                old = committed.get(entry.rel)
                if old is not None and old == git_blob_id(after, len(old)):
                    continue  # unchanged
                yield entry.rel, fmt, _before(ctx, entry.rel), after
    for path in sorted(set(committed) - seen):
        fmt = format_of(path)
        if fmt is not None and _proposed(ctx, path) and not _exists(ctx, path):
            yield path, fmt, _before(ctx, path), None


def _proposed(ctx: RunContext, path: str) -> bool:
    return match_any(path, ctx.plan.granted("write")) and not match_any(
        path, ctx.policy.protected_paths
    )


def _exists(ctx: RunContext, path: str) -> bool:
    with safefs.root(ctx.workspace) as fd:
        try:
            safefs.lookup(fd, path)
        except (OSError, safefs.UnsafePath):
            return False
    return True


def _secret_notes(
    ctx: RunContext, d: DocumentDiff, before: bytes | None, after: bytes
) -> list[Note]:
    """The control plane's checks on the text a package adds, as a patch of that text:
    a known secret refuses the proposal; a token-shaped value is flagged by its cell,
    paragraph or slide."""
    try:
        old = {t for _, t in texts(d.path, d.format, before)} if before is not None else set()
        every = list(texts(d.path, d.format, after))
    except Exception as exc:  # it was just diffed; should it fail now, nothing is stored
        raise FamilyError(f"{d.path}: its text cannot be checked for secrets: {exc}") from None
    added = [(where, text) for where, text in every if text and text not in old]
    if not added:
        return []
    lines: list[str] = []
    where_of: dict[int, str] = {}
    for where, text in added:
        for line in text.splitlines() or [""]:
            lines.append(line)
            where_of[len(lines)] = where
    patch = "".join(
        [
            f"diff --git a/{d.path} b/{d.path}\n--- a/{d.path}\n+++ b/{d.path}\n",
            f"@@ -0,0 +1,{len(lines)} @@\n",
            *(f"+{line}\n" for line in lines),
        ]
    )
    try:
        notes = ctx.vet(patch)
    except ProposalRefused as exc:  # the control plane's refusal, named by cell, not line
        where = where_of.get(exc.line or 0, "")
        raise FamilyError(
            f"refused: {d.path} {where} adds a secret the control plane holds; "
            "the proposal is not stored"
        ) from None
    return [_located(n, d.path, where_of) for n in notes]


def _located(note: Note, path: str, where_of: dict[int, str]) -> Note:
    line = note.arguments.get("line")
    where = where_of.get(line, "") if isinstance(line, int) else ""
    reason = re.sub(rf"^{re.escape(path)}:\d+:", f"{path} {where}:", note.reason)
    return dataclasses.replace(note, arguments={"path": path, "at": where}, reason=reason)


def stage(ctx: RunContext, launcher: str | None, backend: SandboxBackend | None) -> Staged:
    ctx.check_workspace()  # before a byte of an oversized workspace is read
    artifacts: list[Artifact] = []
    notes: list[Note] = []
    diffs: list[DocumentDiff] = []
    jobs: list[pictures.Job] = []
    cut: list[str] = []
    for n, (path, fmt, before, after) in enumerate(changed_documents(ctx, cut), 1):
        d = diff_document(path, fmt, before, after)
        ext = PurePosixPath(path).suffix.lower()
        for side, data in (("before", before), ("after", after)):
            if data is None:
                continue
            name = f"doc-{n}-{side}{ext}"
            # Stored as is: a package is binary (nothing to redact in place), and its
            # text went through the secret checks below.
            artifacts.append(Artifact(name, data, MEDIA_TYPES[fmt], redaction="none"))
            setattr(d, f"{side}_artifact", name)
            setattr(d, f"{side}_sha256", sha256_hex(data))
        if after is not None:
            d.after_blob = git_blob_id(after)
            if fmt in PACKAGES and not d.error:
                notes += _secret_notes(ctx, d, before, after)
        try:
            shots = regions.shots(d, before, after)
        except Exception as exc:  # as in diff_document: whatever a library raises
            reason = (
                exc.reason if isinstance(exc, DocumentError) else f"{type(exc).__name__}: {exc}"
            )
            d.pictures_missing = f"the copies to draw could not be made: {reason}"
            shots = []
        for k, shot in enumerate(shots, 1):
            picture = Picture(label=shot.label)
            for side, copy in (("before", shot.before), ("after", shot.after)):
                if copy is not None:
                    job = pictures.Job(f"doc-{n}-{k}-{side}", copy[0], copy[1], shot.crop)
                    jobs.append(job)
                    setattr(picture, side, f"{job.name}.png")
            d.pictures.append(picture)
        diffs.append(d)
    notes += [
        Note(
            tool="documents",
            arguments={"path": rel},
            decision="allow",
            rule="documents#listing",
            reason=f"{rel}: more than {safefs.MAX_WALK_ENTRIES} entries; documents past the "
            "listing's cut are in the patch but have no semantic diff",
            ok=False,
        )
        for rel in cut
    ]
    if not diffs:
        return Staged(notes=tuple(notes))
    renderer = _draw(diffs, jobs, launcher, backend, artifacts)
    evidence = DocumentsEvidence(documents=diffs, renderer=renderer)
    artifacts.append(
        Artifact(EVIDENCE, canonical_json(evidence.model_dump(mode="json")), "application/json")
    )
    return Staged(artifacts=tuple(artifacts), notes=tuple(notes))


def _draw(
    diffs: list[DocumentDiff],
    jobs: list[pictures.Job],
    launcher: str | None,
    backend: SandboxBackend | None,
    artifacts: list[Artifact],
) -> str:
    """Draw the pictures, keep them as artifacts, and say in each diff what is missing."""
    if not jobs:
        return ""
    problem = ""
    drawn: dict[str, bytes] = {}
    if launcher is None or backend is None:
        problem = f"LibreOffice is not installed here ({pictures.INSTALL_HINT})"
    else:
        try:
            drawn = pictures.render(jobs[: pictures.MAX_JOBS], launcher, backend)
        except pictures.RenderFailed as exc:
            problem = str(exc)
    for d in diffs:
        if not d.pictures:
            continue
        if problem:
            d.pictures_missing, d.pictures = d.pictures_missing or problem, []
            continue
        kept = []
        for p in d.pictures:
            p.before = p.before if p.before[:-4] in drawn else ""
            p.after = p.after if p.after[:-4] in drawn else ""
            if p.before or p.after:
                kept.append(p)
        if len(kept) < len(d.pictures):
            d.pictures_missing = (
                f"{len(d.pictures) - len(kept)} of {len(d.pictures)} not drawn (LibreOffice "
                f"drew nothing for them, or they were past {pictures.MAX_JOBS} per run)"
            )
        d.pictures = kept
    for name, png in drawn.items():
        artifacts.append(Artifact(f"{name}.png", png, "image/png", redaction="none"))
    return pictures.renderer_label(launcher) if drawn and launcher else ""
