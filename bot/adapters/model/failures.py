"""A failed call as one line a person can act on, with every model key masked.

Gateways echo keys in their errors (`Incorrect API key provided: sk-...`), and litellm's
exception text carries the server's message verbatim, sometimes with a traceback. The
adapter masks the keys it resolved itself before the text leaves it: the engine's
redactor masks them again, but a terminal prints the error before any record is made.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "[REDACTED]"
MIN_KEY = 8
SECRET_NAME = re.compile(r"(?:^|_)(?:API_?KEY|ACCESS_KEY|SECRET(?:_KEY)?|TOKEN|PASSWORD)$")
"""Provider keys litellm reads from the environment by itself (OPENAI_API_KEY...)."""
_SECRET_PARAM = re.compile(r"key|token|secret|password", re.IGNORECASE)
MAX_TEXT = 600

HINTS = {
    "AuthenticationError": "the key was refused: check the deployment's api_key "
    "(os.environ/NAME is read where agentplane runs)",
    "PermissionDeniedError": "the key may not use this model",
    "NotFoundError": "check the model name and api_base",
    "RateLimitError": "rate limited: more retries (router_settings.num_retries) or a "
    "fallback group may help",
    "Timeout": "no answer in time: raise router_settings.timeout, or check the server",
    "APIConnectionError": "cannot reach the server: check api_base and that it is up",
    "ServiceUnavailableError": "the server is overloaded or down",
    "InternalServerError": "the server failed: see its logs",
    "ContextWindowExceededError": "the conversation is longer than the model's context",
    "BadRequestError": "the server refused the request",
}


def known_keys(model_list: Iterable[Mapping[str, Any]], environ: Mapping[str, str]) -> list[str]:
    """Every key value the deployments name (os.environ/NAME or literal), and the host's
    provider keys litellm would read itself; longest first."""
    found: set[str] = set()
    for entry in model_list:
        for name, value in dict(entry.get("litellm_params") or {}).items():
            if not isinstance(value, str):
                continue
            if value.startswith("os.environ/"):
                found.add(environ.get(value.removeprefix("os.environ/"), ""))
            elif _SECRET_PARAM.search(name):
                found.add(value)
    found |= {v for k, v in environ.items() if SECRET_NAME.search(k)}
    return sorted((k for k in found if len(k) >= MIN_KEY), key=len, reverse=True)


def mask(text: str, keys: Iterable[str]) -> str:
    for key in keys:
        text = text.replace(key, MASK)
        if len(key) >= 2 * MIN_KEY:
            # A partial echo (`sk-proj-abcd****wxyz`) keeps the key's start: mask the token.
            text = re.sub(re.escape(key[:MIN_KEY]) + r"\S*", MASK, text)
    return text


def first_line(exc: BaseException) -> str:
    """litellm's message without its traceback, its trailer, or its repeated prefixes."""
    text = str(getattr(exc, "message", None) or exc)
    text = text.split("\nTraceback", 1)[0].split("\n\nLiteLLM:", 1)[0]
    text = " ".join(line.strip() for line in text.splitlines() if line.strip())
    text = re.sub(r"^(?:litellm\.\w+:\s*)?(?:\w+Error:\s*)?", "", text)
    return text[:MAX_TEXT] + ("..." if len(text) > MAX_TEXT else "")


def missing_field(exc: BaseException) -> str | None:
    """The response field litellm could not find, when that is the error: litellm reports
    a KeyError while parsing a provider's answer as an APIConnectionError `'usage'`."""
    found = re.fullmatch(r"'(\w+)'", first_line(exc))
    return found.group(1) if found and _is(exc, "APIConnectionError") else None


def describe(exc: BaseException, where: str, attempts: int) -> str:
    kind = type(exc).__name__
    tried = f" after {attempts} attempts" if attempts > 1 else ""
    hint = next((h for name, h in HINTS.items() if name == kind), "")
    if not hint:
        hint = next((h for name, h in HINTS.items() if _is(exc, name)), "")
    return f"{where} failed{tried}: {kind}: {first_line(exc)}" + (f" ({hint})" if hint else "")


def _is(exc: BaseException, name: str) -> bool:
    return any(cls.__name__ == name for cls in type(exc).__mro__)
