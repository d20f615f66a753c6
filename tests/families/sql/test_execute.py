"""Server-side guards of one statement: the standby re-check per transaction and the byte cap."""

from __future__ import annotations

from bot.core.policy import SqlConnectionPolicy
from bot.families.sql.classify import check
from bot.families.sql.connections import SqlConnection
from bot.families.sql.evidence import SqlEvidence
from bot.families.sql.tools import SqlTools
from tests.families.sql.conftest import Make
from tests.support.postgres import Cluster

RULE = "policies/default.yaml#sql_connections.replica"


def test_a_standby_promoted_mid_run_is_refused_at_the_next_transaction(
    pg_cluster: Cluster,
) -> None:
    # A standby of its own: promoting the shared one would break every other test.
    with pg_cluster.spare_standby() as (dsn, promote):
        conn = SqlConnection("replica", SqlConnectionPolicy(), RULE, dsn)
        evidence: list[SqlEvidence] = []
        tools = SqlTools({"replica": conn}, evidence.append)
        try:
            tools.execute("replica", "SELECT 1", False, False)
            promote()
            out = tools.query({"sql": "SELECT 2"})
        except Exception as exc:  # the refusal is raised to the broker
            out = str(exc)
        finally:
            tools.close()
        assert [e.status for e in evidence] == ["ok", "refused"], out
        assert evidence[-1].rule == f"{RULE}.require_standby"
        assert "not a hot standby" in out and "start of this transaction" in evidence[-1].reason


def test_results_are_cut_at_the_byte_cap_and_the_evidence_says_so(make_tools: Make) -> None:
    # One row, 20,000 emails (368,893 bytes): far under the row cap, far over 64 KiB.
    tools, evidence = make_tools()
    sql = "SELECT string_agg(email, ',') FROM shop.customers"
    out = tools.query({"sql": sql}).output
    ev = evidence[-1]
    assert ev.status == "ok" and ev.byte_capped and ev.byte_cap == 65536 and ev.row_count == 1
    assert "1 row(s) (byte cap 65536 hit: result cut at 65536 bytes)" in out
    result = tools.sessions["replica"].run(sql, check(sql), False, False)
    assert result.byte_capped and len(result.rows[0][0]) == 65536
    assert result.rows[0][0].startswith("c1@example.com,c2@example.com,")


def test_the_byte_cap_stops_the_fetch_before_the_row_cap(make_tools: Make) -> None:
    tools, evidence = make_tools(byte_cap=1000)
    tools.query({"sql": "SELECT id, email FROM shop.customers ORDER BY id"})
    ev = evidence[-1]
    assert ev.byte_capped and not ev.capped and 40 < ev.row_count < 200
    assert sum(len(v.encode()) for row in ev.rows for v in row) <= 1000
    # A result under both caps is not marked.
    tools.query({"sql": "SELECT email FROM shop.customers WHERE id < 5"})
    assert not evidence[-1].byte_capped and evidence[-1].row_count == 4
