"""`agentplane demo --all`: one reviewer over three kinds of work, on the terminal.

A code job (fix-failing-test), a browser job (admin-edit, against the local admin
console) and a spreadsheet job (quarterly-report: a CSV plus the replica's query result
into last quarter's workbook) run side by side in one repository. Each run's evidence
has the same layout: plan, tool calls with their rules, the contract, the proposal. One
maintainer approves all three; each approval is bound to its own proposal digest and the
commit the runs were made at, which the end of the demo prints from the records.

The spreadsheet job reads a PostgreSQL hot standby with the demo's shop schema, named by
AGENTPLANE_SQL_REPLICA_DSN (tests/support/postgres.py builds one); the browser job needs
Chromium. Without either, the demo says so and stops before building anything.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bot.adapters.git import GitRepo
from bot.adapters.sandbox.bwrap import BwrapBackend
from bot.demo.browser import JOB as BROWSER_JOB
from bot.demo.browser import POLICY, SCRIPT, point_at_console
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
from bot.demo.report import REPORT, TARGETS, TARGETS_Q3, last_quarter
from bot.families.browser.driver import find_chromium
from bot.families.browser.errors import BrowserUnavailable
from bot.run.engine import Engine

REPLICA_ENV = "AGENTPLANE_SQL_REPLICA_DSN"
CREDENTIAL_ENV = "AGENTPLANE_CREDENTIAL_ADMIN_CONSOLE"
DOC_FILES = (".agentplane/jobs/quarterly-report.yaml", ".agentplane/scripts/quarterly-report.yaml")
JOBS = (
    ("fix-failing-test", "code: the diff of a fix to src/calc.py"),
    ("admin-edit", "browser: the Save held with its exact request"),
    ("quarterly-report", "spreadsheet: a cell-level diff of the workbook"),
)


def missing() -> str | None:
    """Why the demo cannot run here, or None."""
    try:
        find_chromium(os.environ, None)
    except BrowserUnavailable as exc:
        return f"demo --all: {exc}"
    if not os.environ.get(REPLICA_ENV):
        return (
            f"demo --all: set {REPLICA_ENV} to a read-only PostgreSQL standby with the shop "
            "schema (tests/support/postgres.py builds one): the spreadsheet job reads it"
        )
    return None


def build(dest: Path, console_url: str) -> None:
    """The demo repo with the three jobs, the browser one (and policy) aimed at the console,
    last quarter's workbook and this quarter's targets, committed as the developer."""
    build_repo(dest)
    shipped = {rel: (PROJECT / rel).read_text() for rel in (BROWSER_JOB, SCRIPT, POLICY)}
    for rel, text in point_at_console(shipped, console_url).items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_text(text)
    for rel in DOC_FILES:
        shutil.copyfile(PROJECT / rel, dest / rel)
    (dest / REPORT).parent.mkdir(parents=True, exist_ok=True)
    (dest / REPORT).write_bytes(last_quarter())
    (dest / TARGETS).write_text(TARGETS_Q3)
    commit_all(dest, "three jobs: a fix, an admin edit, the quarterly report")


@contextmanager
def console_login(url: str) -> Iterator[None]:
    """The broker's login for the console, for the commands this demo runs (the model and
    the sandbox never see it); gone afterwards, so nothing else inherits it."""
    before = os.environ.get(CREDENTIAL_ENV)
    os.environ[CREDENTIAL_ENV] = f"{USERNAME}:{PASSWORD}@{url}"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(CREDENTIAL_ENV, None)
        else:
            os.environ[CREDENTIAL_ENV] = before


def bindings(dest: Path, runs: dict[str, str]) -> list[str]:
    """One line per run from its record: state, who approved, the commit and the
    proposal digest the approval is bound to."""
    engine = Engine(GitRepo(dest), BwrapBackend())
    lines = []
    for job, run_id in runs.items():
        rec = engine.load(run_id)
        for a in (a for a in rec.approvals if a.counted):
            lines.append(
                f"  {job}: {rec.state}; approved by {a.name or a.approver} on {a.commit[:12]}"
                f" for proposal {a.proposal_digest[:19]}"
            )
    return lines


def main(dest: Path) -> None:
    if (why := missing()) is not None:
        raise SystemExit(why)
    with AdminSite() as console, console_login(console.url):
        print(f"An admin console stand-in is serving on {console.url}.")
        print(
            "Note: the models are the scripted litellm provider replaying the recorded turns\n"
            "in .agentplane/scripts/; policy, sandbox, broker, browser, replica, gate and\n"
            "audit are the real ones."
        )
        build(dest, console.url)
        runs = {}
        for job, what in JOBS:
            runs[job] = run_to_approval(f"Run {job} ({what})", job, dest)
        print(f"\nThe console has received {sum(console.state.writes.values())} writes so far.")
        for job, run_id in runs.items():
            step(f"The maintainer approves {job}", ["approve", run_id], dest, MAINTAINER)
        print("\nOne reviewer, three kinds of work, each approval bound to its own proposal:")
        print("\n".join(bindings(dest, runs)))
        print(f"The console's own count: {dict(console.state.applied)}.")
        step("Prove the audit chain and every artifact", ["audit", "verify"], dest, DEVELOPER)
    print(f"\nDone. Explore {dest}: `agentplane audit log`.")
