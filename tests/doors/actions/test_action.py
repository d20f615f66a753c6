"""action.yml's steps in a simulated Actions runner, against a real repo and the GitHub double:
no git identity, no TTY, GITHUB_* variables, an event JSON and a step summary file."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pygit2
import pytest
import yaml
from cryptography.hazmat.primitives import serialization

from bot.adapters.audit.signing import Signer
from bot.demo.code import PROJECT as DEMO
from bot.doors.actions.proposal import marked_run, run_marker
from bot.doors.github.flow import PullRequestDoor, enqueue_schedules
from bot.doors.github.sansio import Delivery
from tests.doors.actions.harness import PROJECT, Runner, make_runner, run_steps
from tests.support import openapi
from tests.support.github import GitHubDouble
from tests.support.github.door import JOB, REPO, app_door, repo_files

AUDIT = "refs/heads/agentplane/audit"
SCHEDULE_KEY = "fix-failing-test@schedule.invalid"
NO_IDENTITY = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"}


@pytest.fixture
def github(tmp_path: Path) -> Iterator[GitHubDouble]:
    openapi.load()
    with GitHubDouble(tmp_path) as gh:
        yield gh
        violations = list(gh.violations)
    assert violations == [], "off-spec GitHub traffic:\n" + "\n".join(violations)


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    full = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), **NO_IDENTITY, **(env or {})}
    return subprocess.run(
        ["git", *args], cwd=cwd, env=full, check=True, capture_output=True, text=True
    ).stdout


def origin_with_scheduled_job(github: GitHubDouble, tmp: Path, signer: Signer) -> Path:
    """octo/demo on the double: the demo project, its job on a schedule committed two days
    ago, policy letting that schedule run it and listing the runner's signing key."""
    files = repo_files()
    policy = files["policies/default.yaml"].replace(
        "run_by: [role:developer]\n    tools: [filesystem, shell]",
        f"run_by: [role:developer, {SCHEDULE_KEY}]\n    tools: [filesystem, shell]",
    )
    assert SCHEDULE_KEY in policy
    files["policies/default.yaml"] = (
        policy
        + f"\naudit:\n  signers:\n    - {{name: {json.dumps(signer.name)}, key: {signer.key}}}\n"
    )
    paths = github.create_repo(REPO, files)
    seed = tmp / "seed"
    git(tmp, "clone", "-q", paths.clone_url, str(seed))
    job = yaml.safe_load((DEMO / JOB).read_text())
    (seed / JOB).parent.mkdir(parents=True, exist_ok=True)
    (seed / JOB).write_text(yaml.safe_dump({**job, "schedule": "0 6 * * *"}))
    when = "2025-03-01T00:00:00Z"
    who = {
        "GIT_AUTHOR_NAME": "Maya",
        "GIT_AUTHOR_EMAIL": "maya@example.com",
        "GIT_COMMITTER_NAME": "Maya",
        "GIT_COMMITTER_EMAIL": "maya@example.com",
        "GIT_AUTHOR_DATE": when,
        "GIT_COMMITTER_DATE": when,
    }
    git(seed, "add", "-A", env=who)
    git(seed, "commit", "-qm", "schedule the demo job", env=who)
    git(seed, "push", "-q", "origin", "main")
    return paths.bare


def runner_for(
    github: GitHubDouble, tmp: Path, name: str, bare: Path, signer: Signer, **inputs: str
) -> Runner:
    root = tmp / name
    root.mkdir()
    workspace = root / "work"
    git(root, "clone", "-q", bare.as_uri(), str(workspace))
    event = root / "event.json"
    event.write_text(
        json.dumps({"schedule": "*/15 * * * *", "repository": {"default_branch": "main"}})
    )
    pem = signer.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    token = github.add_personal_token("octo")
    env = {
        **NO_IDENTITY,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_RUN_ID": "777",
        "GITHUB_SERVER_URL": "https://github.example",
        "GITHUB_API_URL": github.api_url,
        "GITHUB_EVENT_NAME": "schedule",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_ACTOR": "maya",
        "GITHUB_TRIGGERING_ACTOR": "maya",
        "GITHUB_WORKSPACE": str(workspace),
    }
    context: dict[str, Any] = {
        "action_path": str(PROJECT),
        "token": token,
        "event": {"repository": {"default_branch": "main"}},
    }
    given = {"job": "scheduled", "signing-key": pem, "signer": signer.name, **inputs}
    return make_runner(root, workspace, env, given, context)


