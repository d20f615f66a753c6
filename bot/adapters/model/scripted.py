"""The scripted provider: a litellm CustomLLM that plays recorded model turns.

It is registered with litellm like any other provider (`scripted/<script>`), so
the control plane calls it exactly as it would call a real model. A turn may carry a
`finish` (`length`, say) and a tool call `raw_arguments`, so a replay of a run that a
model cut short ends the same way. The turn to
play is the number of assistant messages already in the conversation, which
makes it stateless: a resumed or replayed run gets the same turn.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import litellm
from litellm.llms.custom_llm import CustomLLM, CustomLLMError
from litellm.types.utils import ModelResponse
from pydantic import BaseModel, ConfigDict

from bot.adapters import safefs
from bot.core import yamlsrc
from bot.core.errors import ValidationFailed

PROVIDER = "scripted"


def _error(status: int, message: str) -> Exception:
    return CustomLLMError(status_code=status, message=message)  # type: ignore[no-untyped-call]


MAX_SCRIPT_BYTES = 4 << 20
SCRIPT_BOUNDS = yamlsrc.Bounds(
    bytes=MAX_SCRIPT_BYTES, nodes=400_000, expanded=MAX_SCRIPT_BYTES, what="model scripts"
)
"""A script comes from the repository: read with the job file's reader (aliases, depth,
tags bounded), within bounds a long recorded run fits in."""


class _Shape(BaseModel):
    # Recorded turns carry marks other readers use (an eval's `out_of_grant`, say).
    model_config = ConfigDict(extra="allow")


class ScriptCall(_Shape):
    name: str
    arguments: Any = None
    raw_arguments: str | None = None


class ScriptTurn(_Shape):
    content: str | None = None
    tool_calls: list[ScriptCall] | None = None
    finish: str | None = None


class Script(_Shape):
    turns: list[ScriptTurn]


def load_script(model: str, api_base: str | None, root: str | None = None) -> list[dict[str, Any]]:
    """Turns of script `model`; a relative api_base is taken from the run's workspace root.

    A relative script directory is in the repository (`.agentplane/scripts`), so it
    and the script are opened beneath the workspace and never through a symlink: a
    committed or planted link would make the host read any file it points to. An
    absolute api_base is the operator's own directory; the script in it is opened
    the same way.
    """
    name = model.split("/", 1)[-1]
    base = api_base or "."
    trusted, inner = (base, "") if Path(base).is_absolute() else (root or ".", base)
    shown = Path(trusted) / inner
    for candidate in (f"{name}.yaml", name):
        rel = f"{inner}/{candidate}" if inner else candidate
        try:
            with safefs.root(Path(trusted)) as fd:
                if safefs.lookup(fd, rel).kind == "dir":
                    continue
                text = safefs.read_bytes(fd, rel, MAX_SCRIPT_BYTES + 1)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except safefs.UnsafePath as exc:
            raise _error(400, f"model script {shown / candidate}: {exc}") from None
        except OSError as exc:
            raise _error(500, f"cannot read model script {shown / candidate}: {exc}") from None
        where = str(shown / candidate)
        try:
            doc = yamlsrc.parse(where, yamlsrc.decode(where, text, SCRIPT_BOUNDS), SCRIPT_BOUNDS)
            yamlsrc.validate(doc, Script)
        except ValidationFailed as exc:
            raise _error(400, f"model script {exc}") from None
        turns: list[dict[str, Any]] = doc.data["turns"]
        return turns
    raise _error(404, f"no model script {name!r} in {Path(shown).absolute()}")


def _arguments(call: dict[str, Any]) -> str:
    """A recorded call's arguments as the model sent them: `raw_arguments` replays bytes
    that were not JSON (a cut tool call) exactly."""
    raw = call.get("raw_arguments")
    return raw if isinstance(raw, str) else json.dumps(call.get("arguments", {}))


class ScriptedLLM(CustomLLM):
    def completion(self, *args: Any, **kwargs: Any) -> ModelResponse:
        model: str = kwargs["model"]
        messages: list[dict[str, Any]] = kwargs["messages"]
        metadata = (kwargs.get("litellm_params") or {}).get("metadata") or {}
        turns = load_script(model, kwargs.get("api_base"), metadata.get("agentplane_root"))
        index = sum(1 for m in messages if m.get("role") == "assistant")
        turn = turns[index] if index < len(turns) else {"content": "(script ended)"}
        calls = [
            {
                "id": f"call_{index}_{i}",
                "type": "function",
                "function": {"name": c["name"], "arguments": _arguments(c)},
            }
            for i, c in enumerate(turn.get("tool_calls") or [])
        ]
        finish = turn.get("finish") or ("tool_calls" if calls else "stop")
        prompt_tokens = sum(len(str(m.get("content") or "")) // 4 for m in messages)
        message: dict[str, Any] = {"role": "assistant", "content": turn.get("content")}
        if calls:
            message["tool_calls"] = calls
        return ModelResponse(
            model=model,
            choices=[{"index": 0, "message": message, "finish_reason": finish}],
            usage={
                "prompt_tokens": prompt_tokens,
                "completion_tokens": 20,
                "total_tokens": prompt_tokens + 20,
            },
        )

    async def acompletion(self, *args: Any, **kwargs: Any) -> ModelResponse:
        return self.completion(*args, **kwargs)


def register() -> None:
    """Make `scripted/<name>` models resolvable by litellm (idempotent)."""
    if not any(item.get("provider") == PROVIDER for item in litellm.custom_provider_map):
        litellm.custom_provider_map.append({"provider": PROVIDER, "custom_handler": ScriptedLLM()})
