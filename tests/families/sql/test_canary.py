"""Canaries for SQL jobs: the host's secrets never leave it unmasked, on any path out.

The replica's DSN carries a canary password (a role of its own on the real standby), a
broker credential and a model key (named only by routing's `os.environ/...`) carry
others. The scripted model says them all, queries the replica for rows that spell them
(built by concatenation, so only the result holds the whole value), and runs a query
whose error message quotes one. Every blob and commit message of the audit branch,
the rendered evidence and the SQL evidence artifacts are scanned.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bot.adapters.git import GitRepo
from bot.adapters.sandbox.bwrap import BwrapBackend
from bot.core.render import render_evidence
from bot.families.sql.evidence import SqlEvidence, render_sql_evidence
from bot.run.engine import Engine
from tests.conftest import Scripted
from tests.run.test_canary import MODEL_KEY, audit_branch_leaks, name_model_key
from tests.support.postgres import Cluster

DB_PW = "canary-db-pw-5d17c0e9"
CRED_PW = "canary-sql-cred-pw-93b1"
CANARIES = (DB_PW, CRED_PW, MODEL_KEY)
ROLE = "canary_agent"


def halves(secret: str) -> str:
    """A SQL expression whose value is secret, while its text holds no copy of it."""
    cut = len(secret) // 2
    return f"'{secret[:cut]}' || '{secret[cut:]}'"


def leaks(text: str | bytes) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [c for c in CANARIES if c.encode() in data]


@pytest.fixture
def canary_dsn(pg_cluster: Cluster) -> Iterator[str]:
    """The standby, as a read-only role whose password is the canary."""
    with pg_cluster.admin(pg_cluster.primary_port) as pg:
        pg.execute(f"DROP ROLE IF EXISTS {ROLE}".encode())
        pg.execute(
            f"CREATE ROLE {ROLE} LOGIN PASSWORD '{DB_PW}';"
            f"GRANT USAGE ON SCHEMA shop TO {ROLE};"
            f"GRANT SELECT ON ALL TABLES IN SCHEMA shop TO {ROLE};"
            f"GRANT pg_read_all_stats TO {ROLE};".encode()
        )
    dsn = pg_cluster.dsn(pg_cluster.standby_port, user=ROLE, password=DB_PW)
    deadline = time.monotonic() + 30
    while True:  # the role reaches the standby by replication
        try:
            psycopg.connect(dsn).close()
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    yield dsn
    with pg_cluster.admin(pg_cluster.primary_port) as pg:
        pg.execute(f"DROP OWNED BY {ROLE}; DROP ROLE {ROLE}".encode())


def turns() -> list[dict[str, Any]]:
    spelled = ", ".join(f"{halves(c)} AS c{i}" for i, c in enumerate(CANARIES))
    return [
        {
            "content": f"My key is {MODEL_KEY}; the console password is {CRED_PW}.",
            "tool_calls": [
                {"name": "sql_query", "arguments": {"sql": f"SELECT {spelled}"}},
                {
                    "name": "sql_query",
                    "arguments": {"sql": f"SELECT '{DB_PW}' AS pw FROM shop.customers LIMIT 1"},
                },
            ],
        },
        {
            "content": "Now an error that quotes the value back.",
            "tool_calls": [
                # invalid input syntax for type integer: "<DB_PW>"
                {"name": "sql_query", "arguments": {"sql": f"SELECT ({halves(DB_PW)})::int"}},
            ],
        },
        {"content": f"Done. The replica's password is {DB_PW}, the key {MODEL_KEY}, {CRED_PW}."},
    ]


def test_sql_job_leaks_no_canary(
    demo_repo: Path,
    scripted_job: Scripted,
    canary_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AGENTPLANE_SQL_REPLICA_DSN", canary_dsn)
    monkeypatch.setenv(
        "AGENTPLANE_CREDENTIAL_ADMIN_CONSOLE", f"admin:{CRED_PW}@https://admin.internal.example.com"
    )
    monkeypatch.setenv("CANARY_LLM", MODEL_KEY)
    name_model_key(demo_repo)  # committed by scripted_job below
    job = scripted_job(
        "sql-echo",
        turns(),
        job_type="sql",
        tools=["sql"],
        prompt="Read the replica; change nothing.",
        scope={"sql": {"connection": "replica"}},
    )
    e = Engine(GitRepo(demo_repo), BwrapBackend())
    rec = e.start(e.request(job))
    assert rec.state == "completed", rec.transitions[-1].reason
    calls = rec.tool_calls
    assert [c.tool for c in calls] == ["sql_query"] * 3, calls
    assert [c.ok for c in calls] == [True, True, False], [c.result for c in calls]
    assert "invalid input syntax for type integer" in calls[2].result

    # The SQL evidence artifacts, as stored on the audit branch; the secrets did reach
    # the run (the queries answered with them), so the test can fail.
    stored = [
        e.audit.artifact(a.sha256)
        for a in rec.artifacts
        if a.name.startswith("sql-") and a.name.endswith(".json")
    ]
    assert len(stored) == 3 and all(leaks(blob) == [] for blob in stored)
    assert all(b"[REDACTED]" in blob or b"[redacted]" in blob for blob in stored)
    evidence = [SqlEvidence.model_validate_json(blob) for blob in stored]
    assert [ev.status for ev in evidence] == ["ok", "ok", "error"]
    sql_section = render_sql_evidence(evidence)
    assert "c0" in sql_section and leaks(sql_section) == []
    rendered = render_evidence(rec, e.patch(rec), e.evidence_sections(rec), e.redactor)
    assert leaks(rendered) == []
    assert leaks(e.load(rec.run_id).model_dump_json()) == []
    assert audit_branch_leaks(demo_repo) == []