def audit_records(bare: Path) -> list[dict[str, Any]]:
    repo = pygit2.Repository(str(bare))
    ref = repo.references.get(AUDIT)
    assert ref is not None, "no audit branch on origin"
    tree = repo[ref.target].peel(pygit2.Tree)
    docs = []
    for shard in tree["log"].peel(pygit2.Tree):
        for blob in shard.peel(pygit2.Tree):
            docs.append(json.loads(blob.peel(pygit2.Blob).data))
    return sorted(docs, key=lambda d: d["seq"])


def test_the_action_runs_a_scheduled_job_opens_its_pr_and_pushes_the_audit(
    github: GitHubDouble, tmp_path: Path
) -> None:
    signer = Signer.generate("actions:octo/demo")
    bare = origin_with_scheduled_job(github, tmp_path, signer)
    runner = run_steps(runner_for(github, tmp_path, "first", bare, signer))
    failed = [s for s in runner.steps.values() if s.returncode != 0]
    assert not failed, failed[0].stdout + failed[0].stderr
    assert list(runner.steps) == [
        "identity",
        "apt",
        "apparmor",
        "install",
        "policy",
        "sandbox",
        "run",
    ]
    # Installs: apt-get update before install, into its own venv, never the system pip.
    log = runner.stub_log
    assert log.index("apt-get update -qq") < next(
        i for i, line in enumerate(log) if line.startswith("apt-get install")
    )
    assert any(line.startswith("python3 -m venv ") for line in log)
    assert any(line.startswith("venv-pip install") for line in log)
    assert not any("SYSTEM PIP" in line for line in log)
    # Nothing goes through $GITHUB_ENV, which would reach every later step of the caller's job.
    assert Path(runner.env["GITHUB_ENV"]).read_text() == ""
    # The bot identity is set for git; it is not the run's requester.
    assert git(runner.workspace, "config", "user.name").strip() == "github-actions[bot]"
    out = runner.steps["run"].outputs
    run_id, state = out["run-id"], out["state"]
    assert state == "awaiting_approval" and run_id.startswith("fix-failing-test-")
    assert runner.steps["sandbox"].outputs["backend"] == "bwrap"
    # The step summary: the schedule's verdict, the evidence, the PR, the sandbox.
    summary = runner.summary
    assert "### agentplane schedule" in summary and "`fix-failing-test`: due for window" in summary
    assert f"Run `{run_id}`" in summary and "sandbox: bubblewrap" in summary
    assert "```diff" in summary and "return a + b" in summary
    assert (
        "Door `schedule`, workflow run https://github.example/octo/demo/actions/runs/777" in summary
    )
    # The PR: from the job's proposal branch, carrying the proposal and its run id marker.
    (((_, number), pull),) = github.pulls.items()
    assert f"Proposal: pull request #{number}" in summary
    assert pull.head == "agentplane/proposal/fix-failing-test" and pull.base == "main"
    (comment,) = github.comments(REPO, number)
    assert marked_run(comment.body) == run_id and "return a + b" in comment.body
    head = pygit2.Repository(str(bare)).references[f"refs/heads/{pull.head}"].peel(pygit2.Commit)
    assert "return a + b" in head.tree["src/calc.py"].peel(pygit2.Blob).data.decode()
    # The audit commits reached origin, signed by the runner's key, naming the door.
    docs = audit_records(bare)
    assert docs[-1]["record"]["run_id"] == run_id and out["audit-head"]
    assert {d["signer"]["key"] for d in docs} == {signer.key}
    rec = docs[-1]["record"]
    assert rec["door"] == "schedule" and rec["requester"] == SCHEDULE_KEY
    assert rec["door_ref"]["workflow_run_id"] == 777 and rec["door_ref"]["actor"] == "maya"
    assert rec["door_ref"]["branch"] == "agentplane/proposal/fix-failing-test"

    # A second runner (a fresh clone) reads those records back and does not start the job
    # again: the window is served and its run is still waiting for review.
    again = run_steps(runner_for(github, tmp_path, "second", bare, signer))
    assert again.steps["run"].returncode == 0, again.steps["run"].stderr
    assert "no window of '0 6 * * *' (UTC) since its last scheduled run" in again.summary
    assert again.steps["run"].outputs["run-id"] == ""
    assert len(audit_records(bare)) == len(docs)


