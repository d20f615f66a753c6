"""Markdown by section: a heading and its body up to the next heading of its level."""

from __future__ import annotations

from pathlib import Path

from tests.families.documents.conftest import Call

NOTES = """# Report

## Summary

Old summary.

```sh
## not a heading: inside a fence
```

### Detail

Kept detail.

## Next

Kept next.
"""


def test_a_section_is_replaced_whole_and_a_missing_one_appended(
    workspace: Path, call: Call
) -> None:
    (workspace / "notes.md").write_text(NOTES)
    out = call(
        "md_replace_section", path="notes.md", heading="Summary", body="Revenue rose."
    ).output
    assert out.startswith("replaced section 'Summary'")
    call("md_replace_section", path="notes.md", heading="Risks", body="None known.")
    text = (workspace / "notes.md").read_text()
    assert text == (
        "# Report\n\n## Summary\n\nRevenue rose.\n\n"
        "## Next\n\nKept next.\n\n## Risks\n\nNone known.\n"
    )
    outline = call("doc_read", path="notes.md").output
    assert "line 3: ## Summary" in outline and "not a heading" not in outline.split("\n\n")[0]
