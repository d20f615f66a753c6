"""Artifact contracts as data: resolved by the plan, checked against what a run left."""

from __future__ import annotations

import pytest

from bot.core.contracts import BUILTIN, Clause, ContractItem, UnknownContract, check, resolve
from bot.core.contracts import vocabulary as contracts
from bot.core.errors import ValidationFailed
from bot.core.job import parse_job
from bot.core.policy import merge_policy
from tests.core.test_plan import CODE_JOB, POLICY, POLICY_OBJ, req
from tests.support.planning import plan


def test_each_builtin_is_met_by_what_its_family_leaves_and_unmet_without() -> None:
    left = {
        "diff": ([], ["patch"], None),
        "trace": (["trace.zip"], [], None),
        "screenshots": (["screenshot-1.png"], [], None),
        "query_evidence": (["sql-1.json"], [], None),
        "document": (["documents.json"], [], None),
        "diff_plus_trace": (["trace.zip"], ["held_request"], None),
        "report": ([], [], "Three queries dominate."),
    }
    assert set(left) == set(BUILTIN)
    for name, (artifacts, parts, summary) in left.items():
        clauses = resolve([name], BUILTIN)
        assert all(c.met for c in check(clauses, artifacts, parts, summary)), name
        assert not any(c.met for c in check(clauses, ["transcript.json"], [], "  ")), name


def test_an_unmet_item_says_what_was_missing() -> None:
    (got,) = check(resolve(["query_evidence"], BUILTIN), ["transcript.json"], [], None)
    assert (got.contract, got.item, got.met) == ("query_evidence", "query evidence", False)
    assert got.detail == "no artifact matches sql-*.json"
    checks = check(resolve(["diff_plus_trace"], BUILTIN), ["trace.zip"], [], None)
    assert [(c.item, c.met) for c in checks] == [
        ("a proposed change", False),
        ("a browser trace", True),
    ]


def test_policy_extends_and_may_replace_the_vocabulary() -> None:
    extra = {
        "diff": [ContractItem(name="a patch", part="patch")],
        "deck": [
            ContractItem(name="slides", artifact="*.pptx"),
            ContractItem(name="why", summary=True),
        ],
    }
    known = contracts(extra)
    assert [c.item.name for c in resolve(["deck"], known)] == ["slides", "why"]
    (diff,) = check(resolve(["diff"], known), [], ["held_request"], None)
    assert not diff.met  # policy's stricter diff wants a file patch
    with pytest.raises(UnknownContract, match="'decks' is not defined: known are"):
        resolve(["decks"], known)


def test_an_item_is_exactly_one_check() -> None:
    with pytest.raises(ValueError, match="exactly one of artifact, part, summary"):
        ContractItem(name="two", artifact="*.png", part="patch")
    with pytest.raises(ValueError, match="exactly one"):
        ContractItem(name="none")


def test_a_job_names_one_contract_or_a_list_and_a_bad_name_is_located() -> None:
    assert parse_job("j.yaml", "prompt: p\nartifact_contract: diff\n").artifact_contract == ["diff"]
    job = parse_job("j.yaml", "prompt: p\nartifact_contract: [diff, report]\n")
    assert job.artifact_contract == ["diff", "report"]
    assert parse_job("j.yaml", "prompt: p\n").artifact_contract == []
    with pytest.raises(ValidationFailed, match=r"j.yaml:2:\d+: artifact_contract"):
        parse_job("j.yaml", "prompt: p\nartifact_contract: [Diff Plus]\n")


def test_the_plan_resolves_the_contract_and_denies_an_unknown_one() -> None:
    p = plan(req(CODE_JOB + "artifact_contract: [diff, report]\n"), POLICY_OBJ)
    assert [(c.contract, c.item.name) for c in p.contract] == [
        ("diff", "a proposed change"),
        ("report", "the agent's report"),
    ]
    denied = plan(req(CODE_JOB + "artifact_contract: deck\n"), POLICY_OBJ)
    assert not denied.allowed.granted
    assert denied.allowed.rule.endswith("#artifact_contract")
    assert "'deck' is not defined" in denied.allowed.reason
    with_deck = POLICY + "artifact_contracts:\n  deck: [{name: slides, artifact: '*.pptx'}]\n"
    allowed = plan(
        req(CODE_JOB + "artifact_contract: deck\n"), merge_policy([("p.yaml", with_deck)])
    )
    assert allowed.allowed.granted and allowed.contract == [
        Clause(contract="deck", item=ContractItem(name="slides", artifact="*.pptx"))
    ]
