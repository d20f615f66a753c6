"""The append-only audit branch: one commit per run-record state change.

Entries are written with pygit2 (libgit2) straight into the object database and the
`agentplane/audit` ref, so the working tree, index and HEAD of the user's repository are
never touched. GitPython's docs warn against long-running use; pygit2 measured about 5x
faster than plumbing in bench/bench_audit.py (2.6-9x across runs on a noisy shared box).

Branch layout: `log/<seq // 1000:04d>/<seq:08d>.json` holds the canonical JSON entry
document, chained by `prev` (the digest of the whole entry before, signature included);
`artifacts/<2 hex>/<sha256 hex>` holds each artifact once.

The signed envelope (v2), fixed here so that later record versions adopt it unchanged:

    {"v": 2, "seq", "prev", "run_id", "at", "record",
     "signer": {"name", "key": "ed25519:<base64 raw public key>"}, "sig": "<base64>"}

`sig` is Ed25519 over the canonical JSON of the entry without `sig` (see signing.py for
why Ed25519); `at` is the writer's UTC time, which revocation in policy is judged against.
Entries written before signing are `{"v": 1, "seq", "prev", "run_id", "record"}`: still
read, and reported as unsigned. Reads verify: every entry that enters the cache has been
checked for its chain link, its signature against the trust set (trust.py) and the local
anchor, so `latest()` never returns a record that a push could have forged.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pygit2

from bot.adapters.audit.signing import Signer, check_signer_name, load_signer
from bot.adapters.audit.trust import (
    TRUSTED,
    ChainJudge,
    Trust,
    TrustVerdict,
    parse_time,
    signed_payload,
)
from bot.core.canonical import canonical_json, sha256_hex
from bot.core.errors import AuditError, NotAGitRepository

ENTRY_VERSION = 2
SHARD_SIZE = 1000
V1_KEYS = frozenset({"v", "seq", "prev", "run_id", "record"})
ENTRY_KEYS = V1_KEYS | {"at", "signer", "sig"}
SIGNER_KEYS = frozenset({"name", "key"})
MAX_ARTIFACT = 100 * 1000 * 1000 - 1
"""Largest artifact an audit commit may hold: under GitHub's 100 MB blob limit."""
_MAX_FIELD = 200  # at, signer key, signature: all far shorter when well-formed
ENTRY_PATH = re.compile(r"log/(\d{4})/(\d{8})\.json\Z")
ARTIFACT_PATH = re.compile(r"artifacts/([0-9a-f]{2})/([0-9a-f]{64})\Z")
HEX64 = re.compile(r"[0-9a-f]{64}\Z")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}\Z")

# A record counts as kept only once it is on disk: libgit2 fsyncs objects and refs then,
# so power lost right after an append (and a release it allowed) cannot take it back.
pygit2.settings.enable_fsync_gitdir(True)

_BLOB = pygit2.enums.FileMode.BLOB
_TREE = pygit2.enums.FileMode.TREE
_NO_ARTIFACTS: Mapping[str, bytes] = MappingProxyType({})
# Only something outside agentplane (a fetch into the ref, a manual update-ref) can move
# the ref while we hold the lock; retrying a few times rides that out, a loop would not.
_APPEND_ATTEMPTS = 5
_LOW_SPACE = 1024 * 1024  # below this a failed append is put down to the disk being full


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    run_id: str
    prev: str | None
    digest: str
    record: dict[str, Any]
    commit: str
    signer: str | None = None  # the name the entry gives; None: unsigned (v1)
    key: str | None = None


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def entry_path(seq: int) -> str:
    return f"log/{seq // SHARD_SIZE:04d}/{seq:08d}.json"


def entry_seq(path: str) -> int | None:
    """The seq a path under log/ stands for, None if the path is not a well-formed entry."""
    match = ENTRY_PATH.match(path)
    if match is None:
        return None
    seq = int(match.group(2))
    return seq if int(match.group(1)) == seq // SHARD_SIZE else None


def artifact_path(sha256: str) -> str:
    return f"artifacts/{sha256[:2]}/{sha256}"


def artifact_name(path: str) -> str | None:
    """The sha256 a path under artifacts/ stands for, None if malformed."""
    match = ARTIFACT_PATH.match(path)
    if match is None or not match.group(2).startswith(match.group(1)):
        return None
    return match.group(2)


