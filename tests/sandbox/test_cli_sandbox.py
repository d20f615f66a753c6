"""`agentplane doctor` and `agentplane sandbox run`, through click as a user would call them."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from bot.cli_sandbox import register
from bot.sandbox.backends import make_backend
from bot.sandbox.image import ensure_browser_image
from bot.sandbox.spec import SandboxBackend


@pytest.fixture
def cli() -> click.Group:
    group = click.Group()
    register(group)
    return group


def test_doctor_lists_every_backend_and_where_the_browser_runs(cli: click.Group) -> None:
    docker_ok = make_backend("docker").available()[0]
    if docker_ok:
        ensure_browser_image()
    result = CliRunner().invoke(cli, ["doctor"])
    names = [line.split()[0] for line in result.output.splitlines()]
    assert names == ["bwrap", "docker", "browser"]
    where = "docker: preferred" if docker_ok else "bwrap: preferred; docker: "
    assert f"browser runs Chromium in {where}" in result.output, result.output


def test_run_exits_with_the_commands_status(
    cli: click.Group, backend: SandboxBackend, workspace: Path
) -> None:
    args = ["sandbox", "run", "--backend", backend.name, "--workspace", str(workspace)]
    script = "cat README.md; touch src/new && echo wrote; touch docs/x || echo denied; exit 7"
    result = CliRunner().invoke(cli, [*args, "--write", "src/*", "--", "sh", "-c", script])
    assert result.exit_code == 7, result.output
    assert "# demo" in result.output and "wrote" in result.output and "denied" in result.output
    assert not (workspace / "src/new").exists()  # a throwaway copy, as a job's checkout


def test_run_reports_denied_egress(
    cli: click.Group, backend: SandboxBackend, workspace: Path
) -> None:
    args = ["sandbox", "run", "--backend", backend.name, "--workspace", str(workspace)]
    fetch = "import urllib.request as u; u.urlopen('http://127.0.0.1:9/')"
    result = CliRunner().invoke(
        cli, [*args, "--allow-domain", "example.com", "--", "python3", "-c", fetch]
    )
    assert result.exit_code == 1
    assert "egress deny 127.0.0.1:9 default-deny" in result.output
