"""One identity, compared one way.

Every door turns whoever acted into one key before anything compares it:

- GitHub: `github:<numeric user id>`. A login can be renamed and then registered by someone
  else; the id cannot. Doors build it with `from_github(user)` from the webhook's or the
  API's `user` object.
- The terminal (and any door that knows only an email): the email, case-folded, with
  `from_email`. What that proves is only what `git config user.email` says (see README).

Policy names people by GitHub login (resolved to the id through the door's resolver, and
the resolution is recorded), by email, or as `person:<name>` from its `people` map, which
joins one person's logins, ids and emails so that one person counts once across doors.
Nothing compares raw strings: requester, approvers, owners and commenters all go through
`Directory.same` / `Directory.member`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import Field

from bot.core.errors import AgentplaneError
from bot.core.job import Strict

GITHUB = "github:"

Resolver = Callable[[str], int | None]
"""A GitHub login -> its numeric user id (None: no such user)."""


class IdentityError(AgentplaneError):
    pass


class Person(Strict):
    """One person's accounts: any of them stands for the person, who counts once."""

    github: list[str] = Field(default_factory=list, description="GitHub logins")
    github_ids: list[int] = Field(default_factory=list, description="GitHub numeric user ids")
    emails: list[str] = Field(default_factory=list, description="Emails (compared case-folded)")


def from_email(raw: str) -> str:
    key = raw.strip().casefold()
    if not key or any(c.isspace() for c in key):
        raise IdentityError(f"{raw!r} is not an identity: set git's user.email")
    return key


def from_github(user: Mapping[str, Any]) -> str:
    """The key of a GitHub `user` object; fails closed without a numeric id."""
    uid = user.get("id")
    if type(uid) is not int or uid <= 0:
        raise IdentityError(f"GitHub user {user.get('login')!r} has no numeric id")
    return f"{GITHUB}{uid}"


def normalise(raw: str) -> str:
    """A key as a door hands it over: GitHub keys stay, emails are case-folded."""
    return raw if raw.startswith(GITHUB) else from_email(raw)


def _key(raw: str) -> str:
    # Comparison never raises: an unusable identity simply matches nobody.
    return raw if raw.startswith(GITHUB) else raw.strip().casefold()


class Directory:
    """Which keys a policy member stands for, and whose a key is.

    Login resolution goes through the door's resolver once per login; `resolved` keeps what
    was resolved, so the record can say which login an id came from.
    """

    def __init__(self, people: Mapping[str, Person], resolve_login: Resolver | None = None):
        self._people = dict(people)
        self._resolve = resolve_login
        self.resolved: dict[str, str] = {}
        """login (case-folded) -> key, for every login resolved so far."""
        self._misses: set[str] = set()

    def login(self, login: str) -> str | None:
        name = login.casefold()
        if name in self.resolved:
            return self.resolved[name]
        if self._resolve is None or name in self._misses:
            return None
        uid = self._resolve(login)
        if uid is None:
            self._misses.add(name)
            return None
        self.resolved[name] = f"{GITHUB}{uid}"
        return self.resolved[name]

    def _person_keys(self, person: Person) -> set[str]:
        keys = {f"{GITHUB}{i}" for i in person.github_ids} | {from_email(e) for e in person.emails}
        keys |= {k for k in map(self.login, person.github) if k is not None}
        return keys

    def keys(self, member: str) -> frozenset[str]:
        """The keys one policy member (not a group or role) stands for."""
        if member.startswith("person:"):
            person = self._people.get(member.removeprefix("person:"))
            return frozenset(self._person_keys(person)) if person else frozenset()
        if member.startswith(GITHUB):
            return frozenset({member})
        if "@" in member:
            return frozenset({from_email(member)})
        key = self.login(member)
        return frozenset({key}) if key else frozenset()

    def equivalents(self, key: str) -> frozenset[str]:
        """Every key of the person this key belongs to (just itself when in no person)."""
        key = _key(key)
        for person in self._people.values():
            keys = self._person_keys(person)
            if key in keys:
                return frozenset(keys)
        return frozenset({key})

    def person(self, key: str) -> str:
        """One name per person: `person:<name>` for people in policy, else the key."""
        key = _key(key)
        for name, person in self._people.items():
            if key in self._person_keys(person):
                return f"person:{name}"
        return key

    def member(self, member: str, key: str) -> bool:
        """Does key (from_github / from_email) stand for this policy member? A bare login
        is no key: it matches nobody, so a door that forgets to normalise fails closed."""
        return bool(self.keys(member) & self.equivalents(key))

    def same(self, a: str, b: str) -> bool:
        return self.person(a) == self.person(b)

    def distinct(self, keys: Iterable[str]) -> list[str]:
        """One key per person, in first-seen order."""
        seen: dict[str, str] = {}
        for key in keys:
            seen.setdefault(self.person(key), key)
        return list(seen.values())
