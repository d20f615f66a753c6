"""The terminal front door: `agentplane ...`. Thin: parse, call the engine, render."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from bot.core.errors import AgentplaneError, ValidationFailed
from bot.core.job import job_schema
from bot.core.render import (
    render_applied,
    render_evidence,
    render_plan,
    render_summary,
    render_tool_calls,
)
from bot.doors.cli.artifact import register as register_artifact
from bot.doors.cli.browser import register as register_browser
from bot.doors.cli.cancel import register as register_cancel
from bot.doors.cli.eval import register as register_eval
from bot.doors.cli.init import register as register_init
from bot.doors.cli.mcp import register as register_mcp
from bot.doors.cli.rollback import register as register_rollback
from bot.doors.cli.sandbox import register as register_sandbox
from bot.doors.cli.schedule import register as register_schedule
from bot.doors.cli.ui import register as register_ui
from bot.doors.cli.validate import policy_in_use, validate_paths
from bot.run.redact import Redactor, redact_logs

F = TypeVar("F", bound=Callable[..., Any])


def _engine(repo: str, backend: str = "bwrap") -> Any:
    # Imported here so `schema` and `validate` stay fast and need no git or sandbox.
    from bot.adapters.git import GitRepo
    from bot.adapters.sandbox.backends import Lazy
    from bot.run.engine import Engine

    return Engine(GitRepo(Path(repo)), Lazy(backend))


def _live_engine(repo: str, backend: str = "bwrap") -> Any:
    """An engine for commands that move runs forward: first it resolves the runs a killed
    process left in flight, so none stays `running` for good."""
    engine = _engine(repo, backend)
    for rec in engine.recover():
        click.echo(f"recovered {rec.run_id}: {rec.state}: {rec.transitions[-1].reason}", err=True)
    return engine


repo_option = click.option(
    "--repo", default=".", show_default=True, help="The git repository to work in."
)


CLARIFY_EXIT = 3
"""`plan`'s exit status when the plan says `! clarify`: the run would stop before it starts."""


@click.group()
@click.version_option(package_name="agentplane", message="agentplane %(version)s")
def cli() -> None:
    """agentplane: governed agent jobs, planned against policy, sandboxed, approved, audited."""


@cli.command()
@click.option(
    "--record",
    is_flag=True,
    help="The run record's schema instead: what each audit-branch entry's `record` holds.",
)
def schema(record: bool) -> None:
    """Print the JSON Schema of job files (for editor autocompletion), or of run records."""
    if record:
        from bot.core.record import RunRecord

        click.echo(json.dumps(RunRecord.model_json_schema(), indent=2))
        return
    click.echo(json.dumps(job_schema(), indent=2))


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path())
@repo_option
def validate(paths: tuple[str, ...], repo: str) -> None:
    """Check job, policy and config files; every error with file:line:col: field."""
    checked, errors, warnings = validate_paths(Path(repo), [Path(p) for p in paths])
    for err in errors:
        click.echo(err.render(), err=True)
    for warning in warnings:
        click.echo(f"warning: {warning.render()}", err=True)
    source = policy_in_use(Path(repo))
    if source is not None:
        for line in source.errors:
            click.echo(line, err=True)
        for note in source.notes:
            click.echo(f"note: {note}", err=True)
        for path in source.differs:
            click.echo(f"warning: {source.differs_warning(path)}", err=True)
    if errors or (source is not None and source.errors):
        raise SystemExit(1)
    click.echo(f"ok: {checked} file(s) valid")
    if source is not None and source.branch:
        click.echo(f"policy: runs read policies/ from {source.ref}, not the working tree")


@cli.command("plan")
@click.argument("job")
@click.option("--prompt", help="A prompt for this run (wins over the job's own).")
@repo_option
def plan_cmd(job: str, prompt: str | None, repo: str) -> None:
    """Show what policy grants, denies and gates for JOB, with the rule behind each.

    Exits 3 when the plan says `! clarify` (the run would stop and ask before it starts)."""
    engine = _engine(repo)
    p = engine.plan(engine.request(job, prompt=prompt))
    click.echo(render_plan(p, engine.redactor))
    if p.clarification is not None:
        raise SystemExit(CLARIFY_EXIT)


@cli.command()
@click.argument("job")
@click.option("--prompt", help="A prompt for this run (wins over the job's own).")
@click.option("--approve", "verdict", flag_value="approve", help="Approve without asking.")
@click.option("--deny", "verdict", flag_value="deny", help="Deny without asking.")
@click.option("--backend", default="bwrap", show_default=True, help="Sandbox backend.")
@repo_option
def run(job: str, prompt: str | None, verdict: str | None, backend: str, repo: str) -> None:
    """Run JOB: plan, propose in the sandbox, show the evidence, ask for approval, apply."""
    engine = _live_engine(repo, backend)
    req = engine.request(job, prompt=prompt)
    if not (prompt or req.job.prompt) and sys.stdin.isatty():
        asked = click.prompt(
            "The job has no prompt. What should the agent do?", default="", show_default=False
        )
        req = engine.request(job, prompt=asked or None)
    click.echo(render_plan(engine.plan(req), engine.redactor))
    rec = engine.start(req)
    click.echo("")
    _after_propose(engine, rec, verdict)


