"""Who writes audit entries: Ed25519 signers, their key files, and signature checks.

Why Ed25519 through `cryptography` (and not SSH signatures or sigstore): signing an entry
runs in-process, with no external binary and no network per record (SSH signatures
would need an `ssh-keygen -Y sign` subprocess per append; sigstore needs an OIDC identity
and a transparency log online). Signatures are 64 bytes and a public key is 32, so a
trusted signer fits on one YAML line of policy (`ed25519:<base64>`), and a fresh clone, a
reviewer or a run page verifies a record with nothing but that line.

The private key lives in `$AGENTPLANE_SIGNING_KEY` (a file path) or, by default, in
`<git common dir>/agentplane/signing-key`, created on first use with mode 0600 and never
opened through a symlink (the git dir of a cloned repository is not trusted to be free of
links someone planted).
"""

from __future__ import annotations

import base64
import binascii
import getpass
import os
import secrets
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from bot.core.errors import AuditError

KEY_PREFIX = "ed25519:"
KEY_ENV = "AGENTPLANE_SIGNING_KEY"
SIGNER_ENV = "AGENTPLANE_SIGNER"
KEY_FILE = "signing-key"
SIGNATURE_BYTES = 64
MAX_SIGNER_NAME = 200
# A PEM or OpenSSH Ed25519 private key is well under 1 KB; anything larger is not a key.
_MAX_KEY_FILE = 16 * 1024


@dataclass(frozen=True)
class Signer:
    """A named writer of audit entries and its private key."""

    name: str
    private_key: Ed25519PrivateKey

    def __post_init__(self) -> None:
        check_signer_name(self.name)

    @property
    def key(self) -> str:
        """The public key as policy and entries spell it: `ed25519:<base64 raw key>`."""
        return public_key_text(self.private_key.public_key())

    def sign(self, payload: bytes) -> str:
        return base64.b64encode(self.private_key.sign(payload)).decode("ascii")

    @classmethod
    def generate(cls, name: str) -> Signer:
        return cls(name, Ed25519PrivateKey.generate())


def check_signer_name(name: str) -> str:
    if not name or len(name) > MAX_SIGNER_NAME or not name.isprintable():
        raise AuditError(
            f"signer name must be 1-{MAX_SIGNER_NAME} printable characters, got {name[:80]!r}"
        )
    return name


