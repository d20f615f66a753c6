"""The setup phase end to end: a real Python project whose tests need pytest and
sortedcontainers, installed by the repo's setup commands from a PEP 503 index on
127.0.0.1 through the egress proxy, verified in the sandbox, on both backends; a second
run reuses the environment."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.adapters.git import GitRepo
from bot.adapters.sandbox.envcache import EnvCache
from bot.core.record import DoorRef
from bot.core.render import render_evidence, render_pr_comment
from bot.demo.code import build_repo
from bot.run import setup as setup_phase
from bot.run.engine import Engine
from tests.adapters.sandbox.conftest import backend_or_skip
from tests.conftest import git
from tests.support.wheel_index import Index, serve_index, wheelhouse

FIXED = (
    "def add(a: int, b: int) -> int:\n    return a + b\n\n\n"
    "def mul(a: int, b: int) -> int:\n    return a * b\n"
)
PROJECT_FILES = {
    # Warnings are errors, as in the project that failed on a read-only .pytest_cache.
    "pyproject.toml": "[project]\nname = 'calc'\nversion = '0'\n\n[tool.pytest.ini_options]\n"
    "filterwarnings = ['error']\npythonpath = ['src']\ntestpaths = ['tests']\n",
    "requirements-test.txt": "pytest==9.2.0\nsortedcontainers==2.4.0\n",
    "tests/test_sorted.py": "from calc import add\nfrom sortedcontainers import SortedList\n\n\n"
    "def test_add_sorted() -> None:\n    assert add(*SortedList([3, 2])) == 5\n",
}
TESTS = "python -m pytest -q"


def setup_commands(index: Index) -> list[str]:
    return [
        # No pip in the environment: the one Debian ships runs from its wheel (offline,
        # present in both backends), so an environment holds only what the project needs.
        "python3 -m venv --without-pip /env",
        '/env/bin/python "$(echo /usr/share/python-wheels/pip-*.whl)/pip" install --no-input '
        f"--disable-pip-version-check --progress-bar off --index-url {index.url} "
        "-r requirements-test.txt",
    ]


@pytest.fixture(scope="module")
def index() -> Iterator[Index]:
    with serve_index(wheelhouse()) as served:
        yield served


@pytest.fixture
def project(index: Index, as_developer: None) -> Iterator[Path]:
    """The demo calculator as a pytest project with setup, under /tmp: as root the sandbox
    runs as a uid of its own, which must reach the repository's environment cache."""
    outer = Path(tempfile.mkdtemp(prefix="agentplane-setup-test-"))
    os.chmod(outer, 0o755)
    repo = outer / "repo"
    build_repo(repo)
    for rel, text in PROJECT_FILES.items():
        (repo / rel).write_text(text)
    config = {
        "setup": {
            "commands": setup_commands(index),
            "inputs": ["requirements-test.txt", "pyproject.toml"],
        }
    }
    (repo / ".agentplane/config.yaml").write_text(yaml.safe_dump(config))
    policy = repo / "policies/default.yaml"
    policy.write_text(
        policy.read_text() + f"\nsetup:\n  registries: ['127.0.0.1:{index.port}']\n"
        "  private_networks: [127.0.0.0/8]\n"
    )
    job = {
        "job_type": "code",
        "prompt": "fix the failing test; done when the tests pass",
        "tools": ["filesystem", "shell"],
        "scope": {"filesystem": {"write": ["src/**"]}},
        "verify": [TESTS],
        "model": "recorded",
    }
    (repo / ".agentplane/jobs/deps.yaml").write_text(yaml.safe_dump(job))
    turns = [
        {"tool_calls": [{"name": "shell", "arguments": {"command": TESTS}}]},
        {
            "tool_calls": [
                {"name": "fs_write", "arguments": {"path": "src/calc.py", "content": FIXED}}
            ]
        },
        {"content": "Fixed add(); the tests pass."},
    ]
    (repo / ".agentplane/scripts/deps.yaml").write_text(yaml.safe_dump({"turns": turns}))
    routing = repo / "policies/routing.yaml"
    routing.write_text(
        routing.read_text().replace("model: scripted/fix-failing-test", "model: scripted/deps")
    )
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a pytest project with setup")
    yield repo
    shutil.rmtree(outer, ignore_errors=True)


def _run(repo: Path, backend: str, **kw: Any) -> tuple[Engine, Any]:
    e = Engine(GitRepo(repo), backend_or_skip(backend))
    return e, e.start(e.request("deps"), **kw)


