"""The whole pull request story against the GitHub double: real repos, real sandbox, real audit."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import Any

import pygit2
import pytest
import yaml
from click.testing import CliRunner
from fastapi.testclient import TestClient

from bot.adapters.audit.log import AuditLog
from bot.adapters.git import GitRepo
from bot.adapters.sandbox.bwrap import BwrapBackend
from bot.core.errors import AuditError
from bot.demo.browser import JOB as BROWSER_JOB
from bot.demo.browser import POLICY, point_at_console
from bot.demo.browser import SCRIPT as BROWSER_SCRIPT
from bot.demo.code import PROJECT
from bot.demo.console import PASSWORD, USERNAME, AdminSite
from bot.doors.cli.main import cli
from bot.doors.github.flow import PullRequestDoor, reconcile
from bot.doors.github.queue import SqliteQueue
from bot.doors.github.sansio import Delivery
from bot.doors.github.server import Metrics, Worker, create_app
from bot.doors.github.settings import Settings
from bot.doors.github.state import PullState
from bot.run import owner, storage
from bot.run.apply import Applier
from bot.run.engine import Engine
from tests.families.browser.conftest import needs_chromium
from tests.support.github import GitHubDouble
from tests.support.github.door import JOB, REPO, door_for, repo_files


@pytest.fixture
def door(github: GitHubDouble, tmp_path: Path) -> PullRequestDoor:
    return door_for(github, tmp_path)


def deliver(door: PullRequestDoor, event: str, payload: dict[str, Any], guid: str = "") -> str:
    return door.handle(Delivery(event, guid or f"{event}-{id(payload)}", "1", payload))


def add_job_pr(github: GitHubDouble, door: PullRequestDoor) -> tuple[int, str]:
    github.commit(REPO, "add-job", {JOB: (PROJECT / JOB).read_text()}, start="main")
    number, payload = github.open_pull(REPO, "add-job", author="dana")
    assert deliver(door, "pull_request", payload) == "ran 1 of 1 job(s)"
    return number, github.head_sha(REPO, number)


def evidence(github: GitHubDouble, number: int) -> str:
    bodies = [c.body for c in github.comments(REPO, number) if f"run:{JOB}" in c.body]
    assert len(bodies) == 1, "exactly one evidence comment per job"
    return bodies[0]


def check(github: GitHubDouble, name: str, sha: str) -> dict[str, Any]:
    runs = [c for c in github.check_runs(REPO) if c["name"] == name and c["head_sha"] == sha]
    assert len(runs) == 1, runs
    return runs[0]


def bot_log(door: PullRequestDoor) -> Path:
    """The bot's own clone of octo/demo: its audit log (and signing key) live there."""
    return door.settings.data_dir / "repos" / REPO.replace("/", "__")


def list_bot_key(github: GitHubDouble, door: PullRequestDoor) -> None:
    """What an operator does once the bot has a key: `agentplane audit key` in its clone,
    and that line under policy's audit.signers on the default branch."""
    line = CliRunner().invoke(cli, ["audit", "key", "--repo", str(bot_log(door))])
    assert line.exit_code == 0, line.output
    main = github.repo(REPO).git().revparse_single("refs/heads/main").peel(pygit2.Commit)
    policy = main.tree[POLICY].data.decode()
    github.commit(REPO, "main", {POLICY: f"{policy}\naudit:\n  signers:\n  {line.output}"})


