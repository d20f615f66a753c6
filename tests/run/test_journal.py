"""The journal of a run's calls: durable lines, a torn tail left out, never a symlink."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.errors import AuditError
from bot.run.journal import Journal


def mask(value: object) -> object:
    return {k: ("***" if k == "secret" else v) for k, v in value.items()}  # type: ignore[attr-defined]


def test_lines_come_back_in_order_redacted_and_a_torn_tail_is_left_out(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal", "run-1", mask)
    j.append("model", {"seq": 1, "secret": "hunter2"})
    j.append("tool", {"seq": 1})
    with j.path.open("ab") as f:
        f.write(b'{"kind":"model","entry":{"seq":2')  # the crash cut this write short
    assert list(j.entries()) == [("model", {"seq": 1, "secret": "***"}), ("tool", {"seq": 1})]
    assert b"hunter2" not in j.path.read_bytes()
    assert j.path.stat().st_mode & 0o777 == 0o600
    j.clear()
    assert list(j.entries()) == []
    j.clear()  # nothing to clear is fine


def test_a_planted_symlink_is_never_written_or_read_through(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep\n")
    (tmp_path / "journal").mkdir()
    j = Journal(tmp_path / "journal", "run-1", mask)
    j.path.symlink_to(target)
    with pytest.raises(AuditError, match="cannot journal"):
        j.append("tool", {"seq": 1})
    with pytest.raises(AuditError, match="symlink"):
        list(j.entries())
    assert target.read_text() == "keep\n"
    linked = tmp_path / "linked"
    linked.symlink_to(tmp_path / "journal")
    with pytest.raises(AuditError, match="not a directory"):
        Journal(linked, "run-2", mask).append("tool", {"seq": 1})


@pytest.mark.parametrize("run_id", ["../x", "a/b", "", ".hidden", "x" * 300])
def test_a_run_id_that_is_not_a_plain_name_never_becomes_a_path(
    tmp_path: Path, run_id: str
) -> None:
    with pytest.raises(AuditError, match="cannot name a journal file"):
        Journal(tmp_path, run_id, mask)
