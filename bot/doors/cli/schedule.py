"""`agentplane schedule due|run` (the one scheduler) and `agentplane actions run|sandbox`
(the GitHub Actions door, as action.yml calls it). Thin: parse, call, print."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from bot.core.render import render_summary

repo_option = click.option(
    "--repo", default=".", show_default=True, help="The git repository to work in."
)
at_option = click.option(
    "--at", "at_text", help="Evaluate at this time (ISO 8601 with a zone) instead of now."
)


def _engine(repo: str, backend: str = "bwrap", recover: bool = False):  # type: ignore[no-untyped-def]
    from bot.adapters.git import GitRepo
    from bot.adapters.sandbox.backends import Lazy
    from bot.run.engine import Engine

    engine = Engine(GitRepo(Path(repo)), Lazy(backend))
    if recover:
        for rec in engine.recover():
            click.echo(
                f"recovered {rec.run_id}: {rec.state}: {rec.transitions[-1].reason}", err=True
            )
    return engine


def register(cli: click.Group) -> None:
    cli.add_command(schedule)
    cli.add_command(actions)


@click.group()
def schedule() -> None:
    """Jobs whose `schedule` is due: list them, or start them."""


@schedule.command("due")
@at_option
@repo_option
def schedule_due(at_text: str | None, repo: str) -> None:
    """List scheduled jobs: due, blocked by an unfinished run, or not due (and why)."""
    from bot.doors.schedule.due import parse_time
    from bot.doors.schedule.runner import Scheduler

    listing = Scheduler(_engine(repo)).due(parse_time(at_text) if at_text else None)
    for p in listing.problems:
        click.echo(f"problem: {p}", err=True)
    for v in listing.verdicts:
        mark = "due" if v.due else ("blocked" if v.blocked_by else "-")
        click.echo(f"{mark:8} {v.job.name:24} {v.job.cron} ({v.job.zone}): {v.reason}")


@schedule.command("run")
@at_option
@click.option("--job", "only", help="Only this job (its name or path), if it is due.")
@click.option("--backend", default="bwrap", show_default=True, help="Sandbox backend.")
@repo_option
def schedule_run(at_text: str | None, only: str | None, backend: str, repo: str) -> None:
    """Start every due job once, through the same engine path as `agentplane run`."""
    from bot.doors.schedule.due import parse_time
    from bot.doors.schedule.runner import Scheduler

    engine = _engine(repo, backend, recover=True)
    started, listing = Scheduler(engine).run(parse_time(at_text) if at_text else None, only=only)
    for p in listing.problems:
        click.echo(f"problem: {p}", err=True)
    for v in listing.verdicts:
        if not v.due:
            click.echo(f"skipped {v.job.name}: {v.reason}")
    failed = False
    for s in started:
        click.echo(f"started {s.record.run_id} ({s.verdict.reason})")
        if s.drift is not None:
            click.echo(f"  drift: {s.drift or 'none'}")
        click.echo(render_summary(s.record, engine.redactor))
        failed |= s.drift is None and s.record.state not in (
            "awaiting_approval",
            "completed",
            "needs_clarification",
        )
    if failed:
        raise SystemExit(1)


@click.group()
def actions() -> None:
    """The GitHub Actions door (what action.yml runs on a runner)."""


@actions.command("sandbox")
@click.option("--backend", default="auto", show_default=True, help="auto, bwrap or docker.")
def actions_sandbox(backend: str) -> None:
    """Pick the sandbox backend that works here; writes `backend` to $GITHUB_OUTPUT."""
    from bot.doors.actions.files import append_summary, set_outputs
    from bot.doors.actions.sandbox import choose

    choice = choose(backend)
    click.echo(choice.note)
    append_summary(os.environ.get("GITHUB_STEP_SUMMARY") or None, f"{choice.note}\n")
    set_outputs(
        os.environ.get("GITHUB_OUTPUT") or None,
        {"backend": choice.backend, "sandbox-note": choice.note},
    )


@actions.command("run")
@click.argument("job")
@click.option("--backend", default="bwrap", show_default=True, help="Sandbox backend.")
@click.option("--audit-push/--no-audit-push", default=True, show_default=True)
@click.option("--sandbox-note", default="", help="What the sandbox step said.")
@click.option(
    "--request",
    "request_text",
    default="",
    help="The bot's dispatch request (JSON): run JOB as that pull request's run.",
)
@repo_option
def actions_run(
    job: str, backend: str, audit_push: bool, sandbox_note: str, request_text: str, repo: str
) -> None:
    """Run JOB (a name, a path, or `scheduled`) as a workflow step: the evidence goes to
    $GITHUB_STEP_SUMMARY, a proposal to a pull request, the records to origin."""
    from bot.doors.actions.context import ActionsContext
    from bot.doors.actions.door import ActionsDoor

    env = os.environ
    event_path = env.get("GITHUB_EVENT_PATH")
    event = Path(event_path).read_text() if event_path and Path(event_path).is_file() else None
    ctx = ActionsContext.from_env(env, event)
    token = env.get("GITHUB_TOKEN") or None

    def client():  # type: ignore[no-untyped-def]
        from bot.doors.github.client import GitHubClient
        from bot.doors.github.settings import Settings

        settings = Settings.model_validate({"github_token": token, "api_url": ctx.api_url})
        return GitHubClient(settings)

    engine = _engine(repo, backend, recover=True)
    if token:
        # Policy names people by GitHub login; a PR's author or a dispatcher is an id.
        engine.resolve_login = client().user_id  # type: ignore[no-untyped-call]
    door = ActionsDoor(engine, ctx, client if token else None, audit_push, sandbox_note)
    from bot.doors.actions.dispatched import parse_request

    request = parse_request(request_text) if request_text else None
    result = door.run(job, request)
    for out in result.records:
        click.echo(render_summary(out.record, engine.redactor))
        if out.pull is not None:
            click.echo(f"  proposal: pull request #{out.pull}")
    click.echo(f"audit head {result.audit_head}")
    if not token:
        click.echo("note: no GITHUB_TOKEN: no pull request was opened", err=True)
    sys.stdout.flush()
    if not result.ok:
        raise SystemExit(1)
