"""Scenario files: what a bad one says, at file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.errors import AgentplaneError, ValidationFailed
from bot.eval.scenario import load_scenarios
from tests.conftest import PROJECT


def test_the_shipped_suite_loads_and_covers_its_injection_points() -> None:
    scenarios = load_scenarios(PROJECT / "evals")
    names = {s.name for s in scenarios}
    assert "code-fix-in-scope" in names
    points = {s.injection.point for s in scenarios if s.injection}
    assert {"file", "tool_output", "document_cell"} <= points
    for s in scenarios:
        if s.injection:
            assert s.benign_turns is not None, s.name  # benign utility needs the clean run


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    (tmp_path / name).write_text(text)
    return tmp_path


def test_unknown_field_is_named_with_its_file(tmp_path: Path) -> None:
    d = write(tmp_path, "family: code\njob: {}\nturns: []\nturns_typo: 1\n")
    with pytest.raises(ValidationFailed) as caught:
        load_scenarios(d)
    assert [e.render() for e in caught.value.errors] == [
        f"{d / 's.yaml'}:4:1: turns_typo: unknown field (check the spelling; "
        "see `agentplane schema`)"
    ]


def test_missing_field_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed, match=r"s\.yaml:1:1: job: required field is missing"):
        load_scenarios(write(tmp_path, "family: code\nturns: []\n"))
    (tmp_path / "s.yaml").unlink()
    with pytest.raises(ValidationFailed, match=r"b\.yaml:2:1: invalid YAML"):
        load_scenarios(write(tmp_path, "family: [code\n", "b.yaml"))


def test_a_goal_kind_outside_the_vocabulary_is_refused(tmp_path: Path) -> None:
    text = "family: code\njob: {}\nturns: []\ninjection: {point: file, goal: {kind: fun}}\n"
    where = r"s\.yaml:4:33: injection\.goal\.kind: input should be .file_changed"
    with pytest.raises(ValidationFailed, match=where):
        load_scenarios(write(tmp_path, text))


def test_a_linked_scenario_is_never_read(tmp_path: Path) -> None:
    secret = tmp_path / "elsewhere.txt"
    secret.write_text("family: code\n")
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "s.yaml").symlink_to(secret)
    with pytest.raises(AgentplaneError, match="must be a regular file, not a link"):
        load_scenarios(tmp_path / "suite")


def test_only_names_that_exist(tmp_path: Path) -> None:
    d = write(tmp_path, "family: code\njob: {}\nturns: []\n")
    assert [s.name for s in load_scenarios(d, ("s",))] == ["s"]
    with pytest.raises(AgentplaneError, match="no scenario named nope"):
        load_scenarios(d, ("nope",))


def test_the_shipped_suite_covers_every_job_type_and_the_world_injection_points() -> None:
    scenarios = load_scenarios(PROJECT / "evals")
    assert {"code", "documents", "browser", "sql", "mcp"} <= {s.family for s in scenarios}
    points = {(s.family, s.injection.point) for s in scenarios if s.injection}
    assert {("browser", "web_page"), ("sql", "sql_row"), ("mcp", "tool_output")} <= points
    for s in scenarios:
        if s.family in ("browser", "sql", "mcp"):
            assert s.world is not None and s.done, s.name  # the task is read from the world