def test_the_whole_story(github: GitHubDouble, door: PullRequestDoor, tmp_path: Path) -> None:
    number, head = add_job_pr(github, door)
    list_bot_key(github, door)
    assert check(github, "agentplane/validate", head)["conclusion"] == "success"
    body = evidence(github, number)
    assert "waiting for an approving review" in body and "+    return a + b" in body
    assert "DENIED" not in body and "| `fs_write` | `tests/test_calc.py` | ❌ denied |" in body
    assert check(github, "agentplane/approval", head)["conclusion"] == "action_required"

    # The author's own approval is refused, and so is a non-approver's.
    for who in ("dana", "mallory"):
        _, review = github.submit_review(REPO, number, who, "approved")
        deliver(door, "pull_request_review", review)
    replies = " ".join(c.body for c in github.comments(REPO, number))
    assert "authors cannot approve their own run" in replies
    assert "mallory is not an approver" in replies
    assert check(github, "agentplane/approval", head)["conclusion"] == "action_required"

    # A push makes an approval on the old head stale.
    new_head = github.commit(REPO, "add-job", {"README.md": "more\n"})
    deliver(door, "pull_request", github.payloads.pull_request(REPO, number, "synchronize"))
    _, stale = github.submit_review(REPO, number, "maya", "approved", commit_id=head)
    deliver(door, "pull_request_review", stale)
    assert "stale" in " ".join(c.body for c in github.comments(REPO, number))
    assert github.head_sha(REPO, number) == new_head

    # An allowed approver on the head SHA: applied as a commit on the PR branch.
    _, review = github.submit_review(REPO, number, "maya", "approved", commit_id=new_head)
    assert deliver(door, "pull_request_review", review) == "fix-failing-test: applied"
    tip = github.head_sha(REPO, number)
    assert tip != new_head
    show = subprocess.run(
        ["git", "--git-dir", str(github.repo(REPO).bare), "show", f"{tip}:src/calc.py"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "return a + b" in show.stdout
    assert check(github, "agentplane/approval", new_head)["conclusion"] == "success"

    # The audit branch was pushed and verifies from a fresh clone, against the printed head.
    final = evidence(github, number)
    digest = final.split("Audit head: `")[1].split("`")[0]
    record_link = final.rsplit("Record: ", 1)[1].strip()
    assert record_link.startswith("https://github.com/octo/demo/blob/agentplane/audit/log/")
    clone = tmp_path / "auditor"
    subprocess.run(
        ["git", "clone", "-q", "--no-checkout", github.clone_url(REPO), str(clone)], check=True
    )
    subprocess.run(
        ["git", "-C", str(clone), "fetch", "-q", "origin", "agentplane/audit:agentplane/audit"],
        check=True,
    )
    # As an outside reviewer: the clone trusts the signers its default branch's policy lists.
    verified = CliRunner().invoke(
        cli, ["audit", "verify", "--expect-head", digest, "--repo", str(clone)]
    )
    assert verified.exit_code == 0, verified.output
    reviewer = Engine(GitRepo(clone), BwrapBackend())
    reviewer.policy()  # reads are checked against the same signers
    entries = list(reviewer.audit.entries())
    assert f"ok: {len(entries)} records ({len(entries)} signed" in verified.output
    states = [e.record["state"] for e in entries]
    assert "applied" in states and "cancelled" in states  # the superseded run


def test_replayed_delivery_has_no_second_effect(
    github: GitHubDouble, door: PullRequestDoor, tmp_path: Path
) -> None:
    github.commit(REPO, "add-job", {JOB: (PROJECT / JOB).read_text()}, start="main")
    number, payload = github.open_pull(REPO, "add-job", author="dana")
    queue = SqliteQueue(tmp_path / "q.db")
    client = TestClient(create_app(Settings(webhook_secrets=("s",)), queue))
    for _ in range(2):
        headers, body = github.signed("pull_request", payload, "s", delivery="guid-1")
        assert client.post("/webhook", content=body, headers=headers).status_code == 202
    worker = Worker(queue, door.handle, Metrics())
    assert worker.run_once() and not worker.run_once()
    # Even a second handling (a reconcile pass) posts and runs nothing new.
    before = [(c.id, c.body) for c in github.comments(REPO, number)]
    deliver(door, "pull_request", payload, guid="another")
    assert [(c.id, c.body) for c in github.comments(REPO, number)] == before
    assert len(door.state.runs(REPO, number)) == 1


def test_crash_mid_delivery_is_redone_without_duplicates(
    github: GitHubDouble, door: PullRequestDoor, tmp_path: Path
) -> None:
    github.commit(REPO, "add-job", {JOB: (PROJECT / JOB).read_text()}, start="main")
    number, payload = github.open_pull(REPO, "add-job", author="dana")
    queue = SqliteQueue(tmp_path / "q.db")
    queue.put(Delivery("pull_request", "g", "1", payload))
    leased = queue.lease(seconds=0.0)  # the worker took it, did the work, then died
    assert leased is not None
    door.handle(leased.delivery)
    restarted = Worker(SqliteQueue(tmp_path / "q.db"), door.handle, Metrics())
    assert restarted.run_once()
    assert queue.counts() == {"done": 1}
    evidence(github, number)  # still exactly one evidence comment
    assert len(door.state.runs(REPO, number)) == 1


def test_invalid_job_gets_annotations(github: GitHubDouble, door: PullRequestDoor) -> None:
    github.commit(
        REPO, "bad-job", {".agentplane/jobs/bad.yaml": "prompt: x\ntools: [hammer]\n"}, start="main"
    )
    number, payload = github.open_pull(REPO, "bad-job", author="dana")
    assert deliver(door, "pull_request", payload) == "ran 0 of 1 job(s)"
    run = check(github, "agentplane/validate", github.head_sha(REPO, number))
    assert run["conclusion"] == "failure"
    (note,) = run["output"]["annotations"]
    assert (note["path"], note["start_line"], note["title"]) == (
        ".agentplane/jobs/bad.yaml",
        2,
        "tools[0]",
    )
    assert ".agentplane/jobs/bad.yaml:2:9: tools[0]" in run["output"]["summary"]


def test_policy_change_is_gated_by_owners(github: GitHubDouble, door: PullRequestDoor) -> None:
    github.commit(REPO, "widen", {"policies/extra.yaml": "owners: [dana]\n"}, start="main")
    number, payload = github.open_pull(REPO, "widen", author="dana")
    assert deliver(door, "pull_request", payload) == "gated: policy change"
    head = github.head_sha(REPO, number)
    run = check(github, "agentplane/policy", head)
    assert run["conclusion"] == "action_required" and "role:maintainer" in run["output"]["summary"]
    # The PR's own policy (owners: [dana]) does not count: owners come from the default branch.
    for who, why in (("dana", "authors cannot approve"), ("mallory", "not a policy owner")):
        _, review = github.submit_review(REPO, number, who, "approved")
        assert why in deliver(door, "pull_request_review", review)
    assert check(github, "agentplane/policy", head)["conclusion"] == "action_required"
    _, review = github.submit_review(REPO, number, "maya", "approved")
    assert deliver(door, "pull_request_review", review).startswith("policy: approved")
    assert check(github, "agentplane/policy", head)["conclusion"] == "success"


def test_comment_commands(github: GitHubDouble, door: PullRequestDoor) -> None:
    number, _ = add_job_pr(github, door)
    cid, typo = github.add_comment(REPO, number, "dana", "/agentplane aply")
    assert deliver(door, "issue_comment", typo) == "replied"
    assert any("Did you mean `/agentplane apply`?" in c.body for c in github.comments(REPO, number))
    cid, cancel = github.add_comment(REPO, number, "mallory", "/agentplane cancel")
    assert deliver(door, "issue_comment", cancel).startswith("refused")
    assert github.reactions(REPO, cid) == ["confused"]
    edited = github.edit_comment(cid, "/agentplane cancel", editor="dana")
    assert deliver(door, "issue_comment", edited).startswith("ignored")  # edits never command
    cid, cancel = github.add_comment(REPO, number, "dana", "/agentplane cancel")
    assert "1 run(s)" in deliver(door, "issue_comment", cancel)
    assert github.reactions(REPO, cid) == ["+1"]
    assert "is cancelled" in evidence(github, number)
    assert "cancelled by @dana" in evidence(github, number)


def test_clarification_round_trip_on_a_pull_request(
    github: GitHubDouble, door: PullRequestDoor
) -> None:
    job = (
        "job_type: code\nmodel: asker\ntools: [filesystem]\n"
        "prompt: add a greeting module; done when src/hello.py exists\n"
        "scope: {filesystem: {write: ['src/**']}}\n"
    )
    script = yaml.safe_dump(
        {
            "turns": [
                {"tool_calls": [{"name": "ask", "arguments": {"question": "English or French?"}}]},
                {
                    "tool_calls": [
                        {
                            "name": "fs_write",
                            "arguments": {"path": "src/hello.py", "content": "print('bonjour')\n"},
                        }
                    ]
                },
                {"content": "Added a French greeting."},
            ]
        }
    )
    github.commit(
        REPO,
        "ask",
        {".agentplane/jobs/asker.yaml": job, ".agentplane/scripts/asker.yaml": script},
        start="main",
    )
    number, payload = github.open_pull(REPO, "ask", author="dana")
    deliver(door, "pull_request", payload)
    body = next(c.body for c in github.comments(REPO, number) if "run:" in c.body)
    assert "**The agent asks:** English or French?" in body
    assert "/agentplane answer" in body
    _, answer = github.add_comment(REPO, number, "dana", "/agentplane answer French please")
    assert deliver(door, "issue_comment", answer) == "answered 1 run(s)"
    body = next(c.body for c in github.comments(REPO, number) if "run:" in c.body)
    assert "waiting for an approving review" in body and "bonjour" in body
    assert "Answered by @dana: French please" in body


def test_an_issue_with_a_job_becomes_a_pull_request(
    github: GitHubDouble, door: PullRequestDoor
) -> None:
    job = "prompt: tidy the docs; done when they build\ntools: [filesystem]\n"
    number, payload = github.open_issue(
        REPO, body=f"Please run:\n```yaml\n{job}```\n", labels=("agentplane",)
    )
    result = deliver(door, "issues", payload)
    assert result.startswith("opened PR #")
    pr = int(result.split("#")[1])
    assert github.pulls[(REPO, pr)].head == f"agentplane/issue-{number}"
    reply = github.comments(REPO, number)[0].body
    assert f"Opened #{pr}" in reply
    added = subprocess.run(
        [
            "git",
            "--git-dir",
            str(github.repo(REPO).bare),
            "show",
            f"agentplane/issue-{number}:.agentplane/jobs/issue-{number}.yaml",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert added == job


def test_a_bad_job_in_an_issue_gets_the_errors_quoted(
    github: GitHubDouble, door: PullRequestDoor
) -> None:
    number, payload = github.open_issue(
        REPO, body="```yaml\ntools: [hammer]\n```", labels=("agentplane",)
    )
    assert deliver(door, "issues", payload) == "replied: invalid job"
    reply = github.comments(REPO, number)[0].body
    assert ".agentplane/jobs/issue-1.yaml:1:9: tools[0]" in reply


def test_closing_the_pull_request_cancels_its_runs(
    github: GitHubDouble, door: PullRequestDoor
) -> None:
    number, _ = add_job_pr(github, door)
    assert deliver(door, "pull_request", github.close_pull(REPO, number)) == "cancelled 1 run(s)"
    assert "is cancelled" in evidence(github, number)


def test_reconciler_redelivers_failures_and_catches_up_on_open_prs(
    github: GitHubDouble, door: PullRequestDoor, tmp_path: Path
) -> None:
    github.create_repo("octo/other", repo_files())
    door.state.seen_repo(REPO, github.installations["octo"])
    # The bot was down: the PR opened and its delivery failed; nothing reached us.
    github.commit(REPO, "add-job", {JOB: (PROJECT / JOB).read_text()}, start="main")
    number, payload = github.open_pull(REPO, "add-job", author="dana")
    failed = github.record_delivery("pull_request", payload, status_code=502)
    github.record_delivery("ping", {"zen": "ok"}, status_code=200)
    queue = SqliteQueue(tmp_path / "q.db")
    assert reconcile(door, queue.put) == 2  # one redelivery asked for, one PR re-derived
    assert github.redelivered == [failed.id]
    worker = Worker(queue, door.handle, Metrics())
    while worker.run_once():
        pass
    assert "waiting for an approving review" in evidence(github, number)


def test_api_retries_5xx_and_secondary_rate_limits(
    github: GitHubDouble, door: PullRequestDoor
) -> None:
    github.fail_next("POST", r"/check-runs$", status=502)
    github.fail_next("POST", r"/comments$", status=403, secondary_rate_limit=True, retry_after=1)
    add_job_pr(github, door)
    statuses = [r.status for r in github.calls("POST", r"/comments$")]
    assert statuses[:2] == [403, 201]
    assert [r.status for r in github.calls("POST", r"/check-runs$")][:2] == [502, 201]


def test_deliveries_for_one_installation_share_one_token(
    github: GitHubDouble, door: PullRequestDoor
) -> None:
    number, _ = add_job_pr(github, door)
    for who in ("dana", "mallory"):
        _, review = github.submit_review(REPO, number, who, "approved")
        deliver(door, "pull_request_review", review)
    assert len(github.calls("POST", r"/access_tokens$")) == 1


def test_a_delivery_after_token_expiry_mints_a_fresh_token(
    github: GitHubDouble, door: PullRequestDoor
) -> None:
    number, _ = add_job_pr(github, door)
    minted = len(github.calls("POST", r"/access_tokens$"))
    github.expire_tokens()
    _, review = github.submit_review(REPO, number, "maya", "approved")
    assert deliver(door, "pull_request_review", review) == "fix-failing-test: applied"
    assert len(github.calls("POST", r"/access_tokens$")) > minted


def fork_pr(github: GitHubDouble) -> tuple[str, int, dict[str, Any]]:
    """eve forks octo/demo, adds the job on her branch, and opens a PR from it."""
    fork = github.fork(REPO, "eve")
    github.commit(fork, "add-job", {JOB: (PROJECT / JOB).read_text()}, author="eve")
    number, payload = github.open_pull(REPO, "add-job", author="eve", head_repo=fork)
    return fork, number, payload


def test_fork_prs_are_refused_unless_allowed(github: GitHubDouble, door: PullRequestDoor) -> None:
    _, number, payload = fork_pr(github)
    assert payload["pull_request"]["head"]["repo"]["full_name"] == "eve/demo"
    assert deliver(door, "pull_request", payload) == "refused: fork"
    assert "allow_forks is off" in " ".join(c.body for c in github.comments(REPO, number))


def test_an_allowed_fork_pr_runs_its_head_and_applies_to_a_run_branch(
    github: GitHubDouble, tmp_path: Path
) -> None:
    """A fork's branch is not in origin (refs/pull/N/head is), nor can the App push to it."""
    door = door_for(github, tmp_path, allow_forks=True)
    policy = repo_files()[POLICY].replace("app-team: [dana]", "app-team: [dana, eve]")
    github.commit(REPO, "main", {POLICY: policy})  # eve is a known outside contributor
    fork, number, payload = fork_pr(github)
    head = github.head_sha(REPO, number)
    assert deliver(door, "pull_request", payload) == "ran 1 of 1 job(s)"
    assert "waiting for an approving review" in evidence(github, number)
    _, review = github.submit_review(REPO, number, "maya", "approved", commit_id=head)
    assert deliver(door, "pull_request_review", review) == "fix-failing-test: applied"
    base = github.repo(REPO).git()
    (branch,) = [r for r in base.references if r.startswith("refs/heads/agentplane/run/")]
    applied = base.references[branch].peel(pygit2.Commit)
    assert [str(p) for p in applied.parent_ids] == [head]
    assert b"return a + b" in base[applied.tree["src/calc.py"].id].data
    assert github.repo(fork).tip("add-job") == head  # the fork is untouched
    assert github.repo(REPO).tip("add-job") is None  # no stray branch named like the fork's
    notes = " ".join(c.body for c in github.comments(REPO, number))
    assert f"applied on branch `{branch.removeprefix('refs/heads/')}`" in notes


@needs_chromium
def test_a_browser_job_on_a_pr_releases_the_held_request_on_approval(
    github: GitHubDouble, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Apply of a browser job sends one request and makes no commit: nothing is pushed."""
    with AdminSite() as console:
        door = door_for(github, tmp_path)
        shipped = {rel: (PROJECT / rel).read_text() for rel in (BROWSER_JOB, BROWSER_SCRIPT)}
        pointed = point_at_console({**shipped, POLICY: repo_files()[POLICY]}, console.url)
        github.commit(REPO, "main", {POLICY: pointed.pop(POLICY)})  # policy: default branch
        monkeypatch.setenv(
            "AGENTPLANE_CREDENTIAL_ADMIN_CONSOLE", f"{USERNAME}:{PASSWORD}@{console.url}"
        )
        github.commit(REPO, "admin-edit", pointed, start="main")
        number, payload = github.open_pull(REPO, "admin-edit", author="dana")
        assert deliver(door, "pull_request", payload) == "ran 1 of 1 job(s)"
        head = github.head_sha(REPO, number)
        (body,) = [c.body for c in github.comments(REPO, number) if f"run:{BROWSER_JOB}" in c.body]
        assert "waiting for an approving review" in body, body
        assert "click button 'Save' [held]" in body
        assert not console.state.writes
        _, review = github.submit_review(REPO, number, "maya", "approved", commit_id=head)
        assert deliver(door, "pull_request_review", review) == "admin-edit: applied"
        assert console.state.applied == {"POST /users/2": 1}
        assert github.head_sha(REPO, number) == head  # no commit to push
        (body,) = [c.body for c in github.comments(REPO, number) if f"run:{BROWSER_JOB}" in c.body]
        assert f"Applied: released POST {console.url}/users/2 (HTTP 303)." in body


def audit_check(github: GitHubDouble, sha: str) -> dict[str, Any]:
    return check(github, "agentplane/audit", sha)


def refuse_audit_pushes(github: GitHubDouble, refuse: bool) -> None:
    """The remote declines updates of the audit branch (as a broken branch rule would)."""
    hook = github.repo(REPO).bare / "hooks" / "pre-receive"
    if not refuse:
        hook.unlink(missing_ok=True)
        return
    hook.write_text(
        "#!/bin/sh\nwhile read old new ref; do\n"
        '  [ "$ref" = refs/heads/agentplane/audit ] && echo "declined: $ref" >&2 && exit 1\n'
        "done\nexit 0\n"
    )
    hook.chmod(0o755)


def test_an_unpushed_audit_record_never_wedges_later_deliveries(
    github: GitHubDouble, door: PullRequestDoor
) -> None:
    number, head = add_job_pr(github, door)
    _, stranger = github.add_comment(REPO, number, "mallory", "/agentplane rerun")
    assert "needs a role that may run jobs" in deliver(door, "issue_comment", stranger)
    refuse_audit_pushes(github, True)
    _, rerun = github.add_comment(REPO, number, "dana", "/agentplane rerun")
    assert deliver(door, "issue_comment", rerun) == "ran 1 of 1 job(s)"  # its push failed
    assert audit_check(github, head)["conclusion"] == "failure"
    assert "declined" in audit_check(github, head)["output"]["summary"]
    refuse_audit_pushes(github, False)
    _, review = github.submit_review(REPO, number, "maya", "approved")
    assert deliver(door, "pull_request_review", review) == "fix-failing-test: applied"
    assert audit_check(github, head)["conclusion"] == "success"
    bot_log = door.settings.data_dir / "repos" / REPO.replace("/", "__")
    ours = subprocess.run(
        ["git", "-C", str(bot_log), "rev-parse", "refs/heads/agentplane/audit"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert github.repo(REPO).tip("agentplane/audit") == ours  # every record reached GitHub


def test_a_forged_record_pushed_to_the_audit_branch_is_reported_not_adopted(
    github: GitHubDouble, door: PullRequestDoor
) -> None:
    number, head = add_job_pr(github, door)
    ours = github.repo(REPO).tip("agentplane/audit")
    forged = github.commit(
        REPO, "agentplane/audit", {"log/9999/99999999.json": '{"state": "approved"}'}
    )
    _, review = github.submit_review(REPO, number, "maya", "approved")
    with pytest.raises(AuditError, match="held back"):  # applied only once its record is there
        deliver(door, "pull_request_review", review)
    assert github.head_sha(REPO, number) == head
    run = audit_check(github, head)
    assert run["conclusion"] == "failure" and forged[:12] in run["output"]["summary"]
    assert "moved without agentplane" in run["output"]["summary"]
    bot_log = door.settings.data_dir / "repos" / REPO.replace("/", "__")
    adopted = subprocess.run(
        ["git", "-C", str(bot_log), "merge-base", "--is-ancestor", forged, "agentplane/audit"],
        capture_output=True,
    )
    assert adopted.returncode == 1  # the forged commit is not in the bot's log
    assert github.repo(REPO).tip("agentplane/audit") == forged != ours  # nor overwritten


def evidence_comment(github: GitHubDouble, number: int) -> Any:
    (comment,) = [c for c in github.comments(REPO, number) if f"run:{JOB}" in c.body]
    return comment


def test_an_approval_submitted_before_the_evidence_was_posted_does_not_count(
    github: GitHubDouble, door: PullRequestDoor
) -> None:
    github.commit(REPO, "add-job", {JOB: (PROJECT / JOB).read_text()}, start="main")
    number, opened = github.open_pull(REPO, "add-job", author="dana")
    _, early = github.submit_review(REPO, number, "maya", "approved")  # nothing to see yet
    assert deliver(door, "pull_request", opened) == "ran 1 of 1 job(s)"
    posted = evidence_comment(github, number).updated_at
    _, seen = github.submit_review(REPO, number, "maya", "approved")  # after reading it
    _, own = github.submit_review(REPO, number, "dana", "approved")
    deliver(door, "pull_request_review", own)  # refused: the evidence comment is edited
    assert evidence_comment(github, number).updated_at > posted
    # The early review is delivered late, as a queued, retried or reconciled one is.
    assert "not counted" in deliver(door, "pull_request_review", early)
    replies = " ".join(c.body for c in github.comments(REPO, number))
    assert f"before the evidence for this proposal was posted at {posted}" in replies
    assert "waiting for an approving review" in evidence(github, number)
    # The record says so too: the early approval is kept, not counted, with the reason.
    rec = latest(door, run_id(door, number))
    assert [(a["name"], a["counted"]) for a in rec["approvals"]] == [
        ("dana", False),
        ("maya", False),
    ]
    assert rec["approvals"][-1]["reason"].startswith("the review was submitted at")
    assert "approve by maya not counted: the review was submitted" in evidence(github, number)
    # The one given after the evidence was first shown counts, though the comment changed since.
    assert deliver(door, "pull_request_review", seen) == "fix-failing-test: applied"


def test_an_approval_in_the_same_second_as_the_evidence_fails_closed(
    github: GitHubDouble, door: PullRequestDoor
) -> None:
    number, _ = add_job_pr(github, door)
    posted = evidence_comment(github, number).updated_at
    _, tie = github.submit_review(REPO, number, "maya", "approved", submitted_at=posted)
    assert "not counted" in deliver(door, "pull_request_review", tie)
    assert "the same second" in " ".join(c.body for c in github.comments(REPO, number))
    _, after = github.submit_review(REPO, number, "maya", "approved")
    assert deliver(door, "pull_request_review", after) == "fix-failing-test: applied"


def test_a_command_inside_a_code_block_does_not_run(
    github: GitHubDouble, door: PullRequestDoor
) -> None:
    number, _ = add_job_pr(github, door)
    for body in ("```\n/agentplane cancel\n```", "to cancel, say:\n\n    /agentplane cancel"):
        _, shown = github.add_comment(REPO, number, "dana", body)
        assert deliver(door, "issue_comment", shown) == "ignored: not a command"
    assert "waiting for an approving review" in evidence(github, number)


def set_policy(github: GitHubDouble, edit: Any) -> None:
    """Change the default branch's policy (where policy is read from) with edit(text)."""
    github.commit(REPO, "main", {POLICY: edit(repo_files()[POLICY])})


def restarted(door: PullRequestDoor) -> PullRequestDoor:
    """The same bot after a restart: same data dir and state, a new process's memory."""
    return PullRequestDoor(
        door.settings, BwrapBackend(), PullState(door.settings.data_dir / "state.db")
    )


def latest(door: PullRequestDoor, run_id: str) -> dict[str, Any]:
    entry = AuditLog(bot_log(door)).latest(run_id)
    assert entry is not None
    return entry.record


def run_id(door: PullRequestDoor, number: int) -> str:
    return door.state.runs(REPO, number)[-1][2]


def test_people_are_github_ids_and_the_evidence_shows_logins(
    github: GitHubDouble, door: PullRequestDoor
) -> None:
    number, head = add_job_pr(github, door)
    rec = latest(door, run_id(door, number))
    assert rec["requester"] == f"github:{github.user_id('dana')}"
    _, stranger = github.submit_review(REPO, number, "mallory", "approved")
    deliver(door, "pull_request_review", stranger)
    header = evidence(github, number).split("<details>")[0]
    assert "requested by @dana. approve by mallory not counted: mallory is not an" in header
    assert "github:" not in header, header
    assert "github:" not in check(github, "agentplane/approval", head)["output"]["summary"]
    _, review = github.submit_review(REPO, number, "maya", "approved")
    assert deliver(door, "pull_request_review", review) == "fix-failing-test: applied"
    approval = latest(door, run_id(door, number))["approvals"][-1]
    assert approval["approver"] == f"github:{github.user_id('maya')}"
    assert (approval["name"], approval["door"], approval["counted"]) == (
        "maya",
        "pull_request",
        True,
    )
    assert "resolved maya = github:" in approval["reason"]  # the login policy named


def test_a_renamed_approver_still_counts_and_whoever_takes_the_login_does_not(
    github: GitHubDouble, door: PullRequestDoor
) -> None:
    set_policy(github, lambda p: p.replace("platform: [maya,", "platform: [maya-gh,"))
    maya = github.user_id("maya-gh")
    number, _ = add_job_pr(github, door)
    # Any decision resolves the logins policy names: here a stranger's review.
    _, stranger = github.submit_review(REPO, number, "mallory", "approved")
    assert "not counted" in deliver(door, "pull_request_review", stranger)
    github.rename_user("maya-gh", "maya-new")
    impostor = github.user_id("maya-gh")  # another account registers the freed login
    assert impostor != maya
    door = restarted(door)  # nothing held in memory: the first resolution is kept on disk
    _, taken = github.submit_review(REPO, number, "maya-gh", "approved")
    assert "not counted" in deliver(door, "pull_request_review", taken)
    replies = " ".join(c.body for c in github.comments(REPO, number))
    assert "@maya-gh's review does not count" in replies
    assert "maya-gh is not an approver" in replies
    _, renamed = github.submit_review(REPO, number, "maya-new", "approved")
    assert deliver(door, "pull_request_review", renamed) == "fix-failing-test: applied"
    approvals = latest(door, run_id(door, number))["approvals"]
    assert [(a["name"], a["counted"]) for a in approvals] == [
        ("mallory", False),
        ("maya-gh", False),
        ("maya-new", True),
    ]
    assert approvals[-1]["approver"] == f"github:{maya}"


def test_one_persons_two_accounts_count_once(github: GitHubDouble, door: PullRequestDoor) -> None:
    set_policy(
        github,
        lambda p: (
            p.replace("gates:\n", "people:\n  maya: {github: [maya, maya-alt]}\ngates:\n", 1)
            .replace("platform: [maya,", "platform: [person:maya,")
            .replace(
                "approvers: {any_of: [role:maintainer]}",
                "approvers: {count: 2, of: [role:maintainer]}",
                1,
            )
        ),
    )
    number, _ = add_job_pr(github, door)
    for who in ("maya", "maya-alt"):
        _, review = github.submit_review(REPO, number, who, "approved")
        assert deliver(door, "pull_request_review", review) == "fix-failing-test: awaiting_approval"
    rec = latest(door, run_id(door, number))
    assert "needs 2 approval(s) from role:maintainer; have 1" in rec["transitions"][-1]["reason"]
    _, review = github.submit_review(REPO, number, "omar", "approved")
    assert deliver(door, "pull_request_review", review) == "fix-failing-test: applied"


def test_the_author_cannot_approve_from_a_second_account(
    github: GitHubDouble, door: PullRequestDoor
) -> None:
    set_policy(
        github,
        lambda p: p.replace(
            "gates:\n", "people:\n  dana: {github: [dana, dana-admin]}\ngates:\n", 1
        ).replace("platform: [maya,", "platform: [dana-admin, maya,"),
    )
    number, _ = add_job_pr(github, door)
    _, review = github.submit_review(REPO, number, "dana-admin", "approved")
    assert "not counted" in deliver(door, "pull_request_review", review)
    replies = " ".join(c.body for c in github.comments(REPO, number))
    assert "@dana-admin's review does not count" in replies
    assert "authors cannot approve their own run" in replies
    # Nor may a stranger cancel, while the author's other account may (she is the requester).
    _, cancel = github.add_comment(REPO, number, "dana-admin", "/agentplane cancel")
    assert "1 run(s)" in deliver(door, "issue_comment", cancel)


class Killed(BaseException):
    """The bot is killed (SIGKILL) right after it recorded the approval, before apply."""


def test_a_run_a_killed_bot_left_approved_is_applied_on_the_next_start(
    github: GitHubDouble, door: PullRequestDoor, monkeypatch: pytest.MonkeyPatch
) -> None:
    number, head = add_job_pr(github, door)
    child = subprocess.Popen(["sleep", "60"])
    ticks = owner._start_ticks(child.pid)
    dead = f"{socket.gethostname()}:{child.pid}:{ticks}"
    child.kill()
    child.wait()
    assert owner.is_dead(dead)

    def killed(*_: Any) -> None:
        raise Killed

    with monkeypatch.context() as m:
        m.setattr(storage, "this_process", lambda: dead)  # the records name the dead process
        m.setattr(Applier, "apply", killed)
        _, review = github.submit_review(REPO, number, "maya", "approved")
        with pytest.raises(Killed):
            deliver(door, "pull_request_review", review)
    rid = run_id(door, number)
    assert (latest(door, rid)["state"], latest(door, rid)["owner"]) == ("approved", dead)
    assert github.head_sha(REPO, number) == head

    door = restarted(door)
    inst = github.installations["octo"]
    payload = {"repository": {"full_name": REPO}, "installation": {"id": inst}, "number": number}
    deliver(door, "agentplane.reconcile", payload)  # the first delivery after the start
    rec = latest(door, rid)
    assert rec["state"] == "applied", rec["transitions"][-1]
    assert "died; applying again (deterministic)" in rec["transitions"][-2]["reason"]
    commit = next(a["details"]["commit"] for a in rec["applied"] if "commit" in a["details"])
    assert github.head_sha(REPO, number) == commit  # pushed onto the PR
    assert "is applied" in evidence(github, number)
    # Once per repository per process: later deliveries do not look again.
    calls = len(github.requests)
    with monkeypatch.context() as m:
        m.setattr(Engine, "recover", lambda self: pytest.fail("recovered twice"))
        deliver(door, "agentplane.reconcile", payload)
    assert len(github.requests) > calls


def test_a_dismissed_review_stops_counting(github: GitHubDouble, door: PullRequestDoor) -> None:
    set_policy(
        github,
        lambda p: p.replace(
            "approvers: {any_of: [role:maintainer]}",
            "approvers: {count: 2, of: [role:maintainer]}",
            1,
        ),
    )
    number, _ = add_job_pr(github, door)
    maya, review = github.submit_review(REPO, number, "maya", "approved")
    assert deliver(door, "pull_request_review", review) == "fix-failing-test: awaiting_approval"
    _, dismissed = github.dismiss_review(maya)
    assert deliver(door, "pull_request_review", dismissed) == "withdrew maya's approval"
    _, review = github.submit_review(REPO, number, "omar", "approved")
    assert deliver(door, "pull_request_review", review) == "fix-failing-test: awaiting_approval"
    rec = latest(door, run_id(door, number))
    first = rec["approvals"][0]
    assert (first["name"], first["counted"], first["reason"]) == ("maya", False, "review dismissed")
    assert "have 1" in rec["transitions"][-1]["reason"]
