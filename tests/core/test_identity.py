"""One identity, compared one way: case-folded emails, GitHub ids, people joined across doors."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.approvers import Requirement
from bot.core.errors import ValidationFailed
from bot.core.identity import Directory, IdentityError, Person, from_email, from_github
from bot.core.policy import merge_policy
from bot.demo.code import DEVELOPER, MAINTAINER
from tests.conftest import git
from tests.run.test_engine import start

POLICY = """
people:
  maya: {github: [maya-gh], emails: [Maya@Example.com]}
groups:
  platform: [person:maya, omar-gh, sam@example.com]
roles:
  maintainer: [group:platform]
job_types: {}
"""

IDS = {"maya-gh": 42, "omar-gh": 7}


def directory() -> tuple[Directory, object]:
    policy = merge_policy([("policies/p.yaml", POLICY)])
    return policy.directory(IDS.get), policy


def test_keys_are_normalised_once() -> None:
    assert from_email("  Maya@Example.COM ") == "maya@example.com"
    assert from_github({"login": "maya-gh", "id": 42}) == "github:42"
    for bad in ({"login": "x"}, {"login": "x", "id": "42"}, {"login": "x", "id": True}):
        with pytest.raises(IdentityError):
            from_github(bad)


def test_policy_logins_are_resolved_to_ids_and_a_renamed_login_stops_matching() -> None:
    d, policy = directory()
    assert policy.matches("role:maintainer", "github:7", d)  # type: ignore[attr-defined]
    assert d.resolved["omar-gh"] == "github:7"
    # Someone else registers the login after a rename: the old id no longer matches it.
    renamed = policy.directory({"omar-gh": 99}.get)  # type: ignore[attr-defined]
    assert not policy.matches("role:maintainer", "github:7", renamed)  # type: ignore[attr-defined]
    # A bare login is never a GitHub identity: only the id is.
    assert not policy.matches("omar-gh", "github:8", d)  # type: ignore[attr-defined]


def test_one_person_counts_once_across_doors_and_cases() -> None:
    d, policy = directory()
    gate = Requirement(count=2, of=["role:maintainer"])

    def matches(p: str, who: str) -> bool:
        return policy.matches(p, who, d)  # type: ignore[attr-defined]

    # Maya on the PR (her GitHub id) and on the terminal (her email, another case).
    twice = ["github:42", "maya@example.com", "MAYA@example.com"]
    assert not gate.evaluate(twice, "dana@example.com", matches, d.person).ok
    assert gate.evaluate([*twice, "github:7"], "dana@example.com", matches, d.person).ok
    # Maya authored the run on GitHub: her terminal approval is still her own.
    assert d.same("github:42", "Maya@Example.com")
    assert not gate.evaluate(["maya@example.com", "github:7"], "github:42", matches, d.person).ok


def test_people_without_a_resolver_match_by_email_and_id_only() -> None:
    d = Directory({"p": Person(github_ids=[5], emails=["P@x.org"])})
    assert d.member("person:p", "github:5") and d.member("person:p", "p@x.org")
    assert not d.member("person:p", "github:6")


def test_author_cannot_approve_by_changing_the_case_of_her_email(demo_repo: Path) -> None:
    upper = DEVELOPER[1].upper()
    e, rec = start(demo_repo, requester=upper)
    assert rec.requester == DEVELOPER[1].casefold()
    outcome = e.decide(rec.run_id, DEVELOPER[1].lower(), "approve")
    assert outcome.kind == "not_counted"
    assert outcome.reason == "authors cannot approve their own run"


def test_policy_can_say_which_doors_approvals_count(demo_repo: Path) -> None:
    with pytest.raises(ValidationFailed, match="unknown door"):
        merge_policy([("policies/p.yaml", POLICY + "approvals: {doors: [fax]}\n")])
    policy = demo_repo / "policies/default.yaml"
    policy.write_text(policy.read_text() + "approvals: {doors: [pull_request]}\n")
    git(demo_repo, "commit", "-qam", "approvals on GitHub only")
    e, rec = start(demo_repo)
    outcome = e.decide(rec.run_id, MAINTAINER[1], "approve")
    assert outcome.kind == "not_counted"
    assert outcome.reason.startswith("approvals from the cli door do not count")
    assert outcome.rule == "policies/default.yaml#approvals.doors"
    assert e.load(rec.run_id).approvals[-1].counted is False


def test_terminal_approvals_can_require_a_key_policy_lists(demo_repo: Path) -> None:
    policy = demo_repo / "policies/default.yaml"
    policy.write_text(policy.read_text() + "approvals: {signed: [cli]}\n")
    git(demo_repo, "commit", "-qam", "terminal approvals must be signed")
    e, rec = start(demo_repo)
    outcome = e.decide(rec.run_id, MAINTAINER[1], "approve")
    assert outcome.kind == "not_counted"
    assert outcome.reason.startswith("cli approvals must be signed by a key policy lists")
    name, key = e.audit.own_key() or ("", "")
    policy.write_text(
        policy.read_text() + f"audit:\n  signers: [{{name: {name!r}, key: {key!r}}}]\n"
    )
    git(demo_repo, "commit", "-qam", "list this terminal's key")
    e, rec = start(demo_repo)
    assert e.decide(rec.run_id, MAINTAINER[1], "approve").kind == "applied"


def test_a_bare_login_is_no_identity() -> None:
    """Every door hands over from_github() or from_email() keys: a bare login that reaches
    the comparison (a door that forgot to normalise) matches nobody, even its own name."""
    d, policy = directory()
    assert not d.member("omar-gh", "omar-gh")
    assert not policy.matches("role:maintainer", "omar-gh", d)  # type: ignore[attr-defined]
    assert policy.matches("role:maintainer", "github:7", d)  # type: ignore[attr-defined]
