"""The litellm adapter on real litellm: Router fallbacks, offline, via the scripted provider."""

from pathlib import Path

import pytest
import yaml

from bot.adapters.model.client import LiteLLMClient, ModelError
from bot.adapters.model.turn import script_from_transcript


def write(tmp_path: Path, name: str, turns: list[dict[str, object]]) -> None:
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump({"turns": turns}))


def config(tmp_path: Path, fallbacks: bool = True) -> dict[str, object]:
    return {
        "group": "primary",
        "model_list": [
            # A deployment that fails: its script does not exist (no network involved).
            {
                "model_name": "primary",
                "litellm_params": {"model": "scripted/missing", "api_base": str(tmp_path)},
            },
            {
                "model_name": "backup",
                "litellm_params": {"model": "scripted/ok", "api_base": str(tmp_path)},
            },
        ],
        "fallbacks": [{"primary": ["backup"]}] if fallbacks else [],
        "num_retries": 0,
    }


def test_fallback_serves_when_the_primary_fails(tmp_path: Path) -> None:
    write(tmp_path, "ok", [{"content": "from the backup"}])
    turn = LiteLLMClient(config(tmp_path)).complete([{"role": "user", "content": "hi"}], [])
    assert turn.content == "from the backup"
    assert (turn.group, turn.fallbacks, turn.model) == ("backup", 1, "scripted/ok")


def test_no_fallback_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="model group primary failed"):
        LiteLLMClient(config(tmp_path, fallbacks=False)).complete(
            [{"role": "user", "content": "hi"}], []
        )


def test_tool_calls_and_transcript_round_trip(tmp_path: Path) -> None:
    turns = [
        {"content": "look", "tool_calls": [{"name": "fs_read", "arguments": {"path": "a.py"}}]},
        {"content": "done"},
    ]
    write(tmp_path, "s", turns)
    client = LiteLLMClient({"model": "scripted/s", "api_base": str(tmp_path)})
    first = client.complete([{"role": "user", "content": "go"}], [])
    assert [(c.name, c.arguments) for c in first.tool_calls] == [("fs_read", '{"path": "a.py"}')]
    messages = [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": "look",
            "tool_calls": [
                {
                    "id": "1",
                    "type": "function",
                    "function": {"name": "fs_read", "arguments": '{"path": "a.py"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "1", "content": "x"},
        {"role": "assistant", "content": "done"},
    ]
    assert script_from_transcript(messages) == {"turns": turns}
