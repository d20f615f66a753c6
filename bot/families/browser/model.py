"""What a browser session records: its steps, blocked requests and the held request.

`BrowserRun` is stored as the `browser-run.json` artifact; apply replays it and
`agentplane browser export` turns it into a test, so it holds everything both
need and nothing secret (credentials stay in the broker and are named only).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from bot.core.canonical import digest_of
from bot.core.job import GatedElement
from bot.core.policy import FormLogin

StepAction = Literal["goto", "click", "fill", "select", "read", "screenshot"]
StepStatus = Literal["ok", "held", "refused", "error"]


class Target(BaseModel):
    """How the model names an element: role (+ name), a label, or a selector."""

    role: str | None = None
    name: str | None = None
    label: str | None = None
    selector: str | None = None

    def describe(self) -> str:
        if self.selector:
            return f"selector {self.selector!r}"
        if self.label:
            return f"field labelled {self.label!r}"
        return f"{self.role or 'element'} {self.name!r}" if self.name else f"{self.role}"


class ElementInfo(BaseModel):
    """What the clicked element is, as Playwright's accessibility tree sees it."""

    role: str
    name: str
    tag: str
    submits_form: bool = False
    form_method: str | None = None
    form_action: str | None = None


class Step(BaseModel):
    n: int
    action: StepAction
    target: Target | None = None
    value: str | None = None
    """The URL for goto, the text for fill, the option for select."""
    url_after: str = ""
    http_status: int | None = None
    """A goto's response status: apply must get the same (a 502 is not the approved page)."""
    status: StepStatus = "ok"
    note: str = ""
    element: ElementInfo | None = None
    read_text: str | None = None
    """The accessible-text snapshot a `read` returned: exported as an assertion."""
    screenshot: str | None = None
    """Artifact name of a screenshot taken at this step."""
    secret: bool = False
    """A fill of a password field: its value is never shown (apply still types it)."""
    before: str | None = None
    """What a filled or selected field held before: data the run changes, which an
    exported test must not assert."""

    def describe(self) -> str:
        if self.action == "goto":
            what = self.value or ""
        elif self.target is not None:
            what = self.target.describe()
            if self.secret:
                what += " = (a password field: masked)"
            elif self.value is not None:
                what += f" = {self.value!r}"
        else:
            what = "the page"
        tail = f" [{self.status}]" if self.status != "ok" else ""
        return f"{self.action} {what}{tail}" + (f": {self.note}" if self.note else "")


class Blocked(BaseModel):
    """A request the allowlist stopped before it left the browser."""

    step: int
    method: str
    url: str
    resource_type: str
    reason: str


class GateEvent(BaseModel):
    """A request the egress proxy judged at the network boundary that routing never held:
    refused (it would have changed state unseen) or the approved one, released."""

    step: int
    method: str
    url: str
    body_sha256: str | None = None
    decision: Literal["refused", "released", "login"]
    reason: str

    def describe(self) -> str:
        return f"step {self.step}: {self.decision} {self.method} {self.url}: {self.reason}"


class Login(BaseModel):
    """A login the broker performed with a credential's form: the one state-changing
    request policy lets leave without approval, because policy declares it as that
    credential's login. What was typed is never recorded, only where it went."""

    credential: str
    rule: str
    """Where policy declares the form: `policies/x.yaml#credentials.<name>.form`."""
    page: str
    method: str
    url: str
    status: int | None = None
    landed_on: str

    def describe(self) -> str:
        status = f"HTTP {self.status}" if self.status is not None else "no response"
        return (
            f"the broker logged in with credential {self.credential!r} ({self.rule}): "
            f"{self.method} {self.url} ({status}), landed on {self.landed_on}"
        )


class PendingRequest(BaseModel):
    """The exact state-changing request held at the gate, as a reviewer approves it."""

    step: int
    action: Literal["submit", "delete", "purchase"]
    rule: str
    reason: str
    method: str
    url: str
    body_sha256: str | None
    body_size: int
    content_type: str | None = None
    form: list[tuple[str, str]] | None = None
    """The body decoded, when it is a urlencoded form: what the reviewer reads, with
    password fields' values masked (the body digest binds them)."""
    secret_fields: list[str] = Field(default_factory=list)
    """The form's password fields (`type=password` on the page): shown masked."""
    volatile_fields: list[str] = Field(default_factory=list)
    """Form fields the server issues per page load (CSRF tokens), as the job names them:
    apply requires them present, in place, with whatever value the page gives now."""
    page_url: str
    element: ElementInfo | None = None
    screenshot: str = "gate.png"

    def digest(self) -> str:
        return digest_of(self.model_dump(mode="json"))

    def describe(self) -> str:
        body = (
            f"body sha256:{self.body_sha256} ({self.body_size} bytes)"
            if self.body_sha256
            else ("no body")
        )
        return f"{self.method} {self.url}  {body}"


class BrowserRun(BaseModel):
    v: int = 1
    domains: list[str]
    gated: list[GatedElement] = Field(default_factory=list)
    volatile_fields: list[str] = Field(default_factory=list)
    credential: str | None = None
    """The name of the broker credential the context logged in with; never its value."""
    credential_form: FormLogin | None = None
    """How that credential logs in, when by a form (policy's, no secret): for the export."""
    logins: list[Login] = Field(default_factory=list)
    """Form logins the broker performed before the model's first step."""
    steps: list[Step] = Field(default_factory=list)
    blocked: list[Blocked] = Field(default_factory=list)
    gate_events: list[GateEvent] = Field(default_factory=list)
    """What the egress proxy refused past routing (beacons, workers, redirects)."""
    pending: PendingRequest | None = None
    sandbox: str = ""
    """Which sandbox backend ran Chromium, and why that one."""
    gated_seen: list[int] | None = None
    """Indices of `gated` rules an element matched on some page the run visited; None
    when the run did not track it (a record from before, or no gated elements)."""
    pages_seen: list[str] = Field(default_factory=list)
    """The pages whose elements were compared with `gated`."""
