"""`agentplane mcp`: serve agentplane's front door to MCP clients, over stdio or HTTP."""

from __future__ import annotations

from pathlib import Path

import click

from bot.core.errors import AgentplaneError


def register(cli: click.Group) -> None:
    cli.add_command(mcp)


@click.group(invoke_without_command=True)
@click.option("--repo", default=".", show_default=True, help="The git repository to work in.")
@click.option("--backend", default="bwrap", show_default=True, help="Sandbox backend.")
@click.option("--http", "http", is_flag=True, help="Serve streamable HTTP instead of stdio.")
@click.option("--host", default="127.0.0.1", show_default=True, help="HTTP: address to bind.")
@click.option("--port", default=8765, show_default=True, type=int, help="HTTP: port to bind.")
@click.option(
    "--tokens",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="AGENTPLANE_MCP_TOKENS_FILE",
    help="HTTP: the token file (token hashes -> people), outside the repository.",
)
@click.option(
    "--allow-host",
    multiple=True,
    help="HTTP: a Host header clients use (NAME[:PORT]); required to bind a non-loopback address.",
)
@click.pass_context
def mcp(
    ctx: click.Context,
    repo: str,
    backend: str,
    http: bool,
    host: str,
    port: int,
    tokens: Path | None,
    allow_host: tuple[str, ...],
) -> None:
    """Serve list_jobs, show_plan, start_run, run_status, run_evidence and answer.

    Over stdio (the default) the caller is your git identity. With --http the caller is
    the person a bearer token stands for (see `agentplane mcp token`). Approval is never
    a tool: approve in a PR review or with `agentplane approve`."""
    if ctx.invoked_subcommand is not None:
        return
    from bot.adapters.git import GitRepo
    from bot.adapters.sandbox.backends import Lazy
    from bot.doors.mcp.server import build, local_user
    from bot.run.engine import Engine

    try:
        engine = Engine(GitRepo(Path(repo)), Lazy(backend))
        if not http:
            build(engine, local_user(engine)).run("stdio")
            return
        from bot.doors.mcp.http_door import HttpDoor
        from bot.doors.mcp.tokens import TOKENS_ENV, load_tokens

        if tokens is None:
            raise click.UsageError(
                f"--http needs the token file: --tokens FILE or ${TOKENS_ENV} "
                "(make entries with `agentplane mcp token PERSON`)"
            )
        door = HttpDoor(
            engine,
            load_tokens(tokens, engine.repo.root),
            host=host,
            port=port,
            allow_hosts=allow_host,
        )
        click.echo(f"agentplane MCP door at {door.url} (Ctrl-C stops it)", err=True)
        door.serve()
    except AgentplaneError as exc:
        raise click.ClickException(str(exc)) from None


@mcp.command("token")
@click.argument("person")
@click.option("--name", default=None, help="A label for the token (default: the person).")
@click.option(
    "--file",
    "file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="AGENTPLANE_MCP_TOKENS_FILE",
    help="The token file to add the token's hash to (created, mode 0600, if missing).",
)
def token(person: str, name: str | None, file: Path) -> None:
    """Make a bearer token for PERSON (an email or github:<id>).

    Adds the token's SHA-256 to the bot's token file and prints the token once, on
    stdout, for the person's MCP client; the token itself is stored nowhere."""
    from bot.doors.mcp.tokens import add_token

    try:
        secret, entry = add_token(file, person, name)
    except AgentplaneError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"added {entry.name} ({entry.person}) to {file}", err=True)
    click.echo(secret)
