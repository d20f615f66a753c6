"""A real PostgreSQL primary and streaming hot standby in a temp dir, from Debian's packages.

The primary loads pg_stat_statements and a sample shop schema; the standby is
made with `pg_basebackup -R` and listens on its own port. The agent role has
read-only grants and nothing more (the connection refuses any other kind); the
over-privileged roles exist so tests can show that refusal. initdb refuses
root, so as root the servers run as the `postgres` OS user. Used by the tests
and by bench/bench_sql.py.
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

PROJECT = Path(__file__).resolve().parents[2]
PASSWORD = "Hunter2-s3cr3t-PW-7f3a"  # recognisable, so tests can prove it never leaks
AGENT = "agent"
# Roles the connection must refuse, one per kind of excess privilege.
SUPERUSER = "agent_super"
SIGNALLER = "agent_ops"
"""A member of pg_signal_backend only through another role (`ops`)."""
FILE_READER = "agent_files"
CREATOR = "agent_creator"
SHADOWED = "agent_shadowed"
"""Read-only, but its search_path starts with a schema that overloads upper()."""

SCHEMA = f"""
CREATE EXTENSION pg_stat_statements;
CREATE SCHEMA shop;
CREATE TABLE shop.customers (id int PRIMARY KEY, name text, email text, region text);
INSERT INTO shop.customers
  SELECT g, 'customer ' || g, 'c' || g || '@example.com', (ARRAY['eu','us','apac'])[1 + g % 3]
  FROM generate_series(1, 20000) g;
-- No index on customer_id, status or created_at: that is what makes the workload slow.
CREATE TABLE shop.orders (
  id bigint PRIMARY KEY, customer_id int, status text, total numeric(10,2), created_at timestamptz
);
INSERT INTO shop.orders
  SELECT g, 1 + (g::bigint * 7919) % 20000, (ARRAY['new','paid','shipped','cancelled'])[1 + g % 4],
         (g % 500) + 0.99, now() - (g || ' minutes')::interval
  FROM generate_series(1, 300000) g;
