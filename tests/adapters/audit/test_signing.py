"""Signers and their key files, on real git dirs: made once, 0600, never through a link."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pygit2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bot.adapters.audit.log import AuditLog, entry_path
from bot.adapters.audit.signing import Signer, load_signer, parse_public_key, signature_valid
from bot.core.errors import AuditError


def test_key_is_made_on_first_append_0600_and_reused(repo: Path) -> None:
    log = AuditLog(repo)
    key_file = repo / ".git" / "agentplane" / "signing-key"
    assert not key_file.exists()
    first = log.append("run-1", {"state": "queued"})
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    second = AuditLog(repo).append("run-1", {"state": "running"})
    assert first.key == second.key and first.key is not None
    assert first.signer is not None and first.signer.startswith("terminal:")
    # No temporary key file is left behind.
    assert sorted(os.listdir(key_file.parent)) == ["audit-head", "signing-key"]


def test_reading_never_creates_a_key(repo: Path) -> None:
    AuditLog(repo, signer=Signer.generate("bot")).append("run-1", {"state": "queued"})
    reader = AuditLog(repo)
    with pytest.raises(AuditError, match="does not list"):
        reader.entries()  # the bot's key is not this host's, and policy was not given
    assert not (repo / ".git" / "agentplane" / "signing-key").exists()


def test_a_reader_made_before_the_first_key_trusts_the_key_made_later(repo: Path) -> None:
    """serve's pages open the log before its worker's first append makes the host's key."""
    reader = AuditLog(repo)
    assert list(reader.entries()) == [] and reader.own_key() is None
    AuditLog(repo).append("run-1", {"state": "queued"})  # another process, the same host
    assert [e.run_id for e in reader.entries()] == ["run-1"]


def test_a_planted_symlink_is_never_followed(repo: Path, tmp_path: Path) -> None:
    # Someone who can write the git dir plants a key he knows; the bot must not sign with it
    # nor overwrite the link's target.
    known = Ed25519PrivateKey.generate()
    target = tmp_path / "attacker-key"
    target.write_bytes(
        known.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    target.chmod(0o600)
    (repo / ".git" / "agentplane").mkdir()
    (repo / ".git" / "agentplane" / "signing-key").symlink_to(target)
    with pytest.raises(AuditError, match="not a symlink"):
        AuditLog(repo).append("run-1", {"state": "queued"})
    assert target.read_bytes().startswith(b"-----BEGIN PRIVATE KEY")


def test_a_symlinked_key_directory_is_refused(repo: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (repo / ".git" / "agentplane").symlink_to(elsewhere)
    with pytest.raises(AuditError, match="must not be a symlink"):
        load_signer(repo / ".git" / "agentplane")
    assert list(elsewhere.iterdir()) == []


def test_a_key_others_can_read_is_refused(repo: Path) -> None:
    AuditLog(repo).append("run-1", {"state": "queued"})
    key_file = repo / ".git" / "agentplane" / "signing-key"
    key_file.chmod(0o644)
    with pytest.raises(AuditError, match="chmod 600"):
        AuditLog(repo).append("run-1", {"state": "running"})


def test_key_and_name_from_the_environment(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = Ed25519PrivateKey.generate()
    key_file = tmp_path / "bot.key"
    key_file.write_bytes(
        raw.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
    )
    monkeypatch.setenv("AGENTPLANE_SIGNING_KEY", str(key_file))
    monkeypatch.setenv("AGENTPLANE_SIGNER", "bot:agentplane[bot]")
    entry = AuditLog(repo).append("run-1", {"state": "queued"})
    assert entry.signer == "bot:agentplane[bot]"
    assert entry.key == Signer("x", raw).key
    assert not (repo / ".git" / "agentplane" / "signing-key").exists()
    key_file.write_text("not a key")
    with pytest.raises(AuditError, match="not an unencrypted Ed25519 private key"):
        AuditLog(repo).append("run-1", {"state": "running"})
    monkeypatch.setenv("AGENTPLANE_SIGNING_KEY", str(tmp_path / "missing"))
    with pytest.raises(AuditError, match="cannot open the signing key"):
        AuditLog(repo).append("run-1", {"state": "running"})


def test_signatures_check_content_and_key() -> None:
    signer = Signer.generate("bot")
    sig = signer.sign(b"payload")
    assert signature_valid(signer.key, b"payload", sig)
    assert not signature_valid(signer.key, b"payload!", sig)
    assert not signature_valid(Signer.generate("other").key, b"payload", sig)
    assert not signature_valid(signer.key, b"payload", "not base64!")
    assert not signature_valid("ed25519:AAAA", b"payload", sig)
    with pytest.raises(AuditError, match="not an Ed25519 public key"):
        parse_public_key("ssh-ed25519 AAAA")
    with pytest.raises(AuditError, match="signer name"):
        Signer.generate("bad\nname")


def test_an_outside_verifier_checks_a_signature_without_re_serializing(log: AuditLog) -> None:
    """The signed bytes are the stored blob with its `"sig"` member cut out, so a verifier
    in another language needs no JSON serializer that writes numbers as Python does."""
    log.append("run-1", {"state": "running", "cost_usd": 1.5e-05, "ms": 0.0, "who": "Zoë"})
    repo = log.repo
    tree = repo[repo.references[AuditLog.BRANCH].target].peel(pygit2.Tree)
    (entry,) = list(log.entries())
    blob = tree[entry_path(entry.seq)].data
    doc = json.loads(blob)
    member = f'"sig":{json.dumps(doc["sig"])},'.encode()
    assert blob.count(member) == 1
    signed = blob.replace(member, b"")
    assert signature_valid(doc["signer"]["key"], signed, doc["sig"])
    as_jcs = signed.replace(b"1.5e-05", b"0.000015")  # RFC 8785 writes the number so
    assert not signature_valid(doc["signer"]["key"], as_jcs, doc["sig"])
