"""The network gate's decisions, as the egress proxy asks them (no browser needed)."""

from __future__ import annotations

import pytest

from bot.adapters.sandbox.spec import HttpRequest
from bot.families.browser.allowlist import normal_url
from bot.families.browser.gate import element_gate, request_gate
from bot.families.browser.model import ElementInfo
from bot.families.browser.netgate import MAX_EVENTS, NetworkGate

SAVE = "http://127.0.0.1:8123/save"


def req(method: str, url: str = SAVE, body: str | None = "a" * 64) -> HttpRequest:
    return HttpRequest(method, url, "127.0.0.1", 8123, body)


def test_reads_pass_and_every_other_method_is_refused_and_recorded() -> None:
    gate = NetworkGate()
    gate.step = 3
    assert gate(req("GET", body=None))[0] and gate(req("HEAD", body=None))[0]
    for method in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT"):
        allowed, reason = gate(req(method))
        assert not allowed and reason
    assert [(e.step, e.method, e.decision) for e in gate.events] == [
        (3, m, "refused") for m in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT")
    ]


def test_the_released_request_leaves_once_and_nothing_after_it() -> None:
    gate = NetworkGate()
    gate.release_once("POST", "HTTP://127.0.0.1:8123/save#frag", "a" * 64)
    assert not gate(req("POST", body="b" * 64))[0]  # another body: not the approved one
    assert not gate(req("POST", url=SAVE + "?x=1"))[0]  # another URL
    assert not gate(req("PUT"))[0]  # another method
    assert not gate.released
    assert gate(req("POST")) == (True, "the approved request, released once")
    assert gate.released
    allowed, reason = gate(req("POST"))  # a double submit, or a 307 re-POST
    assert not allowed and "already left" in reason
    assert not gate(req("POST", url="http://127.0.0.1:8123/moved-1"))[0]
    assert [e.decision for e in gate.events].count("released") == 1
    with pytest.raises(RuntimeError):
        gate.release_once("POST", SAVE, None)


def test_a_flood_of_refusals_is_bounded() -> None:
    gate = NetworkGate()
    for _ in range(MAX_EVENTS + 7):
        gate(req("POST"))
    assert len(gate.events) == MAX_EVENTS and gate.dropped == 7


def test_urls_compare_in_one_spelling() -> None:
    assert normal_url("HTTPS://Admin.Example.com:443/a?b=1#c") == "https://admin.example.com/a?b=1"
    assert normal_url("http://127.0.0.1:80") == "http://127.0.0.1/"
    assert normal_url("http://[::1]:8080/x") == "http://[::1]:8080/x"


def test_a_held_request_is_named_by_its_own_reason() -> None:
    el = ElementInfo(
        role="button",
        name="Save",
        tag="button",
        submits_form=True,
        form_method="POST",
        form_action=SAVE,
    )
    armed = element_gate(el, [])
    assert armed is not None
    assert request_gate("POST", True, armed, SAVE) == armed
    other = request_gate("POST", False, armed, "http://127.0.0.1:8123/other")
    assert other is not None and other.action == "submit"
    assert other.rule == "browser#not-the-form"
    assert other.reason.startswith("POST http://127.0.0.1:8123/other was sent during the click")
    get_form = element_gate(el.model_copy(update={"form_method": "GET"}), [])
    assert request_gate("GET", True, get_form, SAVE + "?q=1") == get_form  # its query
    unarmed = request_gate("DELETE", False, None, SAVE)
    assert unarmed is not None and unarmed.reason == f"DELETE {SAVE} changes state"