def test_without_a_signing_key_the_audit_is_not_pushed_unsigned(
    github: GitHubDouble, tmp_path: Path
) -> None:
    signer = Signer.generate("actions:octo/demo")
    bare = origin_with_scheduled_job(github, tmp_path, signer)
    runner = run_steps(runner_for(github, tmp_path, "r", bare, signer, **{"signing-key": ""}))
    step = runner.steps["run"]
    assert step.returncode == 1 and "audit-push needs signing-key" in step.stdout
    assert pygit2.Repository(str(bare)).references.get(AUDIT) is None


def fake(runner: Runner, name: str, script: str) -> None:
    path = runner.root / "stubs" / name
    path.write_text(script)
    path.chmod(0o755)


def test_bubblewrap_failing_falls_back_to_docker_and_says_so(
    github: GitHubDouble, tmp_path: Path
) -> None:
    runner = runner_for(github, tmp_path, "r", github.create_repo(REPO).bare, Signer.generate("x"))
    # As under AppArmor's restriction: bwrap exists, and cannot make a namespace.
    fake(
        runner,
        "bwrap",
        "#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n",
    )
    run_steps(runner, only={"install", "sandbox"})
    step = runner.steps["sandbox"]
    assert step.returncode == 0, step.stderr
    assert step.outputs["backend"] == "docker"
    assert "sandbox: Docker, because bubblewrap does not work here" in step.stdout
    assert "Permission denied" in runner.summary


