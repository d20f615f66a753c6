"""Verification of the audit branch: the chain, signatures, append-only history,
artifacts, anchor.

`read_snapshot` (snapshot.py) does all the git reading; `check` is a pure function of
what it read, so every tamper case can be tested on plain data as well as on real
repositories.
Tampering is reported as findings, never raised. Signatures are judged against a trust
set (policy's signers plus the verifier's own key, trust.py): unsigned v1 entries are
counted, entries by a key revoked later are warnings, and an unknown key, a revoked key
after its revocation, a bad signature or a missing signature where one is required fail.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.adapters.audit.log import (
    AuditLog,
    artifact_name,
    artifact_path,
    artifact_refs,
    entry_path,
    entry_seq,
    parse_anchor,
    parse_entry,
)
from bot.adapters.audit.snapshot import CommitInfo, Snapshot, StoredArtifact, read_snapshot
from bot.adapters.audit.trust import ChainJudge, Trust
from bot.core.canonical import canonical_json, sha256_hex
from bot.core.errors import AuditError

KINDS = frozenset(
    {
        "modified",
        "deleted",
        "reordered",
        "artifact",
        "history",
        "anchor",
        "malformed",
        "signature",  # bad, unknown or revoked key
        "unsigned",  # unsigned where a signature is required
    }
)
WARNING_KINDS = frozenset({"revoked_later"})
_HINT = "compare with a trusted clone: git log -p " + AuditLog.BRANCH


def _hint(path: str) -> str:
    return f"{_HINT} -- {path}"


@dataclass(frozen=True)
class Finding:
    seq: int | None
    kind: str
    message: str


@dataclass(frozen=True)
class VerifyReport:
    entries: int
    artifacts: int
    head: str | None
    findings: tuple[Finding, ...]
    unsigned: int = 0  # v1 entries, written before signing
    signed: int = 0
    warnings: tuple[Finding, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.findings


def verify(
    log: AuditLog, expect_head: str | None = None, trust: Trust | None = None
) -> VerifyReport:
    """Verify the branch; `trust` defaults to the log's own (policy given to `log.trust`
    plus this host's key). Reads only: no key, lock or anchor is created."""
    return check(read_snapshot(log), expect_head, log.trust_set() if trust is None else trust)


# -- checking --------------------------------------------------------------------------


@dataclass
class _Entry:
    seq: int  # from the path
    stored_seq: int
    prev: str | None
    digest: str
    record: dict[str, Any]
    doc: dict[str, Any]


@dataclass
class _Findings:
    items: dict[tuple[str, int | None], Finding] = field(default_factory=dict)

    def add(self, kind: str, seq: int | None, message: str) -> None:
        # One finding per (kind, seq): several checks often see the same tampering.
        self.items.setdefault((kind, seq), Finding(seq, kind, message))

    def sorted(self) -> tuple[Finding, ...]:
        order = sorted(self.items.values(), key=lambda f: (f.seq is None, f.seq or 0, f.kind))
        return tuple(order)


def _parse_entries(raw: Mapping[str, bytes], out: _Findings) -> tuple[dict[int, _Entry], set[int]]:
    """Well-formed entries by seq, and the seqs present at all (malformed ones included)."""
    parsed: dict[int, _Entry] = {}
    present: set[int] = set()
    for path, data in raw.items():
        seq = entry_seq(path)
        if seq is None:
            out.add("malformed", None, f"unexpected file {path} under log/")
            continue
        present.add(seq)
        try:
            doc = parse_entry(data)
        except AuditError as exc:
            out.add("malformed", seq, f"entry seq {seq} ({path}) is malformed: {exc}")
            continue
        canonical = canonical_json(doc)
        if canonical != data:
            out.add("malformed", seq, f"entry seq {seq} ({path}) is not canonical JSON")
        digest = "sha256:" + sha256_hex(canonical)
        parsed[seq] = _Entry(seq, doc["seq"], doc["prev"], digest, doc["record"], doc)
    return parsed, present


