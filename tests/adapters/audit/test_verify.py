from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.adapters.audit.log import AuditLog, artifact_path, entry_path
from bot.adapters.audit.snapshot import read_snapshot
from bot.adapters.audit.verify import VerifyReport, check, verify
from bot.core.canonical import canonical_json, digest_of
from bot.core.errors import AuditError
from tests.adapters.audit.conftest import ARTIFACT_A, SHA_A, SHA_B, git, read_steps, replay


def kinds(report: VerifyReport) -> set[tuple[str, int | None]]:
    return {(f.kind, f.seq) for f in report.findings}


def edit_entry(data: bytes | None, **changes: object) -> bytes:
    assert data is not None
    doc = json.loads(data)
    doc["record"].update(changes)
    return canonical_json(doc)


def test_clean_log_verifies(filled: AuditLog) -> None:
    report = verify(filled)
    assert report.ok, report.findings
    assert (report.entries, report.artifacts) == (6, 2)
    head = filled.head()
    assert head is not None and report.head == head.digest
    assert verify(filled, expect_head=head.digest).ok


def test_modified_middle_record_rewritten_with_filter_branch(repo: Path, filled: AuditLog) -> None:
    path = entry_path(2)
    # The attacker's edit: run-2 never queued, it "succeeded"; every later commit recomputed.
    script = (
        f'if [ -f {path} ]; then sed -i "s/\\"state\\":\\"queued\\"/\\"state\\":\\"succeeded\\"/" '
        f"{path}; fi"
    )
    git(repo, "filter-branch", "-f", "--tree-filter", script, "agentplane/audit")
    assert '"state":"succeeded"' in git(repo, "show", f"agentplane/audit:{path}")

    report = verify(filled)
    # The chain names the edited entry; its signature no longer covers it either.
    assert kinds(report) == {("modified", 2), ("signature", 2)}
    assert "seq 2" in report.findings[0].message


def test_modified_middle_record_in_an_edit_commit(repo: Path, filled: AuditLog) -> None:
    # The naive attacker: a new commit on top that edits an old entry.
    steps = read_steps(repo)
    steps.append({entry_path(1): edit_entry(steps[1][entry_path(1)], state="succeeded")})
    replay(repo, steps)
    report = verify(filled)
    assert ("modified", 1) in kinds(report)
    assert ("history", 6) in kinds(report)  # a commit that appends nothing
    assert ("signature", 1) in kinds(report)
    assert {k for k, _ in kinds(report)} == {"modified", "history", "signature"}


def test_deleted_record(repo: Path, filled: AuditLog) -> None:
    steps = read_steps(repo)
    del steps[3]  # and with it seq 3's commit
    replay(repo, steps)
    report = verify(filled)
    # Artifact B was stored by seq 3 too; seq 4 still references it.
    assert kinds(report) == {("deleted", 3), ("artifact", 4)}


def test_deleted_record_without_artifacts(repo: Path, filled: AuditLog) -> None:
    steps = read_steps(repo)
    del steps[2]
    replay(repo, steps)
    assert kinds(verify(filled)) == {("deleted", 2)}


def test_reordered_records_swapped_in_place(repo: Path, filled: AuditLog) -> None:
    steps = read_steps(repo)
    p1, p4 = entry_path(1), entry_path(4)
    steps[1][p1], steps[4][p4] = steps[4][p4], steps[1][p1]
    # Keep the artifacts where they were so only the order is wrong.
    steps[1][artifact_path(SHA_A)] = ARTIFACT_A
    replay(repo, steps)
    report = verify(filled)
    assert kinds(report) == {("reordered", 1)}
    assert "seq 1 and seq 4 were swapped" in report.findings[0].message


def test_reordered_commits(repo: Path, filled: AuditLog) -> None:
    steps = read_steps(repo)
    steps[2], steps[5] = steps[5], steps[2]  # seq 5 now appended before seq 2
    replay(repo, steps)
    assert kinds(verify(filled)) == {("reordered", 2), ("reordered", 5)}


