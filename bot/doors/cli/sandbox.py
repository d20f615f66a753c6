"""`agentplane doctor` and `agentplane sandbox run`: the sandbox, seen from a terminal."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import click

from bot.adapters.sandbox.backends import BACKENDS, DEFAULT, make_backend
from bot.adapters.sandbox.spec import Limits, SandboxSpec
from bot.core.errors import SandboxError

SANDBOX_ERROR_EXIT = 125
"""As `docker run`: the sandbox itself failed, so no command status to pass on."""


def register(cli: click.Group) -> None:
    cli.add_command(doctor)
    cli.add_command(sandbox)


@click.command()
@click.option(
    "--repo",
    "repo",
    metavar="OWNER/NAME",
    help="Also check, with the App's permissions, how the repository guards its audit branch.",
)
@click.option(
    "--models",
    "models",
    is_flag=True,
    help="Also make one small call to each model group policy names (opt-in: it costs).",
)
@click.option("--model", "groups", multiple=True, help="Only this model group (repeatable).")
def doctor(repo: str | None, models: bool, groups: tuple[str, ...]) -> None:
    """Which sandbox backends work on this host, and why not; whether documents can be
    pictured; with --models, whether each model group answers, and how fast."""
    if repo is not None:
        sys.exit(_doctor_repo(repo))
    if models or groups:
        sys.exit(_doctor_models(list(groups) or None))
    usable = 0
    for name in BACKENDS:
        ok, why = make_backend(name).available()
        usable += ok
        click.echo(f"{name:<7} {'ok' if ok else 'unavailable: ' + why}")
    click.echo(f"{'browser':<7} {_browser_sandbox()}")
    from bot.families.documents.pictures import pictures_unavailable

    missing = pictures_unavailable()
    click.echo(f"{'pictures':<7} {'ok' if missing is None else 'unavailable: ' + missing}")
    if not usable:
        sys.exit(1)


def _doctor_repo(full_name: str) -> int:
    """Print what GitHub shows of the audit branch's rules, and what it cannot show."""
    from bot.core.errors import AgentplaneError
    from bot.doors.github.checkout import AUDIT
    from bot.doors.github.client import GitHubClient
    from bot.doors.github.doctor import audit_branch_findings
    from bot.doors.github.settings import load_settings

    if full_name.count("/") != 1 or not all(full_name.split("/")):
        click.echo(f"agentplane: --repo takes OWNER/NAME, not {full_name!r}", err=True)
        return 2
    try:
        settings = load_settings()
        app = GitHubClient(settings)
        client = (
            app if app.gh is not None else GitHubClient(settings, app.installation_for(full_name))
        )
        rules = client.branch_rules(full_name, AUDIT)
    except AgentplaneError as exc:
        click.echo(f"agentplane: cannot check {full_name}: {exc}", err=True)
        return 1
    findings = audit_branch_findings(rules)
    for f in findings:
        click.echo(f"{f.level:<9} {f.message}")
    return 1 if any(f.level == "problem" for f in findings) else 0


def _doctor_models(groups: list[str] | None) -> int:
    """One cheap call per model group of the policy on this repository's default branch."""
    from bot.adapters.git import GitRepo
    from bot.adapters.model.doctor import check_groups
    from bot.adapters.sandbox.backends import Lazy
    from bot.run.engine import Engine

    engine = Engine(GitRepo(Path(".")), Lazy("bwrap"))
    routing = engine.policy().models
    unknown = [g for g in groups or [] if g not in routing.groups()]
    if unknown:
        click.echo(f"agentplane: policy defines no model group {', '.join(unknown)}", err=True)
        return 2
    failed = False
    for health in check_groups(routing, groups):
        click.echo(f"{'model':<7} {engine.redactor(health.describe())}")
        failed |= not health.ok
    return 1 if failed else 0


def _browser_sandbox() -> str:
    """Where a browser job's Chromium would run, and why not elsewhere."""
    from bot.families.browser.driver import browser_backend
    from bot.families.browser.errors import BrowserUnavailable

    try:
        return f"runs Chromium in {browser_backend(None)[1]}"
    except BrowserUnavailable as exc:
        return f"unavailable: {exc}"


@click.group()
def sandbox() -> None:
    """Run commands under the sandbox a job would get (for debugging policy)."""


@sandbox.command("run", context_settings={"ignore_unknown_options": True})
@click.option("--backend", type=click.Choice(list(BACKENDS)), default=DEFAULT, show_default=True)
@click.option("--write", "writes", multiple=True, help="A write-scope glob (repeatable).")
@click.option(
    "--allow-domain", "domains", multiple=True, help="name, *.name, optionally :port (repeatable)."
)
@click.option(
    "--workspace",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=".",
    show_default=True,
    help="Copied to a throwaway /workspace, as a job's checkout is.",
)
@click.option("--timeout", type=float, default=Limits().wall_seconds, show_default=True)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def sandbox_run(
    backend: str,
    writes: tuple[str, ...],
    domains: tuple[str, ...],
    workspace: Path,
    timeout: float,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND (after `--`) in a sandbox; exits with its status (124: timed out)."""
    with tempfile.TemporaryDirectory(prefix="agentplane-ws-") as tmp:
        ws = Path(tmp)  # mkdtemp's own dir: its parent /tmp is traversable by the sandbox
        try:
            shutil.copytree(workspace, ws, symlinks=True, dirs_exist_ok=True)
            spec = SandboxSpec(
                ws,
                writes,
                network="allowlist" if domains else "none",
                limits=Limits(wall_seconds=timeout),
                allow_domains=domains,
            )
            with make_backend(backend).start(spec) as box:
                result = box.exec(list(command))
            events = box.egress_log()
        except (SandboxError, OSError) as exc:
            click.echo(f"agentplane: sandbox: {exc}", err=True)
            sys.exit(SANDBOX_ERROR_EXIT)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    for e in events:
        click.echo(
            f"egress {e.decision} {e.host}:{e.port} {e.rule} up={e.bytes_up}B down={e.bytes_down}B",
            err=True,
        )
    if result.timed_out:
        click.echo(f"agentplane: timed out after {timeout:g}s", err=True)
    sys.exit(result.exit_code)
