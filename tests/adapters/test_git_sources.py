"""The git adapter reads job, policy and config files as parse needs them: a link's target
is never read as content, at most the size cap is read, and bytes that are not UTF-8 reach
parse, which locates them (before, they raised UnicodeDecodeError)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.adapters.git import GitRepo
from bot.core.errors import ValidationFailed
from bot.core.job import parse_job
from bot.core.yamlsrc import MAX_BYTES
from tests.conftest import git


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    root = tmp_path / "r"
    jobs = root / ".agentplane" / "jobs"
    jobs.mkdir(parents=True)
    (jobs / "latin1.yaml").write_bytes(b"prompt: caf\xe9\n")
    (jobs / "link.yaml").symlink_to("/etc/passwd")
    (jobs / "huge.yaml").write_bytes(b"prompt: " + b"x" * (4 * MAX_BYTES) + b"\n")
    (root / "policies").mkdir()
    (root / "policies" / "link.yaml").symlink_to("../.agentplane/jobs/latin1.yaml")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "hostile")
    return GitRepo(root)


def test_bytes_that_are_not_utf8_are_located_by_parse(repo: GitRepo) -> None:
    path = ".agentplane/jobs/latin1.yaml"
    with pytest.raises(ValidationFailed) as info:
        parse_job(path, repo.read_file("main", path) or "")
    assert str(info.value) == f"{path}:1:12: byte 0xe9 is not UTF-8: save the file as UTF-8"


def test_a_symlink_in_the_tree_is_refused_not_read(repo: GitRepo) -> None:
    with pytest.raises(ValidationFailed, match=re.escape("link.yaml:1:1: is a symbolic link")):
        repo.read_file("main", ".agentplane/jobs/link.yaml")
    with pytest.raises(ValidationFailed, match="is a symbolic link"):
        repo.read_dir("main", "policies", (".yaml",))


def test_at_most_the_cap_is_read(repo: GitRepo) -> None:
    text = repo.read_file("main", ".agentplane/jobs/huge.yaml") or ""
    assert len(text) == MAX_BYTES + 1
    with pytest.raises(ValidationFailed, match="file is over 256 KiB"):
        parse_job(".agentplane/jobs/huge.yaml", text)
