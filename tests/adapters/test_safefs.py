"""safefs on a real filesystem, both ways of opening: openat2 and the per-component walk."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.adapters import safefs

WAYS = [
    pytest.param(True, id="openat2"),
    pytest.param(False, id="walk"),
]


@pytest.fixture(params=WAYS)
def way(request: pytest.FixtureRequest) -> bool:
    if request.param and not safefs.has_openat2():
        pytest.skip("this kernel has no openat2")
    return bool(request.param)


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    root = tmp_path / "ws"
    (root / "src").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "src" / "a.py").write_text("a\n")
    (root / "tests" / "t.py").write_text("t\n")
    (tmp_path / "host").mkdir()
    (tmp_path / "host" / "secret").write_text("host secret\n")
    with safefs.root(root) as fd:
        yield root, fd


def test_reads_and_writes_plain_paths(ws: tuple[Path, int], way: bool) -> None:
    root, fd = ws
    assert safefs.read_bytes(fd, "src/a.py", 100, openat2=way) == b"a\n"
    assert safefs.read_bytes(fd, "src/a.py", 1, openat2=way) == b"a"
    safefs.write_bytes(fd, "new/deep/f.txt", b"hi", openat2=way)
    safefs.write_bytes(fd, "src/a.py", b"b", openat2=way)  # truncates, not appends
    assert (root / "new/deep/f.txt").read_bytes() == b"hi"
    assert (root / "src/a.py").read_bytes() == b"b"


def test_links_on_the_way_are_refused_both_ways(ws: tuple[Path, int], way: bool) -> None:
    root, fd = ws
    (root / "src" / "up").symlink_to("../tests")
    (root / "src" / "out").symlink_to(root.parent / "host")
    for rel in ("src/up/t.py", "src/out/secret"):
        with pytest.raises(safefs.IsLink, match="is a symlink ->") as err:
            safefs.read_bytes(fd, rel, 100, openat2=way)
        assert err.value.rel == rel.rsplit("/", 1)[0]
    with pytest.raises(safefs.UnsafePath):
        safefs.write_bytes(fd, "src/up/t.py", b"pwned", openat2=way)
    with pytest.raises(safefs.UnsafePath):
        safefs.write_bytes(fd, "src/out/new", b"pwned", openat2=way)
    with pytest.raises(safefs.UnsafePath):
        safefs.open_dir(fd, "src/out/x", create=True, openat2=way)
    assert (root / "tests/t.py").read_text() == "t\n"
    assert sorted(p.name for p in (root.parent / "host").iterdir()) == ["secret"]


def test_a_final_link_is_a_link_even_when_dangling(ws: tuple[Path, int], way: bool) -> None:
    root, fd = ws
    (root / "src" / "ln").symlink_to("../tests/t.py")
    (root / "src" / "dangling").symlink_to("../tests/created-through-link")
    with pytest.raises(safefs.IsLink) as err:
        safefs.read_bytes(fd, "src/ln", 100, openat2=way)
    assert err.value.target == "../tests/t.py"
    for rel in ("src/ln", "src/dangling"):
        with pytest.raises(safefs.IsLink):
            safefs.write_bytes(fd, rel, b"pwned", openat2=way)
    assert (root / "tests/t.py").read_text() == "t\n"
    assert not (root / "tests/created-through-link").exists()
    assert safefs.lookup(fd, "src/ln", openat2=way) == safefs.Entry(
        "src/ln", "link", "../tests/t.py"
    )


def test_fifos_hard_links_and_escapes_are_refused(ws: tuple[Path, int], way: bool) -> None:
    root, fd = ws
    os.mkfifo(root / "src" / "fifo")
    os.link(root / "tests" / "t.py", root / "src" / "hard")
    began = time.monotonic()
    with pytest.raises(safefs.UnsafePath, match="not a regular file"):
        safefs.read_bytes(fd, "src/fifo", 100, openat2=way)  # would block without O_NONBLOCK
    with pytest.raises(safefs.UnsafePath):
        safefs.write_bytes(fd, "src/fifo", b"x", openat2=way)
    assert time.monotonic() - began < 5
    with pytest.raises(safefs.UnsafePath, match="hard links"):
        safefs.write_bytes(fd, "src/hard", b"pwned", openat2=way)
    for bad in ("../host/secret", "/etc/passwd", "src/\0x", "."):
        with pytest.raises(safefs.UnsafePath):
            safefs.read_bytes(fd, bad, 100, openat2=way)
    assert (root / "tests/t.py").read_text() == "t\n"


def test_walk_lists_links_as_links_and_never_descends(ws: tuple[Path, int], way: bool) -> None:
    root, fd = ws
    (root / "src" / "out").symlink_to(root.parent / "host")
    (root / "src" / "sub").mkdir()
    (root / "src" / "sub" / "b.py").write_text("b\n")
    entries, cut = safefs.walk(fd, "src", openat2=way)
    assert not cut
    assert entries == [
        safefs.Entry("src/a.py", "file"),
        safefs.Entry("src/out", "link", str(root.parent / "host")),
        safefs.Entry("src/sub/b.py", "file"),
    ]
    assert safefs.walk(fd, ".", limit=2, openat2=way)[1] is True
    with pytest.raises(safefs.IsLink):
        safefs.walk(fd, "src/out", openat2=way)


def _exchange(a: Path, b: Path) -> int:
    """renameat2(RENAME_EXCHANGE): a and b swap places atomically; the GIL is released."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.renameat2(-100, bytes(a), -100, bytes(b), 2))


def swap_until(stop: threading.Event, d: Path, link: Path) -> int:
    swaps = 0
    while not stop.is_set():
        swaps += _exchange(d, link) == 0
    return swaps


def test_open_dir_never_lands_outside_under_a_swapping_thread(
    ws: tuple[Path, int], way: bool
) -> None:
    """d flips between a directory and a link to the host dir; creating d/x never reaches it."""
    root, fd = ws
    host = root.parent / "host"
    (root / "src" / "d").mkdir()
    (root / "src" / "ln").symlink_to(host)
    stop, swaps = threading.Event(), [0]
    swapper = threading.Thread(
        target=lambda: swaps.__setitem__(0, swap_until(stop, root / "src/d", root / "src/ln"))
    )
    swapper.start()
    ok = refused = 0
    try:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            try:
                safefs.write_bytes(fd, "src/d/f.txt", b"mine", openat2=way)
                ok += 1
            except safefs.UnsafePath:
                refused += 1
    finally:
        stop.set()
        swapper.join()
    assert sorted(p.name for p in host.iterdir()) == ["secret"]
    assert swaps[0] > 100 and ok > 0 and refused > 0, (swaps, ok, refused)
