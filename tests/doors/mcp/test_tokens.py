"""The HTTP door's token file: hashes to people, the bot's own, never the repository's."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from bot.core.errors import ValidationFailed
from bot.doors.mcp.tokens import (
    MAX_FILE_BYTES,
    TokenError,
    TokenMap,
    add_token,
    digest,
    load_tokens,
    new_token,
)


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "etc" / "mcp-tokens.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def test_a_token_stands_for_its_person_and_only_its_hash_is_stored(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    dana, entry = add_token(path, "Dana@Example.com", "dana-laptop")
    maya, _ = add_token(path, "github:42")
    text = path.read_text()
    assert dana not in text and maya not in text and digest(dana) in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    tokens = load_tokens(path, tmp_path / "repo")
    assert entry.person == "dana@example.com"
    bearer = tokens.bearer(dana)
    assert bearer is not None and (bearer.person, bearer.name) == (
        "dana@example.com",
        "dana-laptop",
    )
    other = tokens.bearer(maya)
    assert other is not None and (other.person, other.name) == ("github:42", "github-42")
    assert tokens.bearer(new_token()) is None
    assert tokens.bearer(dana[:-1]) is None
    assert tokens.bearer("x" * 100_000) is None
    with pytest.raises(TokenError, match="a token named 'dana-laptop' exists"):
        add_token(path, "omar@example.com", "dana-laptop")


def test_a_bad_entry_is_named_by_file_line_and_field(tmp_path: Path) -> None:
    token = new_token()
    path = _file(
        tmp_path,
        f"tokens:\n  - person: dana@example.com\n    sha256: {token}\n    name: laptop\n",
    )
    with pytest.raises(ValidationFailed) as err:
        load_tokens(path, tmp_path / "repo")
    assert f"{path}:3:5: tokens[0].sha256: expected 64 lower-case hex digits" in str(err.value)
    assert token not in str(err.value).split("not the token itself")[-1]
    same = digest(token)
    path = _file(
        tmp_path,
        "tokens:\n"
        f"  - {{person: dana@example.com, sha256: {same}, name: a}}\n"
        f"  - {{person: maya@example.com, sha256: {same}, name: b}}\n",
    )
    with pytest.raises(ValidationFailed, match=r":3:.*tokens\[1\]\.sha256: the same token as"):
        load_tokens(path, tmp_path / "repo")
    path = _file(tmp_path, f"tokens:\n  - {{person: 'dana example', sha256: {same}, name: a}}\n")
    with pytest.raises(ValidationFailed, match=r"tokens\[0\]\.person: .*not an identity"):
        load_tokens(path, tmp_path / "repo")
    with pytest.raises(ValidationFailed, match="tokens: "):
        load_tokens(_file(tmp_path, "tokens: []\n"), tmp_path / "repo")
    # A broken file is reported, not appended to.
    with pytest.raises(ValidationFailed):
        add_token(path, "omar@example.com")


def test_a_token_file_inside_the_repository_a_symlink_or_a_huge_file_is_refused(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    (repo / ".agentplane").mkdir(parents=True)
    inside = repo / ".agentplane" / "tokens.yaml"
    add_token(inside, "dana@example.com")
    with pytest.raises(TokenError, match="inside the repository"):
        load_tokens(inside, repo)
    outside = tmp_path / "link.yaml"
    outside.symlink_to(inside)
    with pytest.raises(TokenError, match="inside the repository"):
        load_tokens(outside, repo)
    real = tmp_path / "real.yaml"
    add_token(real, "dana@example.com")
    link = tmp_path / "elsewhere.yaml"
    link.symlink_to(real)
    with pytest.raises(TokenError, match="cannot read the token file"):
        load_tokens(link, repo)
    huge = _file(tmp_path, "#" * (MAX_FILE_BYTES + 1))
    with pytest.raises(TokenError, match="over"):
        load_tokens(huge, repo)
    with pytest.raises(TokenError, match="No such file"):
        load_tokens(tmp_path / "missing.yaml", repo)
    os.chmod(real, 0o600)
    assert TokenMap.from_text("x", real.read_text()).names == {"dana@example.com"}
