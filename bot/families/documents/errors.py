"""Why a document was refused: typed, with the rule the evidence and the model are shown."""

from __future__ import annotations

from bot.families.interface import FamilyError


class DocumentError(FamilyError):
    """A document could not be read or changed; `rule` names the check that said no."""

    rule = "documents#format"

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class UnsafeDocument(DocumentError):
    """Hostile or risky content refused before (or instead of) any parser acting on it."""

    rule = "documents#hostile"


class ZipBomb(UnsafeDocument):
    """Declared sizes or ratios past what a real document needs."""

    rule = "documents#zip-bomb"


class HugeDocument(UnsafeDocument):
    """Too many cells, rows, slides or paragraphs to parse, diff or render on the host."""

    rule = "documents#size"


class ExternalContent(UnsafeDocument):
    """Links that make a reader fetch or run something: external workbooks, remote images,
    data connections, include fields, macros."""

    rule = "documents#external"


class LossyEdit(DocumentError):
    """An edit the library would make by silently dropping parts of the file."""

    rule = "documents#lossy"
