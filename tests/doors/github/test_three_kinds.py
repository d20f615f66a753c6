"""One review over three kinds of work (#16): a pull request carrying a code job, a browser
job and a spreadsheet job, against the GitHub double, the admin console stand-in and the
PostgreSQL replica. Each evidence comment has the same layout; one approving review
releases all three, each bound to its own proposal digest and the reviewed commit; a push
after the review releases none."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pygit2
import pytest

from bot.demo.browser import JOB as BROWSER_JOB
from bot.demo.browser import POLICY, point_at_console
from bot.demo.browser import SCRIPT as BROWSER_SCRIPT
from bot.demo.code import PROJECT
from bot.demo.console import PASSWORD, USERNAME, AdminSite
from bot.doors.github.flow import PullRequestDoor
from bot.doors.github.sansio import Delivery
from tests.families.browser.conftest import needs_chromium
from tests.families.documents.files import TARGETS_Q3, last_quarter
from tests.support.github import GitHubDouble
from tests.support.github.door import JOB, REPO, door_for, repo_files
from tests.support.postgres import Cluster

DOC_JOB = ".agentplane/jobs/quarterly-report.yaml"
DOC_SCRIPT = ".agentplane/scripts/quarterly-report.yaml"
REPORT = "docs/reports/quarterly-summary.xlsx"
JOBS = {JOB: "fix-failing-test", BROWSER_JOB: "admin-edit", DOC_JOB: "quarterly-report"}
# The layout every evidence comment shares, in this order, whatever the family.
LAYOUT = ("Plan (grants, denials, gates, model", "Tool calls (", "Contract", "**Proposal** `")


@dataclass
class Pull:
    github: GitHubDouble
    door: PullRequestDoor
    console: AdminSite
    number: int

    def deliver(self, event: str, payload: dict[str, Any]) -> str:
        return self.door.handle(Delivery(event, f"{event}-{id(payload)}", "1", payload))

    def comment(self, job: str) -> str:
        (body,) = [
            c.body for c in self.github.comments(REPO, self.number) if f"run:{job}" in c.body
        ]
        return body

    def head(self) -> str:
        return self.github.head_sha(REPO, self.number)

    def approve(self, on: str) -> str:
        _, review = self.github.submit_review(REPO, self.number, "maya", "approved", commit_id=on)
        return self.deliver("pull_request_review", review)

    def push(self) -> str:
        sha = self.github.commit(REPO, "three-kinds", {"README.md": "one more line\n"})
        return sha

    def synchronize(self) -> str:
        payload = self.github.payloads.pull_request(REPO, self.number, "synchronize")
        return self.deliver("pull_request", payload)


@pytest.fixture
def pull(
    github: GitHubDouble, tmp_path: Path, pg_cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Pull]:
    """dana's pull request adding the three shipped jobs (the browser one pointed at the
    console), last quarter's workbook and this quarter's targets; policy on main."""
    with AdminSite() as console:
        door = door_for(github, tmp_path)
        shipped = {rel: (PROJECT / rel).read_text() for rel in (BROWSER_JOB, BROWSER_SCRIPT)}
        pointed = point_at_console({**shipped, POLICY: repo_files()[POLICY]}, console.url)
        github.commit(REPO, "main", {POLICY: pointed.pop(POLICY)})
        monkeypatch.setenv(
            "AGENTPLANE_CREDENTIAL_ADMIN_CONSOLE", f"{USERNAME}:{PASSWORD}@{console.url}"
        )
        monkeypatch.setenv("AGENTPLANE_SQL_REPLICA_DSN", pg_cluster.standby_dsn)
        # Pictures are the documents tests' business; here they would only cost time.
        monkeypatch.setenv("AGENTPLANE_SOFFICE", "/nonexistent/soffice")
        files: dict[str, str | bytes | None] = {
            **pointed,
            **{rel: (PROJECT / rel).read_text() for rel in (JOB, DOC_JOB, DOC_SCRIPT)},
            REPORT: last_quarter(),
            "docs/reports/targets-2025-q3.csv": TARGETS_Q3,
        }
        github.commit(REPO, "three-kinds", files, start="main")
        number, payload = github.open_pull(REPO, "three-kinds", author="dana")
        p = Pull(github, door, console, number)
        assert p.deliver("pull_request", payload) == "ran 3 of 3 job(s)"
        yield p


def outcomes(result: str) -> dict[str, str]:
    """The door's "job: state; job: state" result, by job name (runs go in file order)."""
    return dict(part.split(": ", 1) for part in result.split("; "))


