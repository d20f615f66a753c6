"""Real git repositories for audit tests, and an attacker who rewrites the audit branch."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pygit2
import pytest

from bot.adapters.audit.log import AuditLog
from bot.core.canonical import canonical_json, digest_of, sha256_hex

GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "dev",
    "GIT_AUTHOR_EMAIL": "dev@example.com",
    "GIT_COMMITTER_NAME": "dev",
    "GIT_COMMITTER_EMAIL": "dev@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "FILTER_BRANCH_SQUELCH_WARNING": "1",
}

ARTIFACT_A = b"diff --git a/x b/x\n+hello\n"
ARTIFACT_B = b'{"tests": "passed"}\n'
SHA_A = sha256_hex(ARTIFACT_A)
SHA_B = sha256_hex(ARTIFACT_B)


@pytest.fixture(autouse=True)
def _own_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test repository signs with the key in its own git dir, whatever the host says."""
    monkeypatch.delenv("AGENTPLANE_SIGNING_KEY", raising=False)
    monkeypatch.delenv("AGENTPLANE_SIGNER", raising=False)


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout


def ref(name: str, sha: str, data: bytes) -> dict[str, object]:
    return {"name": name, "sha256": sha, "size": len(data), "media_type": "text/plain"}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A non-bare repository with one commit on main."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "README.md").write_text("# demo\n")
    git(path, "add", "README.md")
    git(path, "commit", "-q", "-m", "init")
    return path


@pytest.fixture
def log(repo: Path) -> AuditLog:
    return AuditLog(repo)


@pytest.fixture
def filled(log: AuditLog) -> AuditLog:
    """Six entries over two runs; artifact A stored at seq 1, B at seq 3, A reused at 4."""
    log.append("run-1", {"state": "queued", "artifacts": []})
    patch = ref("patch", SHA_A, ARTIFACT_A)
    report = ref("report", SHA_B, ARTIFACT_B)
    log.append("run-1", {"state": "running", "artifacts": [patch]}, {SHA_A: ARTIFACT_A})
    log.append("run-2", {"state": "queued", "artifacts": []})
    log.append("run-2", {"state": "running", "artifacts": [report]}, {SHA_B: ARTIFACT_B})
    log.append("run-2", {"state": "succeeded", "artifacts": [report, patch]})
    log.append("run-1", {"state": "failed", "artifacts": [patch]})
    return log


Steps = list[dict[str, bytes | None]]
"""Per first-parent commit, oldest first: the files it wrote (path -> content, None: deleted)."""


def read_steps(repo_path: Path) -> Steps:
    repo = pygit2.Repository(str(repo_path))
    walker = repo.walk(repo.references[AuditLog.BRANCH].target)
    walker.simplify_first_parent()
    commits = list(walker)[::-1]
    steps: Steps = []
    before: dict[str, bytes] = {}
    for commit in commits:
        now = _files(repo, commit.tree)
        step: dict[str, bytes | None] = {p: d for p, d in now.items() if before.get(p) != d}
        step.update({p: None for p in before if p not in now})
        steps.append(step)
        before = now
    return steps


def _files(repo: pygit2.Repository, tree: pygit2.Tree, prefix: str = "") -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for obj in tree:
        path = prefix + str(obj.name)
        if isinstance(obj, pygit2.Tree):
            out.update(_files(repo, obj, path + "/"))
        elif isinstance(obj, pygit2.Blob):
            out[path] = obj.data
    return out


def replay(repo_path: Path, steps: Steps, drop: frozenset[str] = frozenset()) -> None:
    """Rebuild the branch from steps, the way an attacker with the format in hand would:
    every commit re-created so each still adds its own files, then force the ref."""
    repo = pygit2.Repository(str(repo_path))
    sig = pygit2.Signature("agentplane", "agentplane@localhost")
    files: dict[str, bytes] = {}
    parent: list[pygit2.Oid] = []
    for number, step in enumerate(steps):
        for path, data in step.items():
            if data is None:
                files.pop(path, None)
            else:
                files[path] = data
        index = pygit2.Index()
        for path, data in files.items():
            if path not in drop:
                index.add(
                    pygit2.IndexEntry(path, repo.create_blob(data), pygit2.enums.FileMode.BLOB)
                )
        tree = index.write_tree(repo)
        parent = [repo.create_commit(None, sig, sig, f"rewritten {number}", tree, parent)]
    repo.references.create(AuditLog.BRANCH, parent[0], force=True)


def downgrade_to_v1(repo_path: Path) -> None:
    """Rewrite the branch as an agentplane from before signing wrote it (v1 entries, the
    anchor on its head, no signing key yet): the state a host is upgraded from."""
    steps = read_steps(repo_path)
    prev: str | None = None
    for step in steps:
        for path, data in step.items():
            if path.startswith("log/") and data is not None:
                doc = json.loads(data)
                v1 = {"v": 1, "seq": doc["seq"], "prev": prev, "run_id": doc["run_id"]}
                v1["record"] = doc["record"]
                step[path] = canonical_json(v1)
                prev = digest_of(v1)
    replay(repo_path, steps)
    common = Path(pygit2.Repository(str(repo_path)).path)
    anchor = {"digest": prev, "seq": len(steps) - 1}
    (common / "agentplane" / "audit-head").write_bytes(canonical_json(anchor) + b"\n")
    (common / "agentplane" / "signing-key").unlink(missing_ok=True)
