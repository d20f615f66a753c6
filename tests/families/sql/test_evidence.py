"""Evidence rendering and credential handling: pure."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.policy import SqlConnectionPolicy, merge_policy
from bot.families.sql.connections import (
    REDACTED,
    SqlConfigError,
    env_name,
    redactor,
    resolve,
    resolve_all,
)
from bot.families.sql.evidence import (
    SqlEvidence,
    cell,
    render_plan,
    render_sql_evidence,
    render_table,
)

PW = "Tr0ub4dor-pw-unit"
DSN = f"host=db.internal port=5433 dbname=shop user=agent password={PW}"
RULE = "policies/default.yaml#sql_connections.replica"

PLAN = [
    {
        "Plan": {
            "Node Type": "Hash Join",
            "Startup Cost": 10.5,
            "Total Cost": 900.25,
            "Plan Rows": 1200,
            "Plan Width": 40,
            "Hash Cond": "(o.customer_id = c.id)",
            "Plans": [
                {
                    "Node Type": "Seq Scan",
                    "Relation Name": "orders",
                    "Schema": "shop",
                    "Alias": "o",
                    "Startup Cost": 0.0,
                    "Total Cost": 600.0,
                    "Plan Rows": 75000,
                    "Plan Width": 16,
                    "Filter": "(status = 'paid'::text)",
                    "Actual Startup Time": 0.01,
                    "Actual Total Time": 12.5,
                    "Actual Rows": 75000,
                    "Actual Loops": 1,
                }
            ],
        },
        "Planning Time": 0.2,
        "Execution Time": 20.0,
    }
]


def test_plan_renders_as_an_indented_tree_with_estimates_and_timings() -> None:
    text = render_plan(PLAN)
    lines = text.splitlines()
    assert lines[0] == "Hash Join  (cost=10.50..900.25 rows=1200 width=40)"
    assert lines[1] == "  Hash Cond: (o.customer_id = c.id)"
    assert lines[2].startswith("  ->  Seq Scan on shop.orders o  (cost=0.00..600.00 rows=75000")
    assert "(actual time=0.010..12.500 rows=75000 loops=1)" in lines[2]
    assert lines[3] == "        Filter: (status = 'paid'::text)"
    assert "Execution Time: 20.000 ms" in text


def test_table_and_truncated_redacted_values() -> None:
    redact = redactor([resolve("replica", SqlConnectionPolicy(), RULE, {env_name("replica"): DSN})])
    assert cell("x" * 100).endswith("…") and len(cell("x" * 100)) == 60
    assert cell(f"the password is {PW}", redact) == f"the password is {REDACTED}"
    assert cell(None) == "NULL"
    table = render_table(["id", "name"], [["1", "ann"], ["22", "bo"]])
    assert table.splitlines() == ["id | name", "---+-----", "1  | ann", "22 | bo"]


def test_render_sql_evidence_covers_ok_and_refused() -> None:
    ok = SqlEvidence(
        seq=1, connection="replica (host=db)", sql="SELECT 1", status="ok", rule="sql#read-only",
        columns=["a"], rows=[["1"]], row_count=1, plan=PLAN, duration_ms=1.25, row_cap=200,
    )  # fmt: skip
    refused = SqlEvidence(
        seq=2, connection="replica", sql="COPY t TO PROGRAM 'x'", status="refused",
        rule="sql#copy-program", reason="COPY ... PROGRAM runs a shell command",
    )  # fmt: skip
    text = render_sql_evidence([ok, refused])
    assert text.startswith("SQL evidence: 2 queries, 1 ran, 1 refused or failed")
    assert "1 row(s); 1.2 ms" in text and "Plan (EXPLAIN (FORMAT JSON)):" in text
    assert "-- query 2 on replica: refused [sql#copy-program]" in text
    assert render_sql_evidence([]) == "SQL: no queries."


def test_dsn_from_env_then_secrets_file(tmp_path: Path) -> None:
    pol = SqlConnectionPolicy(secrets_file=str(tmp_path / "dsn"))
    (tmp_path / "dsn").write_text(DSN + "\n")
    assert resolve("replica", pol, RULE, {}).dsn == DSN
    assert resolve("replica", pol, RULE, {"AGENTPLANE_SQL_REPLICA_DSN": "host=x"}).dsn == "host=x"
    custom = SqlConnectionPolicy(dsn_env="MY_DSN")
    assert resolve("replica", custom, RULE, {"MY_DSN": DSN}).dsn == DSN
    assert env_name("eu-replica.2") == "AGENTPLANE_SQL_EU_REPLICA_2_DSN"


def test_missing_dsn_and_unknown_connection_are_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(SqlConfigError, match=r"\$AGENTPLANE_SQL_REPLICA_DSN"):
        resolve("replica", SqlConnectionPolicy(), RULE, {})
    with pytest.raises(SqlConfigError, match="cannot read secrets file"):
        resolve("replica", SqlConnectionPolicy(secrets_file=str(tmp_path / "no")), RULE, {})
    with pytest.raises(SqlConfigError, match="not defined in policy"):
        resolve_all(["prod"], {}, lambda k: k, {})


def test_connection_never_shows_its_password() -> None:
    conn = resolve("replica", SqlConnectionPolicy(), RULE, {env_name("replica"): DSN})
    assert PW not in repr(conn) and PW not in conn.describe()
    assert conn.describe() == "replica (host=db.internal port=5433 dbname=shop user=agent)"
    redact = redactor([conn])
    assert PW not in redact(f"dsn: {DSN}") and PW not in redact(f"pw={PW}")
    # Credentials we were not told about are still caught by their shape.
    assert redact("password=other postgresql://u:p4ss@h/db") == (
        f"password={REDACTED} postgresql://u:{REDACTED}@h/db"
    )


def test_policy_merges_sql_connections_with_origins() -> None:
    policy = merge_policy(
        [
            ("policies/a.yaml", "sql_connections: {replica: {row_cap: 5}}\n"),
            ("policies/b.yaml", "owners: [x]\n"),
        ]
    )
    assert policy.sql_connections["replica"].row_cap == 5
    assert policy.rule("sql_connections.replica.row_cap") == (
        "policies/a.yaml#sql_connections.replica.row_cap"
    )
