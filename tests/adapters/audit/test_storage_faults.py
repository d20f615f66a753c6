"""Disk and ref faults under the audit log and the journal, made for real: a full tmpfs, a
locked ref, an anchor that cannot be written. Each append fails closed with an AuditError
that says what to do, and nothing already recorded is lost or half-written."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.adapters.audit.log import AuditLog
from bot.adapters.audit.verify import verify
from bot.adapters.git import GitRepo
from bot.adapters.sandbox.bwrap import BwrapBackend
from bot.core.errors import AuditError
from bot.demo.code import MAINTAINER, build_repo
from bot.run.engine import Engine
from bot.run.journal import Journal
from bot.run.redact import Redactor
from bot.run.storage import RunStore
from tests.adapters.audit.conftest import GIT_ENV

SMALL = "16m"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of a few MB: filling it gives the kernel's own ENOSPC."""
    where = tmp_path / "disk"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SMALL},mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@contextlib.contextmanager
def full(disk: Path) -> Iterator[None]:
    """Fill the disk to the last byte for the duration."""
    ballast = disk / "ballast"
    with open(ballast, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    with contextlib.suppress(OSError), open(ballast, "ab", buffering=0) as last:
        while last.write(b"\0"):  # the last partial block, byte by byte
            pass
    try:
        yield
    finally:
        ballast.unlink()


def new_repo(path: Path) -> Path:
    path.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], env=GIT_ENV, check=True)
    return path


def test_a_full_disk_fails_the_append_closed_and_the_log_still_verifies(
    small_disk: Path,
) -> None:
    log = AuditLog(new_repo(small_disk / "repo"))
    first = log.append("run-1", {"state": "planned"})
    with full(small_disk):
        with pytest.raises(AuditError, match="no space left") as caught:
            log.append("run-1", {"state": "approved", "note": "x" * 50_000})
        assert "Free space there" in str(caught.value)
        assert str(small_disk / "repo" / ".git") in str(caught.value)
        assert log.head() == first  # nothing half-written became the head
    report = verify(AuditLog(small_disk / "repo"))
    assert report.ok, report
    again = log.append("run-1", {"state": "approved"})  # space back: the log goes on
    assert (again.seq, again.prev) == (1, first.digest)
    assert verify(AuditLog(small_disk / "repo")).ok


def test_an_anchor_that_cannot_be_written_leaves_the_branch_where_it_was(
    tmp_path: Path,
) -> None:
    """The anchor is written before the ref moves: before, the branch moved and the
    anchor did not, and every later append refused ("changed outside agentplane")."""
    log = AuditLog(new_repo(tmp_path / "repo"))
    first = log.append("run-1", {"state": "planned"})
    blocker = log.anchor_path.with_name(log.anchor_path.name + ".tmp")
    blocker.mkdir()  # any write of the anchor now fails, as a full disk would make it
    with pytest.raises(AuditError, match="cannot append"):
        log.append("run-1", {"state": "approved"})
    assert AuditLog(tmp_path / "repo").head() == first
    blocker.rmdir()
    assert log.append("run-1", {"state": "approved"}).seq == 1
    assert verify(AuditLog(tmp_path / "repo")).ok


def test_a_locked_audit_ref_fails_the_append_naming_the_lock(tmp_path: Path) -> None:
    log = AuditLog(new_repo(tmp_path / "repo"))
    log.append("run-1", {"state": "planned"})
    lock = tmp_path / "repo" / ".git" / "refs" / "heads" / "agentplane" / "audit.lock"
    lock.write_text("")  # a git process that died holding the ref
    with pytest.raises(AuditError, match="the ref is locked") as caught:
        log.append("run-1", {"state": "approved"})
    assert f"remove {lock}" in str(caught.value)
    lock.unlink()
    assert log.append("run-1", {"state": "approved"}).seq == 1
    assert verify(AuditLog(tmp_path / "repo")).ok


def test_on_a_full_disk_the_journal_fails_closed_and_what_it_holds_survives(
    small_disk: Path,
) -> None:
    """A run's calls stay in its journal when the record that would hold them cannot be
    appended: recovery still folds them in once there is space."""
    store = RunStore(AuditLog(new_repo(small_disk / "repo")), Redactor(), lambda: "now")
    planned = store.audit.append("run-1", {"state": "planned"})
    journal = store.journal("run-1")
    journal.append("tool", {"seq": 0, "tool": "fs_read"})
    with full(small_disk):
        # The file's last page still has room: the kernel takes part of the line and
        # says so by a short count, not an error. Before, that passed for a whole line.
        with pytest.raises(AuditError, match="Free space there"):
            journal.append("tool", {"seq": 1, "tool": "fs_write", "content": "y" * 10_000})
        with pytest.raises(AuditError, match="no space left"):
            store.audit.append("run-1", {"state": "proposing", "note": "z" * 50_000})
    journal.append("tool", {"seq": 2, "tool": "fs_read"})  # not glued to a torn part
    kept = list(Journal(journal.directory, "run-1", lambda e: e).entries())
    assert kept == [
        ("tool", {"seq": 0, "tool": "fs_read"}),
        ("tool", {"seq": 2, "tool": "fs_read"}),
    ]
    assert store.audit.head() == planned
    assert os.listdir(journal.directory) == ["run-1.jsonl"]


def test_an_approval_the_full_disk_cannot_record_applies_nothing(
    small_disk: Path, as_developer: None
) -> None:
    """The engine records the approval before it applies: on a full disk it stops there,
    with nothing committed, and approving again once there is space applies once."""
    repo = small_disk / "demo"
    build_repo(repo)
    engine = Engine(GitRepo(repo), BwrapBackend())
    rec = engine.start(engine.request("fix-failing-test"))
    assert rec.state == "awaiting_approval"
    with full(small_disk), pytest.raises(AuditError, match="no space left"):
        engine.decide(rec.run_id, MAINTAINER[1], "approve")
    fresh = Engine(GitRepo(repo), BwrapBackend())
    assert fresh.load(rec.run_id).state == "awaiting_approval"
    assert (
        "agentplane/run/"
        not in subprocess.run(
            ["git", "-C", str(repo), "branch", "--list"], capture_output=True, text=True
        ).stdout
    )  # nothing applied
    outcome = fresh.decide(rec.run_id, MAINTAINER[1], "approve")
    assert outcome.kind == "applied"
    assert verify(AuditLog(repo)).ok