def _after_propose(engine: Any, rec: Any, verdict: str | None) -> None:
    while rec.state == "needs_clarification" and rec.question and sys.stdin.isatty():
        click.echo(render_tool_calls(rec, engine.redactor))
        text = click.prompt(f"The agent asks: {rec.question.text}\nYour answer")
        rec = engine.answer(rec.run_id, engine.repo.identity(), text)
    if rec.state == "needs_clarification" and rec.question:
        click.echo(render_tool_calls(rec, engine.redactor))
        click.echo(
            f"The agent asks: {rec.question.text}\n"
            f'  answer with `agentplane answer {rec.run_id} "..."`'
        )
        return
    if rec.tool_calls or rec.model_calls:
        sections = engine.evidence_sections(rec)
        click.echo(render_evidence(rec, engine.patch(rec), sections, engine.redactor))
        click.echo("")
    if rec.state != "awaiting_approval":
        click.echo(render_summary(rec, engine.redactor))
        raise SystemExit(0 if rec.state in ("completed", "applied") else 1)
    if verdict is None and sys.stdin.isatty():
        verdict = (
            "approve"
            if click.confirm(
                f"Approve run {rec.run_id} as {engine.repo.identity()}?", default=False
            )
            else "deny"
        )
    if verdict is None:
        click.echo(
            f"Waiting for approval: {rec.run_id}\n"
            f"  an approver runs `agentplane approve {rec.run_id}` "
            f"(or `agentplane deny {rec.run_id}`)"
        )
        return
    _decide(engine, rec.run_id, verdict)


def _decide(engine: Any, run_id: str, verdict: str) -> None:
    who = engine.repo.identity()
    if verdict == "deny" and engine.is_requester(run_id, who):
        # The author cannot approve, but may always take their own run back.
        rec = engine.cancel_by(run_id, who, "denied by its requester")
        click.echo(render_summary(rec, engine.redactor))
        return
    outcome = engine.decide(run_id, who, verdict)
    # On a terminal the person deciding is the one who must act on a decision that does not
    # count: it ends the command as an error (exit 2) with the reason.
    error = outcome.not_counted_error()
    if error is not None:
        raise error
    rec = outcome.record
    click.echo(render_summary(rec, engine.redactor))
    for line in render_applied(rec.applied or []):
        click.echo(f"Applied: {line}")


@cli.command()
@click.argument("run_id")
@repo_option
def approve(run_id: str, repo: str) -> None:
    """Approve a run waiting for approval (as your git identity), and apply it."""
    _decide(_live_engine(repo), run_id, "approve")


@cli.command()
@click.argument("run_id")
@click.argument("text")
@click.option("--approve", "verdict", flag_value="approve", help="Approve without asking.")
@click.option("--deny", "verdict", flag_value="deny", help="Deny without asking.")
@repo_option
def answer(run_id: str, text: str, verdict: str | None, repo: str) -> None:
    """Answer a run's question (needs_clarification) and resume it."""
    engine = _live_engine(repo)
    rec = engine.answer(run_id, engine.repo.identity(), text)
    _after_propose(engine, rec, verdict)


@cli.command()
@click.argument("run_id")
@repo_option
def deny(run_id: str, repo: str) -> None:
    """Deny a run waiting for approval; its own requester's deny withdraws it."""
    _decide(_live_engine(repo), run_id, "deny")


@cli.command()
@click.argument("run_id")
@click.option(
    "--script-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Keep the recorded turns here as a model script (default: a temporary directory).",
)
@repo_option
def replay(run_id: str, script_dir: Path | None, repo: str) -> None:
    """Re-run RUN against its recorded model turns; prints both proposal digests.

    The replay is plan-only: it ends `completed` and never waits for approval."""
    engine = _engine(repo)
    if script_dir is not None:
        script_dir.mkdir(parents=True, exist_ok=True)
    old = engine.load(run_id)
    new = engine.replay(run_id, script_dir)
    before = old.proposal.digest if old.proposal else "(no proposal)"
    after = new.proposal.digest if new.proposal else "(no proposal)"
    same = "same" if before == after else "DIFFERENT"
    click.echo(
        f"replayed {run_id} as {new.run_id}: {new.state}\n  proposal {before}\n"
        f"  replay   {after}\n  {same}"
    )
    if before != after:
        raise SystemExit(1)


@cli.group()
def audit() -> None:
    """The audit branch: log, show, verify, key, artifact."""


@audit.command("log")
@repo_option
def audit_log(repo: str) -> None:
    """One line per run: its latest state."""
    engine = _engine(repo)
    for run_id in engine.audit.run_ids():
        click.echo(render_summary(engine.load(run_id), engine.redactor))


