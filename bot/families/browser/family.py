"""The browser family: Chromium on the granted domains; its part is the held request.

A state-changing request is held, not sent: the part is that exact request (its digest
binds method, URL and body), and apply replays the recorded steps and releases it once,
or refuses and says how the page differs. The evidence is the steps, what was blocked,
the held request with its screenshot, and how to open the trace.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bot.core.errors import AgentplaneError
from bot.core.job import BrowserStep
from bot.core.plan import Plan
from bot.core.policy import Policy
from bot.core.record import AppliedPart, ProposalPart
from bot.families.base import ToolFailure, ToolSpec
from bot.families.browser.credentials import browser_credential
from bot.families.browser.driver import BrowserCredential, Chromium
from bot.families.browser.errors import ReplayDiffers
from bot.families.browser.evidence import render_browser_evidence
from bot.families.browser.model import BrowserRun, Login, PendingRequest
from bot.families.browser.replay import release
from bot.families.browser.tools import RUN_ARTIFACT, BrowserTools, chromium_for, media_type
from bot.families.interface import (
    ApplyContext,
    ApplyRefused,
    Artifact,
    Egress,
    EvidenceContext,
    FamilySession,
    Inverse,
    InverseContext,
    Note,
    NotGranted,
    RunContext,
    Section,
    Staged,
    ToolFamily,
    text_section,
)

HELD_REQUEST = "held_request"
BY = "chromium"
"""How the record marks Chromium's connections: it makes some of its own accord."""


def _credential(plan: Plan, environ: Mapping[str, str], policy: Policy) -> BrowserCredential | None:
    names = plan.granted("credential")
    return browser_credential(names[0], environ, policy) if names else None


class _Granted(FamilySession):
    def __init__(self, ctx: RunContext) -> None:
        credential = _credential(ctx.plan, ctx.environ, ctx.policy)
        self.browser = BrowserTools.from_plan(
            ctx.plan, ctx.job.scope.browser, ctx.job_path, credential
        )

    def tools(self) -> Sequence[ToolSpec]:
        return self.browser.specs()

    def redact(self, text: str) -> str:
        return self.browser.redact(text)

    def finish(self) -> Staged:
        files = self.browser.close()
        # The browser run is stored with only the control plane's secrets redacted: its
        # digests bind what apply replays.
        artifacts = tuple(
            Artifact(a.name, a.data, a.media_type, "known" if a.name == RUN_ARTIFACT else "all")
            for a in files
        )
        egress = tuple(Egress(e, BY) for e in self.browser.egress)
        notes = tuple(_login_note(login) for login in self.browser.run.logins)
        held = self.browser.pending
        if held is None:
            return Staged(artifacts=artifacts, egress=egress, notes=notes)
        part = _held_part(held, "the held browser request above")
        return Staged(artifacts=artifacts, egress=egress, parts=(part,), notes=notes)

    def close(self) -> None:
        self.browser.close()


