"""`agentplane cancel RUN`: end a run that waits on people (approval or an answer)."""

from __future__ import annotations

import click

from bot.core.render import render_summary
from bot.doors.cli.common import engine, repo_option


def register(cli: click.Group) -> None:
    cli.add_command(cancel)


@click.command()
@click.argument("run_id")
@click.option("--reason", default="", help="Why, for the record.")
@repo_option
def cancel(run_id: str, reason: str, repo: str) -> None:
    """Cancel a run awaiting approval or an answer, as your git identity: its requester
    withdraws it, one of its approvers cancels it. Recorded on the audit branch."""
    e = engine(repo, recover=True)
    rec = e.cancel_by(run_id, e.repo.identity(), reason)
    click.echo(render_summary(rec, e.redactor))
