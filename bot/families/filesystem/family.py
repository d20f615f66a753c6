"""The filesystem family: scoped reads and writes in the workspace; its part is the patch.

What the agent changed is the workspace against the run's commit: changes outside the
write scope or on protected paths are left out (and noted), the rest becomes one part of
kind "patch" whose digest is the patch's sha256. Apply commits exactly that patch on a
run branch, re-checking every path against the scope and the protected paths first.
"""

from __future__ import annotations

from collections.abc import Sequence

from unidiff.errors import UnidiffParseError
from unidiff.patch import PatchSet

from bot.core.canonical import sha256_hex
from bot.core.errors import AgentplaneError
from bot.core.globs import match_any
from bot.core.record import PATCH, AppliedPart, ProposalPart
from bot.families.base import ToolSpec
from bot.families.filesystem.tools import filesystem_tools
from bot.families.interface import (
    ApplyContext,
    ApplyRefused,
    Artifact,
    FamilyError,
    FamilySession,
    Inverse,
    InverseContext,
    Note,
    RestoreContext,
    RunContext,
    Staged,
    ToolFamily,
)

PATCH_ARTIFACT = "proposal.diff"
APPLY_ACTIONS = ("write", "commit")
"""What applying a patch does: writes files and commits them on a run branch."""


def diffstat(patch: str) -> tuple[int, int]:
    """(added, removed) lines, as git counts them. Parsed by hunk, so a line whose content
    starts with `--` or `++` (SQL comments, a C decrement) is counted like any other;
    binary files add no lines."""
    try:
        files = PatchSet(patch)
    except UnidiffParseError as exc:
        raise AgentplaneError(f"the workspace diff does not parse as a patch: {exc}") from None
    return sum(f.added for f in files), sum(f.removed for f in files)


class FilesystemSession(FamilySession):
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx

    def tools(self) -> Sequence[ToolSpec]:
        readable = self.ctx.plan.granted("read")
        return filesystem_tools(self.ctx.workspace, lambda rel: match_any(rel, readable))

    def finish(self) -> Staged:
        ctx = self.ctx
        ctx.check_workspace()  # before git copies a single byte of it
        diff = ctx.repo.diff_workspace(
            ctx.commit, ctx.workspace, ctx.plan.granted("write"), ctx.policy.protected_paths
        )
        rule = next((d.rule for d in ctx.plan.decisions if d.kind == "write"), "policy#write")
        notes = [*ctx.vet(diff.patch)] if diff.patch else []
        notes += [
            Note(
                tool="workspace",
                arguments={"path": path},
                decision="deny",
                rule=rule,
                reason="changed outside the write scope; left out of the proposal",
                ok=False,
            )
            for path in diff.out_of_scope
        ]
        if not diff.patch:
            return Staged(out_of_scope=diff.out_of_scope, notes=tuple(notes))
        data = diff.patch.encode("utf-8")
        adds, dels = diffstat(diff.patch)
        part = ProposalPart(
            family=FilesystemFamily.name,
            kind=PATCH,
            digest=sha256_hex(data),
            actions=list(APPLY_ACTIONS),
            paths=list(diff.changed),
            summary=f"{len(diff.changed)} file(s), +{adds} -{dels}",
            detail={"additions": adds, "deletions": dels},
        )
        # Stored as proposed: it is what apply commits, and ctx.vet has vetted it.
        patch = Artifact(PATCH_ARTIFACT, data, "text/x-diff", redaction="none")
        return Staged(
            artifacts=(patch,),
            parts=(part,),
            out_of_scope=diff.out_of_scope,
            notes=tuple(notes),
        )


class FilesystemFamily(ToolFamily):
    name = "filesystem"
    capabilities = ("filesystem",)
    gate_actions = APPLY_ACTIONS
    implied_actions = ("write",)

    def open(self, ctx: RunContext) -> FamilySession:
        return FilesystemSession(ctx)

    def restore(self, part: ProposalPart, ctx: RestoreContext) -> None:
        ctx.repo.apply_in(ctx.workspace, _patch(part, ctx.artifact(part.digest)))

    def apply(self, part: ProposalPart, ctx: ApplyContext) -> AppliedPart:
        rec = ctx.record
        patch = _patch(part, ctx.artifact(part.digest))
        writes = ctx.plan.granted("write")
        protected = ctx.policy.protected_paths

        def check(paths: list[str]) -> None:
            # Staging already filtered both; this holds even if the stored proposal is
            # not what staging produced (a swapped record, a staging bug).
            outside = [p for p in paths if not match_any(p, writes)]
            guarded = [p for p in paths if match_any(p, protected)]
            if outside:
                raise ApplyRefused(
                    f"apply failed: {', '.join(outside)} outside the write scope {writes}"
                )
            if guarded:
                raise ApplyRefused(
                    f"apply failed: {', '.join(guarded)} protected by policy ({protected})"
                )

        branch = f"agentplane/run/{rec.run_id}"
        commit = ctx.repo.commit_patch(
            rec.commit, patch, branch, ctx.message, ctx.identity, ctx.at, check=check
        )
        return AppliedPart(
            family=self.name,
            summary=f"committed {commit[:12]} on branch {branch}",
            details={"branch": branch, "commit": commit},
        )

    def inverse(self, part: ProposalPart, ctx: InverseContext) -> Inverse:
        """The patch that takes the applied commit back to its parent, as a patch part of
        its own: documents ride in the same binary patch, so they return byte for byte."""
        commit = ctx.applied.details.get("commit") if ctx.applied else None
        if not commit:
            return Inverse(irreversible=f"filesystem: {part.summary}: apply recorded no commit")
        reverse = ctx.repo.reverse_patch(commit)
        if not reverse:
            return Inverse()  # the commit changed nothing: nothing to undo
        if problem := ctx.repo.patch_problem(ctx.onto, reverse):
            raise FamilyError(
                f"the revert of {commit[:12]} does not apply on {ctx.onto[:12]} (its files "
                f"changed since; roll back onto another commit with --onto): {problem}"
            )
        data = reverse.encode("utf-8")
        adds, dels = diffstat(reverse)
        paths = [f.path for f in PatchSet(reverse)]
        undo = ProposalPart(
            family=self.name,
            kind=PATCH,
            digest=sha256_hex(data),
            actions=list(APPLY_ACTIONS),
            paths=paths,
            summary=f"revert of {commit[:12]}: {len(paths)} file(s), +{adds} -{dels}",
            detail={"additions": adds, "deletions": dels, "reverts": commit},
        )
        return Inverse(
            parts=(undo,),
            artifacts=(Artifact(PATCH_ARTIFACT, data, "text/x-diff", redaction="none"),),
        )


def _patch(part: ProposalPart, data: bytes) -> str:
    # The approval binds to this digest: whatever is applied must be what was reviewed.
    if sha256_hex(data) != part.digest:
        raise ApplyRefused(f"the stored patch does not match its digest {part.digest[:12]}")
    return data.decode("utf-8")