def _check_chain(parsed: dict[int, _Entry], present: set[int], out: _Findings) -> None:
    if not present:
        return
    top = max(present)
    for seq in range(top + 1):
        if seq not in present:
            out.add(
                "deleted",
                seq,
                f"entry seq {seq} ({entry_path(seq)}) is missing: the record was deleted "
                f"and the branch rewritten; {_hint(entry_path(seq))}",
            )
    moved: set[int] = set()
    for seq, entry in parsed.items():
        if entry.stored_seq == seq:
            continue
        moved.add(seq)
        other = parsed.get(entry.stored_seq)
        if other is not None and other.stored_seq == seq:
            low, high = sorted((seq, entry.stored_seq))
            out.add(
                "reordered",
                low,
                f"entries seq {low} and seq {high} were swapped: {entry_path(low)} holds the "
                f"entry stamped seq {high} and vice versa; {_HINT}",
            )
        else:
            out.add(
                "reordered",
                seq,
                f"{entry_path(seq)} holds the entry stamped seq {entry.stored_seq}: "
                f"entries were moved; {_hint(entry_path(seq))}",
            )
    by_digest = {e.digest: e.seq for e in parsed.values()}
    broken: list[int] = []
    for seq in sorted(parsed):
        entry = parsed[seq]
        if seq in moved or seq - 1 in moved:
            continue
        if seq == 0:
            if entry.prev is not None:
                broken.append(seq)
        elif seq - 1 in parsed and parsed[seq - 1].digest != entry.prev:
            broken.append(seq)
    _classify_breaks(broken, parsed, by_digest, out)


