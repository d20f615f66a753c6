"""Which functions a diagnostic query may call: an allowlist, as data. Pure.

A function the classifier lets through runs with the connection's rights, and
the classifier cannot see what it does. So a name is allowed only if it is a
PostgreSQL built-in (`pg_catalog`) that computes from its arguments or reads
state, and cannot change state, reach outside the server, or run a SQL string.
Everything else (unknown names, user-defined and extension functions) is
refused unless policy names it (`sql_connections.<name>.allow_functions`).

Some names are refused even when policy names them, because what they do is
exactly what the classifier exists to prevent: they run SQL text it never sees
(`ts_stat($$select pg_terminate_backend(...)$$)`), or they act on the server.

A bare name means the built-in only if no schema on the role's search path
defines the same name (an overload there can win resolution): the session
checks that when it connects and otherwise asks for `pg_catalog.name(...)`.

tests/sql/test_functions.py checks every allowed name against a real server's
`pg_proc`: it must exist in `pg_catalog`, and a volatile one must be listed in
VOLATILE_BUT_HARMLESS below, so adding a name is a reviewed decision.
"""

from __future__ import annotations

from collections.abc import Mapping


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


ALLOWED: Mapping[str, frozenset[str]] = {
    "math": _names(
        """
        abs cbrt ceil ceiling degrees div exp floor gcd lcm ln log log10 min_scale mod pi
        power radians round scale sign sqrt trim_scale trunc width_bucket random
        acos acosd asin asind atan atand atan2 atan2d cos cosd cot cotd sin sind tan tand
        sinh cosh tanh asinh acosh atanh
        """
    ),
    "casts": _names(
        """
        bool int2 int4 int8 float4 float8 numeric text varchar bpchar date time timestamp
        timestamptz interval
        """
    ),
    "string": _names(
        """
        ascii bit_length btrim char_length character_length chr concat concat_ws
        convert convert_from convert_to decode encode format initcap left length lower lpad
        ltrim md5 normalize is_normalized octet_length overlay position quote_ident
        quote_literal quote_nullable regexp_count regexp_instr regexp_like regexp_match
        regexp_matches regexp_replace regexp_split_to_array regexp_split_to_table
        regexp_substr repeat replace reverse right rpad rtrim split_part starts_with strpos
        substr substring to_hex translate upper string_to_array string_to_table sha224 sha256
        sha384 sha512 get_byte get_bit similar_to_escape like_escape parse_ident
        pg_client_encoding to_char to_number unistr
        """
    ),
    "date_time": _names(
        """
        age clock_timestamp date_bin date_part date_trunc extract isfinite justify_days
        justify_hours justify_interval make_date make_interval make_time make_timestamp
        make_timestamptz now statement_timestamp timeofday transaction_timestamp to_date
        to_timestamp timezone overlaps
        """
    ),
    "aggregate": _names(
        """
        count sum avg min max array_agg string_agg bool_and bool_or every bit_and bit_or
        bit_xor json_agg jsonb_agg json_object_agg jsonb_object_agg stddev stddev_pop
        stddev_samp variance var_pop var_samp corr covar_pop covar_samp regr_avgx regr_avgy
        regr_count regr_intercept regr_r2 regr_slope regr_sxx regr_sxy regr_syy
        percentile_cont percentile_disc mode range_agg range_intersect_agg
        """
    ),
    "window": _names(
        """
        row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value
        last_value nth_value
        """
    ),
    "array_set": _names(
        """
        array_append array_cat array_dims array_fill array_length array_lower array_ndims
        array_position array_positions array_prepend array_remove array_replace
        array_to_string array_upper cardinality trim_array unnest generate_series
        generate_subscripts num_nulls num_nonnulls
        """
    ),
    "json": _names(
        """
        to_json to_jsonb array_to_json row_to_json json_build_array json_build_object
        jsonb_build_array jsonb_build_object json_object jsonb_object json_array_elements
        json_array_elements_text jsonb_array_elements jsonb_array_elements_text
        json_array_length jsonb_array_length json_each json_each_text jsonb_each
        jsonb_each_text json_extract_path json_extract_path_text jsonb_extract_path
        jsonb_extract_path_text json_object_keys jsonb_object_keys json_populate_record
        jsonb_populate_record json_populate_recordset jsonb_populate_recordset json_to_record
        jsonb_to_record json_to_recordset jsonb_to_recordset json_strip_nulls
        jsonb_strip_nulls json_typeof jsonb_typeof jsonb_set jsonb_set_lax jsonb_insert
        jsonb_pretty jsonb_path_exists jsonb_path_match jsonb_path_query
        jsonb_path_query_array jsonb_path_query_first
        """
    ),
    "text_search": _names(
        # Not ts_stat or ts_rewrite: those take a query string (REFUSED_SQL_TEXT).
        """
        to_tsvector to_tsquery plainto_tsquery phraseto_tsquery websearch_to_tsquery ts_rank
        ts_rank_cd ts_headline setweight strip numnode querytree tsvector_to_array
        array_to_tsvector ts_lexize
        """
    ),
    "range_network_enum": _names(
        """
        isempty lower_inc upper_inc lower_inf upper_inf range_merge int4range int8range
        numrange tsrange tstzrange daterange host hostmask masklen netmask network broadcast
        abbrev family inet_merge inet_same_family set_masklen enum_first enum_last enum_range
        """
    ),
    "session_info": _names(
        # Reads only. current_setting of a superuser-only setting is refused by the server.
        """
        current_database current_schema current_schemas current_setting current_query
        pg_backend_pid pg_postmaster_start_time pg_conf_load_time version
        pg_trigger_depth pg_jit_available pg_listening_channels
        pg_notification_queue_usage pg_current_snapshot pg_typeof pg_sleep pg_sleep_for
        pg_sleep_until
        """
    ),
    "replication_status": _names(
        # What a replica reports about its own replay: the slow-queries job's "how stale?".
        """
        pg_is_in_recovery pg_last_wal_receive_lsn pg_last_wal_replay_lsn
        pg_last_xact_replay_timestamp pg_is_wal_replay_paused pg_get_wal_replay_pause_state
        pg_wal_lsn_diff
        """
    ),
    "stats_and_sizes": _names(
        # Helpers for pg_stat_* views, locks and sizes (the slow-queries job and EXPLAIN work).
        """
        pg_size_pretty pg_size_bytes pg_relation_size pg_total_relation_size pg_table_size
        pg_indexes_size pg_database_size pg_tablespace_size pg_column_size
        pg_blocking_pids pg_safe_snapshot_blocking_pids pg_stat_get_numscans
        pg_stat_get_tuples_returned pg_stat_get_tuples_fetched pg_stat_get_live_tuples
        pg_stat_get_dead_tuples pg_stat_get_last_vacuum_time
        pg_stat_get_last_autovacuum_time pg_stat_get_last_analyze_time
        pg_stat_get_last_autoanalyze_time pg_stat_get_blocks_fetched pg_stat_get_blocks_hit
        """
    ),
    "catalog": _names(
        # Read the schema: definitions, descriptions, visibility, privileges, partitions.
        """
        format_type pg_get_viewdef pg_get_indexdef pg_get_constraintdef pg_get_functiondef
        pg_get_function_arguments pg_get_function_result pg_get_triggerdef pg_get_expr
        pg_get_userbyid pg_get_keywords pg_get_serial_sequence pg_get_statisticsobjdef
        pg_get_partkeydef pg_get_ruledef obj_description col_description
        shobj_description pg_table_is_visible pg_type_is_visible pg_function_is_visible
        has_table_privilege has_column_privilege has_schema_privilege
        has_database_privilege has_function_privilege has_sequence_privilege pg_has_role
        to_regclass to_regtype to_regproc to_regprocedure to_regnamespace to_regrole
        pg_index_column_has_property pg_index_has_property pg_indexam_has_property
        pg_partition_tree pg_partition_root pg_partition_ancestors pg_options_to_table
        pg_collation_for pg_encoding_to_char pg_char_to_encoding
        """
    ),
    "misc": _names("gen_random_uuid"),
}

