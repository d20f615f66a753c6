"""Opening vetted bytes with a document library, and saving them back losslessly or not at all.

Whatever a library raises on a hostile or broken file (KeyError, lxml errors, zip errors,
its own types) is one DocumentError: the model and the reviewer get a sentence, never a
traceback. Saving checks that the package did not lose parts the library cannot carry
(openpyxl drops shapes, slicers and form controls it does not model), and refuses the
edit instead of proposing a quietly damaged file.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections import Counter
from collections.abc import Callable
from typing import TypeVar

from bot.families.documents.errors import DocumentError, LossyEdit
from bot.families.documents.formats import Format
from bot.families.documents.package import deterministic, modified_stamp
from bot.families.documents.safety import vet

T = TypeVar("T")

_REGENERATED = ("xl/calcChain.xml", "docProps/thumbnail", "xl/printerSettings/")
"""Parts a library may drop because the office suite rebuilds them (or they only matter to
one printer driver): losing them loses nothing a reader sees."""


def parse(path: str, data: bytes, fmt: Format, load: Callable[[io.BytesIO], T]) -> T:
    """load(bytes) after vet(); any library failure as a DocumentError."""
    vet(path, data, fmt)
    try:
        return load(io.BytesIO(data))
    except DocumentError:
        raise
    except Exception as exc:  # a hostile file can make a parser raise anything
        raise DocumentError(path, f"cannot be read as {fmt}: {type(exc).__name__}: {exc}") from None


def save(
    path: str, fmt: Format, before: bytes | None, write: Callable[[io.BytesIO], None]
) -> bytes:
    """The saved bytes, deterministic, vetted again, and refused if parts were lost."""
    out = io.BytesIO()
    try:
        write(out)
    except Exception as exc:  # a library refusing a value we passed (a bad style name)
        raise DocumentError(
            path, f"cannot be saved as {fmt}: {type(exc).__name__}: {exc}"
        ) from None
    data = deterministic(out.getvalue(), modified_stamp(before), new_file=before is None)
    if before is not None:
        lost = _lost(_kinds(before) - _kinds(data))
        if lost:
            raise LossyEdit(
                path,
                f"saving it would drop {lost}, which the {fmt} library cannot keep; "
                "edit this file in an office suite instead",
            )
    vet(path, data, fmt)
    return data


def _kinds(data: bytes) -> Counter[str]:
    """Parts per kind (their folder and name without numbers): sheet3.xml is a sheet."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
    return Counter(re.sub(r"\d+", "N", name) for name in names if not name.startswith(_REGENERATED))


def _lost(missing: Counter[str]) -> str:
    return ", ".join(f"{n} x {kind}" for kind, n in sorted(missing.items()))
