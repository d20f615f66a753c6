"""litellm's answer, checked: anything an agent cannot act on is a ModelResponseError.

Servers that speak "OpenAI-compatible" differ: no `choices`, a message without content,
tool calls without a name or with arguments as an object, no `usage`. Each becomes
either a typed error or a value the agent loop judges (bot.adapters.model.turn), never
an IndexError with a traceback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bot.adapters.model.errors import ModelResponseError
from bot.adapters.model.turn import ToolRequest


@dataclass(frozen=True)
class Answer:
    content: str | None
    tool_calls: tuple[ToolRequest, ...]
    finish: str
    usage: tuple[int, int] | None
    """(prompt, completion) tokens as the server reported them; None when it did not."""


def read(response: Any, where: str) -> Answer:
    """where names the group and deployment, for the error message."""
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list) or not choices:
        raise ModelResponseError(
            f"{where} answered with no choices (an empty or missing `choices` list): there is "
            "nothing to act on; check the server's logs"
        )
    choice = choices[0]
    message = getattr(choice, "message", None)
    if message is None:
        raise ModelResponseError(f"{where} answered a choice without a message")
    calls = tuple(
        _call(c, i, where) for i, c in enumerate(getattr(message, "tool_calls", None) or [])
    )
    finish = getattr(choice, "finish_reason", None)
    return Answer(
        content=_text(getattr(message, "content", None)),
        tool_calls=calls,
        finish=str(finish) if finish else "stop",
        usage=_usage(getattr(response, "usage", None)),
    )


def _text(content: Any) -> str | None:
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: the text ones are the answer
        parts = [p.get("text") for p in content if isinstance(p, dict)]
        return "".join(p for p in parts if isinstance(p, str))
    return str(content)


def _call(call: Any, i: int, where: str) -> ToolRequest:
    function = getattr(call, "function", None)
    name = getattr(function, "name", None)
    if not isinstance(name, str) or not name:
        raise ModelResponseError(f"{where} answered tool call {i + 1} without a function name")
    arguments = getattr(function, "arguments", None)
    if arguments is None or arguments == "":
        arguments = "{}"
    elif not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    # Left as sent: malformed JSON is the broker's to deny, with its reason, on the record.
    call_id = getattr(call, "id", None)
    return ToolRequest(str(call_id) if call_id else f"call_{i}", name, arguments)


def _usage(usage: Any) -> tuple[int, int] | None:
    prompt = getattr(usage, "prompt_tokens", None)
    completion = getattr(usage, "completion_tokens", None)
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    if prompt < 0 or completion < 0 or (prompt == 0 and completion == 0):
        return None  # litellm fills a missing `usage` with zeros; no real call used none
    return prompt, completion
