"""Pure rendering of what a reviewer reads: the network summary and what apply did."""

from __future__ import annotations

from bot.core.render import render_applied, render_egress


def test_egress_is_summed_by_destination_and_decision() -> None:
    egress = [
        {"host": "pypi.org", "port": 443, "decision": "allow"},
        {"host": "evil.example.net", "port": 443, "decision": "deny"},
        {"host": "pypi.org", "port": 443, "decision": "allow"},
        {"host": "10.0.0.7", "port": 80, "decision": "deny"},
        {"host": "update.googleapis.com", "port": 443, "decision": "deny", "by": "chromium"},
        {"host": "pypi.org", "port": 80, "decision": "unreachable"},
    ]
    assert render_egress(egress) == [
        "Network allowed: pypi.org:443 (2x)",
        "Network unreachable: pypi.org:80",
        "Network denied: 10.0.0.7:80, evil.example.net:443, update.googleapis.com:443 [chromium]",
    ]
    assert render_egress([]) == []


def test_applied_says_what_was_released_and_what_was_committed() -> None:
    both = {"request": "POST http://x/users/2", "status": "303", "branch": "b", "commit": "c" * 40}
    assert render_applied(both) == [
        "released POST http://x/users/2 (HTTP 303)",
        f"committed {'c' * 12} on branch b",
    ]
    assert render_applied({}) == []