class BrowserFamily(ToolFamily):
    name = "browser"
    capabilities = ("browser",)
    gate_actions = ("submit", "delete", "purchase")
    implied_actions = gate_actions

    def open(self, ctx: RunContext) -> FamilySession:
        if "browser" not in ctx.plan.granted("tool"):
            return NotGranted()
        return _Granted(ctx)

    def apply(self, part: ProposalPart, ctx: ApplyContext) -> AppliedPart:
        """Replay the browser steps and send the one approved request, or refuse."""
        data = ctx.artifact_named(RUN_ARTIFACT)
        if data is None:
            raise ApplyRefused(f"apply failed: the run's {RUN_ARTIFACT} artifact is missing")
        run = BrowserRun.model_validate_json(data)
        chromium: Chromium | None = None
        try:
            credential = _credential(ctx.plan, ctx.environ, ctx.policy)
            chromium = chromium_for(ctx.plan, run.domains)
            released = release(
                run,
                part.digest,
                credential=credential,
                job_rule=ctx.record.job_path,
                chromium=chromium,
            )
        except ReplayDiffers as exc:
            for name, blob in exc.artifacts.items():
                ctx.keep(_apply_artifact(name, blob))
            raise ApplyRefused(
                "the page differs from what was approved; nothing was sent: "
                + "; ".join(exc.differences)
            ) from None
        finally:
            if chromium is not None:
                for event in chromium.egress:
                    ctx.log_egress(Egress(event, BY))
        for name, blob in released.artifacts.items():
            ctx.keep(_apply_artifact(name, blob))
        request = f"{part.detail.get('method')} {released.url}"
        details = {"request": request, "status": str(released.status)}
        if released.logins:
            details["login"] = "; ".join(login.describe() for login in released.logins)
        return AppliedPart(
            family=self.name,
            summary=f"released {request} (HTTP {released.status})",
            details=details,
        )

    def unsafe_to_repeat(self, part: ProposalPart) -> str | None:
        # At most once: the request may have left before the process died.
        return (
            f"while releasing {part.detail.get('method')} {part.detail.get('url')}; it is "
            "never sent again by itself: check the site"
        )

    def inverse(self, part: ProposalPart, ctx: InverseContext) -> Inverse:
        steps = ctx.job.scope.browser.inverse
        if steps and ctx.plan is not None and ctx.policy is not None:
            return _declared_inverse(steps, ctx, ctx.plan, ctx.policy)
        # A request that reached a site cannot be called back: a rollback says so.
        sent = ctx.applied.summary if ctx.applied else f"{part.detail.get('method')} request"
        return Inverse(
            irreversible=f"browser: {sent} reached {part.detail.get('url')}; a submitted "
            "request cannot be taken back: undo it on the site (a job of its own, gated), "
            "or declare the steps that undo it under scope.browser.inverse"
        )

    def evidence(self, ctx: EvidenceContext) -> list[Section]:
        data = ctx.artifact_named(RUN_ARTIFACT)
        if data is None:
            return []
        run = BrowserRun.model_validate_json(data)
        text = render_browser_evidence(run, ctx.record.run_id, ctx.links)
        return [text_section("Browser", text)]


def _held_part(held: PendingRequest, summary: str) -> ProposalPart:
    """The part a held request becomes: its digest binds what apply may release."""
    return ProposalPart(
        family=BrowserFamily.name,
        kind=HELD_REQUEST,
        digest=held.digest(),
        actions=[held.action],
        summary=summary,
        detail={
            "action": held.action,
            "method": held.method,
            "url": held.url,
            "body_sha256": held.body_sha256,
            "step": held.step,
        },
    )


def _declared_inverse(
    steps: Sequence[BrowserStep], ctx: InverseContext, plan: Plan, policy: Policy
) -> Inverse:
    """The job's inverse steps, taken in Chromium on the domains the rollback's plan
    grants, no model asked; the submit they end on is held, not sent, and becomes the
    rollback's part: the same gate as any submit opens on it, and apply releases it."""
    where = f"{ctx.record.job_path}#scope.browser.inverse"
    credential = _credential(plan, ctx.environ, policy)
    tools = BrowserTools.from_plan(plan, ctx.job.scope.browser, ctx.record.job_path, credential)
    specs = {spec.name: spec for spec in tools.specs()}
    try:
        for n, step in enumerate(steps):
            if tools.pending is not None:
                raise AgentplaneError(
                    f"{where}[{n}]: a step after the submit that undoes the run; that "
                    "submit must be the last step"
                )
            try:
                specs[step.tool].handler(dict(step.arguments))
            except ToolFailure as exc:  # ToolRefused too: a blocked domain, a bad target
                raise AgentplaneError(f"{where}[{n}] ({step.tool}): {exc}") from None
        held = tools.pending
        if held is None:
            raise AgentplaneError(
                f"{where}: the steps submit nothing; they must end on the click that "
                "submits the undoing form"
            )
    finally:
        files = tools.close()
    artifacts = tuple(
        Artifact(a.name, a.data, a.media_type, "known" if a.name == RUN_ARTIFACT else "all")
        for a in files
    )
    part = _held_part(held, f"the held browser request that undoes {ctx.record.run_id}")
    egress = tuple(Egress(e, BY) for e in tools.egress)
    return Inverse(parts=(part,), artifacts=artifacts, egress=egress)


def _login_note(login: Login) -> Note:
    """The broker's login, in the record's tool calls: no model call made it, and its
    request is the one state change that left without approval, by policy's rule."""
    return Note(
        tool="login",
        arguments={"credential": login.credential, "request": f"{login.method} {login.url}"},
        decision="allow",
        rule=login.rule,
        reason=login.describe(),
        ok=True,
    )


def _apply_artifact(name: str, data: bytes) -> Artifact:
    # What apply saw, kept as it is apart from the control plane's own secrets.
    return Artifact(name, data, media_type(name), "known")
