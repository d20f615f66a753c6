"""The project environment at /env (writable for setup only) and writable scratch that
never reaches the workspace, on both backends."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.adapters.sandbox.spec import SandboxBackend, SandboxSpec
from bot.core.errors import SandboxError


@pytest.fixture
def env_dir() -> Iterator[Path]:
    outer = Path(tempfile.mkdtemp(prefix="agentplane-state-"))
    os.chmod(outer, 0o711)  # as the environment cache keeps it: enterable, not listable
    env = outer / "env"
    env.mkdir()
    (env / "tool.txt").write_text("installed\n")
    yield env
    shutil.rmtree(outer, ignore_errors=True)


def test_setup_writes_the_environment_and_later_phases_only_read_it(
    backend: SandboxBackend, workspace: Path, env_dir: Path
) -> None:
    setup = SandboxSpec(workspace, ("**",), env_dir=env_dir, env_writable=True)
    with backend.start(setup) as box:
        out = box.exec(["sh", "-c", "cat /env/tool.txt && echo built > /env/new.txt"])
    assert out.exit_code == 0, out
    assert (env_dir / "new.txt").read_text() == "built\n"
    agent = SandboxSpec(workspace, ("src/**",), env_dir=env_dir)
    with backend.start(agent) as box:
        read = box.exec(["cat", "/env/new.txt"])
        write = box.exec(["sh", "-c", "echo poisoned > /env/new.txt"])
    assert read.exit_code == 0 and read.stdout == "built\n"
    assert write.exit_code != 0
    assert (env_dir / "new.txt").read_text() == "built\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root controller runs sandboxes as other uids")
def test_an_environment_the_sandbox_uid_cannot_reach_is_refused_with_the_fix(
    workspace: Path, env_dir: Path
) -> None:
    from tests.adapters.sandbox.conftest import backend_or_skip

    os.chmod(env_dir.parent, 0o700)
    with pytest.raises(SandboxError, match=r"not reachable by the sandbox uid .*world-traversable"):
        backend_or_skip("bwrap").start(SandboxSpec(workspace, env_dir=env_dir)).close()


def test_an_environment_that_is_a_symlink_is_refused(
    backend: SandboxBackend, workspace: Path, env_dir: Path, tmp_path: Path
) -> None:
    link = env_dir.parent / "link"
    link.symlink_to(env_dir)
    with pytest.raises(SandboxError, match="environment"):
        backend.start(SandboxSpec(workspace, env_dir=link)).close()


def test_scratch_is_writable_and_never_reaches_the_workspace(
    backend: SandboxBackend, workspace: Path
) -> None:
    spec = SandboxSpec(workspace, ("src/**",), scratch=(".pytest_cache", "build/tmp"))
    script = (
        "echo v > .pytest_cache/lastfailed && mkdir -p build/tmp/x && echo y > build/tmp/x/y"
        " && cat .pytest_cache/lastfailed"
    )
    with backend.start(spec) as box:
        out = box.exec(["sh", "-c", script])
        outside = box.exec(["sh", "-c", "echo no > tests/cache"])
    assert out.exit_code == 0 and out.stdout == "v\n", out
    assert outside.exit_code != 0  # the rest of the workspace stays read-only
    # Only empty mount points are left in the workspace: git records no empty directory.
    assert list((workspace / ".pytest_cache").iterdir()) == []
    assert list((workspace / "build/tmp").iterdir()) == []
    assert not (workspace / "tests/cache").exists()


def test_a_scratch_path_outside_the_workspace_is_refused(
    backend: SandboxBackend, workspace: Path
) -> None:
    for bad in ("../up", "/tmp/x", "*.cache"):
        with pytest.raises(SandboxError, match="scratch directory"):
            backend.start(SandboxSpec(workspace, scratch=(bad,))).close()


def test_a_scratch_path_the_repo_made_a_symlink_is_refused(
    backend: SandboxBackend, workspace: Path, tmp_path: Path
) -> None:
    (workspace / ".pytest_cache").symlink_to(tmp_path)
    with pytest.raises(SandboxError, match="cannot be made writable"):
        backend.start(SandboxSpec(workspace, scratch=(".pytest_cache",))).close()
    assert list(tmp_path.iterdir()) == []
