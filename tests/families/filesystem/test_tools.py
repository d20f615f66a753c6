from pathlib import Path

import pytest

from bot.families.base import ToolFailure
from bot.families.filesystem.tools import filesystem_tools, relpath


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


def committed(tmp_path: Path, links: dict[str, str]) -> Path:
    """A workspace exported from a real commit holding these symlinks (as runs get it)."""
    import subprocess

    from bot.adapters.git import GitRepo

    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "tests").mkdir()
    (repo / "src" / "a.py").write_text("a = 1\n")
    (repo / "tests" / "test_x.py").write_text("assert True\n")
    for rel, target in links.items():
        (repo / rel).symlink_to(target)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "HOME": str(tmp_path)}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com", "PATH": "/usr/bin"}
    for cmd in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "links"]):
        subprocess.run(["git", *cmd], cwd=repo, env=env, check=True)
    ws = tmp_path / "ws"
    GitRepo(repo).export("HEAD", ws)
    assert (ws / next(iter(links))).is_symlink()
    return ws


def test_committed_links_are_shown_never_written_through(tmp_path: Path) -> None:
    ws = committed(tmp_path, {"src/link": "../tests/test_x.py", "src/tests": "../tests"})
    t = tools(ws)
    for path in ("src/link", "src/tests/test_x.py", "src/tests/new.py"):
        with pytest.raises(ToolFailure, match="symlink"):
            t["fs_write"].handler({"path": path, "content": "assert False\n"})  # type: ignore[attr-defined]
    assert (ws / "tests/test_x.py").read_text() == "assert True\n"
    assert not (ws / "tests/new.py").exists()
    read = t["fs_read"].handler  # type: ignore[attr-defined]
    assert read({"path": "src/link"}).output == "symlink -> ../tests/test_x.py (not followed)"
    with pytest.raises(ToolFailure, match="'src/tests' is a symlink"):
        read({"path": "src/tests/test_x.py"})
    listing = t["fs_list"].handler({"path": "src"}).output  # type: ignore[attr-defined]
    assert listing.splitlines() == [
        "src/a.py",
        "src/link -> ../tests/test_x.py (symlink)",
        "src/tests -> ../tests (symlink)",
    ]
    assert t["fs_search"].handler({"pattern": "assert"}).output == "tests/test_x.py:1: assert True"  # type: ignore[attr-defined]


def test_fs_write_under_a_swapping_thread_never_writes_the_host(tmp_path: Path) -> None:
    """The check-then-open race: src/d flips between a dir and a link to a host dir."""
    import threading
    import time

    from tests.adapters.test_safefs import swap_until

    ws, host = tmp_path / "ws", tmp_path / "host"
    (ws / "src" / "d").mkdir(parents=True)
    host.mkdir()
    (ws / "src" / "ln").symlink_to(host)
    write = tools(ws)["fs_write"].handler  # type: ignore[attr-defined]
    stop = threading.Event()
    swapper = threading.Thread(target=swap_until, args=(stop, ws / "src/d", ws / "src/ln"))
    swapper.start()
    done = 0
    try:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline and not any(host.iterdir()):
            try:
                write({"path": "src/d/f.txt", "content": "pwned"})
                done += 1
            except (ToolFailure, OSError):
                pass
    finally:
        stop.set()
        swapper.join()
    assert list(host.iterdir()) == []
    assert done > 0  # the race was live: some writes landed in the workspace
