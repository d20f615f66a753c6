"""A scenario's world, started for one run and torn down after it: local web sites that
record what they receive, a PostgreSQL, MCP servers' repositories. What the goals and
checks read comes from here, from the world's side, never from what agentplane says.

Nothing in the run path knows a world: a site is a URL in the job and policy, the
database is a DSN in the host's environment, a server is an `mcp_servers` entry."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sysconfig
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from psycopg import sql

from bot.adapters import postgres
from bot.adapters.git import run_git
from bot.core.errors import AgentplaneError
from bot.core.record import RunRecord
from bot.eval.worldspec import McpSpec, RepositorySpec, SiteSpec, WorldCheck, WorldSpec
from bot.families.sql.connections import env_name

MAX_BODY = 1 << 20
SAFE_METHODS = ("GET", "HEAD")
PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_-]+)\.(url|netloc)\}")
ROWS = sql.SQL(
    "SELECT count(*), coalesce(md5(string_agg(r::text, ',' ORDER BY r::text)), '') FROM {} r"
)
TARGET_GIT = {
    # The server's sandbox user is not the target's owner; its commits need an author.
    "GIT_CONFIG_COUNT": "1",
    "GIT_CONFIG_KEY_0": "safe.directory",
    "GIT_CONFIG_VALUE_0": "*",
    "GIT_AUTHOR_NAME": "agentplane",
    "GIT_AUTHOR_EMAIL": "agentplane@example.com",
    "GIT_COMMITTER_NAME": "agentplane",
    "GIT_COMMITTER_EMAIL": "agentplane@example.com",
}


class WorldError(AgentplaneError):
    """A scenario's world could not be started or names something it does not have."""


@dataclass(frozen=True)
class Hit:
    phase: str
    """`propose` until an approver decides, `apply` after."""
    method: str
    path: str
    body: bytes


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real servers speak
    timeout = 10  # an idle keep-alive connection does not hold a thread for ever
    site: Site

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _serve(self, head_only: bool = False) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            # A body it will not read would be taken for the next request: refuse, close.
            self.close_connection = True
            length = 0
        body = self.rfile.read(length) if length else b""
        path = urlsplit(self.path).path
        self.site.add(Hit(self.site.phase, self.command, path, body))
        if self.command in SAFE_METHODS:
            page = self.site.spec.pages.get(path)
            status, html = (200, page) if page is not None else (404, "<h1>not found</h1>")
        else:
            status, html = 200, f"<!doctype html><title>received</title><p>{self.command} received"
        data = html.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if not head_only:
            self.wfile.write(data)

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve(head_only=True)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET


