"""Evidence rendering and credential handling: pure."""

from __future__ import annotations

from pathlib import Path

import pytest
from psycopg import errors

from bot.core.policy import SqlConnectionPolicy, merge_policy
from bot.families.sql.classify import classify, normalised_literals
from bot.families.sql.connections import (
    REDACTED,
    SqlConfigError,
    env_name,
    redactor,
    resolve,
    resolve_all,
)
from bot.families.sql.evidence import (
    SHOWN_VALUE,
    SqlEvidence,
    cell,
    render_plan,
    render_rows,
    render_sql_evidence,
    render_table,
)
from bot.families.sql.execute import BIND_HINT, TYPE_HINT, _hint

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


PARALLEL = [
    {
        "Plan": {
            "Node Type": "Aggregate", "Strategy": "Hashed", "Partial Mode": "Finalize",
            "Parallel Aware": False, "Startup Cost": 1.0, "Total Cost": 2.0, "Plan Rows": 4,
            "Plan Width": 13, "Group Key": ["status"], "Inner Unique": False,
            "Plans": [
                {
                    "Node Type": "Gather", "Parent Relationship": "Outer",
                    "Startup Cost": 1.0, "Total Cost": 2.0, "Plan Rows": 8, "Plan Width": 13,
                    "Workers Planned": 2, "Workers Launched": 2, "Single Copy": False,
                    "Actual Startup Time": 1.0, "Actual Total Time": 2.0, "Actual Rows": 8,
                    "Actual Loops": 1, "Shared Hit Blocks": 2363, "Shared Read Blocks": 7,
                    "Temp Written Blocks": 0, "Workers": [],
                    "Plans": [
                        {
                            "Node Type": "Seq Scan", "Parallel Aware": True,
                            "Relation Name": "orders", "Alias": "orders", "Startup Cost": 0.0,
                            "Total Cost": 1.0, "Plan Rows": 1, "Plan Width": 5,
                            "Actual Loops": 0,
                        },
                        {
                            "Node Type": "Nested Loop", "Join Type": "Anti",
                            "Subplan Name": "SubPlan 1", "Startup Cost": 0.0,
                            "Total Cost": 1.0, "Plan Rows": 1, "Plan Width": 5,
                        },
                    ],
                }
            ],
        },
        "Planning": {"Shared Hit Blocks": 13, "Shared Read Blocks": 1},
        "Planning Time": 0.2,
        "Triggers": [],
        "JIT": {"Functions": 3},
        "Execution Time": 3.0,
    }
]  # fmt: skip


def test_plan_tree_is_complete_parallel_buffers_and_all() -> None:
    lines = render_plan(PARALLEL).splitlines()
    assert lines[0] == "Finalize HashAggregate  (cost=1.00..2.00 rows=4 width=13)"
    assert lines[1] == "  Group Key: status"  # a false flag (Inner Unique) is not a line
    assert lines[2].startswith("  ->  Gather  (cost=1.00..2.00 rows=8 width=13) (actual time=")
    assert lines[3:6] == [
        "        Workers Planned: 2",
        "        Workers Launched: 2",
        "        Buffers: shared hit=2363 read=7",
    ]
    assert lines[6] == (
        "        ->  Parallel Seq Scan on orders  (cost=0.00..1.00 rows=1 width=5) (never executed)"
    )
    assert lines[7:9] == [
        "        SubPlan 1",
        "        ->  Nested Loop Anti Join  (cost=0.00..1.00 rows=1 width=5)",
    ]
    assert lines[9:] == [
        "Planning:",
        "  Buffers: shared hit=13 read=1",
        "Planning Time: 0.200 ms",
        "JIT: Functions=3",
        "Execution Time: 3.000 ms",
    ]


def test_long_values_are_shown_whole_as_records() -> None:
    definition = "CREATE UNIQUE INDEX customers_pkey ON shop.customers USING btree (id)"
    text = render_rows(["indexname", "indexdef"], [["customers_pkey", definition]])
    assert text.splitlines() == [
        "-[ RECORD 1 ]----",
        "indexname | customers_pkey",
        f"indexdef  | {definition}",
    ]
    huge = render_rows(["v"], [["x" * (SHOWN_VALUE + 5)]])
    assert huge.endswith("… (5 more characters)")
    assert render_rows(["a"], [["1"]]) == render_table(["a"], [["1"]])


def test_pg_stat_statements_typed_literals_are_spelled_as_casts() -> None:
    text = "SELECT 1 FROM t WHERE at > now() - interval $1 AND d = date $2"
    assert normalised_literals(text) == (
        "SELECT 1 FROM t WHERE at > now() - $1::interval AND d = $2::date"
    )
    assert normalised_literals("SELECT 'interval $1'") is None  # a string is left alone
    assert normalised_literals("SELECT $1") is None
    assert normalised_literals("SELECT interval $1 +") is None  # unparsable stays as sent
    verdict = classify("EXPLAIN SELECT * FROM t WHERE a = $1 AND b > $3")
    assert (verdict.params, verdict.inner) == (3, "SELECT * FROM t WHERE a = $1 AND b > $3")
    assert classify("SELECT 1").params == 0


def test_parameter_errors_carry_a_hint() -> None:
    bind = errors.ProtocolViolation("bind message supplies 0 parameters, but ... requires 1")
    assert _hint(bind) == BIND_HINT
    assert _hint(errors.IndeterminateDatatype("could not determine")) == TYPE_HINT
    assert _hint(errors.SyntaxError("syntax error")) == ""
