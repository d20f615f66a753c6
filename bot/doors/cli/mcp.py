"""`agentplane mcp`: serve agentplane's front door to an MCP client over stdio."""

from __future__ import annotations

from pathlib import Path

import click


def register(cli: click.Group) -> None:
    cli.add_command(mcp)


@click.command()
@click.option("--repo", default=".", show_default=True, help="The git repository to work in.")
@click.option("--backend", default="bwrap", show_default=True, help="Sandbox backend.")
def mcp(repo: str, backend: str) -> None:
    """Serve list_jobs, show_plan, start_run, run_status, run_evidence and answer over
    stdio, as your git identity. Approval is never a tool: approve in a PR review or with
    `agentplane approve`. Streamable HTTP is not served yet."""
    from bot.adapters.git import GitRepo
    from bot.adapters.sandbox.backends import Lazy
    from bot.doors.mcp.server import build
    from bot.run.engine import Engine

    engine = Engine(GitRepo(Path(repo)), Lazy(backend))
    build(engine, engine.repo.identity).run("stdio")
