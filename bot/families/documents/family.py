"""The documents family: its tools, and at the end the evidence for every changed document.

It stages no proposal part: document edits are files in the workspace, so the filesystem
family's patch carries them (as git binary diffs) and its apply, which re-checks the write
scope and the protected paths, commits them. One change, one path that applies it, bound
by the patch's digest; the evidence names the git object of each file it describes and
says whether the patch writes exactly that object.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bot.adapters.sandbox.spec import SandboxBackend
from bot.families.base import ToolSpec
from bot.families.documents import pictures
from bot.families.documents.evidence import sections
from bot.families.documents.model import DocumentsEvidence
from bot.families.documents.stage import EVIDENCE, stage
from bot.families.documents.tools import CAPABILITY, DocumentTools
from bot.families.filesystem.family import PATCH_ARTIFACT
from bot.families.interface import (
    EvidenceContext,
    FamilySession,
    RunContext,
    Section,
    Staged,
    ToolFamily,
)


def _bwrap() -> SandboxBackend | None:
    from bot.adapters.sandbox.bwrap import BwrapBackend

    backend = BwrapBackend()
    return backend if backend.available()[0] else None


class DocumentsSession(FamilySession):
    def __init__(self, ctx: RunContext, family: DocumentsFamily) -> None:
        self.ctx = ctx
        self.family = family

    def tools(self) -> Sequence[ToolSpec]:
        return DocumentTools(self.ctx.workspace).specs()

    def finish(self) -> Staged:
        # The run's own sandbox is gone by now; the pictures get one of their own.
        launcher = self.family.launcher()
        backend = self.family.backend() if launcher else None
        return stage(self.ctx, launcher, backend)


class DocumentsFamily(ToolFamily):
    name = "documents"
    capabilities = (CAPABILITY,)
    implied_actions = ("write",)
    """Its edit tools write files, whatever the job lists: gates on writes apply."""

    def __init__(self, launcher: Callable[[], str | None] = pictures.soffice) -> None:
        """launcher finds LibreOffice (None where it is absent: the evidence then says the
        pictures are missing)."""
        self.launcher = launcher

    def backend(self) -> SandboxBackend | None:
        return _bwrap()

    def open(self, ctx: RunContext) -> FamilySession:
        # Every tool is registered; the broker denies them unless the plan grants documents.
        return DocumentsSession(ctx, self)

    def evidence(self, ctx: EvidenceContext) -> list[Section]:
        data = ctx.artifact_named(EVIDENCE)
        if data is None:
            return []
        found = DocumentsEvidence.model_validate_json(data)
        patch = ctx.artifact_named(PATCH_ARTIFACT)
        return sections(
            found,
            patch.decode("utf-8", "replace") if patch is not None else None,
            ctx.links,
            ctx.artifact_named,
        )
