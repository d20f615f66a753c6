"""A model server on 127.0.0.1 speaking OpenAI Chat Completions and Anthropic Messages.

Tests point real litellm deployments at it (`api_base=server.openai_base` or
`server.anthropic_base`), so a call goes through litellm's HTTP path exactly as it
would to vLLM, Ollama, OpenAI or Anthropic. Nothing in `bot/` knows it exists.

What it answers:
- `turns`: played like the scripted provider, by the number of assistant messages
  in the request (stateless, so a retry gets the same turn);
- `faults`: consumed one per request before any turn (FIFO), to inject a hang, an
  HTTP status (429 with Retry-After, 500, a 401 that echoes the API key), empty
  `choices`; `always` is a fault every request gets (a dead replica).
Every request is kept in `requests` (path, headers, parsed body).
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

import yaml

from bot.adapters.model.client import LiteLLMClient
from bot.core.routing import Routing

FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]
ANTHROPIC_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
HUGE = 10**9


@dataclass(frozen=True)
class Turn:
    """One answer. tool_calls are (name, raw JSON arguments): a raw string can be cut."""

    content: str | None = "done"
    tool_calls: tuple[tuple[str, str], ...] = ()
    finish: FinishReason | None = None
    """None: `tool_calls` when there are any, else `stop`."""
    usage: tuple[int, int] | Literal["auto"] | None = "auto"
    """(prompt, completion) tokens; None leaves `usage` out; "auto" counts characters."""


@dataclass(frozen=True)
class Fault:
    kind: Literal["hang", "status", "empty_choices", "reply"]
    seconds: float = 0.0
    status: int = 500
    retry_after: float | None = None
    echo_key: bool = False
    """A 401 whose message quotes the key the request carried, as some gateways do."""
    turn: Turn | None = None
    """For `reply`: answer this once instead of the scripted turn (a retry gets the turn)."""


def hang(seconds: float = 30.0) -> Fault:
    return Fault("hang", seconds=seconds)


def status(code: int, retry_after: float | None = None, echo_key: bool = False) -> Fault:
    return Fault("status", status=code, retry_after=retry_after, echo_key=echo_key)


def reply(turn: Turn) -> Fault:
    return Fault("reply", turn=turn)


EMPTY_CHOICES = Fault("empty_choices")


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def key(self) -> str:
        auth = self.headers.get("authorization", "")
        return auth.removeprefix("Bearer ") if auth else self.headers.get("x-api-key", "")


@dataclass
class ModelServer:
    """`with ModelServer(turns=[...]) as server:` serves both wire formats until closed."""

    turns: list[Turn] = field(default_factory=list)
    faults: deque[Fault] = field(default_factory=deque)
    always: Fault | None = None
    requests: list[Recorded] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._closing = threading.Event()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def openai_base(self) -> str:
        return f"{self.url}/v1"

    @property
    def anthropic_base(self) -> str:
        return self.url

    def __enter__(self) -> ModelServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closing.set()  # wakes every hanging handler
        self._httpd.shutdown()
        self._httpd.server_close()

    def inject(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    # -- answering ----------------------------------------------------------------------

    def answer(
        self, path: str, headers: dict[str, str], body: dict[str, Any]
    ) -> tuple[int, dict[str, str], bytes]:
        rec = Recorded(path, headers, body)
        with self._lock:
            self.requests.append(rec)
            fault = self.faults.popleft() if self.faults else self.always
            n = next(self._ids)
        anthropic = path.rstrip("/").endswith("/messages")
        if fault is not None:
            if fault.kind == "hang":
                self._closing.wait(fault.seconds)
            elif fault.kind == "status":
                return _error(fault, rec.key, anthropic)
            elif fault.kind == "empty_choices" and not anthropic:
                return 200, {}, json.dumps(_openai_shell(body, n, choices=[])).encode()
            elif fault.kind == "empty_choices":  # Anthropic has no choices: empty content
                reply = {
                    **_anthropic_shell(body, n),
                    "content": [],
                    "stop_reason": "end_turn",
                    "usage": {"input_tokens": 10, "output_tokens": 0},
                }
                return 200, {}, json.dumps(reply).encode()
        messages = body.get("messages") or []
        index = sum(1 for m in messages if m.get("role") == "assistant")
        turn = self.turns[index] if index < len(self.turns) else Turn()
        if fault is not None and fault.kind == "reply" and fault.turn is not None:
            turn = fault.turn
        usage = _usage(turn, messages)
        if anthropic:
            return 200, {}, json.dumps(_anthropic(body, n, turn, usage)).encode()
        return 200, {}, json.dumps(_openai(body, n, turn, usage)).encode()


def _usage(turn: Turn, messages: list[dict[str, Any]]) -> tuple[int, int] | None:
    if turn.usage != "auto":
        return turn.usage
    prompt = sum(len(json.dumps(m.get("content"))) for m in messages) // 4 + 1
    completion = len(turn.content or "") // 4 + 1 + 10 * len(turn.tool_calls)
    return prompt, completion


def _finish(turn: Turn) -> str:
    return turn.finish or ("tool_calls" if turn.tool_calls else "stop")


def _openai_shell(body: dict[str, Any], n: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{n}",
        "object": "chat.completion",
        "created": 1_700_000_000 + n,
        "model": body.get("model", ""),
        **extra,
    }


def _openai(
    body: dict[str, Any], n: int, turn: Turn, usage: tuple[int, int] | None
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": turn.content}
    if turn.tool_calls:
        message["tool_calls"] = [
            {
                "id": f"call_{n}_{i}",
                "type": "function",
                "function": {"name": name, "arguments": args},
            }
            for i, (name, args) in enumerate(turn.tool_calls)
        ]
    out = _openai_shell(
        body, n, choices=[{"index": 0, "message": message, "finish_reason": _finish(turn)}]
    )
    if usage is not None:
        out["usage"] = {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": usage[0] + usage[1],
        }
    return out


def _anthropic_shell(body: dict[str, Any], n: int) -> dict[str, Any]:
    return {
        "id": f"msg_{n}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model", ""),
        "stop_sequence": None,
    }


def _anthropic(
    body: dict[str, Any], n: int, turn: Turn, usage: tuple[int, int] | None
) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if turn.content is not None:
        content.append({"type": "text", "text": turn.content})
    for i, (name, args) in enumerate(turn.tool_calls):
        try:
            parsed = json.loads(args)
        except json.JSONDecodeError:
            parsed = {}  # Anthropic's input is an object: a cut one arrives empty
        content.append({"type": "tool_use", "id": f"toolu_{n}_{i}", "name": name, "input": parsed})
    out = {
        **_anthropic_shell(body, n),
        "content": content,
        "stop_reason": ANTHROPIC_STOP[_finish(turn)],
    }
    if usage is not None:
        out["usage"] = {"input_tokens": usage[0], "output_tokens": usage[1]}
    return out


def _error(fault: Fault, key: str, anthropic: bool) -> tuple[int, dict[str, str], bytes]:
    headers = {} if fault.retry_after is None else {"retry-after": f"{fault.retry_after:g}"}
    message = {
        401: f"Incorrect API key provided: {key}" if fault.echo_key else "invalid api key",
        429: "rate limited, slow down",
    }.get(fault.status, "the server had an error")
    if anthropic:
        kind = {401: "authentication_error", 429: "rate_limit_error"}.get(fault.status, "api_error")
        body = {"type": "error", "error": {"type": kind, "message": message}}
    else:
        body = {"error": {"message": message, "type": "server_error", "code": fault.status}}
    return fault.status, headers, json.dumps(body).encode()


def _handler(server: ModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: tests read server.requests

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                body = {}
            headers = {k.lower(): v for k, v in self.headers.items()}
            code, extra, data = server.answer(self.path, headers, body)
            try:
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout): nothing to answer

        def do_GET(self) -> None:
            data = json.dumps({"object": "list", "data": []}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


# -- what tests put in policy for it --------------------------------------------------------

KEY = "sk-agentplane-test-0123456789abcdef"
KEY_ENV = "AGENTPLANE_TEST_MODEL_KEY"
"""Test deployments name the key as a real policy would: `os.environ/AGENTPLANE_TEST_...`."""


def deployment(
    name: str, base: str, model: str = "openai/qwen2.5-coder", **params: Any
) -> dict[str, Any]:
    """One model_list entry for a server (`server.openai_base` or `server.anthropic_base`)."""
    return {
        "model_name": name,
        "litellm_params": {
            "model": model,
            "api_base": base,
            "api_key": f"os.environ/{KEY_ENV}",
            **params,
        },
    }


def client(
    models: dict[str, Any], group: str = "local", sensitivity: str = "internal", **kw: Any
) -> LiteLLMClient:
    """The client as the engine builds it: policy's models section -> router_config."""
    routing = Routing.model_validate(models)
    return LiteLLMClient(routing.router_config(group, sensitivity=sensitivity, **kw))


def one(server: ModelServer, model: str = "openai/qwen2.5-coder", **models: Any) -> LiteLLMClient:
    """A client for one deployment `local` on server, with fast timeouts."""
    params = models.pop("params", {})
    settings = {"timeout": 2, "num_retries": 0, **models.pop("router_settings", {})}
    spec = {
        "model_list": [deployment("local", server.openai_base, model, **params)],
        "router_settings": settings,
        **models,
    }
    return client(spec)


def turns_from_script(path: Path) -> list[Turn]:
    """A scripted provider's script (`.agentplane/scripts/*.yaml`) as the server's turns."""
    data = yaml.safe_load(path.read_text())
    return [
        Turn(
            content=t.get("content"),
            tool_calls=tuple(
                (c["name"], json.dumps(c.get("arguments", {}))) for c in t.get("tool_calls") or []
            ),
        )
        for t in data["turns"]
    ]
