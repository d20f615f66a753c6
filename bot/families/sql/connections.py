"""Named SQL connections: policy names them, the broker's host supplies the DSN.

A DSN comes from the environment (`AGENTPLANE_SQL_<NAME>_DSN`, or the variable
policy names) or from a secrets file; never from a job file, the sandbox or
the model. Everything that leaves the broker goes through `redactor`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict

from bot.core.errors import AgentplaneError
from bot.core.policy import SqlConnectionPolicy

REDACTED = "[redacted]"
# Credentials that look like credentials even when we were not told about them.
_PATTERNS = (
    re.compile(r"(?i)(password\s*=\s*)('[^']*'|\S+)"),
    re.compile(r"(?i)(postgres(?:ql)?://[^:/@\s]+:)([^@\s]+)(?=@)"),
)


class SqlConfigError(AgentplaneError):
    """A SQL connection is not defined in policy, or its DSN is missing or unreadable."""


@dataclass(frozen=True)
class SqlConnection:
    name: str
    policy: SqlConnectionPolicy
    rule: str
    """`policies/x.yaml#sql_connections.<name>`: where limits and allow_analyze come from."""
    dsn: str = field(repr=False)

    def secrets(self) -> list[str]:
        """The DSN and its password, longest first so a password inside the DSN goes too."""
        out = [self.dsn]
        try:
            parts = conninfo_to_dict(self.dsn)
        except Exception:  # an unparsable DSN is still redacted whole
            parts = {}
        password = parts.get("password")
        if isinstance(password, str) and password:
            out.append(password)
        return sorted({s for s in out if s}, key=len, reverse=True)

    def describe(self) -> str:
        """Where it points, without credentials: for evidence and errors."""
        try:
            parts = conninfo_to_dict(self.dsn)
        except Exception:
            return self.name
        where = " ".join(
            f"{k}={parts[k]}" for k in ("host", "port", "dbname", "user") if parts.get(k)
        )
        return f"{self.name} ({where})" if where else self.name


def env_name(name: str) -> str:
    return "AGENTPLANE_SQL_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper() + "_DSN"


def resolve(
    name: str, policy: SqlConnectionPolicy, rule: str, env: Mapping[str, str]
) -> SqlConnection:
    var = policy.dsn_env or env_name(name)
    dsn = env.get(var, "").strip()
    if not dsn and policy.secrets_file:
        try:
            dsn = Path(policy.secrets_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            # The path is policy's, not secret; the content never goes in a message.
            raise SqlConfigError(
                f"SQL connection {name!r}: cannot read secrets file {policy.secrets_file}: "
                f"{exc.strerror}"
            ) from None
    if not dsn:
        where = f"${var}" + (f" or {policy.secrets_file}" if policy.secrets_file else "")
        raise SqlConfigError(f"SQL connection {name!r} has no DSN: set {where} on the bot's host")
    return SqlConnection(name, policy, rule, dsn)


def resolve_all(
    names: Iterable[str],
    policies: Mapping[str, SqlConnectionPolicy],
    rule: Callable[[str], str],
    env: Mapping[str, str],
) -> dict[str, SqlConnection]:
    """The granted connections; rule(key) names the policy rule (Policy.rule)."""
    out = {}
    for name in names:
        if name not in policies:
            raise SqlConfigError(
                f"SQL connection {name!r} is not defined in policy sql_connections"
            )
        out[name] = resolve(name, policies[name], rule(f"sql_connections.{name}"), env)
    return out


def redactor(connections: Iterable[SqlConnection]) -> Callable[[str], str]:
    secrets = sorted({s for c in connections for s in c.secrets()}, key=len, reverse=True)

    def redact(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, REDACTED)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
        return text

    return redact
