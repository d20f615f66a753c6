"""`agentplane demo --browser`: the shipped admin-edit job against a local admin console.

The console stand-in listens on 127.0.0.1, so the demo points the shipped job, its
recorded script and the policy's browser job type at it (and lets policy allow
loopback); everything else is as shipped. The Save is held with its exact request
and a screenshot, a maintainer approves, apply replays the steps and sends exactly
that request, and the console's own count shows it landed once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from bot.demo.code import (
    DEVELOPER,
    MAINTAINER,
    PROJECT,
    build_repo,
    commit_all,
    run_to_approval,
    step,
)
from bot.demo.console import PASSWORD, USERNAME, AdminSite
from bot.families.browser.driver import find_chromium
from bot.families.browser.errors import BrowserUnavailable

JOB = ".agentplane/jobs/admin-edit.yaml"
SCRIPT = ".agentplane/scripts/admin-edit.yaml"
POLICY = "policies/default.yaml"
SHIPPED_HOST = "admin.internal.example.com"


def point_at_console(files: Mapping[str, str], console_url: str) -> dict[str, str]:
    """files (any of the shipped job, script and policy, by path), aimed at the console."""
    rewrites = {
        JOB: [(f"domains: [{SHIPPED_HOST}]", "domains: ['127.0.0.1']")],
        SCRIPT: [(f"https://{SHIPPED_HOST}", console_url)],
        POLICY: [
            (f"domains: [{SHIPPED_HOST}]", "domains: ['127.0.0.1']"),
            ("private_networks: []", "private_networks: [127.0.0.0/8]"),
        ],
    }
    out = {}
    for rel, text in files.items():
        for shipped, local in rewrites[rel]:
            if shipped not in text:
                raise SystemExit(f"demo: {rel} no longer has {shipped!r} to point at the console")
            text = text.replace(shipped, local)
        out[rel] = text
    return out


def _commit_pointed(dest: Path, console_url: str) -> None:
    shipped = {rel: (PROJECT / rel).read_text() for rel in (JOB, SCRIPT, POLICY)}
    for rel, text in point_at_console(shipped, console_url).items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_text(text)
    commit_all(dest, "admin-edit, pointed at the local console")


def main(dest: Path) -> None:
    try:
        find_chromium(os.environ, None)
    except BrowserUnavailable as exc:
        raise SystemExit(f"demo --browser: {exc}") from None
    with AdminSite() as console:
        print(f"An admin console stand-in is serving on {console.url} (users alice, bob, carol).")
        print(
            "Note: the model is the scripted litellm provider replaying\n"
            f"{SCRIPT}; policy, sandbox, browser, gate and audit are the real ones."
        )
        build_repo(dest)
        _commit_pointed(dest, console.url)
        # The broker's login for the console; the model and the sandbox never see it.
        os.environ["AGENTPLANE_CREDENTIAL_ADMIN_CONSOLE"] = f"{USERNAME}:{PASSWORD}@{console.url}"
        step("Plan: the browser job against policy", ["plan", "admin-edit"], dest, DEVELOPER)
        run_id = run_to_approval(
            "Run it: Chromium in a sandbox, the Save held for approval", "admin-edit", dest
        )
        writes = sum(console.state.writes.values())
        print(f"\nThe console has received {writes} state-changing requests so far.")
        step(
            "A maintainer approves; apply replays the steps and releases exactly that request",
            ["approve", run_id],
            dest,
            MAINTAINER,
        )
        bob = console.state.users[2]
        print(
            f"\nThe console's own count: {dict(console.state.applied)}; bob's email is {bob.email}."
        )
        step(
            "Turn the run into a regression test",
            ["browser", "export", run_id],
            dest,
            DEVELOPER,
        )
        step("The trace", ["browser", "trace", run_id, "--out", "trace.zip"], dest, DEVELOPER)
        step("Prove the audit chain and every artifact", ["audit", "verify"], dest, DEVELOPER)
    print(f"\nDone. Explore {dest}: `agentplane audit show {run_id}`.")