# Allowed though volatile: nothing they do outlives the statement. A random number, the
# clock and a sleep (bounded by statement_timeout), or a live reading of the server
# (sizes, replay position, lock waits), which is why the server marks them volatile.
# Everything else allowed is immutable or stable: the server's own promise that the
# function does not modify the database.
VOLATILE_BUT_HARMLESS = _names(
    """
    random clock_timestamp timeofday pg_sleep pg_sleep_for pg_sleep_until gen_random_uuid
    current_query pg_jit_available pg_notification_queue_usage pg_blocking_pids
    pg_safe_snapshot_blocking_pids pg_database_size pg_indexes_size pg_relation_size
    pg_table_size pg_tablespace_size pg_total_relation_size pg_partition_ancestors
    pg_partition_tree pg_is_in_recovery pg_is_wal_replay_paused
    pg_get_wal_replay_pause_state pg_last_wal_receive_lsn pg_last_wal_replay_lsn
    pg_last_xact_replay_timestamp
    """
)

# Run a SQL string (or a cursor's query) that the classifier never parses.
REFUSED_SQL_TEXT = _names(
    """
    ts_stat ts_rewrite query_to_xml query_to_xml_and_xmlschema query_to_xmlschema
    cursor_to_xml cursor_to_xmlschema table_to_xml table_to_xml_and_xmlschema
    schema_to_xml schema_to_xml_and_xmlschema database_to_xml
    database_to_xml_and_xmlschema crosstab connectby pg_background_launch
    run_command_on_workers run_command_on_shards run_command_on_placements
    """
)
REFUSED_SQL_TEXT_PREFIXES = ("dblink", "crosstab", "run_command_on_")

# Act instead of read: end sessions, change settings, write WAL or files, take locks,
# advance sequences, reach other servers. Named so the refusal says what it would do.
REFUSED_SIDE_EFFECT = _names(
    """
    pg_terminate_backend pg_cancel_backend set_config setseed pg_reload_conf
    pg_rotate_logfile pg_switch_wal pg_create_restore_point pg_backup_start
    pg_backup_stop pg_start_backup pg_stop_backup pg_promote pg_log_backend_memory_contexts
    pg_notify pg_logical_emit_message pg_import_system_collations nextval setval
    txid_current pg_current_xact_id pg_stat_statements_reset pg_export_snapshot
    """
)
REFUSED_SIDE_EFFECT_PREFIXES = (
    "lo_",
    "pg_advisory",
    "pg_try_advisory",
    "pg_stat_reset",
    "pg_replication_",
    "pg_create_",
    "pg_drop_",
    "pg_wal_replay_",
    "pg_read_",
    "pg_ls_",
    "pg_file_",
    "pg_stat_file",
)

ALL_ALLOWED = frozenset().union(*ALLOWED.values())