CREATE SEQUENCE shop.invoice_no;
CREATE TABLE shop.notes (id int PRIMARY KEY, body text);
INSERT INTO shop.notes VALUES (1, 'ops: the agent password is {PASSWORD}, rotate it');
-- A volatile function that writes, run with its owner's (superuser's) rights: the
-- classifier cannot see inside it, so only the standby and the transaction stop it.
CREATE FUNCTION shop.touch_order(oid bigint) RETURNS int LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN UPDATE shop.orders SET status = 'touched' WHERE id = oid; RETURN 1; END $$;
CREATE ROLE {AGENT} LOGIN PASSWORD '{PASSWORD}';
GRANT USAGE ON SCHEMA shop TO {AGENT};
GRANT SELECT ON ALL TABLES IN SCHEMA shop TO {AGENT};
GRANT pg_read_all_stats TO {AGENT};
CREATE ROLE {SUPERUSER} LOGIN SUPERUSER PASSWORD '{PASSWORD}';
CREATE ROLE ops NOLOGIN;
GRANT pg_signal_backend TO ops;
CREATE ROLE {SIGNALLER} LOGIN PASSWORD '{PASSWORD}' IN ROLE ops;
CREATE ROLE {FILE_READER} LOGIN PASSWORD '{PASSWORD}' IN ROLE pg_read_server_files;
CREATE ROLE {CREATOR} LOGIN CREATEDB CREATEROLE PASSWORD '{PASSWORD}';
CREATE SCHEMA shady;
CREATE FUNCTION shady.upper(integer) RETURNS text LANGUAGE sql AS $$SELECT 'shadowed'$$;
CREATE ROLE {SHADOWED} LOGIN PASSWORD '{PASSWORD}';
ALTER ROLE {SHADOWED} SET search_path = shady, public;
GRANT USAGE ON SCHEMA shop, shady TO {SIGNALLER}, {FILE_READER}, {CREATOR}, {SHADOWED};
GRANT SELECT ON ALL TABLES IN SCHEMA shop TO {SIGNALLER}, {FILE_READER}, {CREATOR}, {SHADOWED};
ANALYZE;
"""

# The replica's own workload: pg_stat_statements on a standby counts what ran there.
WORKLOAD = [
    (
        "SELECT c.region, count(*), sum(o.total) FROM shop.orders o"
        " JOIN shop.customers c ON c.id = o.customer_id WHERE o.status = 'paid'"
        " GROUP BY c.region",
        3,
    ),
    ("SELECT * FROM shop.orders WHERE customer_id = 42", 8),
    ("SELECT count(*) FROM shop.orders WHERE created_at > now() - interval '1 day'", 4),
    ("SELECT name FROM shop.customers WHERE id = 7", 20),
]
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


class ClusterUnavailable(Exception):
    """PostgreSQL is not installed and cannot be installed here (not root)."""


def pg_bin() -> Path | None:
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name)
    )
    return found[-1].parent if found else None


def ensure_installed() -> Path:
    if (bindir := pg_bin()) is not None:
        return bindir
    if os.geteuid() != 0:
        raise ClusterUnavailable(
            "PostgreSQL is not installed and we are not root: "
            "apt-get install postgresql-15 postgresql-contrib (or run `make test` as root)"
        )
    subprocess.run([str(PROJECT / "scripts/host-deps")], check=True)
    if (bindir := pg_bin()) is None:
        raise RuntimeError("scripts/host-deps ran but no /usr/lib/postgresql/*/bin/initdb")
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

    @property
    def sock(self) -> Path:
        return self.base

    def dsn(self, port: int, user: str = AGENT, password: str | None = PASSWORD) -> str:
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

    @contextlib.contextmanager
    def spare_standby(self) -> Iterator[tuple[str, Callable[[], None]]]:
        """A second standby of the same primary, to break (promote) without touching the
        shared one: yields its DSN and a promote() that returns once it accepts writes."""
        port = free_port()
        datadir = self.base / f"spare-{port}"  # made by pg_basebackup, as the servers' user
        ctl = (str(self.bindir / "pg_ctl"), "-D", str(datadir), "-w")
        self.pg(
            "pg_basebackup", "-D", str(datadir), "-h", str(self.sock), "-p",
            str(self.primary_port), "-U", "postgres", "-R", "-X", "stream", "-c", "fast",
        )  # fmt: skip
        with (datadir / "postgresql.conf").open("a") as f:
            f.write(f"port = {port}\n")
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
def cluster() -> Iterator[Cluster]:
    bindir = ensure_installed()
    user = _os_user()
    base = Path(tempfile.mkdtemp(prefix="agentplane-pg-"))
    pw = pwd.getpwnam(user)
    os.chown(base, pw.pw_uid, pw.pw_gid)
    c = Cluster(base, bindir, user, free_port(), free_port())
    started: list[Path] = []
    try:
        primary, standby = base / "primary", base / "standby"
        c.pg(
            "initdb", "-D", str(primary), "-U", "postgres", "-E", "UTF8", "--locale=C",
            "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync",
        )  # fmt: skip
        with (primary / "postgresql.conf").open("a") as f:
            f.write(CONF.format(port=c.primary_port, sock=c.sock))
        c.pg("pg_ctl", "-D", str(primary), "-l", str(base / "primary.log"), "-w", "start")
        started.append(primary)
        with c.admin(c.primary_port) as pg:
            pg.execute(SCHEMA.encode())
        c.pg(
            "pg_basebackup", "-D", str(standby), "-h", str(c.sock), "-p", str(c.primary_port),
            "-U", "postgres", "-R", "-X", "stream", "-c", "fast",
        )  # fmt: skip
        with (standby / "postgresql.conf").open("a") as f:
            f.write(f"port = {c.standby_port}\n")
        c.pg("pg_ctl", "-D", str(standby), "-l", str(base / "standby.log"), "-w", "start")
        started.append(standby)
        _wait_streaming(c)
        with psycopg.connect(c.standby_dsn) as pg:
            for sql, times in WORKLOAD:
                for _ in range(times):
                    pg.execute(sql.encode()).fetchall()
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
