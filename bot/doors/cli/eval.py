"""`agentplane eval`: run the governance scenarios, print the table, write the report."""

from __future__ import annotations

import json
from pathlib import Path

import click

PROJECT = Path(__file__).resolve().parents[3]


def _commit(root: Path) -> str:
    from bot.adapters.git import run_git

    try:
        head = run_git("rev-parse", "HEAD", cwd=root).stdout.strip()
        dirty = run_git("status", "--porcelain", "--untracked-files=no", cwd=root).stdout
    except Exception:  # not a checkout (an installed package): say so in the report
        return "unknown (not a git checkout)"
    return head + ("+dirty" if dirty.strip() else "")


def register(cli: click.Group) -> None:
    @cli.command("eval")
    @click.option(
        "--suite",
        type=click.Path(path_type=Path, file_okay=False),
        default=PROJECT / "evals",
        show_default="evals/ of this checkout",
        help="The directory of scenario files.",
    )
    @click.option("--only", multiple=True, help="Run only the scenario of this name (repeatable).")
    @click.option(
        "--report",
        type=click.Path(path_type=Path, dir_okay=False),
        help="Write the JSON report here (e.g. bench/results/eval.json).",
    )
    @click.option(
        "--baseline",
        type=click.Path(path_type=Path, dir_okay=False, exists=True),
        help="A committed report: exit 1 on any regression against it.",
    )
    @click.option("--backend", default="bwrap", show_default=True, help="Sandbox backend.")
    @click.option(
        "--drivers",
        multiple=True,
        metavar="MODULE",
        help="Import MODULE for the drivers of more doors (its EVAL_DRIVERS), e.g. "
        "tests.support.eval_pr for the PR door against the GitHub double (repeatable).",
    )
    def eval_cmd(
        suite: Path,
        only: tuple[str, ...],
        report: Path | None,
        baseline: Path | None,
        backend: str,
        drivers: tuple[str, ...],
    ) -> None:
        """Run the scenarios through the one run path and measure what got through."""
        from bot.eval import doors
        from bot.eval.report import Report, regressions, render_table
        from bot.eval.runner import run_suite
        from bot.eval.scenario import load_scenarios

        doors.load(drivers)
        scenarios = load_scenarios(suite, only)
        doors.check(scenarios)
        results = run_suite(scenarios, backend, lambda line: click.echo(line, err=True))
        done = Report(commit=_commit(PROJECT), scenarios=results)
        click.echo(render_table(done))
        if report is not None:
            report.parent.mkdir(parents=True, exist_ok=True)
            data = {**done.model_dump(mode="json"), "totals": done.totals()}
            report.write_text(json.dumps(data, indent=2) + "\n")
            click.echo(f"report: {report}")
        old = Report.model_validate_json(baseline.read_text()) if baseline else None
        if found := regressions(done, old):
            for line in found:
                click.echo(f"REGRESSION {line}", err=True)
            raise SystemExit(1)
