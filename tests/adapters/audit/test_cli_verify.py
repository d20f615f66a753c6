"""`agentplane audit verify` and `audit key` on real repositories: trust from policy on the
default branch, findings, warnings, and no writes."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner, Result

from bot.adapters.audit.log import AuditLog
from bot.adapters.audit.signing import Signer
from bot.doors.cli.main import cli
from tests.adapters.audit.conftest import downgrade_to_v1, git

BOT = Signer.generate("bot")


def with_policy(repo: Path, *signers: str, extra: str = "") -> None:
    lines = "".join(f"    - {s}\n" for s in signers)
    (repo / "policies").mkdir(exist_ok=True)
    (repo / "policies" / "audit.yaml").write_text(f"audit:\n{extra}  signers:\n{lines}")
    git(repo, "add", "policies")
    git(repo, "commit", "-q", "-m", "policy: audit signers")


def audit_verify(repo: Path) -> Result:
    return CliRunner().invoke(cli, ["audit", "verify", "--repo", str(repo)])


def tree_state(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*")} | {
        str(root): root.stat().st_mtime_ns
    }


def test_verify_trusts_policy_and_fails_on_an_unknown_signer(repo: Path) -> None:
    with_policy(repo, f"{{name: bot, key: {BOT.key}}}")
    AuditLog(repo, signer=BOT).append("run-1", {"state": "awaiting_approval"})
    assert audit_verify(repo).exit_code == 0
    AuditLog(repo, signer=Signer.generate("mallory")).append("run-1", {"state": "applied"})
    result = audit_verify(repo)
    assert result.exit_code == 1
    assert "FAIL signature: seq 1: entry seq 1 is signed by 'mallory'" in result.output
    assert "TAMPERED: 2 records (1 signed, 0 unsigned v1)" in result.output


def test_verify_writes_nothing(repo: Path, tmp_path: Path) -> None:
    with_policy(repo, f"{{name: bot, key: {BOT.key}}}")
    AuditLog(repo, signer=BOT).append("run-1", {"state": "queued"})
    fresh = tmp_path / "fresh"
    git(tmp_path, "clone", "-q", str(repo), str(fresh))
    git(fresh, "fetch", "-q", "origin", "agentplane/audit:agentplane/audit")
    before = tree_state(fresh)
    result = audit_verify(fresh)
    assert result.exit_code == 0, result.output
    assert "ok: 1 records (1 signed, 0 unsigned v1)" in result.output
    assert tree_state(fresh) == before  # no key, no lock, no anchor


def test_verify_warns_on_a_later_revoked_key_and_counts_unsigned(repo: Path) -> None:
    log = AuditLog(repo)
    log.append("run-1", {"state": "queued"})
    downgrade_to_v1(repo)
    AuditLog(repo, signer=BOT).append("run-1", {"state": "running"})
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    with_policy(repo, f"{{name: bot, key: {BOT.key}, revoked_at: '{tomorrow}'}}")
    result = audit_verify(repo)
    assert result.exit_code == 0, result.output
    assert "WARN revoked_later: seq 1:" in result.output
    assert "note: 1 record(s) are unsigned (v1" in result.output
    yesterday = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    with_policy(repo, f"{{name: bot, key: {BOT.key}, revoked_at: '{yesterday}'}}")
    result = audit_verify(repo)
    assert result.exit_code == 1 and "after its key was revoked" in result.output
    with_policy(repo, f"{{name: bot, key: {BOT.key}}}", extra="  require_signatures_from: 0\n")
    result = audit_verify(repo)
    assert result.exit_code == 1 and "FAIL unsigned: seq 0" in result.output


def test_audit_key_prints_a_policy_line(repo: Path) -> None:
    result = CliRunner().invoke(cli, ["audit", "key", "--repo", str(repo)])
    assert result.exit_code == 0, result.output
    own = AuditLog(repo).own_key()
    assert own is not None and result.output.strip() == f'- {{name: "{own[0]}", key: {own[1]}}}'
    assert os.stat(repo / ".git" / "agentplane" / "signing-key").st_mode & 0o077 == 0
