import json

import pytest

from bot.core.errors import ValidationFailed
from bot.core.job import job_schema, parse_job

VISION_EXAMPLE = {
    "job_type": "browser_automation",
    "repo": "payments-api",
    "tools": ["filesystem", "browser", "playwright"],
    "approval_required_for": ["submit", "delete", "purchase"],
    "artifact_contract": "diff_plus_trace",
}


def errors_of(text: str, path: str = "jobs/x.yaml") -> list[str]:
    with pytest.raises(ValidationFailed) as info:
        parse_job(path, text)
    return [e.render() for e in info.value.errors]


def test_vision_example_validates_as_written() -> None:
    job = parse_job(".agentplane/jobs/pay-admin.yaml", json.dumps(VISION_EXAMPLE))
    assert job.name == "pay-admin"  # defaults to the file name
    assert job.job_type == "browser"
    assert job.tools == ["filesystem", "browser"]  # playwright is the browser tool
    assert job.approval_required_for == ["submit", "delete", "purchase"]
    assert job.prompt is None


def test_shipped_demo_job_is_valid() -> None:
    from pathlib import Path

    path = Path(__file__).parents[2] / ".agentplane/jobs/fix-failing-test.yaml"
    job = parse_job(str(path), path.read_text(encoding="utf-8"))
    assert job.scope.filesystem.write == ["src/**"]


def test_unknown_field_points_at_its_line_and_column() -> None:
    assert errors_of("name: x\nscope:\n  filesystem:\n    wirte: [a]\n") == [
        "jobs/x.yaml:4:5: scope.filesystem.wirte: unknown field (check the spelling; "
        "see `agentplane schema`)"
    ]


def test_bad_enum_in_list_points_at_the_item() -> None:
    (err,) = errors_of("tools:\n  - filesystem\n  - hammer\n")
    assert err.startswith("jobs/x.yaml:3:5: tools[1]: input should be")


def test_absolute_write_glob_rejected() -> None:
    (err,) = errors_of("scope:\n  filesystem:\n    write: [/etc/passwd]\n")
    assert err.startswith("jobs/x.yaml:3:5: scope.filesystem.write:")
    assert "relative to the repo root" in err


def test_dsn_in_job_file_rejected() -> None:
    (err,) = errors_of("scope:\n  sql: {connection: 'postgres://u:p@h/db'}\n")
    assert "scope.sql.connection" in err and "DSNs never go in job files" in err


def test_negative_budget_and_bad_cron() -> None:
    errs = errors_of("budget:\n  usd: -1\nschedule: every day\n")
    assert errs[0].startswith("jobs/x.yaml:2:3: budget.usd: input should be greater")
    assert errs[1].startswith("jobs/x.yaml:3:1: schedule: expected five cron fields")


def test_five_fields_out_of_range_are_not_cron() -> None:
    (err,) = errors_of("schedule: '99 99 99 99 99'\n")
    assert err.startswith("jobs/x.yaml:1:1: schedule: not a valid cron expression")
    assert parse_job("jobs/x.yaml", "schedule: '*/15 6-18 * * 1-5'\n").schedule


def test_every_error_is_reported_not_just_the_first() -> None:
    assert len(errors_of("tools: [hammer]\nmodel: 3\nbogus: 1\n")) == 3


def test_duplicate_key_is_an_error() -> None:
    assert errors_of("name: a\nname: b\n") == ["jobs/x.yaml:2:1: name: duplicate key"]


def test_yaml_syntax_error_has_position() -> None:
    (err,) = errors_of("tools: [a,\n  b\n")
    assert err.startswith("jobs/x.yaml:3:1: invalid YAML")


def test_top_level_must_be_a_mapping() -> None:
    assert errors_of("- a\n- b\n") == ["jobs/x.yaml:1:1: expected a mapping at the top of the file"]


def test_bad_name() -> None:
    (err,) = errors_of("name: Has Spaces\n")
    assert err.startswith("jobs/x.yaml:1:1: name: use lowercase")


def test_digest_is_stable_and_content_sensitive() -> None:
    a = parse_job("a.yaml", "prompt: x\n")
    assert a.digest() == parse_job("a.yaml", "prompt: x\n").digest()
    assert a.digest() != parse_job("a.yaml", "prompt: y\n").digest()


def test_schema_is_json_schema_without_required_name() -> None:
    schema = job_schema()
    assert "name" not in schema.get("required", [])
    assert schema["additionalProperties"] is False
    assert "scope" in schema["properties"]


def test_every_shipped_familys_tool_name_is_known_without_an_engine() -> None:
    """`validate` and the PR door's check run no engine: they must accept what it serves."""
    from bot.core.job import BUILTIN_TOOLS
    from bot.families.registry import default_families, tool_names

    assert set(tool_names(default_families())) <= set(BUILTIN_TOOLS)