def _runs(seqs: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for seq in seqs:
        if runs and runs[-1][-1] == seq - 1:
            runs[-1].append(seq)
        else:
            runs.append([seq])
    return runs


def _classify_breaks(
    broken: list[int], parsed: dict[int, _Entry], by_digest: dict[str, int], out: _Findings
) -> None:
    """Name the entry most likely at fault for each run of broken `prev` links.

    Changing a record breaks one link (the next entry's prev no longer matches); changing
    an entry's own prev breaks two (its own and the next one's); longer runs mean the
    branch was rewritten from the first break on.
    """
    for run in _runs(broken):
        first, last = run[0], run[-1]
        pointer = next(
            (s for s in run if by_digest.get(parsed[s].prev or "", s - 1) != s - 1), None
        )
        if pointer is not None:
            target = by_digest[parsed[pointer].prev or ""]
            out.add(
                "reordered",
                pointer,
                f"entry seq {pointer} records seq {target} as its predecessor, not seq "
                f"{pointer - 1}: entries were reordered; {_hint(entry_path(pointer))}",
            )
        elif first == 0:
            out.add(
                "deleted",
                0,
                f"entry seq 0 has prev {parsed[0].prev}: the start of the chain was "
                f"deleted and the rest renumbered; {_HINT}",
            )
        elif len(run) == 1:
            seq = first - 1
            out.add(
                "modified",
                seq,
                f"entry seq {seq} ({entry_path(seq)}) no longer matches the digest seq "
                f"{first} recorded for it: its record was modified after it was appended; "
                f"{_hint(entry_path(seq))}",
            )
        elif len(run) == 2:
            out.add(
                "modified",
                first,
                f"entry seq {first} ({entry_path(first)}) breaks the chain on both sides: "
                f"its prev or seq was modified after it was appended; {_hint(entry_path(first))}",
            )
        else:
            out.add(
                "modified",
                first,
                f"entries seq {first}..{last} do not chain: the branch was rewritten from "
                f"seq {first} on (records modified, deleted or renumbered); {_HINT}",
            )


def _check_history(
    commits: tuple[CommitInfo, ...], first_ref: dict[str, int], out: _Findings
) -> None:
    """Each first-parent commit must add exactly its own entry (plus new artifacts)."""
    appended: list[tuple[int, str]] = []  # (seq it appends, commit) for one-entry commits
    for position, info in enumerate(commits):
        short = info.commit[:12]
        if info.parents > 1:
            out.add("history", position, f"commit {short} is a merge: the branch is linear")
        added: list[int] = []
        for change in info.changes:
            seq = entry_seq(change.path)
            sha = artifact_name(change.path)
            if seq is not None:
                if change.status == "A":
                    added.append(seq)
                elif change.status == "D":
                    out.add(
                        "deleted",
                        seq,
                        f"commit {short} deleted entry seq {seq}; {_hint(entry_path(seq))}",
                    )
                else:
                    out.add(
                        "modified",
                        seq,
                        f"commit {short} changed entry seq {seq} after it was appended; "
                        f"{_hint(entry_path(seq))}",
                    )
            elif sha is not None:
                if change.status != "A":
                    verb = "deleted" if change.status == "D" else "changed"
                    out.add(
                        "artifact",
                        first_ref.get(sha, position),
                        f"commit {short} {verb} artifact {sha} after it was stored; "
                        f"{_hint(artifact_path(sha))}",
                    )
            elif change.status != "A":  # additions are reported if still present at the tip
                out.add("history", position, f"commit {short} removed or changed {change.path}")
        if len(added) == 1:
            appended.append((added[0], info.commit))
        else:
            out.add(
                "history",
                position,
                f"commit {short} appends {len(added)} entries instead of one: "
                "the branch was edited outside agentplane",
            )
    expected = sorted(seq for seq, _ in appended)
    for (seq, commit), want in zip(appended, expected, strict=True):
        if seq != want:
            out.add(
                "reordered",
                want,
                f"commit {commit[:12]} appends seq {seq} where seq {want} belongs: "
                f"the history was reordered; {_HINT}",
            )


def _check_artifacts(
    parsed: dict[int, _Entry],
    stored: Mapping[str, StoredArtifact],
    first_ref: dict[str, int],
    out: _Findings,
) -> None:
    for seq in sorted(parsed):
        try:
            refs = artifact_refs(parsed[seq].record)
        except AuditError as exc:
            out.add("malformed", seq, f"entry seq {seq}: {exc}")
            continue
        for ref in refs:
            sha = ref["sha256"]
            if first_ref.get(sha) != seq:
                continue
            blob = stored.get(artifact_path(sha))
            name = ref.get("name", "?")
            if blob is None:
                out.add(
                    "artifact",
                    seq,
                    f"artifact {name!r} ({sha}) referenced by seq {seq} is missing from "
                    f"{artifact_path(sha)}: it was deleted; {_hint(artifact_path(sha))}",
                )
            elif blob.sha256 == sha and ref.get("size") not in (None, blob.size):
                out.add(
                    "artifact",
                    seq,
                    f"artifact {name!r} ({sha}) is {blob.size} bytes, seq {seq} says {ref['size']}",
                )
    for path, blob in stored.items():
        sha = artifact_name(path)
        if sha is None:
            out.add("malformed", None, f"unexpected file {path} under artifacts/")
        elif blob.sha256 != sha:
            user = first_ref.get(sha)
            used = f"referenced by seq {user}" if user is not None else "unreferenced"
            out.add(
                "artifact",
                user,
                f"artifact {sha} ({used}) was modified: its content hashes to "
                f"{blob.sha256}; {_hint(path)}",
            )


def _first_refs(parsed: dict[int, _Entry]) -> dict[str, int]:
    first: dict[str, int] = {}
    for seq in sorted(parsed):
        refs = parsed[seq].record.get("artifacts")
        for ref in refs if isinstance(refs, list) else []:
            if isinstance(ref, dict) and isinstance(ref.get("sha256"), str):
                first.setdefault(ref["sha256"], seq)
    return first


def _check_anchor(
    anchor: str | None, parsed: dict[int, _Entry], top: int | None, out: _Findings
) -> None:
    if anchor is None:
        return  # a fresh clone has nothing to compare with
    try:
        seq, digest = parse_anchor(anchor)
    except ValueError as exc:
        out.add("anchor", None, f"the local anchor file is unreadable ({exc}): {anchor[:80]!r}")
        return
    if top is None or seq > top:
        ends = "has no entries" if top is None else f"ends at seq {top}"
        out.add(
            "anchor",
            seq,
            f"this clone appended up to seq {seq} but the branch {ends}: later entries "
            f"were removed (branch reset or force-pushed); {_HINT}",
        )
        return
    entry = parsed.get(seq)
    if entry is None or entry.digest != digest:
        where = "the last entry" if seq == top else "entry"
        out.add(
            "anchor",
            seq,
            f"{where} seq {seq} is not the one this clone appended (anchor {digest}, branch "
            f"{entry.digest if entry else 'malformed'}): the branch was rewritten; {_HINT}",
        )
    elif seq < top:
        out.add(
            "anchor",
            seq + 1,
            f"entries seq {seq + 1}..{top} were added without agentplane (the local anchor "
            f"ends at seq {seq}); {_HINT}",
        )


def _check_expected(
    expect_head: str, parsed: dict[int, _Entry], head: str | None, out: _Findings
) -> None:
    if expect_head == head:
        return
    at = next((e.seq for e in parsed.values() if e.digest == expect_head), None)
    top = max(parsed) if parsed else None
    if at is None:
        message = f"expected head {expect_head} is not on the branch (head is {head})"
    else:
        message = f"expected head {expect_head} is seq {at}, but the branch continues to {top}"
    out.add("anchor", top, message)


def _check_signatures(
    parsed: dict[int, _Entry], trust: Trust, out: _Findings, warnings: _Findings
) -> tuple[int, int]:
    """(unsigned, signed) counts; judged in seq order so that revocation times and the
    no-unsigned-after-signed rule see the chain as it grew."""
    judge = ChainJudge(trust)
    unsigned = signed = 0
    for seq in sorted(parsed):
        verdict = judge.judge(parsed[seq].doc)
        if verdict.status == "unsigned":
            unsigned += 1
        elif verdict.status in ("signed", "later_revoked"):
            signed += 1
            if verdict.status == "later_revoked":
                warnings.add("revoked_later", seq, verdict.message)
        elif verdict.status in ("unsigned_required", "downgrade"):
            out.add("unsigned", seq, f"{verdict.message}; {_hint(entry_path(seq))}")
        else:
            out.add("signature", seq, f"{verdict.message}; {_hint(entry_path(seq))}")
    return unsigned, signed


def check(
    snapshot: Snapshot, expect_head: str | None = None, trust: Trust | None = None
) -> VerifyReport:
    """`trust` None: signatures are not judged (chain, history and artifacts only)."""
    out = _Findings()
    warnings = _Findings()
    if snapshot.problem is not None:
        out.add("malformed", None, snapshot.problem)
    parsed, present = _parse_entries(snapshot.entries, out)
    for path in snapshot.others:
        out.add("malformed", None, f"unexpected file {path} on the audit branch")
    first_ref = _first_refs(parsed)
    _check_chain(parsed, present, out)
    _check_history(snapshot.commits, first_ref, out)
    _check_artifacts(parsed, snapshot.artifacts, first_ref, out)
    unsigned = signed = 0
    if trust is not None:
        unsigned, signed = _check_signatures(parsed, trust, out, warnings)
    top = max(present) if present else None
    head = parsed[top].digest if top is not None and top in parsed else None
    _check_anchor(snapshot.anchor, parsed, top, out)
    if expect_head is not None:
        _check_expected(expect_head, parsed, head, out)
    return VerifyReport(
        entries=len(snapshot.entries),
        artifacts=len(snapshot.artifacts),
        head=head,
        findings=out.sorted(),
        unsigned=unsigned,
        signed=signed,
        warnings=warnings.sorted(),
    )