def parse_entry(data: bytes) -> dict[str, Any]:
    """The entry document stored in a blob; AuditError saying what is wrong otherwise."""
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise AuditError(f"not JSON: {exc}") from exc
    if not isinstance(doc, dict) or "v" not in doc:
        raise AuditError("expected an object with a version v")
    version = doc["v"]
    if type(version) is not int or version not in (1, ENTRY_VERSION):
        raise AuditError(f"unsupported entry version {version!r}")
    keys = V1_KEYS if version == 1 else ENTRY_KEYS
    if set(doc) != keys:
        raise AuditError(f"a v{version} entry has exactly the keys {sorted(keys)}")
    if version != 1:
        _check_envelope(doc)
    if type(doc["seq"]) is not int or doc["seq"] < 0:
        raise AuditError(f"seq must be a non-negative integer, got {doc['seq']!r}")
    prev = doc["prev"]
    if prev is not None and not (isinstance(prev, str) and DIGEST.match(prev)):
        raise AuditError(f"prev must be null or sha256:<hex>, got {prev!r}")
    if not isinstance(doc["run_id"], str) or not doc["run_id"]:
        raise AuditError("run_id must be a non-empty string")
    if not isinstance(doc["record"], dict):
        raise AuditError("record must be an object")
    return doc


def _check_envelope(doc: dict[str, Any]) -> None:
    at, signer, sig = doc["at"], doc["signer"], doc["sig"]
    if not isinstance(at, str) or len(at) > _MAX_FIELD or parse_time(at) is None:
        raise AuditError(f"at must be an ISO 8601 time with a zone, got {str(at)[:80]!r}")
    if not isinstance(signer, dict) or set(signer) != SIGNER_KEYS:
        raise AuditError(f"signer must be an object with keys {sorted(SIGNER_KEYS)}")
    if not isinstance(signer["name"], str):
        raise AuditError("signer name must be a string")
    check_signer_name(signer["name"])
    for what, value in (("signer key", signer["key"]), ("sig", sig)):
        if not isinstance(value, str) or not value or len(value) > _MAX_FIELD:
            raise AuditError(f"{what} must be a short non-empty string")


