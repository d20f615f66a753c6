"""Proposals carrying secrets, and proposals over quota: pure checks, then the real engine."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bot.adapters.audit.log import MAX_ARTIFACT, AuditLog
from bot.adapters.git import GitRepo
from bot.adapters.sandbox.bwrap import BwrapBackend
from bot.core.errors import AuditError
from bot.core.policy import Quotas
from bot.core.render import render_evidence
from bot.run.engine import Engine
from bot.run.proposal_checks import ProposalRefused, check_proposal, quota_problem, usage
from bot.run.redact import Redactor
from tests.conftest import Scripted, git
from tests.run.test_canary import CRED_PW, GH_TOKEN, audit_branch_leaks, plant

PATCH = """\
diff --git a/src/a.py b/src/a.py
index 1111111..2222222 100644
--- a/src/a.py
+++ b/src/a.py
@@ -1,2 +1,3 @@
 a = 1
+b = "{value}"
 c = 3
"""


def test_a_known_secret_refuses_and_a_token_shape_flags() -> None:
    r = Redactor(["hunter2-known"])
    with pytest.raises(ProposalRefused, match=r"src/a\.py line 2 adds a secret") as exc:
        check_proposal(PATCH.format(value="hunter2-known"), r, Quotas(), "p#quotas")
    assert "hunter2" not in str(exc.value)
    (flag,) = check_proposal(PATCH.format(value=GH_TOKEN), r, Quotas(), "p#quotas")
    assert (flag.path, flag.line, flag.kinds) == ("src/a.py", 2, ("GitHub Token",))
    assert GH_TOKEN not in flag.describe()
    assert check_proposal(PATCH.format(value="plain"), r, Quotas(), "p#quotas") == []


def test_usage_and_quota_problems() -> None:
    u = usage(PATCH.format(value="x" * 100))
    assert u.files_changed == 1 and u.largest_file == ("src/a.py", 107)
    assert quota_problem(u, Quotas()) is None
    problem = quota_problem(u, Quotas(largest_file_bytes=50), "policies/q.yaml#quotas")
    assert problem == (
        "quota: 107 bytes in src/a.py, over largest_file_bytes 50 "
        "[policies/q.yaml#quotas.largest_file_bytes]"
    )
    with pytest.raises(ValueError, match="less than 100000000"):
        Quotas(proposal_bytes=200 * 1000 * 1000)  # no policy may pass GitHub's limit


def write(path: str, content: str) -> dict[str, object]:
    return {"tool_calls": [{"name": "fs_write", "arguments": {"path": path, "content": content}}]}


def test_a_proposal_with_a_broker_password_is_refused_and_never_stored(
    demo_repo: Path, scripted_job: Scripted, monkeypatch: pytest.MonkeyPatch
) -> None:
    plant(monkeypatch)
    turns = [write("src/conf.py", f'PASSWORD = "{CRED_PW}"\n'), {"content": "done"}]
    job = scripted_job("leaky", turns)
    e = Engine(GitRepo(demo_repo), BwrapBackend())
    rec = e.start(e.request(job))
    assert rec.state == "failed"
    assert "src/conf.py line 1 adds a secret the control plane holds" in rec.transitions[-1].reason
    stored = e.load(rec.run_id)
    assert stored.proposal is None and stored.artifact("proposal.diff") is None
    assert audit_branch_leaks(demo_repo) == []


def test_a_token_shaped_line_is_flagged_and_the_patch_kept(
    demo_repo: Path, scripted_job: Scripted
) -> None:
    job = scripted_job("tokenish", [write("src/conf.py", f'T = "{GH_TOKEN}"\n'), {"content": "ok"}])
    e = Engine(GitRepo(demo_repo), BwrapBackend())
    rec = e.start(e.request(job))
    assert rec.state == "awaiting_approval"
    assert GH_TOKEN in e.patch(rec)  # kept as proposed: apply commits exactly this
    evidence = render_evidence(rec, e.patch(rec), redact=e.redactor)
    assert "src/conf.py:1: looks like GitHub Token (value not shown)" in evidence
    assert GH_TOKEN not in evidence


def test_a_run_writing_over_its_quota_stops_with_the_reason(
    demo_repo: Path, scripted_job: Scripted
) -> None:
    """The issue's 300 MB file, scaled down: a 4 KB quota and a shell writing 20 KB."""
    (demo_repo / "policies/quotas.yaml").write_text(
        "quotas: {largest_file_bytes: 4096, bytes_written: 8192, proposal_bytes: 65536}\n"
    )
    git(demo_repo, "add", "-A")
    git(demo_repo, "commit", "-qm", "small quotas")
    fill = "head -c 20000 /dev/zero | tr '\\\\0' x > src/big.txt; ls -l src/big.txt"
    turns = [{"tool_calls": [{"name": "shell", "arguments": {"command": fill}}]}, {"content": "ok"}]
    job = scripted_job("filler", turns)
    e = Engine(GitRepo(demo_repo), BwrapBackend())
    rec = e.start(e.request(job))
    assert rec.state == "failed"
    reason = rec.transitions[-1].reason
    # RLIMIT_FSIZE followed the quota: the file was cut one byte over it, and refused.
    assert reason.startswith("quota: 4097 bytes in src/big.txt, over largest_file_bytes 4096")
    assert reason.endswith("[policies/quotas.yaml#quotas.largest_file_bytes]")
    assert e.load(rec.run_id).artifact("proposal.diff") is None


def test_a_workspace_grown_past_its_quota_stops_before_git_copies_a_byte(
    demo_repo: Path, scripted_job: Scripted
) -> None:
    # Many files, each under the largest-file quota, over bytes_written together: the run
    # stops before `git add`, so the host repository never stores their blobs.
    (demo_repo / "policies/quotas.yaml").write_text(
        "quotas: {largest_file_bytes: 4096, bytes_written: 8192}\n"
    )
    git(demo_repo, "add", "-A")
    git(demo_repo, "commit", "-qm", "small quotas")
    fill = "for i in 1 2 3 4 5; do printf 'y%.0s' $(seq 3000) > src/f$i.txt; done"
    turns = [{"tool_calls": [{"name": "shell", "arguments": {"command": fill}}]}, {"content": "ok"}]
    e = Engine(GitRepo(demo_repo), BwrapBackend())
    rec = e.start(e.request(scripted_job("spray", turns)))
    assert rec.state == "failed"
    assert rec.transitions[-1].reason.startswith("quota: 15000 bytes written, over bytes_written")
    blob = subprocess.run(
        ["git", "hash-object", "--stdin"], input="y" * 3000, capture_output=True, text=True
    ).stdout.strip()
    assert subprocess.run(["git", "cat-file", "-e", blob], cwd=demo_repo).returncode != 0


def test_the_audit_writer_refuses_an_artifact_github_would_refuse(demo_repo: Path) -> None:
    big = bytes(MAX_ARTIFACT + 1)
    with pytest.raises(AuditError, match="over the 99999999 GitHub accepts"):
        AuditLog(demo_repo).append("r-1", {"state": "planned"}, {"0" * 64: big})
    assert AuditLog(demo_repo).tip() is None  # nothing was written
