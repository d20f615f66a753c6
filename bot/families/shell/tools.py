"""The shell tool: a command inside the run's sandbox (never on the host)."""

from __future__ import annotations

from typing import Any

from bot.adapters.sandbox import Sandbox
from bot.families.base import ToolFailure, ToolOutcome, ToolSpec, obj, string

MAX_OUTPUT = 16 * 1024


def shell_tool(sandbox: Sandbox) -> ToolSpec:
    def run(args: dict[str, Any]) -> ToolOutcome:
        command = args.get("command")
        if not isinstance(command, str) or not command.strip():
            raise ToolFailure("command must be a non-empty string")
        result = sandbox.exec(["sh", "-c", command])
        tail = (result.stdout + result.stderr)[-MAX_OUTPUT:]
        status = "timed out" if result.timed_out else f"exit {result.exit_code}"
        # The workspace may have changed: writes are scope-checked when the proposal is built.
        return ToolOutcome(f"[{status}]\n{tail}", mutates=True, status=status)

    return ToolSpec(
        "shell",
        "shell",
        "Run a shell command in the sandbox (cwd is the repo root; no network).",
        obj(command=string("the command, run with sh -c")),
        run,
    )
