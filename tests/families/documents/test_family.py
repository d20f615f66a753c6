"""The family in the engine's path: edits staged as the filesystem patch (the one part),
evidence without LibreOffice, and the control plane's secret checks over cell text that
a binary patch hides from them."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.git import GitRepo
from bot.adapters.sandbox.bwrap import BwrapBackend
from bot.core.record import PATCH, SECRET_SCAN
from bot.families.documents.family import DocumentsFamily
from bot.families.registry import default_families
from bot.run.engine import Engine
from tests.conftest import Scripted

CANARY = "canary-report-key-5d2e9a77"
GH_TOKEN = "ghp_" + "Canary0Token1" * 2 + "abcdefghij"


def doc_job(scripted_job: Scripted, name: str, calls: list[dict[str, Any]]) -> str:
    return scripted_job(
        name,
        [{"tool_calls": calls}, {"content": "done"}],
        job_type="doc",
        prompt="write the report; done when docs/report.xlsx holds it",
        tools=["documents"],
        scope={"filesystem": {"read": ["docs/**"], "write": ["docs/**"]}},
    )


def engine(repo: Path, documents: DocumentsFamily | None = None) -> Engine:
    families = [f for f in default_families() if f.name != "documents"]
    return Engine(
        GitRepo(repo), BwrapBackend(), families=[*families, documents or DocumentsFamily()]
    )


def test_an_edit_is_one_patch_part_and_without_libreoffice_the_pictures_are_missing(
    demo_repo: Path, scripted_job: Scripted
) -> None:
    job = doc_job(
        scripted_job,
        "deck",
        [
            {
                "name": "pptx_add_slide",
                "arguments": {"path": "docs/deck.pptx", "title": "Q3", "text": "up"},
            }
        ],
    )
    e = engine(demo_repo, DocumentsFamily(launcher=lambda: None))
    rec = e.start(e.request(job))
    assert rec.state == "awaiting_approval", rec.transitions
    assert rec.proposal is not None
    assert [(p.family, p.kind, p.paths) for p in rec.proposal.parts] == [
        ("filesystem", PATCH, ["docs/deck.pptx"])
    ]
    assert "GIT binary patch" in e.patch(rec)
    (section,) = [s for s in e.evidence(rec) if s.title.startswith("Document")]
    assert "slide 1 added: Q3" in section.body_text
    assert "pictures missing: LibreOffice is not installed here" in section.body_text
    assert [a.name for a in rec.artifacts if a.name.startswith("doc-")] == ["doc-1-after.pptx"]


def test_a_secret_the_control_plane_holds_in_a_cell_refuses_the_proposal(
    demo_repo: Path, scripted_job: Scripted, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPORT_API_KEY", CANARY)
    cells = {"A1": "key", "B2": f"use {CANARY} here"}
    job = doc_job(
        scripted_job,
        "leak",
        [
            {
                "name": "xlsx_set_cells",
                "arguments": {"path": "docs/report.xlsx", "sheet": "S", "cells": cells},
            }
        ],
    )
    e = engine(demo_repo, DocumentsFamily(launcher=lambda: None))
    rec = e.start(e.request(job))
    assert rec.state == "failed"
    assert (
        "docs/report.xlsx S!B2 adds a secret the control plane holds" in rec.transitions[-1].reason
    )
    assert rec.proposal is None
    audit = subprocess.run(
        ["git", "log", "-p", "agentplane/audit"],
        cwd=demo_repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert CANARY not in audit


def test_a_token_shaped_cell_is_flagged_by_its_cell(
    demo_repo: Path, scripted_job: Scripted
) -> None:
    cells = {"A1": "token", "C3": GH_TOKEN}
    job = doc_job(
        scripted_job,
        "flagged",
        [
            {
                "name": "xlsx_set_cells",
                "arguments": {"path": "docs/report.xlsx", "sheet": "S", "cells": cells},
            }
        ],
    )
    e = engine(demo_repo, DocumentsFamily(launcher=lambda: None))
    rec = e.start(e.request(job))
    assert rec.state == "awaiting_approval", rec.transitions
    (flag,) = [c for c in rec.tool_calls if c.tool == SECRET_SCAN]
    assert flag.arguments == {"path": "docs/report.xlsx", "at": "S!C3"}
    assert (
        flag.reason.startswith("docs/report.xlsx S!C3: looks like") and GH_TOKEN not in flag.reason
    )
