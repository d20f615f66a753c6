"""`agentplane browser ...`: browser runs' evidence as files (a regression test, the trace).

Reads only the audit branch, so it works on any clone that has it; no sandbox,
no browser. The lead wires it in with `register(cli)`.
"""

from __future__ import annotations

from pathlib import Path

import click

from bot.core.errors import RunError
from bot.core.record import RunRecord
from bot.families.browser.errors import NotABrowserRun
from bot.families.browser.export import export_test
from bot.families.browser.model import BrowserRun
from bot.families.browser.tools import RUN_ARTIFACT

repo_option = click.option(
    "--repo", default=".", show_default=True, help="The git repository to work in."
)


def _artifact(repo: str, run_id: str, name: str) -> tuple[RunRecord, bytes]:
    from bot.adapters.audit.log import AuditLog

    audit = AuditLog(Path(repo))
    entry = audit.latest(run_id)
    if entry is None:
        raise RunError(f"no run {run_id!r} in the audit log (see `agentplane audit log`)")
    rec = RunRecord.model_validate(entry.record)
    ref = rec.artifact(name)
    if ref is None:
        raise NotABrowserRun(f"run {run_id} has no {name} artifact: it drove no browser")
    return rec, audit.artifact(ref.sha256)


def load_browser_run(repo: str, run_id: str) -> BrowserRun:
    return BrowserRun.model_validate_json(_artifact(repo, run_id, RUN_ARTIFACT)[1])


@click.group("browser")
def browser() -> None:
    """Browser runs: export a regression test, write out the trace."""


@browser.command("export")
@click.argument("run_id")
@click.option(
    "--out", type=click.Path(path_type=Path), help="Default: tests/agentplane/test_<run>.py"
)
@repo_option
def export_cmd(run_id: str, out: Path | None, repo: str) -> None:
    """Write a pytest test (Playwright sync API) replaying RUN's steps, asserting its reads."""
    run = load_browser_run(repo, run_id)
    safe = "".join(c if c.isalnum() else "_" for c in run_id).lower()
    out = out or Path(repo) / "tests" / "agentplane" / f"test_{safe}.py"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(export_test(run, run_id, out.name), encoding="utf-8")
    click.echo(f"wrote {out}: {len(run.steps)} step(s); run it with: pytest {out}")


@browser.command("trace")
@click.argument("run_id")
@click.option(
    "--out", type=click.Path(path_type=Path), default=Path("trace.zip"), show_default=True
)
@click.option("--apply", "apply_", is_flag=True, help="The apply's trace instead of propose's.")
@repo_option
def trace_cmd(run_id: str, out: Path, apply_: bool, repo: str) -> None:
    """Write RUN's Playwright trace and print the command that opens it."""
    _, data = _artifact(repo, run_id, "apply-trace.zip" if apply_ else "trace.zip")
    out.write_bytes(data)
    click.echo(f"wrote {out} ({len(data)} bytes); open it with: playwright show-trace {out}")


def register(cli: click.Group) -> None:
    cli.add_command(browser)
