"""Run action.yml's steps as a runner would: each `run:` in bash, `${{ }}` filled from the
inputs, the github context and earlier steps' outputs, GITHUB_OUTPUT / GITHUB_ENV /
GITHUB_STEP_SUMMARY files, no TTY. sudo, apt-get and python3's venv are stubs that record
what they were asked (this host installs nothing); everything else is real."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROJECT = Path(__file__).resolve().parents[3]
EXPR = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")

STUBS = {
    "sudo": '#!/bin/sh\necho "sudo $*" >> "$STUB_LOG"\nexec "$@"\n',
    "apt-get": '#!/bin/sh\necho "apt-get $*" >> "$STUB_LOG"\n',
    "apparmor_parser": '#!/bin/sh\necho "apparmor_parser $*" >> "$STUB_LOG"\n',
    # python3 -m venv DIR: a venv whose pip records and whose agentplane is this checkout's
    # (its own bot package first, whatever else the venv has installed).
    "python3": f"""#!/bin/sh
if [ "$1" = -m ] && [ "$2" = venv ]; then
  echo "python3 -m venv $3" >> "$STUB_LOG"
  mkdir -p "$3/bin"
  printf '#!/bin/sh\\necho "venv-pip $*" >> "$STUB_LOG"\\n' > "$3/bin/pip"
  printf '#!/bin/sh\\nexec env PYTHONPATH={PROJECT} {PROJECT}/.venv/bin/python -m bot "$@"\\n' \\
    > "$3/bin/agentplane"
  chmod +x "$3/bin/pip" "$3/bin/agentplane"
  exit 0
fi
echo "system python3 $*" >> "$STUB_LOG"
exec /usr/bin/env -u PATH python3 "$@"
""",
    "pip": '#!/bin/sh\necho "SYSTEM PIP $*" >> "$STUB_LOG"\nexit 1\n',
}


@dataclass
class Step:
    id: str
    returncode: int
    stdout: str
    stderr: str
    outputs: dict[str, str]


@dataclass
class Runner:
    """One job's runner: its temp dir, env files, and the stubs' log."""

    root: Path
    workspace: Path
    env: dict[str, str]
    inputs: dict[str, str]
    github: dict[str, Any]
    steps: dict[str, Step] = field(default_factory=dict)

    @property
    def stub_log(self) -> list[str]:
        path = Path(self.env["STUB_LOG"])
        return path.read_text().splitlines() if path.exists() else []

    @property
    def summary(self) -> str:
        return Path(self.env["GITHUB_STEP_SUMMARY"]).read_text()


def make_runner(
    root: Path, workspace: Path, env: dict[str, str], inputs: dict[str, str], github: dict[str, Any]
) -> Runner:
    stubs = root / "stubs"
    stubs.mkdir(parents=True)
    for name, text in STUBS.items():
        (stubs / name).write_text(text)
        (stubs / name).chmod(0o755)
    temp = root / "runner-temp"
    temp.mkdir()
    files = {k: root / f"{k.lower()}.txt" for k in ("GITHUB_STEP_SUMMARY", "GITHUB_ENV")}
    for path in files.values():
        path.touch()
    base = {
        "PATH": f"{stubs}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(root / "home"),
        "RUNNER_TEMP": str(temp),
        "STUB_LOG": str(root / "stubs.log"),
        "GITHUB_ACTIONS": "true",
        "CI": "true",
        **{k: str(v) for k, v in files.items()},
        **env,
    }
    (root / "home").mkdir()
    return Runner(root, workspace, base, inputs, github)


def _value(runner: Runner, expr: str) -> str:
    if expr.startswith("inputs."):
        return runner.inputs.get(expr.removeprefix("inputs."), "")
    if expr.startswith("steps."):
        _, step, _, name = expr.split(".", 3)
        done = runner.steps.get(step)
        return done.outputs.get(name, "") if done else ""
    if expr.startswith("github."):
        node: Any = runner.github
        for part in expr.removeprefix("github.").split("."):
            node = node.get(part, "") if isinstance(node, dict) else ""
        return str(node)
    raise AssertionError(f"the harness cannot evaluate ${{{{ {expr} }}}}")


def fill(runner: Runner, text: str) -> str:
    return EXPR.sub(lambda m: _value(runner, m.group(1)), text)


def _read_env_file(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    lines = path.read_text().splitlines() if path.exists() else []
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line:
            name, delim = line.split("<<", 1)
            value = []
            i += 1
            while lines[i] != delim:
                value.append(lines[i])
                i += 1
            out[name] = "\n".join(value)
        elif "=" in line:
            name, value_text = line.split("=", 1)
            out[name] = value_text
        i += 1
    return out


def action() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((PROJECT / "action.yml").read_text())
    return doc


def run_steps(runner: Runner, only: set[str] | None = None) -> Runner:
    """Each step in order; stops at the first that fails, as a runner does."""
    defaults = {k: str(v.get("default", "")) for k, v in action()["inputs"].items()}
    runner.inputs = {**{k: fill(runner, v) for k, v in defaults.items()}, **runner.inputs}
    for step in action()["runs"]["steps"]:
        if only is not None and step["id"] not in only:
            continue
        assert step["shell"] == "bash" and "uses" not in step
        out_file = runner.root / f"output-{step['id']}.txt"
        out_file.touch()
        env_file = Path(runner.env["GITHUB_ENV"])
        env = {
            **runner.env,
            **_read_env_file(env_file),
            **{k: fill(runner, str(v)) for k, v in step.get("env", {}).items()},
            "GITHUB_OUTPUT": str(out_file),
        }
        # Expressions in `run:` itself would be template injection: the action has none.
        assert EXPR.search(step["run"]) is None, step["id"]
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=runner.workspace,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
        )
        runner.steps[step["id"]] = Step(
            step["id"], proc.returncode, proc.stdout, proc.stderr, _read_env_file(out_file)
        )
        if proc.returncode != 0:
            break
    return runner


__all__ = ["PROJECT", "Runner", "make_runner", "os", "run_steps"]
