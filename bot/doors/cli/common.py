"""What the terminal's command modules share: the `--repo` option and the engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

repo_option = click.option(
    "--repo", default=".", show_default=True, help="The git repository to work in."
)


def engine(repo: str, backend: str = "bwrap", recover: bool = False) -> Any:
    """The engine over repo. recover: first resolve the runs a killed process left in
    flight (commands that move runs forward), so none stays `running` for good."""
    # Imported here so commands that need no git or sandbox stay fast.
    from bot.adapters.git import GitRepo
    from bot.adapters.sandbox.backends import Lazy
    from bot.run.engine import Engine

    built = Engine(GitRepo(Path(repo)), Lazy(backend))
    if recover:
        for rec in built.recover():
            click.echo(
                f"recovered {rec.run_id}: {rec.state}: {rec.transitions[-1].reason}", err=True
            )
    return built
