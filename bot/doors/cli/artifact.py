"""`agentplane audit artifact RUN NAME`: one artifact of a run, out of the audit branch."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from bot.core.errors import RunError
from bot.doors.cli.common import engine, repo_option


def register(cli: click.Group) -> None:
    audit = cli.commands["audit"]
    assert isinstance(audit, click.Group)  # main.py's `audit` group
    audit.add_command(artifact)


@click.command()
@click.argument("run_id")
@click.argument("name")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write it to this file (never through a symlink) instead of stdout.",
)
@repo_option
def artifact(run_id: str, name: str, output: Path | None, repo: str) -> None:
    """Write artifact NAME of RUN (as the record lists it, e.g. proposal.patch) to stdout,
    after the audit chain and the artifact's digest are verified."""
    e = engine(repo)
    rec = e.load(run_id)
    ref = rec.artifact(name)
    if ref is None:
        names = ", ".join(sorted({a.name for a in rec.artifacts})) or "none"
        raise RunError(f"run {run_id} has no artifact {name!r}; it has: {names}")
    data = e.audit.artifact(ref.sha256)
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise RunError(f"cannot write {output}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    click.echo(f"wrote {output} ({len(data)} bytes, sha256:{ref.sha256[:12]})", err=True)
