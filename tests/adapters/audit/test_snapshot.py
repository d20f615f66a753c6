"""Reading the audit branch: the shortcut tree reader must see what a real diff sees."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pygit2
import pytest

from bot.adapters.audit.log import AuditLog, artifact_path, entry_path
from bot.adapters.audit.snapshot import Change, _TreeReader, read_snapshot
from tests.adapters.audit.conftest import SHA_A, Steps, read_steps, replay


@pytest.mark.parametrize(
    ("extra", "shortcut"),
    [
        ([{artifact_path(SHA_A): None}, {"notes/x": b"x"}], 6),
        ([{entry_path(1): b"{}"}], 1),  # the tip's shard no longer extends the old ones
        ([{"log/0000": b"now a file"}], 0),  # a type change: shard gone, file in its place
    ],
)
def test_history_reader_agrees_with_libgit2(
    repo: Path, filled: AuditLog, extra: Steps, shortcut: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The reader shortcuts shard diffs by tree id; it must report what a real diff does,
    # on appends as well as on edits, deletions and type changes.
    steps = read_steps(repo)
    extra = [dict(step) for step in extra]  # the parameters are shared
    if "log/0000" in extra[0]:
        extra[0].update({path: None for step in steps for path in step if path.startswith("log/")})
    steps[-1:] = [steps[-1], *extra]
    replay(repo, steps)
    shortcuts = []
    appended = _TreeReader._appended

    def spy(self: _TreeReader, *args: Any) -> list[Change] | None:
        found = appended(self, *args)
        shortcuts.append(found is not None)
        return found

    monkeypatch.setattr(_TreeReader, "_appended", spy)
    snapshot = read_snapshot(AuditLog(repo))

    pygit_repo = pygit2.Repository(str(repo))
    walker = pygit_repo.walk(pygit_repo.references[AuditLog.BRANCH].target)
    walker.simplify_first_parent()
    commits = list(walker)[::-1]
    assert len(snapshot.commits) == len(commits) == len(steps)
    for commit, info in zip(commits, snapshot.commits, strict=True):
        old = commit.parents[0].tree if commit.parents else None
        diff = commit.tree.diff_to_tree(swap=True) if old is None else old.diff_to_tree(commit.tree)
        expected = {
            (d.status_char(), d.old_file.path if d.status_char() == "D" else d.new_file.path)
            for d in diff.deltas
        }
        assert {(c.status, c.path) for c in info.changes} == expected, info.commit
    assert shortcuts.count(True) == shortcut
