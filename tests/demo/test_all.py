"""`agentplane demo --all`: a code, a browser and a spreadsheet job, one maintainer
approving all three, each approval bound to its own proposal digest."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.demo import all as demo_all
from tests.families.browser.conftest import needs_chromium
from tests.support.postgres import Cluster

pytestmark = [needs_chromium]


def test_the_three_kinds_demo_runs_and_binds_each_approval(
    tmp_path: Path,
    pg_cluster: Cluster,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(demo_all.REPLICA_ENV, pg_cluster.standby_dsn)
    # Pictures are the documents tests' business; here they would only cost time.
    monkeypatch.setenv("AGENTPLANE_SOFFICE", "/nonexistent/soffice")
    monkeypatch.delenv(demo_all.CREDENTIAL_ENV, raising=False)
    demo_all.main(tmp_path / "demo")
    out = capsys.readouterr().out
    assert out.count("Waiting for approval: ") == 3, out
    # The same layout for each: tool calls with rules, the contract, the proposal.
    assert "+    return a + b" in out and "click button 'Save' [held]" in out
    assert "B4: 23810 -> 25005" in out
    assert "The console has received 0 writes so far." in out
    bound = re.findall(
        r"^  (\S+): applied; approved by (\S+) on (\w{12}) for proposal (\S+)$", out, re.M
    )
    assert [b[0] for b in bound] == ["fix-failing-test", "admin-edit", "quarterly-report"], out
    assert {b[1] for b in bound} == {"maya@example.com"}
    assert len({b[2] for b in bound}) == 1 and len({b[3] for b in bound}) == 3
    assert "The console's own count: {'POST /users/2': 1}." in out
    assert "ok: " in out
    assert demo_all.CREDENTIAL_ENV not in __import__("os").environ


def test_the_demo_says_what_is_missing_before_building_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(demo_all.REPLICA_ENV, raising=False)
    with pytest.raises(SystemExit, match=demo_all.REPLICA_ENV):
        demo_all.main(tmp_path / "demo")
    assert not (tmp_path / "demo").exists()


def test_the_cli_flag_runs_it_and_says_what_is_missing_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from bot.doors.cli.main import cli

    monkeypatch.delenv("AGENTPLANE_SQL_REPLICA_DSN", raising=False)
    out = CliRunner().invoke(cli, ["demo", "--all", "--dir", str(tmp_path / "d")])
    assert out.exit_code != 0
    assert "demo --all: " in str(out.exception) + out.output
    assert not (tmp_path / "d").exists()  # said before building anything