def layout_of(body: str) -> list[int]:
    return [body.index(marker) for marker in LAYOUT]


def records(door: PullRequestDoor, number: int, head: str) -> dict[str, dict[str, Any]]:
    """Each job's newest record for the runs at head, by job path."""
    from bot.adapters.audit.log import AuditLog

    log = AuditLog(door.settings.data_dir / "repos" / REPO.replace("/", "__"))
    out = {}
    for job, run_head, run_id in door.state.runs(REPO, number):
        entry = log.latest(run_id)
        if run_head == head and entry is not None:
            out[job] = entry.record
    return out


def show(github: GitHubDouble, rev: str) -> bytes:
    return subprocess.run(
        ["git", "--git-dir", str(github.repo(REPO).bare), "show", rev],
        capture_output=True,
        check=True,
    ).stdout


@needs_chromium
def test_one_review_releases_three_kinds_of_work_and_a_later_push_releases_none(
    pull: Pull,
) -> None:
    first = pull.head()
    for job in JOBS:
        body = pull.comment(job)
        assert "waiting for an approving review" in body, body
        where = layout_of(body)
        assert where == sorted(where), f"{job}: sections out of order"
    # Each family's own evidence, in its place in the layout.
    assert "+    return a + b" in pull.comment(JOB)
    assert "click button 'Save' [held]" in pull.comment(BROWSER_JOB)
    assert "B4: 23810 -> 25005" in pull.comment(DOC_JOB)
    for job in JOBS:  # every tool call in the table names the rule that decided it
        calls = re.findall(r"^\| \d+ \| .*\|$", pull.comment(job), re.MULTILINE)
        assert calls and all(re.search(r"\| `[^`]+#[^`]+` \|$", row) for row in calls), calls

    # maya approves the head she read; dana pushes before the review is handled.
    _, review = pull.github.submit_review(REPO, pull.number, "maya", "approved", commit_id=first)
    second = pull.push()
    outcome = pull.deliver("pull_request_review", review)
    assert outcomes(outcome) == dict.fromkeys(JOBS.values(), "cancelled"), outcome
    assert not pull.console.state.writes and pull.head() == second
    for job in JOBS:
        assert f"stale: the head moved to {second[:12]} after approval" in pull.comment(job)

    # The push runs all three again; one review of the new head releases all three.
    assert pull.synchronize() == "ran 3 of 3 job(s)"
    released = pull.approve(second)
    assert outcomes(released) == dict.fromkeys(JOBS.values(), "applied"), released
    assert pull.console.state.applied == {"POST /users/2": 1}
    tip = pull.head()
    assert b"return a + b" in show(pull.github, f"{tip}:src/calc.py")
    assert show(pull.github, f"{tip}:{REPORT}") != last_quarter()

    # Each run bound to its own proposal digest and to the reviewed commit, and each
    # applied commit named by its record is on the PR branch, as recorded.
    recs = records(pull.door, pull.number, second)
    assert set(recs) == set(JOBS)
    digests = set()
    base = pull.github.repo(REPO).git()
    for job, rec in recs.items():
        assert rec["state"] == "applied", (job, rec["transitions"][-1])
        (approval,) = [a for a in rec["approvals"] if a["counted"]]
        assert approval["commit"] == second and approval["name"] == "maya"
        assert approval["proposal_digest"] == rec["proposal"]["digest"]
        digests.add(approval["proposal_digest"])
        for applied in rec["applied"]:
            if commit := applied["details"].get("commit"):
                parents = [str(p) for p in base[commit].peel(pygit2.Commit).parent_ids]
                assert parents == [second]
                assert base.descendant_of(tip, commit) or tip == commit
        assert "is applied" in pull.comment(job)
    assert len(digests) == 3
    # The merge the bot made is its own commit: the next synchronize runs nothing.
    assert pull.synchronize() == "ignored: the head is agentplane's own applied commit"