def artifact_refs(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The `record["artifacts"]` references; AuditError if their shape is wrong."""
    refs = record.get("artifacts", [])
    if not isinstance(refs, list):
        raise AuditError("record artifacts must be a list")
    for ref in refs:
        if not isinstance(ref, dict) or not HEX64.match(str(ref.get("sha256", ""))):
            raise AuditError(f"artifact reference needs a sha256 hex digest: {ref!r}")
        size = ref.get("size")
        if size is not None and (type(size) is not int or size < 0):
            raise AuditError(f"artifact {ref['sha256']} has a bad size {size!r}")
    return refs


def _subtree(tree: pygit2.Tree | None, name: str) -> pygit2.Tree | None:
    if tree is None:
        return None
    try:
        child = tree[name]
    except KeyError:
        return None
    if not isinstance(child, pygit2.Tree):
        raise AuditError(f"{name} on the audit branch is not a directory")
    return child


def _has_path(tree: pygit2.Tree | None, path: str) -> bool:
    if tree is None:
        return False
    try:
        tree[path]
    except KeyError:
        return False
    return True


def _insert(
    repo: pygit2.Repository, tree: pygit2.Tree | None, edits: Mapping[tuple[str, ...], pygit2.Oid]
) -> pygit2.Oid:
    """Write `tree` plus blobs at the given paths, rewriting only the trees on those paths.

    That keeps an append O(shard size), not O(log size).
    """
    builder = repo.TreeBuilder() if tree is None else repo.TreeBuilder(tree)
    nested: dict[str, dict[tuple[str, ...], pygit2.Oid]] = {}
    for parts, oid in edits.items():
        if len(parts) == 1:
            builder.insert(parts[0], oid, _BLOB)
        else:
            nested.setdefault(parts[0], {})[parts[1:]] = oid
    for name, sub in nested.items():
        builder.insert(name, _insert(repo, _subtree(tree, name), sub), _TREE)
    return builder.write()


def _signature() -> pygit2.Signature:
    return pygit2.Signature("agentplane", "agentplane@localhost")  # time: now


def build_commit(
    repo: pygit2.Repository,
    parent: pygit2.Commit | None,
    document: Mapping[str, Any],
    artifacts: Mapping[str, bytes] = _NO_ARTIFACTS,
) -> pygit2.Oid:
    """Write (without moving any ref) the commit that appends `document` after `parent`.

    Artifacts already on the branch are not rewritten: stored once, by digest.
    """
    root = None if parent is None else parent.tree
    seq = document["seq"]
    edits = {tuple(entry_path(seq).split("/")): repo.create_blob(canonical_json(document))}
    for sha, data in artifacts.items():
        path = artifact_path(sha)
        if not _has_path(root, path):
            edits[tuple(path.split("/"))] = repo.create_blob(data)
    tree = _insert(repo, root, edits)
    state = document["record"].get("state")
    message = f"audit: {document['run_id']} seq {seq} {state}"
    parents = [] if parent is None else [parent.id]
    sig = _signature()
    return repo.create_commit(None, sig, sig, message, tree, parents)


def _doc_from_blob(data: bytes, seq: int) -> dict[str, Any]:
    try:
        doc = parse_entry(data)
    except AuditError as exc:
        raise AuditError(f"audit entry seq {seq} is malformed ({exc}): run verify") from exc
    if doc["seq"] != seq:
        raise AuditError(f"audit entry at seq {seq} says seq {doc['seq']}: run verify")
    return doc


def _entry(doc: dict[str, Any], commit: str) -> AuditEntry:
    signer = doc.get("signer")
    return AuditEntry(
        seq=doc["seq"],
        run_id=doc["run_id"],
        prev=doc["prev"],
        # Same as digest_of(doc) when the blob is canonical, which verify checks.
        digest="sha256:" + sha256_hex(canonical_json(doc)),
        record=doc["record"],
        commit=commit,
        signer=None if signer is None else signer["name"],
        key=None if signer is None else signer["key"],
    )


def _entry_from_blob(data: bytes, seq: int, commit: str) -> AuditEntry:
    return _entry(_doc_from_blob(data, seq), commit)


def parse_anchor(text: str) -> tuple[int, str]:
    """(seq, digest) of the local anchor file; ValueError if it is not one."""
    doc = json.loads(text)
    if not (isinstance(doc, dict) and type(doc.get("seq")) is int and doc["seq"] >= 0):
        raise ValueError("no seq")
    if not DIGEST.match(str(doc.get("digest"))):
        raise ValueError("no digest")
    return doc["seq"], doc["digest"]


def _log_blobs(tree: pygit2.Tree, start: int) -> Iterator[tuple[int, bytes]]:
    """(seq, blob data) of every entry with seq >= start, in seq order."""
    log = _subtree(tree, "log")
    if log is None:
        return
    for shard in log:
        name = shard.name or ""
        if not isinstance(shard, pygit2.Tree) or not name.isdigit():
            continue
        if int(name) < start // SHARD_SIZE:
            continue
        for blob in shard:
            seq = entry_seq(f"log/{shard.name}/{blob.name}")
            if seq is not None and seq >= start and isinstance(blob, pygit2.Blob):
                yield seq, blob.data


def _nearly_full(path: Path) -> bool:
    try:
        fs = os.statvfs(path)
    except OSError:
        return False
    return fs.f_bavail * fs.f_frsize < _LOW_SPACE


def _common_dir(git_dir: Path) -> Path:
    # A linked worktree has its own git dir; the branch, and so the lock, are shared.
    pointer = git_dir / "commondir"
    if pointer.is_file():
        return (git_dir / pointer.read_text().strip()).resolve()
    return git_dir


class AuditLog:
    """The audit branch of one repository.

    Appends from any number of processes serialize on a flock in the git dir; an instance
    may be shared by threads (its cache sits behind a lock).

    Every entry read is verified before it is returned (see `_sync`); a chain, signature or
    anchor that does not hold raises AuditError. Until `trust()` is given policy's signers,
    only this host's own key is trusted.
    """

    BRANCH = "refs/heads/agentplane/audit"

    def __init__(self, repo_path: Path, signer: Signer | None = None) -> None:
        try:
            self._repo = pygit2.Repository(str(repo_path))
        except pygit2.GitError:
            raise NotAGitRepository(Path(repo_path).resolve()) from None
        common = _common_dir(Path(self._repo.path))
        self._lock_path = common / "agentplane-audit.lock"
        self.anchor_path = common / "agentplane" / "audit-head"
        self.key_dir = common / "agentplane"
        self._mutex = threading.RLock()
        # Loaded on first append, so that reading (verify above all) never creates a key.
        self._signer = signer
        self._own: tuple[str, str] | None = None if signer is None else (signer.name, signer.key)
        self._own_loaded = signer is not None
        self._policy_trust = Trust()
        self._trust: Trust | None = None  # policy's plus our own key, built on first use
        # Verified entries and the commit they end at; extended incrementally as the ref
        # moves, rebuilt if the ref stops descending from that commit.
        self._cache: list[AuditEntry] = []
        self._cache_tip: pygit2.Oid | None = None
        self._latest: dict[str, int] = {}
        self._judge: ChainJudge | None = None

    @property
    def repo(self) -> pygit2.Repository:
        return self._repo

    # -- trust -----------------------------------------------------------------------

    def trust(self, policy_trust: Trust) -> None:
        """Trust the signers policy lists (on the default branch); re-verifies what was
        read if they changed."""
        with self._mutex:
            if policy_trust == self._policy_trust:
                return
            self._policy_trust = policy_trust
            self._trust = None
            self._reset()

    def sign_as(self, signer: Signer) -> None:
        """Write as `signer` from now on (the bot passes its own)."""
        with self._mutex:
            self._signer = signer
            self._own, self._own_loaded = (signer.name, signer.key), True
            self._trust = None
            self._reset()

    def own_key(self) -> tuple[str, str] | None:
        """(name, public key) of this host's signer, without creating a key."""
        if not self._own_loaded:
            own = load_signer(self.key_dir, create=False)
            self._own = None if own is None else (own.name, own.key)
            # No key yet is not remembered: another process (serve's worker beside its
            # pages) may make it with its first append, and its entries are ours.
            self._own_loaded = own is not None
            if own is not None:
                self._trust = None
        return self._own

    def trust_set(self) -> Trust:
        """What reads check signatures against: policy's signers plus our own key."""
        if self._trust is None or not self._own_loaded:
            own = self.own_key()
            base = self._policy_trust
            self._trust = base if own is None else base.with_own(*own)
        return self._trust

    def _signer_for_append(self) -> Signer:
        if self._signer is None:
            signer = load_signer(self.key_dir, create=True)
            assert signer is not None  # create=True makes one
            self._signer = signer
            if (signer.name, signer.key) != self._own:
                self._own, self._own_loaded, self._trust = (signer.name, signer.key), True, None
        return self._signer

    # -- refs and anchor ---------------------------------------------------------------

    def tip(self) -> pygit2.Oid | None:
        """The commit the branch points at, None before the first append."""
        ref = self._repo.references.get(self.BRANCH)
        if ref is None:
            return None
        target = ref.target
        if not isinstance(target, pygit2.Oid):
            raise AuditError(f"{self.BRANCH} is a symbolic ref to {target}: run verify")
        return target

    def read_anchor(self) -> str | None:
        try:
            return self.anchor_path.read_text()
        except FileNotFoundError:
            return None

    def tip_and_anchor(self) -> tuple[pygit2.Oid | None, str | None]:
        """Ref and anchor as one consistent pair: an append updates them under the same
        lock, so reading them apart could see a new tip with the old anchor."""
        with self._shared():
            return self.tip(), self.read_anchor()

    def _anchor(self, text: str | None) -> tuple[int, str] | None:
        if text is None:
            return None
        try:
            return parse_anchor(text)
        except ValueError as exc:
            raise AuditError(
                f"the local anchor {self.anchor_path} is unreadable ({exc}): run "
                "`agentplane audit verify`"
            ) from exc

    # -- writing ---------------------------------------------------------------------

    def append(
        self,
        run_id: str,
        record: Mapping[str, Any],
        artifacts: Mapping[str, bytes] = _NO_ARTIFACTS,
    ) -> AuditEntry:
        if not run_id or any(c.isspace() for c in run_id):
            raise AuditError(f"run id must be non-empty without whitespace: {run_id!r}")
        try:
            # A JSON round trip freezes the caller's record as of this state change.
            snapshot: dict[str, Any] = json.loads(canonical_json(dict(record)))
        except (TypeError, ValueError) as exc:
            raise AuditError(f"run {run_id}: record is not JSON-able: {exc}") from exc
        for key, data in artifacts.items():
            if len(data) > MAX_ARTIFACT:
                # GitHub refuses a push holding a blob over 100 MB: one would wedge the replica.
                raise AuditError(
                    f"run {run_id}: artifact {key[:12]} is {len(data)} bytes, over the "
                    f"{MAX_ARTIFACT} GitHub accepts in a blob; lower policy quotas"
                )
            if not HEX64.match(key) or sha256_hex(data) != key:
                raise AuditError(
                    f"run {run_id}: artifact key {key} is not the sha256 of its content "
                    f"({sha256_hex(data)})"
                )
        refs = artifact_refs(snapshot)
        with self._mutex:
            signer = self._signer_for_append()
            self._check_not_revoked(signer)
            try:
                with self._exclusive():
                    return self._append_locked(signer, run_id, snapshot, refs, artifacts)
            except (OSError, pygit2.GitError) as exc:
                # Nothing half-written is left behind (see _append_locked), so the caller
                # may stop here and append again once the cause is gone.
                raise self._write_failed(run_id, exc) from None

    def _write_failed(self, run_id: str, exc: OSError | pygit2.GitError) -> AuditError:
        """What the operator must do when the disk or the ref refuses an append."""
        text = str(exc)
        where = Path(self._repo.path)
        # libgit2 does not always say ENOSPC (a failed write can surface as "no error" or
        # as an object it then cannot find), so the disk itself is asked too.
        if getattr(exc, "errno", None) == errno.ENOSPC or _nearly_full(where):
            return AuditError(
                f"run {run_id}: cannot append to {self.BRANCH}: no space left on the disk "
                f"holding {where} ({text}). Free space there; nothing was recorded, and the "
                "run did not go on"
            )
        lock = where / (self.BRANCH + ".lock")
        if "lock" in text.lower() or lock.exists():
            return AuditError(
                f"run {run_id}: cannot append to {self.BRANCH}: the ref is locked ({text}). "
                f"If no git process is running in {where}, remove {lock}; nothing was recorded"
            )
        return AuditError(
            f"run {run_id}: cannot append to {self.BRANCH} in {where}: {text}. Check that "
            "the directory is writable and not corrupt (`agentplane audit verify`); nothing "
            "was recorded"
        )

    def _append_locked(
        self,
        signer: Signer,
        run_id: str,
        snapshot: dict[str, Any],
        refs: list[dict[str, Any]],
        artifacts: Mapping[str, bytes],
    ) -> AuditEntry:
        anchor = self._anchor(self.read_anchor())
        for _ in range(_APPEND_ATTEMPTS):
            tip = self.tip()
            parent = None if tip is None else self._commit(tip)
            head = None if parent is None else self._head_of(parent)
            self._check_head_is_anchor(head, anchor)
            seq = 0 if head is None else head.seq + 1
            document: dict[str, Any] = {
                "v": ENTRY_VERSION,
                "seq": seq,
                "prev": None if head is None else head.digest,
                "run_id": run_id,
                "at": utc_now(),
                "record": snapshot,
                "signer": {"name": signer.name, "key": signer.key},
            }
            document["sig"] = signer.sign(signed_payload(document))
            self._check_refs(parent, refs, artifacts)
            new_tip = build_commit(self._repo, parent, document, artifacts)
            entry = _entry(document, str(new_tip))
            # The anchor is written before the ref moves and only renamed into place after:
            # a full disk then fails the append with the branch and the anchor still in
            # step, never a moved branch whose anchor says it was rewritten.
            staged = self._stage_anchor(entry)
            try:
                swapped = self._swap_ref(tip, new_tip, f"audit: append seq {seq}")
            except BaseException:
                staged.unlink(missing_ok=True)
                raise
            if swapped:
                os.replace(staged, self.anchor_path)
                break
            staged.unlink(missing_ok=True)
        else:
            raise AuditError(
                f"{self.BRANCH} kept moving during append: is another tool writing it?"
            )
        if self._cache_tip == tip and self._judge is not None:
            if self._judge.judge(document).accepted:
                self._remember(entry)
                self._cache_tip = new_tip
            else:  # cannot happen for our own key; re-read rather than cache a doubt
                self._reset()
        return entry

    def _check_not_revoked(self, signer: Signer) -> None:
        listed = self.trust_set().lookup(signer.key)
        revoked = None if listed is None else listed.revoked_at
        if revoked is not None and datetime.now(UTC) >= revoked:
            raise AuditError(
                f"this host's signing key {signer.key} ({signer.name}) was revoked in policy "
                f"at {revoked.isoformat()}: give it a new key ($AGENTPLANE_SIGNING_KEY or "
                f"delete {self.key_dir / 'signing-key'}) and list the new public key in "
                "policy's audit.signers"
            )

    def _check_head_is_anchor(
        self, head: AuditEntry | None, anchor: tuple[int, str] | None
    ) -> None:
        # Appending seals everything below the new entry under the new anchor, so the branch
        # must end exactly where this clone's last append left it; anything else was added
        # or rewritten outside agentplane (a fetch into the ref, a push adopted by mistake).
        if anchor is None:
            return
        seq, digest = anchor
        if head is None or head.seq != seq or head.digest != digest:
            where = "has no entries" if head is None else f"ends at seq {head.seq} ({head.digest})"
            raise AuditError(
                f"refusing to append: {self.BRANCH} {where}, but this clone's last append was "
                f"seq {seq} ({digest}); the branch was changed outside agentplane. Run "
                "`agentplane audit verify` and restore the branch from this clone's reflog"
            )

    def _check_refs(
        self,
        parent: pygit2.Commit | None,
        refs: list[dict[str, Any]],
        artifacts: Mapping[str, bytes],
    ) -> None:
        # Refusing a dangling reference here keeps verify's "artifact missing" meaning
        # "deleted later", never "was never stored".
        root = None if parent is None else parent.tree
        for ref in refs:
            sha = ref["sha256"]
            if sha in artifacts:
                size = len(artifacts[sha])
            else:
                try:
                    blob = root[artifact_path(sha)] if root is not None else None
                except KeyError:
                    blob = None
                if not isinstance(blob, pygit2.Blob):
                    raise AuditError(f"record references artifact {sha} which was never stored")
                size = blob.size
            if ref.get("size") is not None and ref["size"] != size:
                raise AuditError(f"artifact {sha} is {size} bytes, the record says {ref['size']}")

    def _swap_ref(self, old: pygit2.Oid | None, new: pygit2.Oid, message: str) -> bool:
        """Point the branch at `new` only if it still points at `old`."""
        if self.tip() != old:
            return False
        try:
            self._repo.create_reference(self.BRANCH, new, force=old is not None, message=message)
        except pygit2.AlreadyExistsError:  # created by someone else since tip() above
            return False
        return True

    def _write_anchor(self, entry: AuditEntry) -> None:
        # Outside the branch on purpose: a rewritten branch cannot rewrite this file too,
        # so even a changed last entry (which nothing chains to yet) is caught.
        os.replace(self._stage_anchor(entry), self.anchor_path)

    def _stage_anchor(self, entry: AuditEntry) -> Path:
        """The anchor for entry, written (and fsynced) beside the real one."""
        self.anchor_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.anchor_path.with_name(self.anchor_path.name + ".tmp")
        data = canonical_json({"digest": entry.digest, "seq": entry.seq}) + b"\n"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        try:
            if os.write(fd, data) != len(data):
                raise OSError(errno.ENOSPC, "short write", str(tmp))
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        os.close(fd)
        return tmp

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock

    @contextmanager
    def _shared(self) -> Iterator[None]:
        """Readers share the lock and never create it: without a lock file no agentplane
        has appended here yet, and reading must write nothing."""
        try:
            fd = os.open(self._lock_path, os.O_RDONLY)
        except FileNotFoundError:
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    # -- reading ---------------------------------------------------------------------

    def _commit(self, oid: pygit2.Oid) -> pygit2.Commit:
        obj = self._repo.get(oid)
        if not isinstance(obj, pygit2.Commit):
            raise AuditError(f"{self.BRANCH} does not point at a commit: run verify")
        return obj

    def _head_of(self, commit: pygit2.Commit) -> AuditEntry | None:
        """The newest entry in the commit's tree, found by name without reading the rest."""
        log = _subtree(commit.tree, "log")
        if log is None or len(log) == 0:
            return None
        shard = log[len(log) - 1]  # zero-padded names: the last one is the newest
        if not isinstance(shard, pygit2.Tree) or len(shard) == 0:
            raise AuditError(f"audit branch has a malformed shard log/{shard.name}: run verify")
        blob = shard[len(shard) - 1]
        seq = entry_seq(f"log/{shard.name}/{blob.name}")
        if seq is None or not isinstance(blob, pygit2.Blob):
            raise AuditError(f"audit branch has a malformed entry {blob.name}: run verify")
        return _entry_from_blob(blob.data, seq, str(commit.id))

    def _reset(self) -> None:
        self._cache, self._latest, self._cache_tip, self._judge = [], {}, None, None

    def _sync(self) -> None:
        """Bring the cache up to the tip, verifying every new entry before it is kept.

        Raises AuditError, keeping the cache as it was, if a new entry does not chain to
        the one before, is not signed by a trusted key (or is unsigned where signatures are
        required), or if the local anchor is not on the chain. Only new entries are read,
        so reads stay O(new entries)."""
        try:
            self._sync_unchecked()
        except pygit2.GitError as exc:  # libgit2 cannot read what the branch points at
            raise AuditError(
                f"{self.BRANCH} in {self._repo.path} cannot be read ({exc}): the clone's "
                "objects are damaged. Run `agentplane audit verify`, and re-clone (keeping "
                ".git/agentplane/) or restore the branch from a replica"
            ) from None

    def _sync_unchecked(self) -> None:
        if self.tip() == self._cache_tip and self._judge is not None:
            return
        with self._shared():
            tip, anchor_text = self.tip(), self.read_anchor()
        anchor = self._anchor(anchor_text)
        fresh: list[pygit2.Commit] = []
        base, judge = self._cache, self._judge
        if tip is not None:
            walker = self._repo.walk(tip)
            walker.simplify_first_parent()
            for commit in walker:
                if commit.id == self._cache_tip and judge is not None:
                    break
                fresh.append(commit)
            else:  # the cached tip is not an ancestor: the branch was rewritten
                base, judge = [], None
        else:
            base, judge = [], None
        judge = ChainJudge(self.trust_set()) if judge is None else judge.copy()
        fresh.reverse()
        added = self._judged(fresh, base, judge)
        self._check_anchor_on_chain(anchor, base, added)
        if base is not self._cache:
            self._cache, self._latest = [], {}
            for entry in base:
                self._remember(entry)
        for entry, _ in added:
            self._remember(entry)
        self._cache_tip, self._judge = tip, judge

    def _judged(
        self, fresh: list[pygit2.Commit], base: list[AuditEntry], judge: ChainJudge
    ) -> list[tuple[AuditEntry, TrustVerdict]]:
        """The entries `fresh` (oldest first) add after `base`, each chained and judged;
        AuditError at the first that does not hold."""
        start = len(base)
        added: list[tuple[AuditEntry, TrustVerdict]] = []
        if not fresh:
            return added
        blobs = list(_log_blobs(self._commit(fresh[-1].id).tree, start))
        if [seq for seq, _ in blobs] != list(range(start, start + len(fresh))):
            raise AuditError("audit branch commits and entries disagree: run verify")
        prev = base[-1].digest if base else None
        for commit, (seq, data) in zip(fresh, blobs, strict=True):
            doc = _doc_from_blob(data, seq)
            if doc["prev"] != prev:
                raise AuditError(
                    f"audit entry seq {seq} does not chain to seq {seq - 1}: the branch "
                    "was rewritten; run `agentplane audit verify`"
                )
            verdict = judge.judge(doc)
            if not verdict.accepted:
                raise AuditError(
                    f"{verdict.message}. Refusing to read the audit log: run "
                    "`agentplane audit verify`"
                )
            entry = _entry(doc, str(commit.id))
            added.append((entry, verdict))
            prev = entry.digest
        return added

    def adopt(self, commit: str) -> int:
        """Move the log forward to `commit` (a replica's tip that extends it) when every
        entry it adds chains on and is signed by a key trusted here (policy's
        audit.signers: an Actions runner's, say); the anchor moves with it, so a later
        rewrite of those entries is caught like one of ours. Returns how many entries
        were adopted; raises AuditError and changes nothing otherwise.

        Only signatures vouch here, never the anchor: a replica is writable by anyone
        who can push to the repository."""
        with self._mutex:
            self._sync()
            base, judge, tip = list(self._cache), self._judge, self._cache_tip
            assert judge is not None  # _sync sets it
            try:
                new = self._commit(pygit2.Oid(hex=commit))
            except (ValueError, KeyError, AuditError) as exc:
                raise AuditError(f"cannot adopt {commit[:12]}: not a commit here ({exc})") from exc
            if new.id == tip:
                return 0
            fresh: list[pygit2.Commit] = []
            walker = self._repo.walk(new.id)
            walker.simplify_first_parent()
            for c in walker:
                if c.id == tip:
                    break
                fresh.append(c)
            else:
                if tip is not None:
                    raise AuditError(
                        f"cannot adopt {commit[:12]}: it does not extend this log (at "
                        f"{str(tip)[:12]}); the two have forked"
                    )
            fresh.reverse()
            judge = judge.copy()
            added = self._judged(fresh, base, judge)
            for entry, verdict in added:
                if verdict.status not in TRUSTED:
                    raise AuditError(
                        f"cannot adopt {commit[:12]}: entry seq {entry.seq} is "
                        f"{verdict.status} ({verdict.message})"
                    )
            with self._exclusive():
                if not self._swap_ref(tip, new.id, f"audit: adopt seq {added[-1][0].seq}"):
                    raise AuditError(f"{self.BRANCH} moved while adopting {commit[:12]}")
                self._write_anchor(added[-1][0])
            for entry, _ in added:
                self._remember(entry)
            self._cache_tip, self._judge = new.id, judge
            return len(added)

    def _check_anchor_on_chain(
        self,
        anchor: tuple[int, str] | None,
        base: list[AuditEntry],
        added: list[tuple[AuditEntry, TrustVerdict]],
    ) -> None:
        if anchor is None:
            return  # a fresh clone: nothing local to compare with, signatures decide
        seq, digest = anchor
        top = len(base) + len(added) - 1
        if seq > top:
            raise AuditError(
                f"this clone appended up to seq {seq} but {self.BRANCH} ends at seq {top}: "
                "entries were removed (reset or force-pushed); run `agentplane audit verify`"
            )
        found = base[seq] if seq < len(base) else added[seq - len(base)][0]
        if found.digest != digest:
            raise AuditError(
                f"audit entry seq {seq} is not the one this clone appended (anchor {digest}, "
                f"branch {found.digest}): the branch was rewritten; run `agentplane audit verify`"
            )
        for entry, verdict in added:
            # Past the anchor means not appended here; only a trusted signature vouches.
            if entry.seq > seq and verdict.status not in TRUSTED:
                raise AuditError(
                    f"audit entry seq {entry.seq} was added after this clone's last append "
                    f"(seq {seq}) and is unsigned: it was not written by agentplane; run "
                    "`agentplane audit verify`"
                )

    def _remember(self, entry: AuditEntry) -> None:
        self._latest[entry.run_id] = len(self._cache)  # dicts keep first-insertion order
        self._cache.append(entry)

    def entries(self) -> Iterator[AuditEntry]:
        """Every entry, oldest first, as of the call, each one verified."""
        with self._mutex:
            self._sync()
            return iter(list(self._cache))

    def latest(self, run_id: str) -> AuditEntry | None:
        """The run's newest entry, verified (chain, signature, anchor); AuditError if the
        log does not hold. Decide and apply act only on what this returns."""
        with self._mutex:
            self._sync()
            index = self._latest.get(run_id)
            return None if index is None else self._cache[index]

    def run_ids(self) -> list[str]:
        """Run ids in order of first appearance."""
        with self._mutex:
            self._sync()
            return list(self._latest)

    def head(self) -> AuditEntry | None:
        """The newest entry, verified like `latest`."""
        with self._mutex:
            self._sync()
            return self._cache[-1] if self._cache else None

    def artifact(self, sha256: str) -> bytes:
        if not HEX64.match(sha256):
            raise AuditError(f"not a sha256 hex digest: {sha256!r}")
        tip = self.tip()
        tree = None if tip is None else self._commit(tip).tree
        try:
            blob = tree[artifact_path(sha256)] if tree is not None else None
        except KeyError:
            blob = None
        if not isinstance(blob, pygit2.Blob):
            raise AuditError(f"artifact {sha256} is not on the audit branch")
        data = blob.data
        if sha256_hex(data) != sha256:
            raise AuditError(f"artifact {sha256} was modified on the audit branch: run verify")
        return data
