"""`agentplane validate` on a tree of hostile files, as a user runs it: every file gets a
located verdict in one pass, no traceback, no hang (a FIFO, /dev/zero, billion laughs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bot.core.yamlsrc import MAX_BYTES
from tests.core.test_yamlsrc import BILLION_LAUGHS


def test_validate_judges_every_hostile_file_and_never_hangs(tmp_path: Path) -> None:
    jobs = tmp_path / ".agentplane" / "jobs"
    jobs.mkdir(parents=True)
    (jobs / "latin1.yaml").write_bytes(b"prompt: caf\xe9\n")
    (jobs / "laughs.yaml").write_text(BILLION_LAUGHS)
    (jobs / "deep.yaml").write_text("tools: " + "[" * 100_000)
    (jobs / "huge.yaml").write_bytes(b"prompt: '" + b"x" * (40 * MAX_BYTES) + b"'\n")
    (jobs / "empty.yaml").write_text("")
    (jobs / "tag.yaml").write_text("prompt: !!python/object/apply:os.system [id]\n")
    (jobs / "zero.yaml").symlink_to("/dev/zero")
    os.mkfifo(jobs / "fifo.yaml")  # opened without O_NONBLOCK, a read would block forever
    (jobs / "ok.yaml").write_text("prompt: fix the failing test\n")
    out = subprocess.run(
        [sys.executable, "-m", "bot", "validate"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    lines = out.stderr.splitlines()
    expect = {
        "latin1.yaml:1:12: byte 0xe9 is not UTF-8",
        "laughs.yaml:1:5: more than 20000 values once aliases are expanded",
        "deep.yaml:1:",
        "huge.yaml:1:1: file is over 256 KiB",
        "empty.yaml:1:1: the file is empty",
        "tag.yaml:1:9: prompt: tag '!!python/object/apply:os.system' is not allowed",
        "zero.yaml:1:1: is a symbolic link",
        "fifo.yaml:1:1: is not a regular file",
    }
    for want in expect:
        assert any(f".agentplane/jobs/{want}" in line for line in lines), (want, lines)
    assert not any("ok.yaml" in line for line in lines)
