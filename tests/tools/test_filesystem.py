from pathlib import Path

import pytest

from bot.tools.base import ToolFailure
from bot.tools.filesystem import filesystem_tools, relpath


def tools(root: Path) -> dict[str, object]:
    return {t.name: t for t in filesystem_tools(root, lambda rel: not rel.startswith("secret"))}


def test_relpath_normalises_and_refuses_escapes() -> None:
    assert relpath("./src//a.py") == "src/a.py"
    for bad in ("", "/etc", "..", "a/../../b"):
        with pytest.raises(ToolFailure):
            relpath(bad)


def test_list_and_search_respect_readable(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("needle\n")
    (tmp_path / "secret.txt").write_text("needle\n")
    t = tools(tmp_path)
    assert t["fs_list"].handler({}).output == "a.py"  # type: ignore[attr-defined]
    assert t["fs_search"].handler({"pattern": "needle"}).output == "a.py:1: needle"  # type: ignore[attr-defined]


def test_search_bad_regex_is_a_tool_failure(tmp_path: Path) -> None:
    with pytest.raises(ToolFailure, match="bad regular expression"):
        tools(tmp_path)["fs_search"].handler({"pattern": "("})  # type: ignore[attr-defined]


def test_write_creates_parents_and_refuses_dirs(tmp_path: Path) -> None:
    t = tools(tmp_path)
    t["fs_write"].handler({"path": "new/dir/f.txt", "content": "hi"})  # type: ignore[attr-defined]
    assert (tmp_path / "new/dir/f.txt").read_text() == "hi"
    with pytest.raises(ToolFailure):
        t["fs_write"].handler({"path": "new", "content": "x"})  # type: ignore[attr-defined]
    with pytest.raises(ToolFailure):
        t["fs_read"].handler({"path": "missing"})  # type: ignore[attr-defined]
