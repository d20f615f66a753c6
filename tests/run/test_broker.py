import json
from pathlib import Path

import pytest

from bot.core.errors import RunError
from bot.core.record import ToolCall
from bot.families.base import ToolOutcome, ToolSpec
from bot.families.documents.errors import DocumentError
from bot.families.filesystem.tools import filesystem_tools
from bot.run.broker import Broker
from tests.core.test_plan import CODE_JOB, POLICY_OBJ, plan, req


def make(tmp_path: Path, job: str = CODE_JOB) -> tuple[Broker, list[ToolCall]]:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("x = 1\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "t.py").write_text("assert True\n")
    calls: list[ToolCall] = []
    p = plan(req(job), POLICY_OBJ)
    return Broker(p, filesystem_tools(tmp_path, lambda rel: True), calls.append), calls


def test_read_within_scope_is_allowed_and_recorded(tmp_path: Path) -> None:
    broker, calls = make(tmp_path)
    assert broker.call("fs_read", json.dumps({"path": "src/a.py"})) == "x = 1\n"
    assert calls[0].decision == "allow" and calls[0].ok
    assert calls[0].rule == "policies/p.yaml#job_types.code.tools"


def test_write_outside_scope_is_denied_with_rule_and_nothing_written(tmp_path: Path) -> None:
    broker, calls = make(tmp_path)
    out = broker.call("fs_write", json.dumps({"path": "tests/t.py", "content": "gone"}))
    assert out.startswith("DENIED by policies/p.yaml#job_types.code.scope.filesystem.write")
    assert (tmp_path / "tests" / "t.py").read_text() == "assert True\n"
    assert calls[0].decision == "deny" and not calls[0].ok


def test_write_in_scope_needs_approval_and_is_staged(tmp_path: Path) -> None:
    broker, calls = make(tmp_path)
    broker.call("fs_write", json.dumps({"path": "src/a.py", "content": "x = 2\n"}))
    assert calls[0].decision == "needs_approval"
    assert calls[0].rule == "policies/p.yaml#gates.writes"
    assert (tmp_path / "src" / "a.py").read_text() == "x = 2\n"


def test_ungranted_tool_is_denied(tmp_path: Path) -> None:
    broker, calls = make(tmp_path, CODE_JOB.replace("[filesystem, shell]", "[shell]"))
    out = broker.call("fs_read", json.dumps({"path": "src/a.py"}))
    assert out.startswith("DENIED") and calls[0].decision == "deny"
    assert calls[0].rule == "policies/p.yaml#job_types.code.tools"


def test_unknown_tool_and_bad_arguments_are_denied_not_crashes(tmp_path: Path) -> None:
    broker, calls = make(tmp_path)
    assert broker.call("rm_rf", "{}").startswith("DENIED by broker#known-tools")
    assert broker.call("fs_read", "not json").startswith("DENIED by broker#arguments")
    assert [c.decision for c in calls] == ["deny", "deny"]


def test_traversal_and_absolute_paths_are_denied(tmp_path: Path) -> None:
    broker, calls = make(tmp_path)
    for path in ("../../etc/passwd", "/etc/passwd", "src/../../x"):
        assert broker.call("fs_read", json.dumps({"path": path})).startswith("DENIED")
    assert all(c.decision == "deny" for c in calls)


def test_symlink_escape_is_an_error(tmp_path: Path) -> None:
    broker, calls = make(tmp_path)
    (tmp_path / "src" / "link").symlink_to("/etc")
    out = broker.call("fs_read", json.dumps({"path": "src/link/hostname"}))
    assert out.startswith("ERROR: 'src/link' is a symlink -> '/etc'") and not calls[0].ok


def test_only_granted_tools_are_offered(tmp_path: Path) -> None:
    broker, _ = make(tmp_path, CODE_JOB.replace("[filesystem, shell]", "[shell]"))
    assert broker.schemas() == []


def test_redaction_applies_to_results_and_arguments(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "k.txt").write_text("token=s3cr3t\n")
    calls: list[ToolCall] = []
    broker = Broker(
        plan(req(CODE_JOB), POLICY_OBJ),
        filesystem_tools(tmp_path, lambda r: True),
        calls.append,
        redact=lambda s: s.replace("s3cr3t", "[REDACTED]"),
    )
    assert "s3cr3t" not in broker.call("fs_read", json.dumps({"path": "src/k.txt"}))
    assert "s3cr3t" not in calls[0].result


def test_an_oserror_in_a_tool_is_a_recorded_tool_error(tmp_path: Path) -> None:
    """ENAMETOOLONG from the host's own mkdir: an ERROR result, never an uncaught exception."""
    broker, calls = make(tmp_path)
    long = "src/" + "x" * 300 + "/f.py"
    out = broker.call("fs_write", json.dumps({"path": long, "content": "x"}))
    assert out.startswith("ERROR: fs_write failed on the host: [Errno 36] File name too long")
    assert len(calls) == 1 and not calls[0].ok and calls[0].result == out
    assert broker.call("fs_read", json.dumps({"path": "src/a.py"})) == "x = 1\n"  # still usable


def test_a_family_error_in_a_tool_is_a_recorded_tool_error_and_a_run_error_ends_it(
    tmp_path: Path,
) -> None:
    """A family refusing hostile input is the model's to read; a quota (RunError) is not."""
    (tmp_path / "src").mkdir()
    calls: list[ToolCall] = []

    def refuse(_: dict[str, object]) -> ToolOutcome:
        raise DocumentError("src/r.xlsx", "is a zip bomb (declared 9 GB)")

    def over_quota(_: dict[str, object]) -> ToolOutcome:
        raise RunError("the workspace grew past its quota")

    tools = [
        ToolSpec("fs_read", "filesystem", "read", {"type": "object"}, refuse),
        ToolSpec("fs_list", "filesystem", "list", {"type": "object"}, over_quota),
    ]
    broker = Broker(plan(req(CODE_JOB), POLICY_OBJ), tools, calls.append)
    out = broker.call("fs_read", "{}")
    assert out.startswith("ERROR: ") and "zip bomb" in out
    assert len(calls) == 1 and not calls[0].ok and calls[0].result == out
    with pytest.raises(RunError, match="quota"):
        broker.call("fs_list", "{}")
