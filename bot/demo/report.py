"""The quarterly-report job's inputs for `agentplane demo --all`: last quarter's summary
workbook (the layout the shipped script edits cell by cell) and this quarter's targets."""

from __future__ import annotations

import io
from typing import Any

import openpyxl

from bot.families.documents.package import NEW_FILE_STAMP, deterministic

REPORT = "docs/reports/quarterly-summary.xlsx"
TARGETS = "docs/reports/targets-2025-q3.csv"
TARGETS_Q3 = (
    "region,target,owner\n"
    "apac,6000000,Aiko\neu,6500000,Jonas\nlatam,500000,Rafael\nus,6200000,Maria\n"
)
SUMMARY: list[list[Any]] = [
    ["Quarterly summary 2025 Q2"],
    [],
    ["Region", "Paid orders", "Revenue", "Target", "vs target", "Share of revenue"],
    ["apac", 23810, 5901220.5, 5800000, "=C4/D4", "=C4/$C$7"],
    ["eu", 24102, 6010004.25, 6000000, "=C5/D5", "=C5/$C$7"],
    ["us", 24655, 6150999, 6100000, "=C6/D6", "=C6/$C$7"],
    ["Total", "=SUM(B4:B6)", "=SUM(C4:C6)", "=SUM(D4:D6)", "=C7/D7"],
    [],
    ["Source: replica shop.orders (paid) and docs/reports/targets-2025-q2.csv"],
]
WIDTHS = dict(zip("ABCDEF", (10, 12, 14, 12, 11, 16), strict=True))


def last_quarter() -> bytes:
    """Last quarter's workbook, the same bytes every time (so its diff is stable)."""
    wb = openpyxl.Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = "Summary"
    for row in SUMMARY:
        ws.append(row)
    ws.merge_cells("A1:F1")
    for col, width in WIDTHS.items():
        ws.column_dimensions[col].width = width
    out = io.BytesIO()
    wb.save(out)
    return deterministic(out.getvalue(), NEW_FILE_STAMP, new_file=True)
