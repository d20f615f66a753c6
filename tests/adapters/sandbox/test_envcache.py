"""The environment cache: kept only when built, sealed, verified on reuse, LRU under a cap."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from bot.adapters.sandbox.envcache import EnvCache, tree_digest
from bot.core.errors import SandboxError

KEY_A, KEY_B, KEY_C = "a" * 64, "b" * 64, "c" * 64


def _build(cache: EnvCache, size: int, name: str = "lib.bin") -> Path:
    build = cache.building()
    (build / "bin").mkdir()
    (build / "bin" / name).write_bytes(b"x" * size)
    return build


def test_nothing_is_found_until_an_environment_is_kept(tmp_path: Path) -> None:
    cache = EnvCache(tmp_path / "envs")
    assert cache.lookup(KEY_A) is None
    build = _build(cache, 10)
    assert cache.lookup(KEY_A) is None  # a build in progress is never a finished one
    kept = cache.keep(KEY_A, build, max_bytes=1000, built_by="run-1")
    found = cache.lookup(KEY_A)
    assert found is not None and found.path == kept.path and found.built_by == "run-1"
    assert found.digest == tree_digest(found.path)[0] and found.size_bytes == 10


def test_a_discarded_build_leaves_nothing(tmp_path: Path) -> None:
    cache = EnvCache(tmp_path / "envs")
    build = _build(cache, 10)
    cache.discard(build)
    assert cache.entries() == [] and not build.exists()


def test_an_environment_over_its_cap_is_refused_and_removed(tmp_path: Path) -> None:
    cache = EnvCache(tmp_path / "envs")
    build = _build(cache, 2000)
    with pytest.raises(SandboxError, match=r"more than policy's setup\.max_env_bytes"):
        cache.keep(KEY_A, build, max_bytes=1000)
    assert cache.lookup(KEY_A) is None and not build.exists()


def test_least_recently_used_environments_are_evicted_under_the_cap(tmp_path: Path) -> None:
    cache = EnvCache(tmp_path / "envs", cap_bytes=250)
    cache.keep(KEY_A, _build(cache, 100), max_bytes=1000)
    time.sleep(0.01)
    cache.keep(KEY_B, _build(cache, 100), max_bytes=1000)
    time.sleep(0.01)
    assert cache.lookup(KEY_A) is not None  # A is used again: B is now the oldest
    time.sleep(0.01)
    cache.keep(KEY_C, _build(cache, 100), max_bytes=1000)
    assert sorted(k for k, _, _ in cache.entries()) == [KEY_A, KEY_C]
    assert cache.lookup(KEY_B) is None


def test_the_environment_just_kept_is_never_evicted(tmp_path: Path) -> None:
    cache = EnvCache(tmp_path / "envs", cap_bytes=50)
    cache.keep(KEY_A, _build(cache, 40), max_bytes=1000)
    cache.keep(KEY_B, _build(cache, 100), max_bytes=1000)
    assert [k for k, _, _ in cache.entries()] == [KEY_B]


def test_an_environment_changed_on_disk_is_not_reused(tmp_path: Path) -> None:
    cache = EnvCache(tmp_path / "envs")
    kept = cache.keep(KEY_A, _build(cache, 10), max_bytes=1000)
    target = kept.path / "bin" / "lib.bin"
    os.chmod(target, 0o644)
    target.write_bytes(b"tampered!!")
    assert cache.lookup(KEY_A) is None
    assert cache.entries() == []


def test_setups_links_are_kept_as_links_and_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "host-secret"
    outside.write_text("secret")
    os.chmod(outside, 0o600)
    cache = EnvCache(tmp_path / "envs")
    build = _build(cache, 1)
    (build / "bin" / "python").symlink_to("/usr/bin/python3")
    (build / "escape").symlink_to(outside)
    (build / "dirlink").symlink_to(tmp_path)
    (build / "tool").write_text("#!/bin/sh\n")
    os.chmod(build / "tool", 0o4777)  # set-uid and world-writable, as hostile setup may leave
    kept = cache.keep(KEY_A, build, max_bytes=1000)
    assert os.readlink(kept.path / "escape") == str(outside)
    assert stat.S_IMODE(outside.stat().st_mode) == 0o600  # its target was not touched
    assert stat.S_IMODE((kept.path / "tool").stat().st_mode) == 0o755
    assert stat.S_IMODE((kept.path / "bin" / "lib.bin").stat().st_mode) == 0o644
    # The digest covers the links by their text: a retargeted link is a changed tree.
    digest = tree_digest(kept.path)[0]
    (kept.path / "escape").unlink()
    (kept.path / "escape").symlink_to("/etc/passwd")
    assert tree_digest(kept.path)[0] != digest


def test_a_fifo_setup_left_is_removed(tmp_path: Path) -> None:
    cache = EnvCache(tmp_path / "envs")
    build = _build(cache, 1)
    os.mkfifo(build / "pipe")
    kept = cache.keep(KEY_A, build, max_bytes=1000)
    assert not (kept.path / "pipe").exists()


def test_a_key_that_is_not_a_digest_is_refused(tmp_path: Path) -> None:
    cache = EnvCache(tmp_path / "envs")
    for bad in ("../x", "A" * 64, "a" * 63):
        with pytest.raises(SandboxError, match="not a sha256 hex digest"):
            cache.lookup(bad)


def test_a_cache_root_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "envs").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(SandboxError, match="not a plain directory"):
        EnvCache(tmp_path / "envs").building()


def test_a_build_a_killed_run_left_is_removed_later(tmp_path: Path) -> None:
    cache = EnvCache(tmp_path / "envs")
    left = cache.building()
    day_ago = time.time() - 2 * 24 * 3600
    os.utime(left.parent, (day_ago, day_ago))
    fresh = cache.building()
    assert not left.parent.exists() and fresh.is_dir()
