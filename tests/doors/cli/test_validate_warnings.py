"""`validate` warns, located, of a gate no set of approvers can ever meet."""

from __future__ import annotations

from pathlib import Path

from bot.doors.cli.validate import validate_paths

POLICY = """\
roles: {maintainer: [maya@example.com], developer: ["*"]}
job_types:
  code: {run_by: [role:developer], tools: [filesystem]}
gates:
  - {id: writes, actions: [write], approvers: {any_of: [role:maintainer]}}
  - {id: deletes, actions: [delete], approvers: {count: 2, of: [role:maintainer]}}
models:
  classes:
    local: {model: scripted/x, api_base: s, input_cost_per_token: 0, output_cost_per_token: 0}
  default: local
"""


def test_a_gate_too_few_people_can_meet_is_a_located_warning(tmp_path: Path) -> None:
    (tmp_path / "policies").mkdir()
    path = tmp_path / "policies" / "p.yaml"
    path.write_text(POLICY)
    checked, errors, warnings = validate_paths(tmp_path, [path])
    assert (checked, errors) == (1, [])
    (w,) = [w for w in warnings if "gates" in w.field]
    assert (w.line, w.field) == (6, "gates[1].approvers")
    assert w.message == "can never be met: needs 2 of role:maintainer, which has 1 person"
