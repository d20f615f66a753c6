"""Where runs are kept: the audit branch as the engine reads and writes it.

Every record is redacted before it is appended and verified before it is read
(chain, signatures by policy's signers, the local anchor); artifacts are stored by
the digest of what is stored, i.e. after redaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from pydantic import ValidationError

from bot.adapters.audit.log import AuditLog
from bot.adapters.audit.trust import Trust
from bot.core.canonical import sha256_hex
from bot.core.errors import RunError
from bot.core.policy import Policy
from bot.core.record import IN_FLIGHT, ArtifactRef, ModelCall, RunRecord, State, ToolCall
from bot.families.interface import Artifact
from bot.run.journal import Journal
from bot.run.owner import is_dead, this_process
from bot.run.redact import Redactor


class RunStore:
    def __init__(self, audit: AuditLog, redactor: Redactor, now: Callable[[], str]) -> None:
        self.audit = audit
        self.redactor = redactor
        """The one redactor for records, evidence and commit messages."""
        self.now = now
        self.trusted = False
        """Whether policy's signers are set: nothing is read before they are."""

    def trust(self, policy: Policy) -> None:
        """Read records only through policy's signers (plus this host's own key)."""
        audit = policy.audit
        self.audit.trust(Trust.from_policy(audit.signers, audit.require_signatures_from))
        self.trusted = True

    def load(self, run_id: str) -> RunRecord:
        """The run's newest record, verified first (AuditError otherwise)."""
        assert self.trusted, "RunStore.trust(policy) comes before any read"
        entry = self.audit.latest(run_id)
        if entry is None:
            raise RunError(f"no run {run_id!r} in the audit log (see `agentplane audit log`)")
        return RunRecord.model_validate(entry.record)

    def stale(self) -> list[RunRecord]:
        """Runs in flight whose owning process died (read only)."""
        assert self.trusted, "RunStore.trust(policy) comes before any read"
        stale = []
        for run_id in self.audit.run_ids():
            entry = self.audit.latest(run_id)
            if entry is None or entry.record.get("state") not in IN_FLIGHT:
                continue
            if not is_dead(entry.record.get("owner")):
                continue
            try:
                stale.append(RunRecord.model_validate(entry.record))
            except ValidationError:
                continue  # not a run this engine wrote: nothing it could resume
        return stale

    def advance(
        self,
        rec: RunRecord,
        state: State,
        reason: str,
        artifacts: Mapping[str, bytes] | None = None,
    ) -> RunRecord:
        """Move the run to state and append its record, with this step's artifacts."""
        rec.advance(state, self.now(), self.redactor(reason))  # doors print this record too
        rec.owner = this_process() if state in IN_FLIGHT else None
        # Strings only: digests and structure stay, so the record still verifies.
        record = self.redactor.json(rec.model_dump(mode="json"))
        self.audit.append(rec.run_id, record, artifacts or {})
        self.journal(rec.run_id).clear()  # all it held is in the record just appended
        return rec

    def journal(self, run_id: str) -> Journal:
        """The run's calls between two records (bot.run.journal)."""
        return Journal(self.audit.key_dir / "journal", run_id, self.redactor.json)

    def fold_journal(self, rec: RunRecord) -> tuple[int, int]:
        """Put the calls a dead process journaled, but never recorded, into its record;
        returns how many model calls and tool calls were added."""
        models = {m.seq for m in rec.model_calls}
        tools = {t.seq for t in rec.tool_calls}
        added = [0, 0]
        for kind, entry in self.journal(rec.run_id).entries():
            try:
                if kind == "model":
                    call = ModelCall.model_validate(entry)
                    if call.seq not in models:
                        models.add(call.seq)
                        rec.model_calls.append(call)
                        rec.cost_usd = round(rec.cost_usd + (call.cost_usd or 0.0), 6)
                        added[0] += 1
                else:
                    tool = ToolCall.model_validate(entry)
                    if tool.seq not in tools:
                        tools.add(tool.seq)
                        rec.tool_calls.append(tool)
                        added[1] += 1
            except ValidationError:
                continue  # not a call this engine wrote
        rec.model_calls.sort(key=lambda m: m.seq)
        rec.tool_calls.sort(key=lambda t: t.seq)
        return added[0], added[1]

    def keep(self, rec: RunRecord, a: Artifact, into: dict[str, bytes]) -> None:
        """Name the artifact on the record (replacing one of the same name) and add its
        stored bytes to `into`, the artifacts of the next append."""
        data = self.redacted(a)
        digest = sha256_hex(data)
        rec.artifacts = [x for x in rec.artifacts if x.name != a.name]
        rec.artifacts.append(
            ArtifactRef(name=a.name, sha256=digest, size=len(data), media_type=a.media_type)
        )
        into[digest] = data

    def redacted(self, a: Artifact) -> bytes:
        """An artifact as it is stored: redacted before hashing, so the record names what
        is stored; binary media are never decoded (see Artifact.redaction)."""
        if a.redaction != "none" and a.media_type == "application/zip":
            return self.redactor.zip(a.data)
        if a.redaction == "none" or not _is_text(a.media_type):
            return a.data
        text = a.data.decode("utf-8", "replace")
        return (
            self.redactor.known(text) if a.redaction == "known" else self.redactor(text)
        ).encode()

    def artifact(self, sha256: str) -> bytes:
        return self.audit.artifact(sha256)

    def named(self, rec: RunRecord, name: str) -> bytes | None:
        ref = rec.artifact(name)
        return self.audit.artifact(ref.sha256) if ref else None


def _is_text(media_type: str) -> bool:
    return media_type.startswith("text/") or media_type.endswith("json")
