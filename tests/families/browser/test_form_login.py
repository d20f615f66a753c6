"""A browser job on Django's stock admin: the broker logs in with the credential's form.

A real console (tests/families/browser/django_site.py): `manage.py runserver`, HTTP/1.1
keep-alive, session cookies and a CSRF token per form. Policy declares the admin
credential's login form; the broker fills it in and its POST is released at the network
gate as that credential's login, recorded as such. The model edits bob's email; the Save
is held, approved, and lands exactly once as the server counts it. The password, and
the session the login opened, appear nowhere on the audit branch (every blob, every
member of every zip), nor in the evidence or the PR comment.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from PIL import Image

from bot.adapters.git import GitRepo
from bot.adapters.sandbox.bwrap import BwrapBackend
from bot.core.policy import CredentialPolicy
from bot.core.record import RunRecord
from bot.core.render import render_evidence, render_pr_comment
from bot.demo.browser import POLICY, point_at_console
from bot.demo.code import MAINTAINER
from bot.demo.console import AdminSite
from bot.families.browser.driver import BrowserCredential
from bot.families.browser.evidence import render_browser_evidence
from bot.run.engine import Engine
from tests.conftest import Scripted
from tests.families.browser.conftest import Driven, make_driven, needs_chromium
from tests.families.browser.django_site import LOGIN_FORM, DjangoSite
from tests.families.browser.scan import audit_blobs, leaks

pytestmark = [needs_chromium]

CANARY = "dj-canary-pw~!&7 x"
"""Spaces, `~`, `!` and `&`: each encoded its own way in a form body, a URL and HTML."""
CREDENTIAL = "AGENTPLANE_CREDENTIAL_DJANGO_ADMIN"
NEW_EMAIL = "bob@new.example.com"


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DjangoSite]:
    site = DjangoSite(tmp_path_factory.mktemp("console"), CANARY).build().start()
    try:
        yield site
    finally:
        site.stop()


@pytest.fixture
def django_site(console: DjangoSite) -> DjangoSite:
    """The module's console, its witness log emptied and bob as he was."""
    console.reset()
    return console


def policy_with_form_login(text: str, url: str, form: str = LOGIN_FORM) -> str:
    """The shipped policy, aimed at the console, with the django-admin credential."""
    text = point_at_console({POLICY: text}, url)[POLICY]
    text = text.replace(
        "credentials: [admin-console]", "credentials: [admin-console, django-admin]"
    )
    entry = "\n".join("    " + line for line in form.strip().splitlines())
    return text + f"\ncredentials:\n  django-admin:\n{entry}\n"


def start(
    demo_repo: Path,
    scripted_job: Scripted,
    site: DjangoSite,
    monkeypatch: pytest.MonkeyPatch,
    form: str = LOGIN_FORM,
    turns: list[dict[str, Any]] | None = None,
) -> tuple[Engine, RunRecord]:
    policy = demo_repo / POLICY
    policy.write_text(policy_with_form_login(policy.read_text(), site.url, form))
    monkeypatch.setenv(CREDENTIAL, f"admin:{CANARY}@{site.url}")
    change = f"{site.url}/admin/auth/user/{site.user_id('bob')}/change/"
    turns = turns or [
        {"tool_calls": [{"name": "goto", "arguments": {"url": change}}]},
        {"tool_calls": [{"name": "read", "arguments": {}}]},
        {"tool_calls": [{"name": "fill", "arguments": {"label": "Email address:",
                                                        "text": NEW_EMAIL}}]},
        {"tool_calls": [{"name": "click", "arguments": {"role": "button", "name": "Save"}}]},
        {"content": "held"},
    ]  # fmt: skip
    job = scripted_job(
        "django-edit",
        turns,
        job_type="browser",
        tools=["browser"],
        prompt=f"Change bob's email to {NEW_EMAIL}; done when the user list shows it",
        scope={"browser": {"domains": ["127.0.0.1"], "volatile_fields": ["csrfmiddlewaretoken"]}},
        credentials=["django-admin"],
        approval_required_for=["submit"],
    )
    e = Engine(GitRepo(demo_repo), BwrapBackend())
    return e, e.start(e.request(job))


