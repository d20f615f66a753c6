"""Bearer tokens of the MCP door over HTTP: which person each token stands for.

The map is the bot's own secret, never the repository's: a YAML file on the host that
runs `agentplane mcp --http` (`--tokens FILE` or $AGENTPLANE_MCP_TOKENS_FILE), refused
when it lies inside the repository the door serves, since anyone who can commit there
could otherwise mint themselves an identity. Only each token's SHA-256 is stored: the
tokens are 256 random bits, so a fast hash is enough (there is nothing to brute-force),
and a leaked file grants nothing. A presented token is hashed and compared with every
entry in constant time, so neither the answer's timing nor a dict probe says how close
a guess came.

    tokens:
      - person: dana@example.com        # an email, or github:<numeric id>
        sha256: 3f1c...                 # `agentplane mcp token dana@example.com` prints it
        name: dana-laptop               # which token it was, in the run's door_ref
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import Field, field_validator

from bot.core.errors import AgentplaneError, ValidationFailed
from bot.core.identity import IdentityError, normalise
from bot.core.job import Strict
from bot.core.yamlsrc import parse, validate

TOKENS_ENV = "AGENTPLANE_MCP_TOKENS_FILE"
PREFIX = "agentplane_mcp_"
"""A recognisable prefix, so secret scanners and people can tell what a leaked token is."""
MAX_FILE_BYTES = 1 << 20
MAX_TOKEN_CHARS = 512
_HEX = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


class TokenError(AgentplaneError):
    """The token file cannot be used; the message says what to change."""


class TokenEntry(Strict):
    person: str = Field(description="Who the token stands for: an email or github:<id>")
    sha256: str = Field(description="Hex SHA-256 of the token (never the token itself)")
    name: str = Field(description="A label for the token, recorded with each run it starts")

    @field_validator("person")
    @classmethod
    def _person(cls, v: str) -> str:
        try:
            return normalise(v)
        except IdentityError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("sha256")
    @classmethod
    def _digest(cls, v: str) -> str:
        if not _HEX.match(v):
            raise ValueError(
                "expected 64 lower-case hex digits (the token's SHA-256, as "
                "`agentplane mcp token PERSON` prints it), not the token itself"
            )
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("1-64 letters, digits, '_', '.', '@' or '-'")
        return v


class TokenFile(Strict):
    tokens: list[TokenEntry] = Field(min_length=1)


@dataclass(frozen=True)
class Bearer:
    """Who a valid token stands for."""

    person: str
    name: str


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


class TokenMap:
    def __init__(self, entries: list[TokenEntry]) -> None:
        self._entries = [(bytes.fromhex(e.sha256), Bearer(e.person, e.name)) for e in entries]

    @property
    def names(self) -> set[str]:
        return {bearer.name for _, bearer in self._entries}

    def bearer(self, token: str) -> Bearer | None:
        """The person a token stands for, or None; every entry is compared, each in
        constant time."""
        if len(token) > MAX_TOKEN_CHARS:
            return None
        presented = hashlib.sha256(token.encode(errors="replace")).digest()
        found: Bearer | None = None
        for stored, bearer in self._entries:
            if hmac.compare_digest(stored, presented):
                found = bearer
        return found

    @classmethod
    def from_text(cls, path: str, text: str) -> TokenMap:
        doc = parse(path, text)
        file = validate(doc, TokenFile)
        seen: dict[str, int] = {}
        for i, entry in enumerate(file.tokens):
            if entry.sha256 in seen:
                raise ValidationFailed(
                    [
                        doc.error(
                            ("tokens", i, "sha256"),
                            f"the same token as tokens[{seen[entry.sha256]}]: one token "
                            "stands for one person",
                        )
                    ]
                )
            seen[entry.sha256] = i
        return cls(file.tokens)


def load_tokens(path: Path, repo_root: Path) -> TokenMap:
    """The token map from the host's file; never a file inside the served repository,
    never through a symlink, and bounded in size."""
    real = Path(os.path.realpath(path))
    repo = Path(os.path.realpath(repo_root))
    if real == repo or repo in real.parents:
        raise TokenError(
            f"{path}: the token file is inside the repository {repo_root}; keep it in the "
            "bot's own configuration (e.g. /etc/agentplane/mcp-tokens.yaml), since anyone "
            "who can commit to the repository could add a token of their own"
        )
    return TokenMap.from_text(str(path), _read(path))


def _read(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise TokenError(f"{path}: cannot read the token file: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise TokenError(f"{path}: the token file is over {MAX_FILE_BYTES} bytes")
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise TokenError(f"{path}: the token file is not UTF-8") from None


def _label(person: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.@-]", "-", person)[:64]


def add_token(path: Path, person: str, name: str | None = None) -> tuple[str, TokenEntry]:
    """A new token for person, its hash appended to the token file (created 0600 if
    missing; the file's other entries are kept as written). Returns (token, entry)."""
    try:
        who = normalise(person)
    except IdentityError as exc:
        raise TokenError(str(exc)) from None
    label = name or _label(who)
    if not _NAME.match(label):
        raise TokenError(f"--name {label!r}: 1-64 letters, digits, '_', '.', '@' or '-'")
    secret = new_token()
    entry = TokenEntry(person=who, sha256=digest(secret), name=label)
    text = ""
    if os.path.lexists(path):
        text = _read(path)
        # A broken file is not appended to: its error is reported as it stands.
        if label in TokenMap.from_text(str(path), text).names:
            raise TokenError(f"{path}: a token named {label!r} exists; choose another --name")
    else:
        text = "tokens:\n"
    if not text.endswith("\n"):
        text += "\n"
    text += yaml.safe_dump([entry.model_dump()], sort_keys=False)
    TokenMap.from_text(str(path), text)  # what is written must load
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return secret, entry
