from bot.core.approvers import Requirement, never_met


def members(principal: str, who: str) -> bool:
    table = {"role:maint": {"maya", "omar", "dana"}, "role:sec": {"sam"}}
    return who in table.get(principal, {principal})


def test_any_of() -> None:
    r = Requirement(any_of=["role:maint"])
    assert r.evaluate(["maya"], "dana", members).ok
    assert not r.evaluate(["zed"], "dana", members).ok


def test_author_never_counts_even_if_a_maintainer() -> None:
    v = Requirement(any_of=["role:maint"]).evaluate(["dana"], "dana", members)
    assert not v.ok and "have 0" in v.reason


def test_all_of_needs_each_principal() -> None:
    r = Requirement(all_of=["role:maint", "role:sec"])
    assert not r.evaluate(["maya"], "dana", members).ok
    assert r.evaluate(["maya", "sam"], "dana", members).ok


def test_count_needs_distinct_people() -> None:
    r = Requirement(count=2, of=["role:maint"])
    assert not r.evaluate(["maya", "maya"], "dana", members).ok
    assert r.evaluate(["maya", "omar"], "dana", members).ok
    assert not r.evaluate(["maya", "dana"], "dana", members).ok


def test_empty_lists_fail_closed() -> None:
    assert not Requirement(any_of=[]).evaluate(["maya"], "x", members).ok
    assert not Requirement(all_of=[]).evaluate(["maya"], "x", members).ok
    assert not Requirement(count=1, of=[]).evaluate(["maya"], "x", members).ok


def test_a_requirement_too_few_people_can_meet_is_named_and_one_that_can_is_not() -> None:
    roles = {"role:maintainer": {"maya"}, "role:dba": set(), "group:platform": {"maya", "omar"}}

    def people(p: str) -> set[str] | None:
        return None if p == "*" else roles.get(p, {p})

    two = Requirement(count=2, of=["role:maintainer"])
    assert never_met(two, people) == "needs 2 of role:maintainer, which has 1 person"
    assert never_met(Requirement(count=2, of=["group:platform"]), people) is None
    # The requester never counts: two people, one of them the author, is one too few.
    assert never_met(Requirement(count=2, of=["group:platform"]), people, "omar") == (
        "needs 2 of group:platform, which has 1 person other than the requester"
    )
    assert never_met(Requirement(any_of=["role:dba"]), people) == "nobody is in role:dba"
    assert never_met(Requirement(all_of=["maya", "role:dba"]), people) == "nobody is in role:dba"
    assert never_met(Requirement(count=5, of=["*"]), people) is None  # no bound: could be met
