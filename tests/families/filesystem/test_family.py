"""The filesystem family's part: the patch, its digest, paths and diffstat."""

from __future__ import annotations

from bot.families.filesystem.family import diffstat

# A one-line change to lines whose content starts with `--` and `++`: `-- old comment`
# removed is the line "--- old comment", and added "+++ new comment". Counting lines by
# their first characters took both for file headers and said +0 -0.
SQL_COMMENT = """\
diff --git a/q.sql b/q.sql
index 1111111..2222222 100644
--- a/q.sql
+++ b/q.sql
@@ -1,2 +1,2 @@
 SELECT 1;
--- old comment
+++ new comment
"""


def test_diffstat_counts_lines_that_start_with_two_dashes_or_pluses() -> None:
    assert diffstat(SQL_COMMENT) == (1, 1)


def test_diffstat_of_several_files_and_no_patch() -> None:
    two = SQL_COMMENT + SQL_COMMENT.replace("q.sql", "r.sql").replace(
        " SELECT 1;\n", " SELECT 1;\n+-- another\n"
    ).replace("@@ -1,2 +1,2 @@", "@@ -1,2 +1,3 @@")
    assert diffstat(two) == (3, 2)
    assert diffstat("") == (0, 0)
