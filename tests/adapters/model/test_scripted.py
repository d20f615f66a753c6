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
