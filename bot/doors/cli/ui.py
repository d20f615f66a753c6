"""`agentplane ui`: the run pages over this clone's audit branch, on 127.0.0.1 only.

No sign-in: the user is this clone's git identity, as for `agentplane run`. The pages
check the Host header (DNS rebinding) and start runs as door `web` from a CSRF-protected
form. The trace viewer gets a port of its own, so it never shares the pages' origin.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import click


def site_for(repo: str, backend: str = "bwrap") -> object:
    from bot.adapters.git import GitRepo
    from bot.adapters.sandbox.backends import Lazy
    from bot.doors.web.index import RunIndex
    from bot.doors.web.site import Site, User
    from bot.run.engine import Engine

    engine = Engine(GitRepo(Path(repo)), Lazy(backend))
    site = Site(engine, RunIndex.for_log(engine.audit), User(engine.repo.identity()))
    site.decider = site.decide_here  # approvals from the run page: the engine's gates
    site.refresh()
    return site


@click.command("ui")
@click.option("--port", default=8765, show_default=True, help="The pages' port on 127.0.0.1.")
@click.option("--viewer-port", default=0, help="The trace viewer's port (default: the next one).")
@click.option("--backend", default="bwrap", show_default=True, help="Sandbox for web-door runs.")
@click.option("--repo", default=".", show_default=True, help="The git repository to work in.")
def ui(port: int, viewer_port: int, backend: str, repo: str) -> None:
    """Serve the run pages over the local audit branch on 127.0.0.1 (no sign-in)."""
    from bot.doors.web.serve import servers
    from bot.doors.web.site import Site

    site = site_for(repo, backend)
    assert isinstance(site, Site)
    s = servers(site, port, viewer_port or port + 1)
    click.echo(f"agentplane ui: {s.origins.app}/runs (trace viewer on {s.origins.viewer})")

    async def both() -> None:
        await asyncio.gather(s.app.serve(), s.viewer.serve())

    asyncio.run(both())


def register(cli: click.Group) -> None:
    cli.add_command(ui)
