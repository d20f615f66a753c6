"""`agentplane rollback RUN`: undo an applied run as a new run, planned, gated and recorded."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    @cli.command()
    @click.argument("run_id")
    @click.option(
        "--onto",
        help="The commit the undo is applied on (default: HEAD when it holds the run's "
        "commit, else the run's own applied commit).",
    )
    @click.option("--approve", "verdict", flag_value="approve", help="Approve without asking.")
    @click.option("--deny", "verdict", flag_value="deny", help="Deny without asking.")
    @click.option("--repo", default=".", show_default=True, help="The git repository to work in.")
    def rollback(run_id: str, onto: str | None, verdict: str | None, repo: str) -> None:
        """Undo what RUN applied: a new run whose proposal reverts it, approved like any."""
        # Imported here: main imports this module to register the command.
        from bot.core.render import render_evidence, render_plan
        from bot.doors.cli.main import _after_propose, _live_engine

        engine = _live_engine(repo)
        rec = engine.rollback(run_id, onto=onto)
        click.echo(render_plan(rec.plan, engine.redactor))
        click.echo(f"\nRollback of {run_id}: run {rec.run_id} on {rec.commit[:12]}")
        for why in rec.irreversible:
            click.echo(f"  irreversible: {why}")
        if rec.proposal is not None:  # no tool call made it: the revert is the evidence
            sections = engine.evidence_sections(rec)
            click.echo(render_evidence(rec, engine.patch(rec), sections, engine.redactor))
        click.echo("")
        _after_propose(engine, rec, verdict)