@pytest.mark.parametrize("backend", ["bwrap", "docker"])
def test_setup_installs_through_the_proxy_verify_passes_and_a_second_run_reuses(
    project: Path, index: Index, backend: str
) -> None:
    before = len(index.requests)
    _, rec = _run(project, backend)
    assert rec.state == "awaiting_approval", rec.transitions
    setup = rec.setup
    assert setup is not None and not setup.reused and setup.ok
    assert [s.exit_code for s in setup.steps] == [0, 0]
    assert "Successfully installed" in setup.steps[1].output
    assert setup.trust_domain == "default" and setup.env_digest.startswith("sha256:")
    # Every wheel came from the index on 127.0.0.1, through the proxy, recorded as setup's.
    fetched = [r for r in index.requests[before:] if r.startswith("/files/")]
    assert {d.split("/")[-1].split("-")[0] for d in fetched} >= {
        "pytest",
        "sortedcontainers",
    }
    setup_egress = [x for x in rec.egress if x.phase == "setup"]
    assert setup_egress and {(x.host, x.port, x.decision) for x in setup_egress} == {
        ("127.0.0.1", index.port, "allow")
    }
    assert setup_egress[0].rule == "policies/default.yaml#setup.registries"
    assert all(x.phase == "setup" for x in rec.egress)  # the agent got no network
    # The agent's own pytest saw the bug (the environment is there, read-only), and the
    # control plane's verification ran the suite on the proposal and passed.
    assert "2 failed, 1 passed" in rec.tool_calls[0].result
    (check,) = rec.verification
    assert check.passed and "passed" in check.output, check.output
    shown = render_evidence(rec, "")
    assert f"Setup: built environment {setup.env_digest[:19]}" in shown
    assert "$ python3 -m venv --without-pip /env\n[exit 0" in shown
    assert f"Verification passed: {TESTS}" in shown
    comment = render_pr_comment(rec, "plan", "", None)
    assert (
        "<details><summary>Setup</summary>" in comment
        and "✅ `python3 -m venv --without-pip /env`" in comment
    )
    # The proposal is the fix alone: nothing setup, pytest or its cache wrote.
    assert rec.proposal is not None and rec.proposal.paths == ["src/calc.py"]

    if backend == "docker":
        return  # a reused environment mounts as the kept one did for verify above: CI time
    requests = len(index.requests)
    _, again = _run(project, backend)
    assert again.state == "awaiting_approval", again.transitions
    assert again.setup is not None and again.setup.reused and again.setup.steps == []
    assert (again.setup.key, again.setup.env_digest) == (setup.key, setup.env_digest)
    assert again.setup.built_by == rec.run_id
    assert len(index.requests) == requests  # nothing was installed again
    assert again.verification[0].passed
    assert "Setup: reused environment" in render_evidence(again, "")


def test_the_key_follows_the_inputs_the_commands_and_the_trust_domain(project: Path) -> None:
    repo = GitRepo(project)
    e = Engine(repo, backend_or_skip("bwrap"))
    setup = e.plan(e.request("deps")).setup
    assert setup is not None

    def key(commit: str, trust: str = "default") -> str:
        inputs = setup_phase.input_files(repo, commit, setup.inputs)
        return setup_phase.environment_key(setup, inputs, "bwrap", "base", trust)

    first = repo.head_commit()
    assert [line.split()[0] for line in setup_phase.input_files(repo, first, setup.inputs)] == [
        "pyproject.toml",
        "requirements-test.txt",
    ]
    (project / "README.md").write_text("unrelated\n")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "docs")
    assert key(repo.head_commit()) == key(first)  # a file setup does not read: reused
    (project / "pyproject.toml").write_text(PROJECT_FILES["pyproject.toml"] + "# changed\n")
    git(project, "commit", "-qam", "pyproject changed")
    assert key(repo.head_commit()) != key(first)  # a file it reads: built anew
    other = setup.model_copy(update={"commands": [*setup.commands, "true"]})
    inputs = setup_phase.input_files(repo, first, setup.inputs)
    assert setup_phase.environment_key(other, inputs, "bwrap", "base", "default") != key(first)
    assert key(first, "pr-7") != key(first)
    assert setup_phase.environment_key(setup, inputs, "docker", "base", "default") != key(first)


def test_a_pull_request_is_its_own_trust_domain(project: Path) -> None:
    repo = GitRepo(project)
    main = repo.head_commit()
    git(project, "checkout", "-qb", "feature")
    (project / "README.md").write_text("feature\n")
    git(project, "add", "-A")
    git(project, "commit", "-qm", "feature")
    feature = repo.head_commit()
    pr = DoorRef(repo="o/r", number=7)
    assert setup_phase.trust_domain(repo, main, None) == "default"
    assert setup_phase.trust_domain(repo, main, pr) == "default"  # already on main
    assert setup_phase.trust_domain(repo, feature, pr) == "pr-7"
    assert setup_phase.trust_domain(repo, feature, None) == f"commit-{feature}"


def test_a_registry_policy_does_not_name_is_refused_and_the_run_fails_with_the_step(
    project: Path, index: Index
) -> None:
    fetch = (
        "python3 -c 'import urllib.request as u; "
        f'u.urlopen("http://localhost:{index.port}/simple/", timeout=10)\''
    )
    config = {"setup": {"commands": ["echo first", fetch, "echo never"]}}
    (project / ".agentplane/config.yaml").write_text(yaml.safe_dump(config))
    git(project, "commit", "-qam", "install from a registry policy does not name")
    _, rec = _run(project, "bwrap")
    assert rec.state == "failed", rec.transitions
    assert rec.transitions[-1].reason.startswith("setup failed: setup command `python3 -c")
    assert rec.setup is not None and len(rec.setup.steps) == 2  # "echo never" never ran
    assert rec.setup.steps[0].exit_code == 0
    assert rec.setup.steps[1].exit_code not in (0, None)
    assert "403" in rec.setup.steps[1].output
    denied = [x for x in rec.egress if x.decision == "deny"]
    assert denied and all(x.phase == "setup" and x.host == "localhost" for x in denied)
    assert denied[0].rule.startswith("policy#setup.registries (not granted")
    assert not rec.tool_calls  # the agent never ran
    assert EnvCache.for_repo(GitRepo(project).git_dir).entries() == []  # nothing kept
    assert "Setup FAILED: setup command" in render_evidence(rec, "")


def test_policy_without_setup_denies_it_in_the_plan(project: Path) -> None:
    policy = project / "policies/default.yaml"
    policy.write_text(policy.read_text().split("\nsetup:\n")[0] + "\n")
    git(project, "commit", "-qam", "no setup")
    e = Engine(GitRepo(project), backend_or_skip("bwrap"))
    p = e.plan(e.request("deps"))
    assert p.setup is None
    (refused,) = [d for d in p.decisions if d.kind == "setup"]
    assert not refused.granted and "policy has no setup section" in refused.reason
