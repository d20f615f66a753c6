from __future__ import annotations

import json
import multiprocessing
from pathlib import Path
from typing import Any

import pygit2
import pytest

from bot.adapters.audit import log as log_module
from bot.adapters.audit.log import AuditLog, entry_path
from bot.adapters.audit.signing import signature_valid
from bot.adapters.audit.verify import verify
from bot.core.canonical import canonical_json, digest_of, sha256_hex
from bot.core.errors import AuditError
from tests.adapters.audit.conftest import ARTIFACT_A, SHA_A, git, ref


def test_empty_log_reads_as_empty(log: AuditLog) -> None:
    assert log.head() is None
    assert list(log.entries()) == []
    assert log.run_ids() == []
    assert log.latest("run-1") is None
    with pytest.raises(AuditError, match="no audit branch yet"):
        verify(log)


def test_round_trip(repo: Path, log: AuditLog) -> None:
    first = log.append("run-1", {"state": "queued", "job": "fix"})
    second = log.append("run-2", {"state": "queued"})
    third = log.append("run-1", {"state": "running", "job": "fix"})

    assert [e.seq for e in log.entries()] == [0, 1, 2]
    assert list(log.entries()) == [first, second, third]
    assert (first.prev, second.prev, third.prev) == (None, first.digest, second.digest)
    assert log.run_ids() == ["run-1", "run-2"]
    assert log.latest("run-1") == third
    assert log.latest("run-2") == second
    assert log.head() == third

    # The digest is over the signed envelope exactly as committed, at the documented path.
    stored = git(repo, "show", f"{third.commit}:{entry_path(2)}").encode()
    doc = json.loads(stored)
    assert set(doc) == {"v", "seq", "prev", "run_id", "at", "record", "signer", "sig"}
    assert (doc["v"], doc["seq"], doc["prev"], doc["run_id"]) == (2, 2, second.digest, "run-1")
    assert doc["record"] == third.record and doc["signer"]["key"].startswith("ed25519:")
    assert stored == canonical_json(doc) and third.digest == digest_of(doc)
    unsigned = canonical_json({k: v for k, v in doc.items() if k != "sig"})
    assert signature_valid(doc["signer"]["key"], unsigned, doc["sig"])

    # Another instance (another process, in real life) reads the same thing.
    assert list(AuditLog(repo).entries()) == [first, second, third]


def test_commits_form_a_linear_branch(repo: Path, log: AuditLog) -> None:
    log.append("run-1", {"state": "queued"})
    last = log.append("run-1", {"state": "running"})
    assert git(repo, "rev-parse", "agentplane/audit").strip() == last.commit
    assert git(repo, "log", "--format=%s|%an <%ae>|%cn|%P", "agentplane/audit").splitlines() == [
        "audit: run-1 seq 1 running|agentplane <agentplane@localhost>|agentplane|"
        + git(repo, "rev-parse", "agentplane/audit~1").strip(),
        "audit: run-1 seq 0 queued|agentplane <agentplane@localhost>|agentplane|",
    ]


def test_record_is_a_snapshot(log: AuditLog) -> None:
    record: dict[str, Any] = {"state": "queued", "steps": []}
    entry = log.append("run-1", record)
    record["steps"].append("later")
    assert entry.record == {"state": "queued", "steps": []}
    assert log.latest("run-1") == entry


def test_artifacts_are_stored_once(repo: Path, log: AuditLog) -> None:
    patch = ref("patch", SHA_A, ARTIFACT_A)
    log.append("run-1", {"state": "running", "artifacts": [patch]}, {SHA_A: ARTIFACT_A})
    second = log.append("run-2", {"state": "running", "artifacts": [patch]}, {SHA_A: ARTIFACT_A})

    assert log.artifact(SHA_A) == ARTIFACT_A
    listing = git(repo, "ls-tree", "-r", "--name-only", "agentplane/audit", "artifacts")
    assert listing.split() == [f"artifacts/{SHA_A[:2]}/{SHA_A}"]
    changed = git(repo, "diff-tree", "--no-commit-id", "-r", "--name-only", second.commit)
    assert changed.split() == [entry_path(1)]


