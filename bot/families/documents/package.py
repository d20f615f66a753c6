"""Saving OOXML packages so the same edit is the same bytes, and naming bytes as git does.

openpyxl, python-docx and python-pptx stamp every zip entry with the time of saving, and
openpyxl stamps docProps/core.xml too: the same edit would make a different proposal on
every run, and a replay could never reproduce its digest. So saved packages are rewritten
with fixed entry times and the modified stamp the file had before.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
NEW_FILE_STAMP = "1980-01-01T00:00:00Z"
"""The modified stamp of a file the run created: any clock reading would differ per run."""
CORE = "docProps/core.xml"
_MODIFIED = re.compile(rb"(<dcterms:modified\b[^>]*>)([^<]*)(</dcterms:modified>)")
_CREATED = re.compile(rb"(<dcterms:created\b[^>]*>)([^<]*)(</dcterms:created>)")


def modified_stamp(data: bytes | None) -> str:
    """The package's own modified stamp (docProps/core.xml), or NEW_FILE_STAMP."""
    if data is None:
        return NEW_FILE_STAMP
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            core = zf.read(CORE) if CORE in zf.namelist() else b""
    except (zipfile.BadZipFile, KeyError):
        return NEW_FILE_STAMP
    m = _MODIFIED.search(core)
    return m.group(2).decode("ascii", "replace") if m else NEW_FILE_STAMP


def deterministic(data: bytes, stamp: str, new_file: bool = False) -> bytes:
    """data re-zipped: same parts in the same order, fixed times, the given modified stamp
    (and, for a file the run created, the same created stamp: openpyxl reads the clock)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            body = src.read(info)
            if info.filename == CORE:
                body = _MODIFIED.sub(lambda m: m.group(1) + stamp.encode() + m.group(3), body)
                if new_file:
                    body = _CREATED.sub(lambda m: m.group(1) + stamp.encode() + m.group(3), body)
            entry = zipfile.ZipInfo(info.filename, date_time=ZIP_EPOCH)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            dst.writestr(entry, body)
    return out.getvalue()


def git_blob_id(data: bytes, hex_length: int = 40) -> str:
    """The object id git gives these bytes as a file (sha1, or sha256 in a sha256 repo):
    what the proposal's patch names on its `index` line, so evidence can prove which
    bytes it describes."""
    algo = hashlib.sha256 if hex_length == 64 else hashlib.sha1
    return algo(b"blob %d\0" % len(data) + data).hexdigest()
