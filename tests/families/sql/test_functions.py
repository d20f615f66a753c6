"""The function allowlist, checked against a real server's catalog."""

from __future__ import annotations

from bot.families.sql.functions import ALL_ALLOWED, VOLATILE_BUT_HARMLESS
from tests.support.postgres import Cluster


def test_every_allowed_function_is_a_builtin_and_volatile_ones_are_reviewed(
    pg_cluster: Cluster,
) -> None:
    with pg_cluster.admin(pg_cluster.standby_port) as pg:
        rows = pg.execute(
            b"SELECT p.proname, bool_or(p.provolatile = 'v') FROM pg_proc p"
            b" WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname = ANY(%s)"
            b" GROUP BY p.proname",
            (sorted(ALL_ALLOWED),),
        ).fetchall()
    found = {name: volatile for name, volatile in rows}
    # A name that is not in pg_catalog would resolve to whatever a user created under it.
    assert sorted(ALL_ALLOWED - found.keys()) == []
    volatile = {name for name, v in found.items() if v}
    assert sorted(volatile - VOLATILE_BUT_HARMLESS) == [], sorted(volatile - VOLATILE_BUT_HARMLESS)
    assert sorted(VOLATILE_BUT_HARMLESS - ALL_ALLOWED) == []
