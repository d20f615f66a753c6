"""Least privilege for the role a SQL connection logs in as: what is too much, and why. Pure.

The classifier cannot see functions reached through views, operators, casts or
attribute notation, nor what a SECURITY DEFINER function does. So the role
itself must be unable to do harm: read-only grants, nothing more. A connection
refuses to run anything as a role that holds, directly or through any role it
is a member of (inherited or only reachable by SET ROLE), one of the following.

Allowed on purpose, because diagnostics need them and they cannot change state,
reach outside the server or read table data beyond the grants: pg_monitor and
what it contains (pg_read_all_stats, pg_read_all_settings, pg_stat_scan_tables),
and pg_use_reserved_connections. pg_read_all_settings can show primary_conninfo,
whose password the redactor masks by pattern like any `password=`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

# Predefined roles, by what they would let a query (or a function it reaches) do.
DANGEROUS_ROLES: Mapping[str, str] = {
    "pg_read_server_files": "reads any file the server can read (COPY FROM, pg_read_file)",
    "pg_write_server_files": "writes files on the server (COPY TO a file)",
    "pg_execute_server_program": "runs programs on the server (COPY ... PROGRAM)",
    "pg_signal_backend": "cancels and terminates other sessions",
    "pg_read_all_data": "reads every table, whatever the grants say",
    "pg_write_all_data": "writes every table, whatever the grants say",
    "pg_checkpoint": "forces checkpoints",
    "pg_create_subscription": "creates subscriptions that connect to other servers",
    "pg_maintain": "runs VACUUM, ANALYZE, REINDEX, REFRESH and LOCK on every table",
    "pg_database_owner": "owns the database",
}
# Role attributes (pg_roles columns), in the order ROLE_QUERY selects them; rolsuper first.
DANGEROUS_ATTRIBUTES: Mapping[str, str] = {
    "rolsuper": "is a superuser",
    "rolcreaterole": "can create roles",
    "rolcreatedb": "can create databases",
    "rolreplication": "can open replication connections (a copy of every table)",
    "rolbypassrls": "bypasses row-level security",
}
# Every role the session's role is a member of, itself included. The comment marks the
# query as the control plane's, so top_queries leaves it out. MEMBER rather than
# USAGE: a role reachable only by SET ROLE is still one statement away.
ROLE_QUERY = (
    "/* agentplane */ SELECT current_user, r.rolname, "
    + ", ".join(f"r.{a}" for a in DANGEROUS_ATTRIBUTES)
    + " FROM pg_catalog.pg_roles r WHERE pg_catalog.pg_has_role(current_user, r.oid, 'MEMBER')"
    " ORDER BY r.rolname"
).encode()


@dataclass(frozen=True)
class RoleRow:
    """One row of ROLE_QUERY: a role the session's role is (or is a member of)."""

    user: str
    role: str
    attributes: tuple[bool, ...]


def role_problems(rows: Sequence[RoleRow]) -> list[str]:
    """What makes the role more than read-only, as phrases ('is a superuser'); empty if fine."""
    # A superuser is a member of every role: say so once, not once per predefined role.
    if any(r.role == r.user and r.attributes[0] for r in rows):
        return [DANGEROUS_ATTRIBUTES["rolsuper"]]
    problems: list[str] = []
    for row in rows:
        own = row.role == row.user
        for what, on in zip(DANGEROUS_ATTRIBUTES.values(), row.attributes, strict=True):
            if on:
                problems.append(what if own else f"is a member of {row.role}, which {what}")
        if row.role in DANGEROUS_ROLES:
            problems.append(f"is a member of {row.role}, which {DANGEROUS_ROLES[row.role]}")
    return problems
