"""`agentplane doctor` and `agentplane sandbox run`, through click as a user would call them."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from bot.adapters.sandbox.backends import make_backend
from bot.adapters.sandbox.image import ensure_browser_image
from bot.adapters.sandbox.spec import SandboxBackend
from bot.doors.cli.sandbox import register


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
    assert names == ["bwrap", "docker", "browser", "pictures"]
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


def test_doctor_repo_checks_the_audit_branch_rules_it_can_see(
    cli: click.Group, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.github import GitHubDouble

    with GitHubDouble(tmp_path) as gh:
        gh.create_repo("octo/demo")
        for var, value in {
            "AGENTPLANE_APP_ID": str(gh.app_id),
            "AGENTPLANE_APP_PRIVATE_KEY": gh.app_private_key_pem,
            "AGENTPLANE_API_URL": gh.api_url,
            "AGENTPLANE_GITHUB_THROTTLE": "false",
        }.items():
            monkeypatch.setenv(var, value)
        bare = CliRunner().invoke(cli, ["doctor", "--repo", "octo/demo"])
        assert bare.exit_code == 1, bare.output
        assert "problem   anyone with write access can push records onto" in bare.output
        gh.repo("octo/demo").rules["agentplane/audit"] = ["update", "non_fast_forward", "deletion"]
        guarded = CliRunner().invoke(cli, ["doctor", "--repo", "octo/demo"])
        assert guarded.exit_code == 0, guarded.output
        assert "ok        agentplane/audit: pushes to it are restricted" in guarded.output
        assert "unchecked not checked: who may bypass the ruleset" in guarded.output
        assert CliRunner().invoke(cli, ["doctor", "--repo", "nonsense"]).exit_code == 2
        assert gh.violations == []
        assert [r.operation_id for r in gh.requests if "rules" in r.path] == [
            "repos/get-branch-rules"
        ] * 2