def test_wrong_artifact_key_is_rejected(repo: Path, log: AuditLog) -> None:
    with pytest.raises(AuditError, match="not the sha256"):
        log.append("run-1", {"state": "running"}, {SHA_A: b"something else"})
    with pytest.raises(AuditError, match="not the sha256"):
        log.append("run-1", {"state": "running"}, {"patch.diff": ARTIFACT_A})
    assert log.head() is None


def test_reference_to_unstored_artifact_is_rejected(log: AuditLog) -> None:
    with pytest.raises(AuditError, match="never stored"):
        log.append("run-1", {"state": "running", "artifacts": [ref("p", SHA_A, ARTIFACT_A)]})
    wrong_size = {**ref("p", SHA_A, ARTIFACT_A), "size": 1}
    with pytest.raises(AuditError, match="bytes, the record says 1"):
        log.append("run-1", {"artifacts": [wrong_size]}, {SHA_A: ARTIFACT_A})


def test_unknown_artifact_raises(log: AuditLog) -> None:
    log.append("run-1", {"state": "queued"})
    with pytest.raises(AuditError, match="not on the audit branch"):
        log.artifact(SHA_A)
    with pytest.raises(AuditError, match="not a sha256"):
        log.artifact("../../etc/passwd")


def test_bad_input_is_rejected(log: AuditLog) -> None:
    with pytest.raises(AuditError, match="run id"):
        log.append("run 1", {"state": "queued"})
    with pytest.raises(AuditError, match="not JSON-able"):
        log.append("run-1", {"state": object()})


def test_appends_leave_worktree_index_and_head_alone(repo: Path, log: AuditLog) -> None:
    (repo / "README.md").write_text("# changed, not staged\n")
    (repo / "staged.txt").write_text("staged\n")
    git(repo, "add", "staged.txt")
    (repo / "untracked.txt").write_text("untracked\n")
    before = (
        git(repo, "status", "--porcelain"),
        git(repo, "rev-parse", "HEAD"),
        git(repo, "symbolic-ref", "HEAD"),
        (repo / ".git" / "index").read_bytes(),
        sorted(p.name for p in repo.iterdir()),
    )
    for state in ("queued", "running", "succeeded"):
        log.append(
            "run-1",
            {"state": state, "artifacts": [ref("p", SHA_A, ARTIFACT_A)]},
            {SHA_A: ARTIFACT_A},
        )
    after = (
        git(repo, "status", "--porcelain"),
        git(repo, "rev-parse", "HEAD"),
        git(repo, "symbolic-ref", "HEAD"),
        (repo / ".git" / "index").read_bytes(),
        sorted(p.name for p in repo.iterdir()),
    )
    assert after == before
    assert git(repo, "log", "--format=%s", "HEAD").splitlines() == ["init"]


def test_bare_repository(tmp_path: Path) -> None:
    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    log = AuditLog(bare)
    entry = log.append("run-1", {"state": "queued"})
    assert AuditLog(bare).head() == entry
    assert (bare / "agentplane" / "audit-head").is_file()
    assert verify(log).ok


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="is not inside a git repository"):
        AuditLog(tmp_path / "nowhere")


def test_anchor_follows_the_head(repo: Path, log: AuditLog) -> None:
    log.append("run-1", {"state": "queued"})
    head = log.append("run-1", {"state": "running"})
    anchor = (repo / ".git" / "agentplane" / "audit-head").read_bytes()
    assert anchor == canonical_json({"digest": head.digest, "seq": 1}) + b"\n"


