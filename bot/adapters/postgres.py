"""A throwaway PostgreSQL from Debian's packages: a primary in a temp dir and, if asked,
a streaming hot standby made with `pg_basebackup -R` on a port of its own.

The tests' shop cluster (tests/support/postgres.py) and the eval's SQL worlds
(bot/eval/worlds.py) both start theirs here. initdb refuses root, so as root the servers
run as the `postgres` OS user. Host-side only: never reachable from a job's data.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from bot.core.errors import AgentplaneError

PROJECT = Path(__file__).resolve().parents[2]
CONF = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{sock}'
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all
wal_level = replica
max_wal_senders = 4
hot_standby = on
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
max_parallel_workers_per_gather = 0  # deterministic plans for the assertions
"""


class ClusterUnavailable(AgentplaneError):
    """PostgreSQL is not installed and cannot be installed here (not root)."""


def pg_bin() -> Path | None:
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
    )
    return found[-1].parent if found else None


def ensure_installed() -> Path:
    if (bindir := pg_bin()) is not None:
        return bindir
    deps = PROJECT / "scripts/host-deps"
    if os.geteuid() != 0 or not deps.is_file():
        raise ClusterUnavailable(
            "PostgreSQL is not installed: apt-get install postgresql-15 postgresql-contrib "
            "(or, as root in a checkout, scripts/host-deps)"
        )
    subprocess.run([str(deps)], check=True)
    if (bindir := pg_bin()) is None:
        raise ClusterUnavailable("scripts/host-deps ran but no /usr/lib/postgresql/*/bin/initdb")
    return bindir


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    base: Path
    bindir: Path
    user: str
    primary_port: int
    standby_port: int
    login: str = "agent"
    """The role DSNs name unless told otherwise (setup_sql creates it)."""
    password: str | None = None

    @property
    def sock(self) -> Path:
        return self.base

    def dsn(self, port: int, user: str | None = None, password: str | None = "") -> str:
        """A TCP DSN for user (default: login), with the cluster's password unless told
        another (None: none)."""
        user = self.login if user is None else user
        password = self.password if password == "" else password
        pw = f" password={password}" if password else ""
        return f"host=127.0.0.1 port={port} dbname=postgres user={user}{pw}"

    @property
    def standby_dsn(self) -> str:
        return self.dsn(self.standby_port)

    @property
    def primary_dsn(self) -> str:
        return self.dsn(self.primary_port)

    def admin(self, port: int) -> psycopg.Connection[tuple[Any, ...]]:
        """Superuser over the unix socket (trust): for set-up and for test-side actions."""
        return psycopg.connect(
            host=str(self.sock), port=port, dbname="postgres", user="postgres", autocommit=True
        )

    def run(self, *args: str) -> None:
        kw: dict[str, Any] = {}
        if os.geteuid() == 0:
            kw = {"user": self.user, "group": pwd.getpwnam(self.user).pw_gid, "extra_groups": []}
        proc = subprocess.run(
            args, cwd=self.base, capture_output=True, text=True, check=False, **kw
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")

    def pg(self, tool: str, *args: str) -> None:
        self.run(str(self.bindir / tool), *args)

    def basebackup(self, datadir: Path, port: int) -> None:
        """A standby of the primary in datadir, listening on port (not started)."""
        self.pg(
            "pg_basebackup", "-D", str(datadir), "-h", str(self.sock), "-p",
            str(self.primary_port), "-U", "postgres", "-R", "-X", "stream", "-c", "fast",
        )  # fmt: skip
        with (datadir / "postgresql.conf").open("a") as f:
            f.write(f"port = {port}\n")

    def caught_up(self, timeout: float = 30.0) -> None:
        """Returns once the standby has replayed everything the primary has written."""
        with self.admin(self.primary_port) as pg:
            row = pg.execute(b"SELECT pg_current_wal_lsn()::text").fetchone()
        target = row[0] if row else "0/0"
        deadline = time.monotonic() + timeout
        while True:
            with self.admin(self.standby_port) as pg:
                got = pg.execute(
                    b"SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)
                ).fetchone()
            if got and got[0]:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"standby never caught up (see {self.base}/standby.log)")
            time.sleep(0.05)

    @contextlib.contextmanager
    def spare_standby(self) -> Iterator[tuple[str, Callable[[], None]]]:
        """A second standby of the same primary, to break (promote) without touching the
        shared one: yields its DSN and a promote() that returns once it accepts writes."""
        port = free_port()
        datadir = self.base / f"spare-{port}"  # made by pg_basebackup, as the servers' user
        ctl = (str(self.bindir / "pg_ctl"), "-D", str(datadir), "-w")
        self.basebackup(datadir, port)
        self.run(*ctl, "-l", str(datadir / "log"), "start")
        try:
            yield self.dsn(port), lambda: self.run(*ctl, "promote")
        finally:
            with contextlib.suppress(RuntimeError):
                self.run(*ctl, "-m", "immediate", "stop")
            shutil.rmtree(datadir, ignore_errors=True)


def _os_user() -> str:
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid()).pw_name
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)
    return "postgres"


@contextlib.contextmanager
def cluster(
    setup_sql: str, standby: bool = True, login: str = "agent", password: str | None = None
) -> Iterator[Cluster]:
    """A primary that has run setup_sql (as superuser) and, with standby, a hot standby
    streaming from it; both stopped and removed afterwards. login and password are the
    role setup_sql creates for the DSNs it hands out."""
    bindir = ensure_installed()
    user = _os_user()
    base = Path(tempfile.mkdtemp(prefix="agentplane-pg-"))
    pw = pwd.getpwnam(user)
    os.chown(base, pw.pw_uid, pw.pw_gid)
    c = Cluster(base, bindir, user, free_port(), free_port(), login, password)
    started: list[Path] = []
    try:
        primary, replica = base / "primary", base / "standby"
        c.pg(
            "initdb", "-D", str(primary), "-U", "postgres", "-E", "UTF8", "--locale=C",
            "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync",
        )  # fmt: skip
        with (primary / "postgresql.conf").open("a") as f:
            f.write(CONF.format(port=c.primary_port, sock=c.sock))
        c.pg("pg_ctl", "-D", str(primary), "-l", str(base / "primary.log"), "-w", "start")
        started.append(primary)
        with c.admin(c.primary_port) as pg:
            pg.execute(setup_sql.encode())
        if standby:
            c.basebackup(replica, c.standby_port)
            c.pg("pg_ctl", "-D", str(replica), "-l", str(base / "standby.log"), "-w", "start")
            started.append(replica)
            _wait_streaming(c)
        yield c
    finally:
        for datadir in reversed(started):
            with contextlib.suppress(RuntimeError):
                c.pg("pg_ctl", "-D", str(datadir), "-m", "immediate", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


def _wait_streaming(c: Cluster, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with c.admin(c.standby_port) as pg:
            row = pg.execute(b"SELECT status FROM pg_stat_wal_receiver").fetchone()
        if row and row[0] == "streaming":
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"standby never started streaming (see {c.base}/standby.log)")
        time.sleep(0.1)
