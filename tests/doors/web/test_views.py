"""The pure parts: rows, diff lines, file names, picture sniffing, money."""

from __future__ import annotations

from bot.doors.web.views import diff_lines, money, picture_type, safe_filename, seconds

PATCH = """diff --git a/src/calc.py b/src/calc.py
--- a/src/calc.py
+++ b/src/calc.py
@@ -3,2 +3,2 @@ def add
 def add(a, b):
-    return a - b
+    return a + b <script>
"""


def test_diff_lines_class_each_line_and_number_it() -> None:
    lines = diff_lines(PATCH)
    assert [line.kind for line in lines] == ["file", "file", "file", "hunk", "ctx", "del", "add"]
    assert (lines[4].old, lines[4].new) == (3, 3)
    assert (lines[5].old, lines[6].new) == (4, 4)
    assert lines[6].text.endswith("<script>")  # kept as text: the template escapes it


def test_diff_lines_survive_hostile_and_huge_input() -> None:
    assert [x.kind for x in diff_lines("@@ garbage @@\n+x\n\\ No newline")] == [
        "hunk",
        "add",
        "meta",
    ]
    many = diff_lines("+x\n" * 10, limit=3)
    assert len(many) == 4 and "7 more lines" in many[-1].text


def test_safe_filename() -> None:
    assert safe_filename("proposal.diff") == "proposal.diff"
    assert safe_filename('../../x"; y.html') == "x___y.html"
    assert safe_filename("\r\n") == "__"
    assert safe_filename("..") == "artifact"


def test_picture_type_sniffs_bytes_not_names() -> None:
    assert picture_type(b"\x89PNG\r\n\x1a\nrest") == "image/png"
    assert picture_type(b"\xff\xd8\xff\xe0") == "image/jpeg"
    assert picture_type(b"<svg onload=alert(1)>") is None
    assert picture_type(b"<html>") is None


def test_money_and_seconds() -> None:
    assert money(None) == "unknown" and money(0.0) == "$0.0000"
    assert seconds(None) == "-" and seconds(5) == "5s" and seconds(125) == "2m 05s"