class Site:
    """One site of the scenario on its loopback address, recording every request."""

    def __init__(self, spec: SiteSpec) -> None:
        self.spec = spec
        self.phase = "propose"
        self.hits: list[Hit] = []
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"site": self})
        self.server = ThreadingHTTPServer((spec.host, 0), handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def netloc(self) -> str:
        return f"{self.spec.host}:{self.port}"

    def add(self, hit: Hit) -> None:
        with self._lock:
            self.hits.append(hit)

    def received(self) -> list[Hit]:
        with self._lock:
            return list(self.hits)

    def writes(self, phase: str | None = None) -> list[Hit]:
        """State-changing requests (anything but GET and HEAD), in phase or in all."""
        return [
            h for h in self.received()
            if h.method not in SAFE_METHODS and (phase is None or h.phase == phase)
        ]  # fmt: skip

    def __enter__(self) -> Site:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class World:
    spec: WorldSpec
    sites: dict[str, Site] = field(default_factory=dict)
    cluster: postgres.Cluster | None = None
    targets: dict[str, Path] = field(default_factory=dict)
    """MCP server name -> the repository it acts on."""
    start: dict[str, str] = field(default_factory=dict)
    """What each target looked like before the run."""
    rows_at_start: dict[str, str] = field(default_factory=dict)
    """Each table's digest before the run."""

    def fill(self, value: Any) -> Any:
        """value with every `${site.url}` / `${site.netloc}` filled in, recursively."""
        if isinstance(value, str):
            return PLACEHOLDER.sub(self._placeholder, value)
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        if isinstance(value, dict):
            return {self.fill(k): self.fill(v) for k, v in value.items()}
        return value

    def _placeholder(self, m: re.Match[str]) -> str:
        site = self.sites.get(m.group(1))
        if site is None:
            raise WorldError(f"{m.group(0)}: the world has no site {m.group(1)!r}")
        return f"http://{site.netloc}" if m.group(2) == "url" else site.netloc

    def env(self) -> dict[str, str]:
        """The host's environment for the run: the database's DSN, as a real host holds it."""
        pg, c = self.spec.postgres, self.cluster
        if pg is None or c is None:
            return {}
        return {env_name(pg.connection): c.standby_dsn if pg.standby else c.primary_dsn}

    def secrets(self) -> dict[str, str]:
        """Secrets the world holds, by the name a goal uses."""
        return {"postgres": self.spec.postgres.password} if self.spec.postgres else {}

    def policy(self) -> dict[str, Any]:
        """Policy's `mcp_servers` entries for the world's servers (the grants are the
        scenario's own policy)."""
        if not self.spec.mcp:
            return {}
        return {"mcp_servers": {n: self._server(n, s) for n, s in self.spec.mcp.items()}}

    def _server(self, name: str, s: McpSpec) -> dict[str, Any]:
        site = Path(sysconfig.get_paths()["purelib"]).resolve()
        entry: dict[str, Any] = {
            "command": ["python3", "-m", s.module, *s.args],
            # The sandbox's python3 runs the server from agentplane's own environment.
            "env": {"PYTHONPATH": str(site), **(TARGET_GIT if s.repository else {})},
            "mounts": [str(site.parents[2])],
            "tools": s.tools,
            "timeout_seconds": s.timeout_seconds,
        }
        if name in self.targets:
            entry["workdir"] = str(self.targets[name])
        return entry

    def approving(self) -> None:
        """From here on, what the sites receive arrives after an approver decided."""
        for site in self.sites.values():
            site.phase = "apply"

    def ungated(self) -> int:
        """State changes the world received before anyone approved: a site's writes, a
        changed database, a target repository that moved."""
        n = sum(len(s.writes("propose")) for s in self.sites.values())
        if self.cluster is not None and self.rows_changed():
            n += 1
        return n + sum(1 for name in self.targets if self.changed(name))

    def writes_applied(self) -> int:
        return sum(len(s.writes("apply")) for s in self.sites.values())

    def rows(self) -> dict[str, str]:
        """Each user table (`schema.name`) on the primary -> a digest of all its rows."""
        if self.cluster is None:
            raise WorldError("the goal reads a database; the world has no postgres")
        out = {}
        with self.cluster.admin(self.cluster.primary_port) as pg:
            tables = pg.execute(
                b"SELECT schemaname, tablename FROM pg_tables WHERE schemaname NOT IN "
                b"('pg_catalog', 'information_schema') ORDER BY 1, 2"
            ).fetchall()
            for schema, name in tables:
                row = pg.execute(ROWS.format(sql.Identifier(schema, name))).fetchone()
                out[f"{schema}.{name}"] = hashlib.sha256(repr(row).encode()).hexdigest()
        return out

    def rows_changed(self, table: str = "") -> bool:
        """Whether any row of table (default: of any table) differs from before the run;
        a table created or dropped is a change too."""
        now, then = self.rows(), self.rows_at_start
        if not table:
            return now != then
        if table not in then:
            raise WorldError(f"the goal names table {table!r}; the database has {sorted(then)}")
        return now.get(table) != then[table]

    def target_state(self, name: str) -> str:
        """HEAD, every ref and the index's tree of a server's repository."""
        repo = self.target(name)
        refs = _git(repo, "for-each-ref", "--format=%(refname) %(objectname)")
        index = _git(repo, "write-tree")
        return f"{refs}\nindex {index}"

    def changed(self, name: str) -> bool:
        return self.target_state(name) != self.start[f"mcp:{name}"]

    def target(self, name: str) -> Path:
        if name not in self.targets:
            raise WorldError(f"the world has no MCP server {name!r} with a repository")
        return self.targets[name]

    def site(self, name: str) -> Site:
        if name not in self.sites:
            raise WorldError(f"the world has no site {name!r}")
        return self.sites[name]

    def check(self, c: WorldCheck, rec: RunRecord) -> bool:
        if c.kind == "received":
            got = [
                h for h in self.site(c.site).received()
                if h.method == c.method and (not c.path or h.path == c.path)
                and c.contains.encode() in h.body
            ]  # fmt: skip
            return len(got) == c.count
        if c.kind == "summary":
            return rec.state in ("applied", "completed") and c.text in (rec.final_message or "")
        if c.kind == "saw":
            return any(
                t.tool == c.tool and t.decision == "allow" and t.ok and c.contains in t.result
                for t in rec.tool_calls
            )
        repo = self.target(c.server)
        base = self.start[f"mcp-head:{c.server}"]
        made = _git(repo, "log", "--format=%s", f"{base}..HEAD").splitlines()
        if made != c.messages:
            return False
        if c.branches is None:
            return True
        return sorted(_git(repo, "branch", "--format=%(refname:short)").split()) == sorted(
            c.branches
        )


def _git(repo: Path, *args: str) -> str:
    return run_git("-c", "safe.directory=*", *args, cwd=repo).stdout.strip()


def _repository(top: Path, spec: RepositorySpec) -> Path:
    repo = top / "target"
    repo.mkdir()
    env = {**os.environ, **TARGET_GIT}
    run_git("init", "-q", "-b", "main", cwd=repo, env=env)
    for files in (spec.files, spec.staged):
        for rel, text in files.items():
            path = repo / rel
            if not path.resolve().is_relative_to(repo.resolve()):
                raise WorldError(f"repository file {rel!r} is outside the repository")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        run_git("add", "-A", cwd=repo, env=env)
        if files is spec.files:
            run_git("commit", "-q", "--allow-empty", "-m", spec.message, cwd=repo, env=env)
    return repo


@contextlib.contextmanager
def world(spec: WorldSpec | None) -> Iterator[World]:
    """The scenario's world, running; everything it started is stopped afterwards."""
    w = World(spec or WorldSpec())
    with contextlib.ExitStack() as stack:
        for name, site in w.spec.sites.items():
            w.sites[name] = stack.enter_context(Site(site))
        if (pg := w.spec.postgres) is not None:
            w.cluster = stack.enter_context(
                postgres.cluster(pg.sql, pg.standby, pg.login, pg.password)
            )
            if pg.standby:
                w.cluster.caught_up()
            w.rows_at_start = w.rows()
        for name, server in w.spec.mcp.items():
            if server.repository is None:
                continue
            top = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="agentplane-mcp-")))
            os.chmod(top, 0o755)  # the server's sandbox user must reach it
            w.targets[name] = _repository(top, server.repository)
            w.start[f"mcp:{name}"] = w.target_state(name)
            w.start[f"mcp-head:{name}"] = _git(w.targets[name], "rev-parse", "HEAD")
        yield w
