"""The SQL family: read-only queries on the replicas the plan grants, kept as evidence.

It proposes nothing: every query, run or refused, becomes a `sql-<n>.json` artifact, and
the evidence renders them. Connections open only when the plan grants the tool.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bot.core.canonical import canonical_json
from bot.core.record import RunRecord
from bot.families.base import ToolSpec
from bot.families.interface import (
    Artifact,
    EvidenceContext,
    FamilySession,
    NotGranted,
    RunContext,
    Section,
    Staged,
    ToolFamily,
    text_section,
)
from bot.families.sql.connections import resolve_all
from bot.families.sql.evidence import SqlEvidence, render_sql_evidence
from bot.families.sql.tools import SqlTools


def _is_evidence(name: str) -> bool:
    return name.startswith("sql-") and name.endswith(".json")


def sql_evidence(rec: RunRecord, read: Callable[[str], bytes]) -> list[SqlEvidence]:
    """The run's queries from its artifacts; read(sha256) is the audit store."""
    return [
        SqlEvidence.model_validate_json(read(a.sha256))
        for a in rec.artifacts
        if _is_evidence(a.name)
    ]


class _Granted(FamilySession):
    def __init__(self, ctx: RunContext) -> None:
        connections = resolve_all(
            ctx.plan.granted("sql_connection"),
            ctx.policy.sql_connections,
            ctx.policy.rule,
            ctx.environ,
        )
        self.evidence: list[SqlEvidence] = []
        self.sql = SqlTools(connections, self.evidence.append)

    def tools(self) -> Sequence[ToolSpec]:
        return self.sql.specs()

    def redact(self, text: str) -> str:
        return self.sql.redact(text)

    def finish(self) -> Staged:
        return Staged(
            artifacts=tuple(
                Artifact(
                    f"sql-{ev.seq}.json",
                    canonical_json(ev.model_dump(mode="json")),
                    "application/json",
                )
                for ev in self.evidence
            )
        )

    def close(self) -> None:
        self.sql.close()


class SqlFamily(ToolFamily):
    name = "sql"
    capabilities = ("sql",)

    def open(self, ctx: RunContext) -> FamilySession:
        if "sql" not in ctx.plan.granted("tool"):
            return NotGranted()
        return _Granted(ctx)

    def evidence(self, ctx: EvidenceContext) -> list[Section]:
        found = [
            SqlEvidence.model_validate_json(read())
            for name, read in ctx.artifacts
            if _is_evidence(name)
        ]
        if not found:
            return []
        return [text_section("SQL evidence", render_sql_evidence(found))]
