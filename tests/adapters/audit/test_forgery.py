"""Issue 11 section 2: a PR author with push access to the audit branch (not an approver)
appends a correctly chained record that swaps the proposal. Real git repositories: the
bot's clone, the remote, the attacker's clone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pygit2
import pytest

from bot.adapters.audit.log import AuditLog, build_commit
from bot.adapters.audit.trust import Trust, TrustedKey
from bot.adapters.audit.verify import VerifyReport, verify
from bot.core.canonical import digest_of
from bot.core.errors import AuditError
from tests.adapters.audit.conftest import downgrade_to_v1, git, read_steps

BRANCH = "agentplane/audit"
GOOD = {"state": "awaiting_approval", "proposal": {"digest": "sha256:aa", "changed": ["src/a.py"]}}
SWAPPED = {
    "state": "awaiting_approval",
    "proposal": {"digest": "sha256:bb", "changed": [".github/workflows/x.yml"]},
}


def kinds(report: VerifyReport) -> set[tuple[str, int | None]]:
    return {(f.kind, f.seq) for f in report.findings}


def clone(origin: Path, path: Path) -> Path:
    git(origin.parent, "clone", "-q", str(origin), str(path))
    return path


@pytest.fixture
def origin(repo: Path, tmp_path: Path) -> Path:
    bare = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(repo, "push", "-q", str(bare), "main")
    return bare


def bot_proposes(repo: Path, origin: Path) -> AuditLog:
    log = AuditLog(repo)
    log.append("run-1", {"state": "queued"})
    log.append("run-1", GOOD)
    git(repo, "push", "-q", str(origin), BRANCH)
    return log


def clone_with_audit(origin: Path, path: Path) -> Path:
    clone(origin, path)
    git(path, "fetch", "-q", "origin", f"{BRANCH}:{BRANCH}")
    return path


def adopt_remote(repo: Path, origin: Path) -> None:
    """What the bot did before: fast-forward its audit branch from the remote."""
    git(repo, "fetch", "-q", str(origin), f"{BRANCH}:{BRANCH}")


def append_unsigned(path: Path, record: dict[str, Any]) -> None:
    """A v1 entry, correctly chained: the format is public, no key needed."""
    last = json.loads(next(d for p, d in read_steps(path)[-1].items() if p.startswith("log/")))
    doc = {"v": 1, "seq": last["seq"] + 1, "prev": digest_of(last), "run_id": "run-1"}
    doc["record"] = record
    repo = pygit2.Repository(str(path))
    parent = repo.revparse_single(BRANCH)
    assert isinstance(parent, pygit2.Commit)
    repo.references.create(f"refs/heads/{BRANCH}", build_commit(repo, parent, doc), force=True)


def test_a_pushed_record_signed_with_the_attackers_key_is_refused(
    repo: Path, origin: Path, tmp_path: Path
) -> None:
    bot = bot_proposes(repo, origin)
    mallory = clone_with_audit(origin, tmp_path / "mallory")
    forged = AuditLog(mallory).append("run-1", SWAPPED)  # his own key, chained on the tip
    assert forged.seq == 2
    git(mallory, "push", "-q", "origin", BRANCH)  # a fast-forward: no force needed
    adopt_remote(repo, origin)

    for reader in (bot, AuditLog(repo)):  # the warm cache and a fresh process alike
        with pytest.raises(AuditError, match=r"seq 2 is signed by .* does not list"):
            reader.latest("run-1")
    with pytest.raises(AuditError, match="refusing to append"):
        bot.append("run-1", {"state": "applied"})
    report = verify(AuditLog(repo))
    assert ("signature", 2) in kinds(report) and not report.ok


def test_a_pushed_unsigned_record_is_refused(repo: Path, origin: Path, tmp_path: Path) -> None:
    bot_proposes(repo, origin)
    mallory = clone_with_audit(origin, tmp_path / "mallory")
    append_unsigned(mallory, SWAPPED)
    git(mallory, "push", "-q", "origin", BRANCH)
    adopt_remote(repo, origin)

    with pytest.raises(AuditError, match=r"seq 2 is unsigned .* after signed entries"):
        AuditLog(repo).latest("run-1")
    assert kinds(verify(AuditLog(repo))) >= {("unsigned", 2), ("anchor", 2)}


def test_a_fresh_clone_trusting_policy_sees_the_forgery(
    repo: Path, origin: Path, tmp_path: Path
) -> None:
    bot = bot_proposes(repo, origin)
    own = bot.own_key()
    assert own is not None
    mallory = clone_with_audit(origin, tmp_path / "mallory")
    AuditLog(mallory).append("run-1", SWAPPED)
    git(mallory, "push", "-q", "origin", BRANCH)

    reviewer = clone_with_audit(origin, tmp_path / "reviewer")  # no anchor, no key of its own
    policy = Trust((TrustedKey("bot", own[1]),))
    report = verify(AuditLog(reviewer), trust=policy)
    assert kinds(report) == {("signature", 2)}
    assert report.signed == 2
    log = AuditLog(reviewer)
    log.trust(policy)
    with pytest.raises(AuditError, match="does not list"):
        log.latest("run-1")


def test_pre_upgrade_log_refuses_an_unsigned_record_past_the_anchor(
    repo: Path, origin: Path, tmp_path: Path
) -> None:
    # A log written entirely before signing (v1), then a forged v1 on top: this clone's
    # anchor shows it was not appended here; a fresh clone needs policy to require signatures.
    log = AuditLog(repo)
    log.append("run-1", GOOD)
    downgrade_to_v1(repo)
    git(repo, "push", "-q", str(origin), BRANCH)
    mallory = clone_with_audit(origin, tmp_path / "mallory")
    append_unsigned(mallory, SWAPPED)
    git(mallory, "push", "-q", "origin", BRANCH)
    adopt_remote(repo, origin)

    with pytest.raises(AuditError, match="added after this clone's last append"):
        AuditLog(repo).latest("run-1")
    reviewer = clone_with_audit(origin, tmp_path / "reviewer")
    assert verify(AuditLog(reviewer), trust=Trust()).unsigned == 2
    required = verify(AuditLog(reviewer), trust=Trust(require_signatures_from=1))
    assert kinds(required) == {("unsigned", 1)}
