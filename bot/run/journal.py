"""The journal: every model call and tool call of a run, durable before the next begins.

The record is appended to the audit branch at each state change; between two changes a
run may make many calls. Each is written here first, one canonical JSON line, fsynced,
so a process that dies mid-run loses none: recovery folds the journal into the record it
fails. The journal lives in the bot's own state beside the audit anchor (never the work
tree, never the audit branch: the record is the audit, the journal only its buffer) and
is emptied each time a record is appended.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from bot.core.canonical import canonical_json
from bot.core.errors import AuditError
from bot.run import killpoints

Kind = Literal["model", "tool"]
RUN_ID = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._-]{0,200}\Z")
MAX_BYTES = 64 * 1024 * 1024
"""A journal larger than this is not read back (a run makes far fewer calls)."""


class Journal:
    def __init__(self, directory: Path, run_id: str, redact: Callable[[Any], Any]) -> None:
        if not RUN_ID.match(run_id) or ".." in run_id:
            raise AuditError(f"run id {run_id!r} cannot name a journal file")
        self.directory = directory
        self.path = directory / f"{run_id}.jsonl"
        self.redact = redact

    def append(self, kind: Kind, entry: dict[str, Any]) -> None:
        """One line, on disk before this returns (redacted, like the record it joins)."""
        line = canonical_json({"kind": kind, "entry": self.redact(entry)}) + b"\n"
        self._mkdir()
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags, 0o600)
            try:
                self._write_line(fd, line)
            finally:
                os.close(fd)
        except OSError as exc:  # a planted symlink (ELOOP), a full disk: the run stops
            hint = " Free space there; the run stopped" if exc.errno == errno.ENOSPC else ""
            raise AuditError(f"cannot journal the call to {self.path}: {exc}.{hint}") from None
        killpoints.reached("propose")  # the call is durable; the run is mid-propose

    @staticmethod
    def _write_line(fd: int, line: bytes) -> None:
        """All of line, or nothing: a part written before the disk filled is cut off
        again, since the next line would be glued to it and both read back as torn."""
        size = os.fstat(fd).st_size
        try:
            if os.write(fd, line) != len(line):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)
            raise

    def entries(self) -> Iterator[tuple[Kind, dict[str, Any]]]:
        """What was journaled, oldest first; a line torn by the crash is left out."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise AuditError(f"{self.path} is a symlink: refusing to read it") from None
            raise AuditError(f"{self.path} cannot be read: {exc}") from None
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise AuditError(f"{self.path} is not a regular file")
            data = f.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise AuditError(f"{self.path} is over {MAX_BYTES} bytes: not read back")
        for raw in data.split(b"\n"):
            try:
                line = json.loads(raw)
            except ValueError:
                continue  # the torn tail of a write the crash cut short
            if isinstance(line, dict) and line.get("kind") in ("model", "tool"):
                entry = line.get("entry")
                if isinstance(entry, dict):
                    yield line["kind"], entry

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def _mkdir(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.directory.is_symlink() or not self.directory.is_dir():
            raise AuditError(f"{self.directory} is not a directory: refusing to journal there")
