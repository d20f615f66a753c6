"""agentplane as a user installs it: a non-editable wheel runs the demo's and init's files
from package data (the bot image has no checkout), and `pip install -e` (what `make demo`
and `make test` run) prints no setuptools warning block."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from bot.demo.code import DEVELOPER, SHIPPED
from tests.conftest import PROJECT, git

SHARED = Path(sysconfig.get_paths()["purelib"])


def _venv(where: Path) -> Path:
    """A fresh venv that sees this venv's packages (pip, setuptools, agentplane's
    dependencies) through a .pth line, but not the editable agentplane installed here: a
    .pth in an added directory is not read, so `bot` comes only from what is installed."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    (Path(sysconfig.get_paths(vars={"base": str(where)})["purelib"]) / "shared.pth").write_text(
        f"{SHARED}\n"
    )
    return where / "bin" / "python"


def _source(where: Path) -> Path:
    """What a wheel is built from, copied out so the build writes nothing in the checkout."""
    where.mkdir()
    shutil.copytree(PROJECT / "bot", where / "bot", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copyfile(PROJECT / name, where / name)
    return where


def _pip(python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index",
         "--no-build-isolation", *args],
        capture_output=True, text=True, timeout=300, env=_clean_env(), cwd=python.parent,
    )  # fmt: skip


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, "GIT_COMMITTER_NAME": DEVELOPER[0], "GIT_COMMITTER_EMAIL": DEVELOPER[1]}


def _bot(python: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), "-m", "bot", *args],
        cwd=cwd, capture_output=True, text=True, timeout=300, env=_clean_env(),
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_an_installed_wheel_builds_the_demo_and_inits_from_package_data(tmp_path: Path) -> None:
    python = _venv(tmp_path / "venv")
    installed = _pip(python, str(_source(tmp_path / "src")))
    assert installed.returncode == 0, installed.stderr
    where = subprocess.run(
        [str(python), "-c", "import bot; print(bot.__file__)"],
        capture_output=True, text=True, check=True, env=_clean_env(), cwd=tmp_path,
    ).stdout  # fmt: skip
    assert where.startswith(str(tmp_path / "venv")), where  # not the checkout

    demo = tmp_path / "demo"
    built = subprocess.run(
        [str(python), "-c", f"from pathlib import Path; from bot.demo.code import build_repo; "
         f"build_repo(Path({str(demo)!r}))"],
        capture_output=True, text=True, env=_clean_env(), cwd=tmp_path,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    assert all((demo / rel).is_file() for rel in SHIPPED)
    assert _bot(python, demo, "validate").returncode == 0
    planned = _bot(python, demo, "plan", "fix-failing-test")
    assert planned.returncode == 0, planned.stderr
    assert "[policies/default.yaml#gates.code-changes]" in planned.stdout

    mine = tmp_path / "mine"
    mine.mkdir()
    git(mine, "init", "-q", "-b", "main")
    started = _bot(python, mine, "init", "--approver", "maya@example.com")
    assert started.returncode == 0, started.stderr
    git(mine, "add", "-A")
    git(mine, "commit", "-qm", "agentplane init")
    checked = _bot(python, mine, "validate")
    assert checked.returncode == 0, checked.stderr
    assert _bot(python, mine, "--version").stdout.strip() == "agentplane 0.1.0"


def test_an_editable_install_prints_no_setuptools_warning(tmp_path: Path) -> None:
    python = _venv(tmp_path / "venv")
    installed = _pip(python, "-e", str(_source(tmp_path / "src")))
    assert installed.returncode == 0, installed.stderr
    assert installed.stdout + installed.stderr == ""


def test_the_demo_files_are_the_checkouts_examples() -> None:
    """The package carries copies of the checkout's examples; they must not drift."""
    shipped = PROJECT / "bot/demo/shipped"
    copies = sorted(p.relative_to(shipped) for p in shipped.rglob("*.yaml"))
    examples = sorted(
        p.relative_to(PROJECT)
        for d in ("policies", ".agentplane/jobs", ".agentplane/scripts")
        for p in (PROJECT / d).glob("*.yaml")
    )
    assert copies == examples
    for rel in copies:
        assert (shipped / rel).read_bytes() == (PROJECT / rel).read_bytes(), rel
