"""The scripted provider reads its scripts from the workspace, never through a symlink."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from litellm.llms.custom_llm import CustomLLMError

from bot.adapters.model.scripted import load_script

SCRIPTS = ".agentplane/scripts"


def workspace(tmp_path: Path) -> tuple[Path, Path]:
    """(workspace with a real script `ok`, a host file outside it that parses as a script)."""
    ws = tmp_path / "ws"
    (ws / SCRIPTS).mkdir(parents=True)
    (ws / SCRIPTS / "ok.yaml").write_text(yaml.safe_dump({"turns": [{"content": "mine"}]}))
    host = tmp_path / "host" / "secret.yaml"
    host.parent.mkdir()
    host.write_text(yaml.safe_dump({"turns": [{"content": "host secret"}]}))
    return ws, host


def test_a_plain_script_is_read(tmp_path: Path) -> None:
    ws, _ = workspace(tmp_path)
    assert load_script("scripted/ok", SCRIPTS, str(ws)) == [{"content": "mine"}]
    assert load_script("scripted/ok", str(ws / SCRIPTS)) == [{"content": "mine"}]


@pytest.mark.parametrize("linked", ["script", "scripts dir", ".agentplane"])
def test_a_symlink_anywhere_on_the_way_is_refused(tmp_path: Path, linked: str) -> None:
    ws, host = workspace(tmp_path)
    if linked == "script":
        (ws / SCRIPTS / "secret.yaml").symlink_to(host)
    elif linked == "scripts dir":
        shutil.rmtree(ws / SCRIPTS)
        (ws / SCRIPTS).symlink_to(host.parent)
    else:
        shutil.rmtree(ws / ".agentplane")
        (ws / ".agentplane").symlink_to(tmp_path / "hostagent")
        shutil.copytree(host.parent, tmp_path / "hostagent" / "scripts")
    with pytest.raises(CustomLLMError, match=r"is a symlink -> .*never followed") as err:
        load_script("scripted/secret", SCRIPTS, str(ws))
    assert "host secret" not in str(err.value)


def test_a_script_name_or_dir_that_leaves_the_workspace_is_refused(tmp_path: Path) -> None:
    ws, _ = workspace(tmp_path)
    for model, base in (("scripted/../../host/secret", SCRIPTS), ("scripted/secret", "../host")):
        with pytest.raises(CustomLLMError, match=r"'\.\.'"):
            load_script(model, base, str(ws))


def script_error(tmp_path: Path, text: str | bytes) -> str:
    ws = tmp_path / "ws"
    (ws / SCRIPTS).mkdir(parents=True, exist_ok=True)
    data = text.encode() if isinstance(text, str) else text
    (ws / SCRIPTS / "bad.yaml").write_bytes(data)
    with pytest.raises(CustomLLMError) as err:
        load_script("scripted/bad", SCRIPTS, str(ws))
    assert err.value.status_code == 400
    return str(err.value.message)


def test_a_script_is_read_with_the_job_files_bounds(tmp_path: Path) -> None:
    # Scripts are in the repository: a billion-laughs script must not stall the host.
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    assert "values once aliases are expanded" in script_error(tmp_path, bomb + "turns: []\n")
    assert "is not allowed" in script_error(tmp_path, "turns: !!python/object:os.system []\n")
    assert "not UTF-8" in script_error(tmp_path, b"turns:\n  - content: \xff\n")


def test_a_malformed_turn_is_named_at_its_line_and_field(tmp_path: Path) -> None:
    message = script_error(tmp_path, "turns:\n  - content: ok\n  - tool_calls: [{arguments: {}}]\n")
    assert "bad.yaml:3:" in message and "turns[1].tool_calls[0].name" in message
    message = script_error(tmp_path, "turns:\n  - just a string\n")
    assert "bad.yaml:2:" in message and "turns[0]" in message