def test_entries_are_sharded(repo: Path, log: AuditLog, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_module, "SHARD_SIZE", 3)
    reader = AuditLog(repo)
    for n in range(4):
        log.append("run-1", {"state": "running", "n": n})
    assert [e.seq for e in reader.entries()] == [0, 1, 2, 3]  # cached up to seq 3
    for n in range(4, 8):
        log.append("run-1", {"state": "running", "n": n})
    assert [e.record["n"] for e in reader.entries()] == list(range(8))  # read incrementally
    listing = git(repo, "ls-tree", "-r", "--name-only", "agentplane/audit").split()
    assert listing[:4] == [
        "log/0000/00000000.json",
        "log/0000/00000001.json",
        "log/0000/00000002.json",
        "log/0001/00000003.json",
    ]
    assert listing[-1] == "log/0002/00000007.json"
    assert verify(log).ok


def test_instances_see_each_others_appends(repo: Path) -> None:
    a, b = AuditLog(repo), AuditLog(repo)
    a.append("run-1", {"state": "queued"})
    assert b.latest("run-1") is not None
    b.append("run-2", {"state": "queued"})
    entry = a.append("run-1", {"state": "running"})
    assert entry.seq == 2
    assert b.run_ids() == ["run-1", "run-2"]
    assert b.latest("run-1") == entry
    assert [e.seq for e in a.entries()] == [0, 1, 2]


def test_reads_refuse_a_branch_reset_behind_the_anchor(repo: Path, log: AuditLog) -> None:
    log.append("run-1", {"state": "queued"})
    log.append("run-2", {"state": "queued"})
    assert log.run_ids() == ["run-1", "run-2"]
    git(repo, "update-ref", AuditLog.BRANCH, "agentplane/audit~1")
    with pytest.raises(AuditError, match="entries were removed"):
        log.latest("run-1")
    with pytest.raises(AuditError, match="refusing to append"):
        log.append("run-3", {"state": "queued"})
    # Without this clone's anchor (another clone), the cache follows the rewritten branch.
    log.anchor_path.unlink()
    assert log.run_ids() == ["run-1"]
    assert log.latest("run-2") is None


def _append_many(repo: str, worker: int, count: int, start: Any) -> None:
    start.wait()
    log = AuditLog(Path(repo))
    data = f"artifact of worker {worker}".encode()
    sha = sha256_hex(data)
    for n in range(count):
        artifacts = [ref("out", sha, data)] if n % 5 == 0 else []
        log.append(
            f"run-{worker}",
            {"state": "running", "n": n, "artifacts": artifacts},
            {sha: data} if artifacts else {},
        )


def test_concurrent_appends_lose_nothing(repo: Path) -> None:
    workers, count = 4, 25
    ctx = multiprocessing.get_context("spawn")  # a fresh libgit2 per process, as in real use
    start = ctx.Event()
    procs = [
        ctx.Process(target=_append_many, args=(str(repo), w, count, start)) for w in range(workers)
    ]
    for proc in procs:
        proc.start()
    start.set()
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0

    log = AuditLog(repo)
    entries = list(log.entries())
    assert [e.seq for e in entries] == list(range(workers * count))
    seen = sorted((e.run_id, e.record["n"]) for e in entries)
    assert seen == sorted((f"run-{w}", n) for w in range(workers) for n in range(count))
    for w in range(workers):  # each worker's own appends stay in its order
        assert [e.record["n"] for e in entries if e.run_id == f"run-{w}"] == list(range(count))
    report = verify(log)
    assert report.ok, report.findings
    assert report.artifacts == workers


def test_worktree_shares_the_branch_and_lock(repo: Path, tmp_path: Path) -> None:
    git(repo, "worktree", "add", "-q", str(tmp_path / "wt"))
    AuditLog(repo).append("run-1", {"state": "queued"})
    entry = AuditLog(tmp_path / "wt").append("run-1", {"state": "running"})
    assert entry.seq == 1
    assert pygit2.Repository(str(repo)).references[AuditLog.BRANCH].target == pygit2.Oid(
        hex=entry.commit
    )
    assert verify(AuditLog(repo)).ok