def test_modified_last_record_is_caught_by_the_anchor(repo: Path, filled: AuditLog) -> None:
    steps = read_steps(repo)
    last = entry_path(5)
    steps[5][last] = edit_entry(steps[5][last], state="succeeded")
    replay(repo, steps)
    report = verify(filled)
    assert kinds(report) == {("anchor", 5), ("signature", 5)}
    assert "last entry seq 5" in report.findings[0].message
    # Without this clone's anchor (a fresh clone), the signature alone still catches it.
    filled.anchor_path.unlink()
    assert kinds(verify(filled)) == {("signature", 5)}


def test_removed_tail_is_caught_by_the_anchor(repo: Path, filled: AuditLog) -> None:
    git(repo, "update-ref", AuditLog.BRANCH, "agentplane/audit~2")
    report = verify(filled)
    assert kinds(report) == {("anchor", 5)}
    assert "branch ends at seq 3" in report.findings[0].message


def test_recomputed_chain_is_caught_by_anchor_and_signatures(repo: Path, filled: AuditLog) -> None:
    # The thorough attacker re-chains every digest after the edit; the anchor knows, and
    # every re-chained entry's signature (which covers prev) breaks.
    steps = read_steps(repo)
    prev = None
    for seq, step in enumerate(steps):
        doc = json.loads(step[entry_path(seq)] or b"")
        if seq == 2:
            doc["record"]["state"] = "succeeded"
        doc["prev"] = prev
        step[entry_path(seq)] = canonical_json(doc)
        prev = digest_of(doc)
    replay(repo, steps)
    assert kinds(verify(filled)) == {("anchor", 5)} | {("signature", s) for s in range(2, 6)}


def test_modified_artifact(repo: Path, filled: AuditLog) -> None:
    steps = read_steps(repo)
    steps[3][artifact_path(SHA_B)] = b'{"tests": "failed"}\n'
    replay(repo, steps)
    report = verify(filled)
    assert kinds(report) == {("artifact", 3)}
    assert SHA_B in report.findings[0].message and "modified" in report.findings[0].message


def test_deleted_artifact(repo: Path, filled: AuditLog) -> None:
    steps = read_steps(repo)
    replay(repo, steps, drop=frozenset({artifact_path(SHA_A)}))
    report = verify(filled)
    assert kinds(report) == {("artifact", 1)}
    assert "deleted" in report.findings[0].message


def test_artifact_deleted_in_a_later_commit(repo: Path, filled: AuditLog) -> None:
    steps = read_steps(repo)
    steps.append({artifact_path(SHA_A): None})
    replay(repo, steps)
    assert kinds(verify(filled)) == {("artifact", 1), ("history", 6)}


def test_expect_head(filled: AuditLog) -> None:
    head = filled.head()
    assert head is not None
    entries = list(filled.entries())
    assert verify(filled, expect_head=head.digest).ok
    report = verify(filled, expect_head=entries[3].digest)
    assert kinds(report) == {("anchor", 5)}
    assert "is seq 3" in report.findings[0].message
    assert kinds(verify(filled, expect_head="sha256:" + "0" * 64)) == {("anchor", 5)}


def test_snapshot_checks_are_pure(filled: AuditLog) -> None:
    snapshot = read_snapshot(filled)
    assert check(snapshot).ok
    broken = dict(snapshot.entries)
    broken[entry_path(4)] = b"{not json"
    report = check(snapshot.__class__(snapshot.commits, broken, snapshot.artifacts))
    assert ("malformed", 4) in kinds(report)
    assert all(f.seq == 4 or f.kind == "malformed" for f in report.findings)
    noisy = dict(snapshot.entries)
    noisy[entry_path(0)] = snapshot.entries[entry_path(0)] + b" "
    assert kinds(check(snapshot.__class__(snapshot.commits, noisy, snapshot.artifacts))) == {
        ("malformed", 0)
    }


def test_unexpected_files_and_anchor_garbage(repo: Path, filled: AuditLog) -> None:
    steps = read_steps(repo)
    steps[4]["notes.txt"] = b"hi"
    replay(repo, steps)
    filled.anchor_path.write_text("garbage")
    report = verify(filled)
    assert {k for k, _ in kinds(report)} == {"malformed", "anchor"}
    assert any("notes.txt" in f.message for f in report.findings)


def test_no_branch_raises(log: AuditLog) -> None:
    with pytest.raises(AuditError, match="no audit branch yet: run a job first"):
        verify(log)