def test_with_neither_backend_the_step_fails_saying_what_to_do(
    github: GitHubDouble, tmp_path: Path
) -> None:
    runner = runner_for(github, tmp_path, "r", github.create_repo(REPO).bare, Signer.generate("x"))
    fake(runner, "bwrap", "#!/bin/sh\nexit 1\n")
    runner.env["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"
    run_steps(runner, only={"install", "sandbox"})
    step = runner.steps["sandbox"]
    assert step.returncode == 2 and "Traceback" not in step.stderr
    assert "no sandbox backend works on this runner" in step.stderr
    assert "AppArmor profile" in step.stderr


def test_the_action_pins_nothing_unpinned_and_the_workflow_is_least_privilege() -> None:
    workflow = yaml.safe_load((PROJECT / ".github/workflows/agentplane-schedule.yml").read_text())
    assert workflow["permissions"] == {}
    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {"contents": "write", "pull-requests": "write"}
    uses = [s["uses"] for s in job["steps"] if "uses" in s]
    assert uses == ["./"]  # no third-party action at all
    trigger = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on` as True
    assert set(trigger) == {"schedule", "workflow_dispatch"}


def bot_door(github: GitHubDouble, tmp: Path) -> PullRequestDoor:
    """The App, installed on the same octo/demo the runner worked on."""
    return app_door(github, tmp)


def deliver(door: PullRequestDoor, event: str, payload: dict[str, Any], guid: str) -> str:
    return door.handle(Delivery(event, guid, "1", payload))


def test_the_bot_takes_the_actions_pr_as_its_runs_pr_and_a_review_releases_that_run(
    github: GitHubDouble, tmp_path: Path
) -> None:
    signer = Signer.generate("actions:octo/demo")
    bare = origin_with_scheduled_job(github, tmp_path, signer)
    runner = run_steps(runner_for(github, tmp_path, "first", bare, signer))
    run_id = runner.steps["run"].outputs["run-id"]
    ((_, number),) = github.pulls
    head = github.head_sha(REPO, number)
    door = bot_door(github, tmp_path)

    # The PR changes no job file; its marker names the run, which the bot's log adopts from
    # the runner's signed records. Redelivered, nothing happens twice.
    opened = github.payloads.pull_request(REPO, number, "opened")
    assert deliver(door, "pull_request", opened, "g1") == f"carries {run_id}"
    assert deliver(door, "pull_request", opened, "g2") == f"ignored: already carries {run_id}"
    shown = [c for c in github.comments(REPO, number) if f"Run `{run_id}`" in c.body]
    assert len(shown) == 2  # the runner's evidence and the bot's own, once
    approval = [c for c in github.check_runs(REPO) if c["name"] == "agentplane/approval"]
    assert [(c["head_sha"], c["conclusion"]) for c in approval] == [(head, "action_required")]

    # An approver's review of the head releases exactly that run; the PR branch gets a
    # merge of the applied commit (the change is already there), and nothing twice.
    _, review = github.submit_review(REPO, number, "maya", "approved")
    assert deliver(door, "pull_request_review", review, "r1") == "fix-failing-test: applied"
    tip = github.head_sha(REPO, number)
    assert tip != head and git(bare, "rev-parse", f"{tip}^1").strip() == head
    assert "return a + b" in git(bare, "show", f"{tip}:src/calc.py")
    comments = len(github.comments(REPO, number))
    assert deliver(door, "pull_request_review", review, "r2") == "ignored: no run awaiting approval"
    assert github.head_sha(REPO, number) == tip and len(github.comments(REPO, number)) == comments
    # The audit branch on origin is the runner's records plus the bot's, one chain.
    docs = audit_records(bare)
    states = [(d["record"]["run_id"], d["record"]["state"]) for d in docs]
    assert states[-1] == (run_id, "applied") and (run_id, "awaiting_approval") in states
    assert {d["signer"]["key"] for d in docs} >= {signer.key}


def test_a_marker_on_another_branch_or_a_pushed_head_carries_no_run(
    github: GitHubDouble, tmp_path: Path
) -> None:
    signer = Signer.generate("actions:octo/demo")
    bare = origin_with_scheduled_job(github, tmp_path, signer)
    runner = run_steps(runner_for(github, tmp_path, "first", bare, signer))
    run_id = runner.steps["run"].outputs["run-id"]
    (((_, number), pull),) = github.pulls.items()
    door = bot_door(github, tmp_path)
    # Someone opens their own proposal-looking branch and copies the marker.
    github.commit(REPO, "agentplane/proposal/other", {"src/calc.py": "evil\n"}, start="main")
    forged, payload = github.open_pull(REPO, "agentplane/proposal/other", author="dana")
    github.add_comment(
        REPO, forged, "dana", f"<!-- agentplane:actions-run -->\n{run_marker(run_id)}"
    )
    said = deliver(door, "pull_request", payload, "f1")
    assert (
        said.startswith("ignored: not a run's proposal PR") and "not 'agentplane/proposal/o" in said
    )
    # A push onto the real proposal branch: the head is no longer the run's proposal.
    github.commit(REPO, pull.head, {"src/calc.py": "changed after the run\n"})
    said = deliver(
        door, "pull_request", github.payloads.pull_request(REPO, number, "synchronize"), "f2"
    )
    assert "is not one commit on run" in said
    assert door.state.runs(REPO, number) == [] and door.state.runs(REPO, forged) == []


def origin_dispatching_code_jobs(github: GitHubDouble, signer: Signer) -> Path:
    """octo/demo where policy sends code jobs' PR runs to Actions, lists the runner's key,
    and the dispatch workflow is on the default branch."""
    files = repo_files()
    policy = files["policies/default.yaml"]
    code = "  code:\n    run_by: [role:developer]\n"
    assert code in policy
    policy = policy.replace(code, code + "    runs_on: actions\n", 1)
    files["policies/default.yaml"] = (
        policy
        + f"\naudit:\n  signers:\n    - {{name: {json.dumps(signer.name)}, key: {signer.key}}}\n"
    )
    workflow = ".github/workflows/agentplane-dispatch.yml"
    files[workflow] = (PROJECT / workflow).read_text()
    return github.create_repo(REPO, files).bare


def test_a_pr_run_dispatched_to_actions_comes_back_on_the_pr_once_and_is_approved_there(
    github: GitHubDouble, tmp_path: Path
) -> None:
    signer = Signer.generate("actions:octo/demo")
    bare = origin_dispatching_code_jobs(github, signer)
    door = bot_door(github, tmp_path)
    github.commit(REPO, "add-job", {JOB: (DEMO / JOB).read_text()}, start="main")
    number, opened = github.open_pull(REPO, "add-job", author="dana")
    head = github.head_sha(REPO, number)

    # The bot sends the run to Actions instead of running it, once under redelivery.
    assert deliver(door, "pull_request", opened, "p1") == "ran 1 of 1 job(s)"
    assert deliver(door, "pull_request", opened, "p2") == "ran 1 of 1 job(s)"
    ((repo, workflow, ref, inputs),) = github.dispatches
    assert (repo, workflow, ref, inputs["job"]) == (REPO, "agentplane-dispatch.yml", "main", JOB)
    request = json.loads(inputs["request"])
    assert request["commit"] == head and request["number"] == number
    assert door.state.runs(REPO, number) == []  # nothing ran on the bot's host

    # The runner runs it from the request, signs and pushes the records; no PR of its own.
    runner = runner_for(github, tmp_path, "runner", bare, signer, **inputs)
    runner.env["GITHUB_EVENT_NAME"] = "workflow_dispatch"
    run_steps(runner)
    step = runner.steps["run"]
    assert step.returncode == 0, step.stdout + step.stderr
    run_id = step.outputs["run-id"]
    assert step.outputs["state"] == "awaiting_approval"
    assert list(github.pulls) == [(REPO, number)]

    # workflow_run.completed: the bot adopts the records and shows the evidence, once.
    done = github.payloads.workflow_run(REPO, 777)
    assert deliver(door, "workflow_run", done, "w1") == f"dispatched runs back: {run_id}"
    assert deliver(door, "workflow_run", done, "w2") == "ignored: no dispatched run awaited"
    shown = [c.body for c in github.comments(REPO, number) if f"run:{JOB}" in c.body]
    assert len(shown) == 1 and f"Run `{run_id}`" in shown[0] and "+    return a + b" in shown[0]

    # Review approves it there, as if it had run on the bot's host.
    _, review = github.submit_review(REPO, number, "maya", "approved")
    assert deliver(door, "pull_request_review", review, "r1") == "fix-failing-test: applied"
    tip = github.head_sha(REPO, number)
    assert tip != head and "return a + b" in git(bare, "show", f"{tip}:src/calc.py")
    rec = audit_records(bare)[-1]["record"]
    assert rec["run_id"] == run_id and rec["state"] == "applied"
    assert rec["door"] == "pull_request" and rec["door_ref"]["dispatch"] == request["id"]
    assert rec["door_ref"]["workflow_run_id"] == 777


def test_serve_runs_the_same_scheduler_and_its_proposal_pr_is_approved_by_review(
    github: GitHubDouble, tmp_path: Path
) -> None:
    bare = origin_with_scheduled_job(github, tmp_path, Signer.generate("actions:octo/demo"))
    door = bot_door(github, tmp_path)
    door.state.seen_repo(REPO, github.installations["octo"])
    queued: list[Delivery] = []
    assert enqueue_schedules(door, lambda d: queued.append(d) is None) == 1
    assert door.handle(queued[0]) == "fix-failing-test: awaiting_approval"
    (((_, number), pull),) = github.pulls.items()
    assert pull.head == "agentplane/proposal/fix-failing-test"
    ((_, _, run_id),) = door.state.runs(REPO, number)
    # The window is served: the next pass starts nothing.
    again: list[Delivery] = []
    enqueue_schedules(door, lambda d: again.append(d) is None)
    assert door.handle(again[0]) == "schedule: nothing due"
    _, review = github.submit_review(REPO, number, "maya", "approved")
    assert deliver(door, "pull_request_review", review, "r1") == "fix-failing-test: applied"
    rec = audit_records(bare)[-1]["record"]
    assert (rec["run_id"], rec["state"], rec["door"]) == (run_id, "applied", "schedule")
    assert rec["requester"] == SCHEDULE_KEY
