"""Rolling back a browser submit with the inverse step its job declares: the rollback
takes those steps in Chromium against the real (local) site, holds their submit at the
same gate as any, and sends it only once an approver approves; the site's received
requests say what reached it when."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.core.errors import ValidationFailed
from bot.core.job import parse_job
from bot.demo.code import DEVELOPER, MAINTAINER
from bot.demo.console import AdminSite
from bot.run.engine import Engine
from tests.conftest import PROJECT, Scripted, git
from tests.families.browser.conftest import hold_edit, needs_chromium

SAVE = "POST /users/2"


def applied_edit(
    demo_repo: Path,
    scripted_job: Scripted,
    site: AdminSite,
    monkeypatch: pytest.MonkeyPatch,
    inverse: list[dict[str, Any]],
) -> tuple[Engine, str]:
    """bob's email changed on the site by an approved browser run."""
    e, rec = hold_edit(demo_repo, scripted_job, site, monkeypatch, inverse)
    rec = e.decide(rec.run_id, MAINTAINER[1], "approve").record
    assert rec.state == "applied", rec.transitions
    assert site.state.users[2].email == "b@x.io" and site.state.applied[SAVE] == 1
    return e, rec.run_id


@needs_chromium
def test_the_declared_inverse_is_held_at_the_gate_and_sent_once_approved(
    demo_repo: Path, scripted_job: Scripted, site: AdminSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    # First declared wrong: steps that load the form but never submit it.
    wrong = [{"tool": "goto", "arguments": {"url": f"{site.url}/users/2/edit"}}]
    e, run_id = applied_edit(demo_repo, scripted_job, site, monkeypatch, wrong)
    rb = e.rollback(run_id, requester=DEVELOPER[1])
    assert rb.state == "failed"
    assert "scope.browser.inverse: the steps submit nothing" in rb.transitions[-1].reason
    assert site.state.writes[SAVE] == 1

    # The rollback reads the job as it stands now: declare the submit that undoes it.
    path = demo_repo / ".agentplane/jobs/admin-edit.yaml"
    job = yaml.safe_load(path.read_text())
    job["scope"]["browser"]["inverse"] = [
        *wrong,
        {"tool": "fill", "arguments": {"label": "Email", "text": "bob@example.com"}},
        {"tool": "click", "arguments": {"role": "button", "name": "Save"}},
    ]
    path.write_text(yaml.safe_dump(job))
    git(demo_repo, "commit", "-qam", "admin-edit: how to undo it")
    rb = e.rollback(run_id, requester=DEVELOPER[1])
    assert rb.state == "awaiting_approval", rb.transitions
    assert rb.irreversible == [] and rb.model is None  # computed from the job, no model
    assert rb.proposal is not None and (part := rb.proposal.part("browser")) is not None
    assert (part.detail["action"], part.detail["method"]) == ("submit", "POST")
    assert part.detail["url"] == f"{site.url}/users/2"
    assert "browser-run.json" in {a.name for a in rb.artifacts}
    # Its page loads are in its record, by Chromium, under the rollback plan's domain rule.
    # (Chromium's own calls home are there too, denied.)
    by_chromium = [x for x in rb.egress if x.by == "chromium" and x.phase == "propose"]
    loads = [x for x in by_chromium if x.decision == "allow"]
    assert loads and {x.host for x in loads} == {"127.0.0.1"}
    assert all(x.rule.startswith("policies/") for x in loads), [x.rule for x in loads]
    assert all(x.host == "127.0.0.1" for x in by_chromium if x.decision != "deny")
    # Held: the rollback's steps loaded the form, and no second save reached the site.
    assert site.state.writes[SAVE] == 1 and site.state.users[2].email == "b@x.io"

    # The requester cannot approve it; an approver's decision releases it, once.
    refused = e.decide(rb.run_id, DEVELOPER[1], "approve")
    assert refused.record.state == "awaiting_approval"
    assert site.state.writes[SAVE] == 1
    done = e.decide(rb.run_id, MAINTAINER[1], "approve").record
    assert done.state == "applied", done.transitions
    assert site.state.writes[SAVE] == 2 and site.state.applied[SAVE] == 2
    assert site.state.users[2].email == "bob@example.com"
    (where, body) = site.state.bodies[-1]
    assert where == "/users/2" and "email=bob%40example.com" in body


def test_the_readme_inverse_is_a_valid_job_and_a_bad_step_is_located() -> None:
    readme = (PROJECT / "README.md").read_text()
    block = readme.split("  ```yaml\n  scope:\n", 1)[1].split("  ```", 1)[0]
    head = "job_type: browser\nprompt: fix bob's email; done when it shows\ntools: [browser]\n"
    job = parse_job("j.yaml", head + textwrap.dedent("  scope:\n" + block))
    steps = job.scope.browser.inverse
    assert [s.tool for s in steps] == ["goto", "fill", "click"]
    assert steps[2].arguments == {"role": "button", "name": "Save"}
    bad = head + "scope: {browser: {inverse: [{tool: delete, arguments: {}}]}}\n"
    with pytest.raises(ValidationFailed) as caught:
        parse_job("j.yaml", bad)
    (err,) = caught.value.errors
    assert err.render().startswith("j.yaml:4:")
    assert err.field == "scope.browser.inverse[0].tool"
