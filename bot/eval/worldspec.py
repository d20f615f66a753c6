"""What a scenario's world is made of, as data: local web sites, a PostgreSQL, MCP servers
(and the repositories they act on), and the checks read from them after the run.

A scenario names values the world only knows once it runs (a site's port) as `${NAME.url}`
(`http://127.0.0.1:PORT`) or `${NAME.netloc}` (`127.0.0.1:PORT`) in its job, turns, files
and policy; bot/eval/worlds.py starts the world and fills them in."""

from __future__ import annotations

import ipaddress
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_PAGE_BYTES = 256 << 10


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteSpec(Strict):
    """A real HTTP/1.1 server the runner starts; it records every request it receives."""

    host: str = "127.0.0.1"
    """A loopback address (127.0.0.0/8): a second site on 127.0.0.2 is another host."""
    pages: dict[str, str] = Field(default_factory=dict)
    """Path -> HTML served to GET; any other method is recorded and answered 200."""

    @field_validator("host")
    @classmethod
    def _loopback(cls, v: str) -> str:
        try:
            if ipaddress.ip_address(v) in ipaddress.ip_network("127.0.0.0/8"):
                return v
        except ValueError:
            pass
        raise ValueError(f"{v!r}: a scenario site listens on a loopback address (127.x.y.z)")

    @field_validator("pages")
    @classmethod
    def _paths(cls, v: dict[str, str]) -> dict[str, str]:
        for path, html in v.items():
            if not path.startswith("/"):
                raise ValueError(f"{path!r}: a page path starts with /")
            if len(html.encode()) > MAX_PAGE_BYTES:
                raise ValueError(f"{path}: a page is at most {MAX_PAGE_BYTES} bytes")
        return v


class PostgresSpec(Strict):
    """A real PostgreSQL primary (and a hot standby the job reads, unless standby is
    false) from Debian's packages, set up by `sql` as superuser."""

    sql: str
    """Schema, rows and the login role with its grants (`CREATE ROLE <login> ... PASSWORD`)."""
    login: str = "agent"
    password: str
    """The login's password: the connection's credential, known to the broker (a goal
    `secret_leaked` may name it as `postgres`)."""
    connection: str = "replica"
    """The policy connection whose DSN the host supplies (AGENTPLANE_SQL_<NAME>_DSN)."""
    standby: bool = True


class RepositorySpec(Strict):
    """A git repository an MCP server acts on: one commit, then files staged on top."""

    message: str = "initial"
    files: dict[str, str] = Field(default_factory=lambda: {"README": "target\n"})
    staged: dict[str, str] = Field(default_factory=dict)


class McpSpec(Strict):
    """An MCP server installed in agentplane's environment, run as policy's `mcp_servers`
    entry of the same name (command, mounts and environment filled in by the world)."""

    module: Literal["mcp_server_git", "mcp_server_time"]
    args: list[str] = Field(default_factory=list)
    """Its arguments; the repository is at /workspace inside the server's sandbox."""
    repository: RepositorySpec | None = None
    tools: dict[str, Any]
    """Policy's per-tool decisions (as in `mcp_servers.<name>.tools`)."""
    timeout_seconds: int = 30


class WorldSpec(Strict):
    sites: dict[str, SiteSpec] = Field(default_factory=dict)
    postgres: PostgresSpec | None = None
    mcp: dict[str, McpSpec] = Field(default_factory=dict)


class WorldCheck(Strict):
    """A part of the task, read from the world after the run (all of a scenario's must hold).

    - `received`: site received exactly `count` requests of `method` to `path` whose body
      contains `contains`;
    - `summary`: the run ended well (applied or completed) and its summary contains `text`;
    - `saw`: a call to `tool` the broker allowed returned `contains` (the data the task
      needs reached the model: a defence that blocks the read fails it);
    - `commits`: the server's repository gained exactly the commits `messages` (newest
      first) and, if given, has exactly the branches `branches`."""

    kind: Literal["received", "summary", "saw", "commits"]
    site: str = ""
    method: str = "POST"
    path: str = ""
    contains: str = ""
    count: int = 1
    text: str = ""
    tool: str = ""
    server: str = ""
    messages: list[str] = Field(default_factory=list)
    branches: list[str] | None = None
