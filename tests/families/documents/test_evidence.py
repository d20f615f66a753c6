"""Documents as evidence: the same section in a terminal and a PR comment, untrusted text
kept inside a fence, and each diff checked against the object the proposal's patch writes."""

from __future__ import annotations

import subprocess
from pathlib import Path

from bot.core.render import section_markdown
from bot.families.documents.diff import diff_document
from bot.families.documents.evidence import patch_blobs, sections
from bot.families.documents.model import DocumentsEvidence, Picture
from bot.families.documents.package import git_blob_id
from tests.families.documents.files import workbook

BEFORE = workbook({"S": [["name", "value"], ["a", 1]]})
AFTER = workbook({"S": [["name", "value"], ["a", 2], ["```\n![x](https://evil.example/?q=", 3]]})


def binary_patch(tmp_path: Path, path: str, before: bytes, after: bytes) -> str:
    """What the filesystem family proposes: git's binary diff of the workspace."""
    repo = tmp_path / "repo"
    (repo / path).parent.mkdir(parents=True)
    (repo / path).write_bytes(before)
    run = ["git", "-C", str(repo)]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*run, "add", "-A"], check=True)
    subprocess.run(
        [*run, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"], check=True
    )
    (repo / path).write_bytes(after)
    return subprocess.run(
        [*run, "diff", "--binary", "--no-color"], check=True, capture_output=True, text=True
    ).stdout


def test_a_section_reads_the_same_in_both_and_keeps_cell_text_fenced(tmp_path: Path) -> None:
    path = "docs/<img src=x>.xlsx"
    d = diff_document(path, "xlsx", BEFORE, AFTER)
    d.after_artifact, d.before_artifact = "doc-1-after.xlsx", "doc-1-before.xlsx"
    d.pictures = [
        Picture(label="sheet S A1:C4", before="doc-1-1-before.png", after="doc-1-1-after.png")
    ]
    stored = {"doc-1-after.xlsx": AFTER}
    patch = binary_patch(tmp_path, path, BEFORE, AFTER)
    assert patch_blobs(patch) == {path: git_blob_id(AFTER)}
    links = {"doc-1-1-after.png": "https://audit.example/after.png"}
    (section,) = sections(DocumentsEvidence(documents=[d], renderer="LO"), patch, links, stored.get)
    assert section.body_text.splitlines()[:3] == [
        f"Document {path} (spreadsheet, changed): 1 sheet changed",
        f"  matches the proposal's patch (blob {git_blob_id(AFTER)[:12]})",
        "  sheet S: 1 cell changed, 1 row inserted",
    ]
    assert "B2: 1 -> 2" in section.body_text
    md = section_markdown(section)
    assert section.title == "Document docs/_img src_x_.xlsx"  # no markup in a heading
    # The hostile cell stays inside the fence: the fence is longer than any run inside.
    fence = md.split("\n")[2][: md.split("\n")[2].index("text")]
    assert len(fence) > 3 and md.count(fence) == 2
    assert (
        "- picture 1: before `doc-1-1-before.png` · after [doc-1-1-after.png](https://audit.example/after.png)"
        in md
    )


def test_a_diff_of_other_bytes_than_the_patch_writes_is_flagged(tmp_path: Path) -> None:
    d = diff_document("r.xlsx", "xlsx", BEFORE, AFTER)
    d.after_artifact = "doc-1-after.xlsx"
    patch = binary_patch(tmp_path, "r.xlsx", BEFORE, AFTER)
    swapped = {"doc-1-after.xlsx": workbook({"S": [["something", "else"]]})}
    (section,) = sections(DocumentsEvidence(documents=[d]), patch, {}, swapped.get)
    assert (
        "WARNING: the proposal's patch does not carry the file this diff describes"
        in section.body_text
    )
    (none,) = sections(DocumentsEvidence(documents=[d]), None, {}, swapped.get)
    assert "WARNING: the proposal has no patch" in none.body_text


def test_a_long_diff_is_folded_and_a_refused_file_says_why() -> None:
    rows = [["k", "v"], *[[f"r{i}", i] for i in range(60)]]
    bumped = [rows[0], *[[k, v + 1] for k, v in rows[1:]]]
    d = diff_document("big.xlsx", "xlsx", workbook({"S": rows}), workbook({"S": bumped}))
    (section,) = sections(DocumentsEvidence(documents=[d]), "", {}, {}.get)
    assert section.collapsed and section_markdown(section).startswith(
        "<details><summary>Document big.xlsx"
    )
    broken = diff_document("bad.xlsx", "xlsx", None, b"not a zip")
    (shown,) = sections(DocumentsEvidence(documents=[broken]), "", {}, {}.get)
    assert "not diffed: is not a xlsx file (not a zip package" in shown.body_text
    assert "[documents#format]" in shown.body_text
