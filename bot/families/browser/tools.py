"""Browser tools on the broker: goto, click, fill, select, read, screenshot.

They drive one BrowserSession per run from the broker's process (credentials
stay here; the model names a credential only through the job). Every step is
recorded; requests outside the allowlist are blocked; a state-changing request
is held for approval and ends the browser part of the run. close() hands the
run's artifacts to the caller (trace.zip, HAR, screenshots, browser-run.json).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.adapters.sandbox.spec import EgressEvent
from bot.core.canonical import canonical_json
from bot.core.job import BrowserScope
from bot.core.plan import Plan
from bot.families.base import ToolFailure, ToolOutcome, ToolRefused, ToolSpec, obj, string
from bot.families.browser.driver import BrowserCredential, Chromium
from bot.families.browser.errors import BrowserError
from bot.families.browser.model import BrowserRun, PendingRequest, Target
from bot.families.browser.session import BrowserSession, StepRefused

RUN_ARTIFACT = "browser-run.json"
MEDIA_TYPES = {".zip": "application/zip", ".har": "application/json", ".png": "image/png"}


def media_type(name: str) -> str:
    return MEDIA_TYPES.get(name[name.rfind(".") :], "application/octet-stream")


@dataclass(frozen=True)
class Artifact:
    name: str
    data: bytes
    media_type: str


def _target_schema() -> dict[str, Any]:
    return {
        "role": string("ARIA role, e.g. button, link, textbox, combobox", optional=True),
        "name": string("the accessible name, exactly as `read` shows it", optional=True),
        "label": string("a form field's label", optional=True),
        "selector": string("a CSS selector, when nothing else names it", optional=True),
    }


def _target(args: dict[str, Any]) -> Target:
    fields = {k: args.get(k) for k in ("role", "name", "label", "selector")}
    if not any(isinstance(v, str) and v for v in fields.values()):
        raise ToolFailure("name the element with role (+ name), label or selector")
    return Target(**{k: v for k, v in fields.items() if isinstance(v, str) and v})


def _text(args: dict[str, Any], key: str) -> str:
    value = args.get(key)
    if not isinstance(value, str):
        raise ToolFailure(f"{key} must be a string")
    return value


def chromium_for(plan: Plan, domains: Sequence[str]) -> Chromium:
    """Chromium in the sandbox the job type's policy names, open to its private networks."""
    return Chromium(domains, backend=plan.backend, private_networks=plan.private_networks)


class BrowserTools:
    """The browser family for one run; Chromium starts on the first call, not before."""

    def __init__(self, session: BrowserSession) -> None:
        self.session = session
        self.credential = session.credential
        self._artifacts: list[Artifact] | None = None

    @classmethod
    def from_plan(
        cls,
        plan: Plan,
        scope: BrowserScope,
        job_path: str = "job",
        credential: BrowserCredential | None = None,
    ) -> BrowserTools:
        """Domains are what the plan granted (policy- and config-narrowed), never the job's
        ask; gated elements and volatile fields only add care, so they come from the job."""
        rule = next(
            (d.rule for d in plan.decisions if d.kind == "browser_domain"),
            f"{job_path}#scope.browser.domains",
        )
        domains = plan.granted("browser_domain")
        session = BrowserSession(
            domains,
            scope.gated,
            volatile_fields=scope.volatile_fields,
            domain_rule=rule,
            job_rule=job_path,
            credential=credential,
            chromium=chromium_for(plan, domains),
        )
        return cls(session)

    @property
    def egress(self) -> list[EgressEvent]:
        """Chromium's connections through the egress proxy; complete once closed."""
        return self.session.chromium.egress

    @property
    def run(self) -> BrowserRun:
        return self.session.run

    @property
    def pending(self) -> PendingRequest | None:
        return self.session.run.pending

    def redact(self, text: str) -> str:
        if self.credential and self.credential.password:
            text = text.replace(self.credential.password, "[redacted]")
        for typed in sorted(self.session.typed_secrets, key=len, reverse=True):
            # What went into a password field, out of the tool call's record (its arguments
            # and result) and the model's next read: MIN_SECRET long or more, as the tab.
            if len(typed) >= 4:
                text = text.replace(typed, "[password field: masked]")
        return text

    def _call(self, fn: Any, *args: Any) -> ToolOutcome:
        try:
            output = self.redact(fn(*args))
            held = self.pending
            return ToolOutcome(
                output, mutates=held is not None, held=held.action if held is not None else None
            )
        except StepRefused as exc:
            raise ToolRefused(exc.rule, exc.reason) from None
        except BrowserError as exc:
            raise ToolFailure(self.redact(str(exc))) from None

    def specs(self) -> list[ToolSpec]:
        s = self.session
        target = _target_schema()
        return [
            ToolSpec(
                "goto",
                "browser",
                "Open a URL (only domains the job is granted; others are blocked).",
                obj(url=string("an absolute http(s) URL")),
                lambda a: self._call(s.goto, _text(a, "url")),
            ),
            ToolSpec(
                "click",
                "browser",
                "Click an element. A click that would submit, delete or purchase is held for"
                " human approval and ends the browser session.",
                obj(**_target_schema()),
                lambda a: self._call(s.click, _target(a)),
            ),
            ToolSpec(
                "fill",
                "browser",
                "Type text into a field (replaces its value). Nothing is submitted.",
                obj(**target, text=string("the text to type")),
                lambda a: self._call(s.fill, _target(a), _text(a, "text")),
            ),
            ToolSpec(
                "select",
                "browser",
                "Choose an option of a select box by value or label.",
                obj(**_target_schema(), option=string("the option's value or label")),
                lambda a: self._call(s.select, _target(a), _text(a, "option")),
            ),
            ToolSpec(
                "read",
                "browser",
                "The page's URL, title and accessible-text snapshot (roles and names).",
                obj(),
                lambda a: self._call(s.read),
            ),
            ToolSpec(
                "screenshot",
                "browser",
                "Save a screenshot of the page as a run artifact.",
                obj(),
                lambda a: self._call(s.screenshot),
            ),
        ]

    def close(self) -> list[Artifact]:
        """End the session and return its artifacts; idempotent."""
        if self._artifacts is None:
            files = self.session.close()
            self._artifacts = [
                Artifact(
                    name, data, MEDIA_TYPES.get(name[name.rfind(".") :], "application/octet-stream")
                )
                for name, data in files.items()
            ]
            if self.run.steps:
                data = canonical_json(self.run.model_dump(mode="json"))
                self._artifacts.append(Artifact(RUN_ARTIFACT, data, "application/json"))
        return self._artifacts

    def artifacts(self) -> list[Artifact]:
        return self.close()