@audit.command("show")
@click.argument("run_id")
@repo_option
def audit_show(run_id: str, repo: str) -> None:
    """The full run record as canonical JSON."""
    click.echo(json.dumps(_engine(repo).load(run_id).model_dump(mode="json"), indent=2))


def _trusting_policy(engine: Any) -> None:
    """Trust the signers policy on the default branch lists; without readable policy only
    this clone's own key is trusted, which fails closed on every other writer."""
    from bot.adapters.audit.trust import Trust

    try:
        policy = engine.policy()
    except AgentplaneError as exc:
        click.echo(f"warning: policy unreadable, trusting only this clone's key: {exc}", err=True)
        return
    audit = policy.audit
    engine.audit.trust(Trust.from_policy(audit.signers, audit.require_signatures_from))


@audit.command("verify")
@click.option("--expect-head", help="The head digest you expect (e.g. from a PR comment).")
@repo_option
def audit_verify(expect_head: str | None, repo: str) -> None:
    """Prove the chain of records, their signatures and every artifact digest (writes nothing)."""
    from bot.adapters.audit.verify import verify

    engine = _engine(repo)
    _trusting_policy(engine)
    report = verify(engine.audit, expect_head=expect_head)
    for f in report.findings:
        where = f"seq {f.seq}: " if f.seq is not None else ""
        click.echo(f"FAIL {f.kind}: {where}{f.message}", err=True)
    for w in report.warnings:
        click.echo(f"WARN {w.kind}: seq {w.seq}: {w.message}", err=True)
    if report.unsigned:
        click.echo(
            f"note: {report.unsigned} record(s) are unsigned (v1, written before signing); "
            "policy's audit.require_signatures_from refuses unsigned records from a seq on",
            err=True,
        )
    for rec in engine.stale_runs() if report.ok else []:
        click.echo(
            f"STALE {rec.run_id}: {rec.state}, but the process carrying it "
            f"({rec.owner or 'unrecorded'}) died; the next `agentplane run`, `approve`, `deny` "
            "or `answer` resolves it",
            err=True,
        )
    click.echo(
        f"{'ok' if report.ok else 'TAMPERED'}: {report.entries} records "
        f"({report.signed} signed, {report.unsigned} unsigned v1), "
        f"{report.artifacts} artifacts, head {report.head}"
    )
    if not report.ok:
        raise SystemExit(1)


@audit.command("key")
@repo_option
def audit_key(repo: str) -> None:
    """Print this host's signer as a line for policy's audit.signers (makes the key if new)."""
    from bot.adapters.audit.log import AuditLog
    from bot.adapters.audit.signing import load_signer

    signer = load_signer(AuditLog(Path(repo)).key_dir, create=True)
    assert signer is not None  # create=True makes one
    click.echo(f"- {{name: {json.dumps(signer.name)}, key: {signer.key}}}")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, exists=True),
    help="A YAML file of settings; AGENTPLANE_* variables win over it.",
)
def serve(host: str, port: int, config_file: Path | None) -> None:
    """Run the GitHub webhook bot (FastAPI): acknowledge, queue, work, reconcile."""
    import uvicorn

    from bot.doors.github.server import build
    from bot.doors.github.settings import load_settings

    # build() logs each of settings.problems(); /healthz lists them too.
    uvicorn.run(build(load_settings(file=config_file)), host=host, port=port, log_level="info")


@cli.command()
@click.option(
    "--dir",
    "dest",
    default="build/demo-repo",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Where to build the example repo.",
)
@click.option(
    "--browser",
    is_flag=True,
    help="Run the browser job (admin-edit) against a local admin console instead.",
)
@click.option(
    "--all",
    "everything",
    is_flag=True,
    help="Run the code, browser and spreadsheet jobs side by side; one approval releases all.",
)
def demo(dest: Path, browser: bool, everything: bool) -> None:
    """Build an example repo with a failing test and run the demo job on it end to end."""
    if everything:
        from bot.demo.all import main as run_all

        run_all(dest.resolve())
        return
    if browser:
        from bot.demo.browser import main as run_browser_demo

        run_browser_demo(dest.resolve())
        return
    from bot.demo.code import main as run_demo

    run_demo(dest.resolve())


register_sandbox(cli)
register_browser(cli)
register_mcp(cli)
register_ui(cli)
register_schedule(cli)
register_rollback(cli)
register_eval(cli)
register_cancel(cli)
register_artifact(cli)
register_init(cli)


def main() -> None:
    # Library log lines (litellm's among them, via bot.adapters.model.logs) reach the
    # terminal as warnings through the one redactor, never past it.
    logging.basicConfig(level=logging.WARNING, format="agentplane: %(name)s: %(message)s")
    redact_logs(Redactor.for_host(os.environ))
    try:
        cli.main(standalone_mode=False)
    except ValidationFailed as exc:
        for err in exc.errors:
            click.echo(err.render(), err=True)
        raise SystemExit(1) from None
    except AgentplaneError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        raise SystemExit(130) from None
    except click.ClickException as exc:
        exc.show()
        raise SystemExit(exc.exit_code) from None