def test_the_broker_logs_in_by_form_and_the_edit_lands_once_with_no_secret_kept(
    demo_repo: Path,
    scripted_job: Scripted,
    django_site: DjangoSite,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    e, rec = start(demo_repo, scripted_job, django_site, monkeypatch)
    assert rec.state == "awaiting_approval", rec.transitions[-1].reason
    change = f"/admin/auth/user/{django_site.user_id('bob')}/change/"
    # The server saw the broker's login, then the model's reads; the Save was held.
    assert "POST /admin/login/ 302" in django_site.log()
    assert not [line for line in django_site.log() if line.startswith(f"POST {change}")]
    # The model was logged in: it read bob's change form, not the login page.
    read = next(c for c in rec.tool_calls if c.tool == "read")
    assert "bob@example.com" in read.result and "Log in" not in read.result
    # The login is in the record: the one state change that left unapproved, and why.
    (login,) = [c for c in rec.tool_calls if c.tool == "login"]
    assert login.decision == "allow" and login.ok
    assert login.rule == "policies/default.yaml#credentials.django-admin.form"
    assert login.arguments == {
        "credential": "django-admin",
        "request": f"POST {django_site.url}/admin/login/",
    }
    assert "landed on" in login.reason and CANARY not in login.reason
    (section,) = e.evidence_sections(rec)
    assert "the broker logged in with credential 'django-admin'" in section
    # The gate screenshot: the whole change form (taller than the window), Save outlined.
    shot = Image.open(io.BytesIO(e.audit.artifact(artifact(rec, "gate.png")))).convert("RGB")
    assert shot.height > 900, shot.size
    marked = sum(1 for px in shot.getdata() if px == (255, 0, 255))
    assert marked > 100, marked
    assert f"POST {django_site.url}{change}" in section

    done = e.decide(rec.run_id, MAINTAINER[1], "approve").record
    assert done.state == "applied", done.transitions[-1].reason
    posts = [line for line in django_site.log() if line.startswith("POST ")]
    assert posts == ["POST /admin/login/ 302", "POST /admin/login/ 302", f"POST {change} 302"]
    assert django_site.email_of("bob") == NEW_EMAIL
    (applied,) = done.applied or []
    assert "credential 'django-admin'" in applied.details["login"]
    # The network gate released each login as the login, and nothing else unapproved.
    for phase in ("propose", "apply"):
        logins = [x for x in done.egress if x.phase == phase and x.port == django_site.port]
        assert logins, phase

    sessions = django_site.session_keys()
    assert sessions  # the logins opened sessions: their keys open the console too
    secrets = (CANARY, *sessions)
    evidence = render_evidence(done, e.patch(done), e.evidence_sections(done), e.redactor)
    comment = e.redactor(render_pr_comment(done, "plan", e.patch(done), None))
    assert leaks(evidence, secrets) == [] and leaks(comment, secrets) == []
    stored = {a.name: e.audit.artifact(a.sha256) for a in done.artifacts}
    assert {"trace.zip", "browser.har", "apply-trace.zip", "apply-browser.har"} <= set(stored)
    found = {
        name: hits
        for name, data in {**audit_blobs(demo_repo), **stored}.items()
        if (hits := leaks(data, secrets))
    }
    assert found == {}
    # The HAR saw the logged-in session (its cookie), masked where it was.
    assert b"sessionid=[REDACTED]" in stored["browser.har"]


def artifact(rec: RunRecord, name: str) -> str:
    return next(a.sha256 for a in rec.artifacts if a.name == name)


def driven_with(site: DjangoSite, form: str) -> Driven:
    """BrowserTools behind the broker, holding the admin's credential with this form."""
    entry = CredentialPolicy.model_validate(yaml.safe_load(form))
    rule = "policies/default.yaml#credentials.django-admin.form"
    return make_driven(
        BrowserCredential("django-admin", "admin", CANARY, site.url, entry.form, rule)
    )


def test_a_login_that_does_not_succeed_stops_the_browser_and_says_why(
    django_site: DjangoSite,
) -> None:
    d = driven_with(django_site, LOGIN_FORM.replace("text: Site administration", "text: Goodbye"))
    try:
        first = d.call("goto", url=f"{django_site.url}/admin/")
        assert first.startswith("ERROR: credential 'django-admin'")
        assert "the login did not succeed as policy says it shows" in first
        assert "the page does not show 'Goodbye'" in first and CANARY not in first
        # Tried once: a later step says why, and never types the password again.
        assert "login did not succeed" in d.call("read")
    finally:
        d.tools.close()
    assert [x for x in django_site.log() if x.startswith("POST")] == ["POST /admin/login/ 302"]
    assert all(CANARY not in c.model_dump_json() for c in d.calls)


def test_a_password_field_that_is_not_a_password_input_is_never_typed(
    django_site: DjangoSite,
) -> None:
    d = driven_with(
        django_site,
        LOGIN_FORM.replace('password: {label: "Password:"}', 'password: {label: "Username:"}'),
    )
    try:
        out = d.call("goto", url=f"{django_site.url}/admin/")
    finally:
        d.tools.close()
    assert "is <input type=text>, not <input type=password>" in out
    assert not [x for x in django_site.log() if x.startswith("POST")]


TYPED = "typed-pw~& 42"
"""What a model types into a password field itself (it never knows a credential's)."""


def test_what_a_password_field_holds_is_masked_in_reads_records_evidence_trace_and_har(
    driven: Driven, site: AdminSite
) -> None:
    driven.call("goto", url=f"{site.url}/login")
    driven.call("fill", label="Username", text="someone")
    driven.call("fill", label="Password", text=TYPED)
    read = driven.call("read")
    assert 'textbox "Username": someone' in read
    assert 'textbox "Password": [password field: masked]' in read and TYPED not in read
    assert "HELD for approval" in driven.call("click", role="button", name="Sign in")
    files = driven.tools.close()
    held = driven.tools.pending
    assert held is not None and held.secret_fields == ["password"]
    assert ("password", "[password field: masked]") in (held.form or [])
    shown = render_browser_evidence(driven.tools.run, "r-1")
    assert "field     password = (a password field: masked" in shown
    assert "fill field labelled 'Password' = (a password field: masked)" in shown
    assert "field     username = 'someone'" in shown
    recorded = [c.model_dump_json() for c in driven.calls]
    assert all(TYPED not in c for c in recorded)
    for name in ("trace.zip", "browser.har"):
        data = next(a.data for a in files if a.name == name)
        assert leaks(data, [TYPED, "typed-pw%7E%26+42"]) == [], name
    assert not site.state.writes
