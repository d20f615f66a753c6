"""Pure gate decisions: does this click or this request change state?

Gated, whatever the job says: every request that is not GET or HEAD, and every
click that submits a form (even a GET form). The job can only add to that, by
marking elements (`scope.browser.gated`); it can never make a POST free.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from bot.core.job import GatedElement
from bot.families.browser.allowlist import normal_url
from bot.families.browser.model import ElementInfo

SAFE_METHODS = frozenset({"GET", "HEAD"})
GateAction = Literal["submit", "delete", "purchase"]


@dataclass(frozen=True)
class GateHit:
    action: GateAction
    rule: str
    reason: str
    expects: tuple[str, str] | None = None
    """(method, URL) the gated element's form sends, when it has one: the reason names
    that request, so it may only label that request."""


# Typographic quotes a page uses where a job author types ASCII: Django's `Yes, I\u2019m sure`.
_QUOTES = str.maketrans(
    {c: "'" for c in "\u2018\u2019\u201a\u201b\u2032\u02bc\u0060\u00b4"}
    | {c: '"' for c in "\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb"}
)
_INVISIBLE = re.compile("[\u200b-\u200d\u2060\ufeff\u00ad]")


def normal_name(name: str) -> str:
    """An accessible name as gates compare it: NFKC (no-break and other odd spaces become
    spaces), quotes made ASCII, invisible characters dropped, whitespace collapsed,
    case folded. A gate that fails to match fails open (a delete held as a plain
    submit), so spelling differences a reader cannot see must not make it miss."""
    text = unicodedata.normalize("NFKC", name).translate(_QUOTES)
    return " ".join(_INVISIBLE.sub("", text).split()).casefold()


def element_matches(rule: GatedElement, el: ElementInfo) -> bool:
    if rule.role is not None and rule.role.lower() != el.role.lower():
        return False
    return rule.name is None or normal_name(rule.name) in normal_name(el.name)


# One element of Playwright's aria snapshot: `  - button "Delete" [disabled]`.
_SNAPSHOT_ELEMENT = re.compile(r'^\s*- (?P<role>[\w-]+)(?: "(?P<name>(?:[^"\\]|\\.)*)")?')


def gated_seen(gated: Sequence[GatedElement], snapshot: str) -> set[int]:
    """Indices of the gated rules that some element of this aria snapshot matches."""
    seen: set[int] = set()
    for line in snapshot.splitlines():
        m = _SNAPSHOT_ELEMENT.match(line)
        if m is None:
            continue
        el = ElementInfo(role=m["role"], name=(m["name"] or "").replace('\\"', '"'), tag="")
        seen |= {i for i, rule in enumerate(gated) if element_matches(rule, el)}
    return seen


def element_gate(
    el: ElementInfo, gated: Sequence[GatedElement], job_rule: str = "job"
) -> GateHit | None:
    """The gate a click on el passes through, or None when the click is free."""
    for i, rule in enumerate(gated):
        if element_matches(rule, el):
            return GateHit(
                rule.action,
                f"{job_rule}#scope.browser.gated[{i}]",
                f"the job marks {el.role} {el.name!r} as {rule.action}",
            )
    if el.submits_form:
        method = (el.form_method or "get").upper()
        return GateHit(
            "submit",
            "browser#form-submit",
            f"{el.role} {el.name!r} submits a form ({method} {el.form_action or '(this page)'})",
            (method, el.form_action) if el.form_action else None,
        )
    return None


def _is_expected(expects: tuple[str, str], method: str, url: str) -> bool:
    want_method, want_url = expects
    if want_method != method.upper():
        return False
    if method.upper() in SAFE_METHODS:  # a GET form puts its fields in the query
        return normal_url(want_url).split("?")[0] == normal_url(url).split("?")[0]
    return normal_url(want_url) == normal_url(url)


def _named(armed: GateHit, method: str, url: str) -> GateHit:
    """armed, if its reason names this request; else a reason that does. A page's script
    may send its own request during the click: it is held under its own name."""
    if armed.expects is None or not url or _is_expected(armed.expects, method, url):
        return armed
    want_method, want_url = armed.expects
    return GateHit(
        armed.action,
        "browser#not-the-form",
        f"{method.upper()} {url} was sent during the click, by the page's script: it is not "
        f"the request the clicked form sends ({want_method} {want_url})",
    )


def request_gate(
    method: str, is_navigation: bool, armed: GateHit | None, url: str = ""
) -> GateHit | None:
    """Hold this request (to url)? armed is the gate of the click in progress, if gated."""
    if method.upper() not in SAFE_METHODS:
        if armed is not None:
            return _named(armed, method, url)
        what = f"{method.upper()} {url}" if url else f"{method.upper()} requests"
        return GateHit("submit", "browser#method", f"{what} changes state")
    # A gated click that navigates with GET (a delete link, a GET form) is held all the same.
    if armed is not None and is_navigation:
        return _named(armed, method, url)
    return None