def public_key_text(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return KEY_PREFIX + base64.b64encode(raw).decode("ascii")


def parse_public_key(text: str) -> Ed25519PublicKey:
    """`ed25519:<base64 of 32 bytes>` as a key; AuditError naming the expected form."""
    raw = _b64(text.removeprefix(KEY_PREFIX)) if text.startswith(KEY_PREFIX) else None
    if raw is None or len(raw) != 32:
        raise AuditError(f"not an Ed25519 public key (want ed25519:<base64>): {text[:80]!r}")
    return Ed25519PublicKey.from_public_bytes(raw)


def signature_valid(key: str, payload: bytes, signature: str) -> bool:
    """Does `signature` (base64) by `key` (ed25519:...) cover payload? Never raises."""
    raw = _b64(signature)
    if raw is None or len(raw) != SIGNATURE_BYTES:
        return False
    try:
        parse_public_key(key).verify(raw, payload)
    except (AuditError, InvalidSignature):
        return False
    return True


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


# -- key files ------------------------------------------------------------------------------


def parse_private_key(data: bytes, where: str) -> Ed25519PrivateKey:
    """A PEM (PKCS#8), OpenSSH or raw 32-byte Ed25519 private key."""
    if len(data) == 32:
        return Ed25519PrivateKey.from_private_bytes(data)
    loaders = (serialization.load_pem_private_key, serialization.load_ssh_private_key)
    for load in loaders:
        try:
            key = load(data, None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            continue
        if isinstance(key, Ed25519PrivateKey):
            return key
        raise AuditError(f"{where}: the signing key must be Ed25519, not {type(key).__name__}")
    raise AuditError(
        f"{where}: not an unencrypted Ed25519 private key (PEM, OpenSSH or 32 raw bytes); "
        "make one with `openssl genpkey -algorithm ed25519`"
    )


def _read_bounded(fd: int, where: str) -> bytes:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise AuditError(f"{where}: the signing key must be a regular file")
    if info.st_size > _MAX_KEY_FILE:
        raise AuditError(f"{where}: {info.st_size} bytes is too large for a signing key")
    return os.read(fd, _MAX_KEY_FILE + 1)


def load_key_file(path: Path) -> Ed25519PrivateKey:
    """The key at an operator-chosen path ($AGENTPLANE_SIGNING_KEY).

    Links are followed here on purpose: the operator picked the path (secret mounts are
    often links), unlike the default location inside a repository's git dir.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise AuditError(f"{KEY_ENV}={path}: cannot open the signing key ({exc.strerror})") from exc
    try:
        return parse_private_key(_read_bounded(fd, str(path)), str(path))
    finally:
        os.close(fd)


def _open_key_dir(directory: Path, create: bool) -> int | None:
    """A descriptor on `directory` (not through a link), None if absent and not creating."""
    if create:
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise AuditError(f"{directory}: cannot create ({exc.strerror})") from exc
    try:
        return os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        if create:
            raise AuditError(f"{directory} vanished while creating the signing key") from None
        return None
    except OSError as exc:
        raise AuditError(
            f"{directory}: not a directory agentplane can use ({exc.strerror}); "
            "it must not be a symlink"
        ) from exc


def _read_default(dir_fd: int, where: str) -> Ed25519PrivateKey | None:
    try:
        fd = os.open(KEY_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AuditError(
            f"{where}: cannot open the signing key ({exc.strerror}); it must be a regular "
            "file, not a symlink"
        ) from exc
    try:
        info = os.fstat(fd)
        if info.st_mode & 0o077:
            raise AuditError(
                f"{where}: the signing key is readable by others (mode "
                f"{stat.S_IMODE(info.st_mode):o}): chmod 600 it, or delete it to make a new one"
            )
        return parse_private_key(_read_bounded(fd, where), where)
    finally:
        os.close(fd)


def _create_default(dir_fd: int) -> None:
    """Write a fresh key under a temporary name, then link it into place: a concurrent
    first use either wins the link or reads the winner's complete file."""
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    tmp = f".{KEY_FILE}.{secrets.token_hex(8)}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, 0o600, dir_fd=dir_fd)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, KEY_FILE, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp, dir_fd=dir_fd)


def default_key(key_dir: Path, create: bool = True) -> Ed25519PrivateKey | None:
    """The key in `key_dir/signing-key`, made on first use when `create`; None if there is
    none and `create` is False (verify never writes)."""
    where = str(key_dir / KEY_FILE)
    dir_fd = _open_key_dir(key_dir, create)
    if dir_fd is None:
        return None
    try:
        key = _read_default(dir_fd, where)
        if key is None and create:
            _create_default(dir_fd)
            key = _read_default(dir_fd, where)
        return key
    except OSError as exc:
        raise AuditError(f"{where}: cannot create the signing key ({exc.strerror})") from exc
    finally:
        os.close(dir_fd)


def default_signer_name() -> str:
    name = os.environ.get(SIGNER_ENV)
    if name:
        return check_signer_name(name)
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for this uid (containers)
        user = f"uid{os.getuid()}"
    return check_signer_name(f"terminal:{user}@{socket.gethostname()}")


def load_signer(key_dir: Path, create: bool = True) -> Signer | None:
    """This host's signer: `$AGENTPLANE_SIGNING_KEY` if set, else the key in `key_dir`."""
    env = os.environ.get(KEY_ENV)
    key = load_key_file(Path(env)) if env else default_key(key_dir, create)
    return None if key is None else Signer(default_signer_name(), key)
