"""The example job `.agentplane/jobs/quarterly-report.yaml` end to end: a CSV and the real
replica's query result become last quarter's workbook updated, reviewed as a cell-level
diff with a picture of the changed sheet, and committed only after approval."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import openpyxl
import pytest

from bot.adapters.git import GitRepo
from bot.adapters.sandbox.bwrap import BwrapBackend
from bot.core.render import render_evidence, render_pr_comment, section_markdown
from bot.demo.code import MAINTAINER
from bot.families.documents.model import DocumentsEvidence
from bot.families.documents.pictures import pictures_unavailable
from bot.run.engine import Engine
from tests.conftest import git
from tests.families.documents.files import TARGETS_Q3, last_quarter
from tests.support.postgres import PASSWORD, PROJECT, Cluster

FILES = (".agentplane/jobs/quarterly-report.yaml", ".agentplane/scripts/quarterly-report.yaml")
REPORT = "docs/reports/quarterly-summary.xlsx"
SQL_RESULT = [("apac", 25005, 6252439.95), ("eu", 24990, 6245450.10), ("us", 25005, 6251359.95)]


def test_the_quarterly_report_is_reviewed_cell_by_cell_and_applied_once_approved(
    demo_repo: Path, pg_cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    for rel in FILES:
        shutil.copyfile(PROJECT / rel, demo_repo / rel)
    (demo_repo / "docs/reports").mkdir(parents=True)
    (demo_repo / REPORT).write_bytes(last_quarter())
    (demo_repo / "docs/reports/targets-2025-q3.csv").write_text(TARGETS_Q3)
    git(demo_repo, "add", "-A")
    git(demo_repo, "commit", "-qm", "last quarter's summary and this quarter's targets")
    monkeypatch.setenv("AGENTPLANE_SQL_REPLICA_DSN", pg_cluster.standby_dsn)

    engine = Engine(GitRepo(demo_repo), BwrapBackend())
    rec = engine.start(engine.request("quarterly-report"))
    assert rec.state == "awaiting_approval", rec.transitions
    calls = [(c.tool, c.decision, c.ok) for c in rec.tool_calls]
    assert calls == [
        ("doc_read", "allow", True),
        ("doc_read", "allow", True),
        ("sql_query", "allow", True),
        ("xlsx_write_table", "deny", False),  # reports/ is outside docs/reports/**
        *[("xlsx_set_cells", "needs_approval", True)],
        *[("xlsx_write_table", "needs_approval", True)] * 2,
        ("doc_read", "allow", True),
    ]
    denied = rec.tool_calls[3]
    assert "outside the write scope" in denied.reason and denied.rule.endswith(
        "scope.filesystem.write"
    )
    # What the script wrote is what the replica returned.
    for region, orders, revenue in SQL_RESULT:
        assert region in rec.tool_calls[2].result and str(revenue) in rec.tool_calls[2].result
        assert str(orders) in rec.tool_calls[2].result
    assert rec.proposal is not None and rec.proposal.paths == [REPORT]
    # Its artifact contract (`document`) is the semantic diff this family keeps.
    assert [(c.contract, c.met) for c in rec.contract] == [("document", True)]

    # The evidence: the cell-level diff against last quarter's file, bound to the patch.
    (section,) = [s for s in engine.evidence(rec) if s.title.startswith("Document ")]
    text = section.body_text
    assert text.startswith(
        f"Document {REPORT} (spreadsheet, changed): 1 sheet changed, 1 sheet added"
    )
    assert "matches the proposal's patch (blob " in text
    for line in [
        "A1: Quarterly summary 2025 Q2 -> Quarterly summary 2025 Q3",
        "B4: 23810 -> 25005",
        "row 6 inserted: latam | 0 | 0 | 500000 | =C6/D6 | =C6/$C$8",
        "F4: =C4/$C$7 -> =C4/$C$8",
        "B8 (was B7): =SUM(B4:B6) -> =SUM(B4:B7)",
        "sheet Orders by region: added (4 rows x 3 columns)",
    ]:
        assert line in text, line
    assert "row 7 inserted" not in text and "deleted" not in text  # one inserted row, no more
    ev = DocumentsEvidence.model_validate_json(
        engine.audit.artifact(rec.artifact("documents.json").sha256)
    )  # type: ignore[union-attr]
    (doc,) = ev.documents
    if pictures_unavailable() is None:
        summary = next(p for p in doc.pictures if p.label.startswith("sheet Summary"))
        for name in (summary.before, summary.after):
            ref = rec.artifact(name)
            assert ref is not None and ref.media_type == "image/png"
            assert engine.audit.artifact(ref.sha256).startswith(b"\x89PNG")
        assert f"sheet Summary A1:F10: before {summary.before}, after {summary.after}" in text
    else:
        assert "pictures missing: LibreOffice is not installed" in text
    # In the PR comment: fenced, with links to the uploaded pictures and raw files.
    links = {a.name: f"https://example.test/{a.sha256}" for a in rec.artifacts}
    comment = section_markdown(
        next(s for s in engine.evidence(rec, links) if s.title == section.title)
    )
    assert "```text\nDocument docs/reports/quarterly-summary.xlsx" in comment
    assert f"[{doc.after_artifact}](https://example.test/" in comment
    shown = render_pr_comment(rec, "plan", engine.patch(rec), None, engine.evidence(rec, links))
    assert "B4: 23810 -> 25005" in shown

    # Apply: the approved bytes, committed on the run branch, nothing re-asked.
    done = engine.decide(rec.run_id, MAINTAINER[1], "approve")
    done = getattr(done, "record", done)
    assert done.state == "applied", done.transitions[-1]
    applied = done.applied_commit()
    assert applied is not None
    committed = subprocess.run(
        ["git", "show", f"{applied[0]}:{REPORT}"], cwd=demo_repo, capture_output=True, check=True
    ).stdout
    assert committed == engine.audit.artifact(rec.artifact(doc.after_artifact).sha256)  # type: ignore[union-attr]
    ws = openpyxl.load_workbook(io.BytesIO(committed))["Summary"]
    rows = [(ws[f"A{r}"].value, ws[f"B{r}"].value, ws[f"C{r}"].value) for r in (4, 5, 7)]
    assert rows == SQL_RESULT and ws["D6"].value == 500000 and ws["A1"].value.endswith("2025 Q3")

    everything = render_evidence(rec, engine.patch(rec), engine.evidence_sections(rec))
    assert PASSWORD not in everything + rec.model_dump_json()
