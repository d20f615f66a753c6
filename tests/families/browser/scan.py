"""Scanning what a run left for secrets: every blob of the audit branch, zips unpacked."""

from __future__ import annotations

import io
import subprocess
import zipfile
from collections.abc import Sequence
from pathlib import Path


def leaks(data: str | bytes, secrets: Sequence[str]) -> list[str]:
    """Which secrets data holds, as it is and inside each member of a zip (a trace)."""
    raw = data.encode() if isinstance(data, str) else data
    found = [c for c in secrets if c.encode() in raw]
    if raw[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            for name in z.namelist():
                found += [f"{c} in {name}" for c in leaks(z.read(name), secrets)]
    return found


def audit_blobs(repo: Path) -> dict[str, bytes]:
    """Every blob reachable from the audit branch, by path, and each commit message."""
    listing = subprocess.run(
        ["git", "rev-list", "--objects", "refs/heads/agentplane/audit"],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    paths = dict(line.partition(" ")[::2] for line in listing)
    # One git process for them all: `cat-file --batch` answers `<oid> <type> <size>\n<data>\n`.
    out = subprocess.run(
        ["git", "cat-file", "--batch"],
        cwd=repo,
        check=True,
        capture_output=True,
        input="".join(f"{oid}\n" for oid in paths).encode(),
    ).stdout
    found: dict[str, bytes] = {}
    at = 0
    while at < len(out):
        header_end = out.index(b"\n", at)
        oid, kind, size = out[at:header_end].decode().split()
        body = out[header_end + 1 : header_end + 1 + int(size)]
        at = header_end + 1 + int(size) + 1
        if kind in ("blob", "commit"):
            found[f"{kind} {paths.get(oid) or oid}"] = body
    return found
