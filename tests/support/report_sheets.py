"""Reads a management-report sheet back (openpyxl) into the JSON report's shape, so tests can
compare the workbook with the JSON figure by figure."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Any

from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet


def _norm(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.replace(microsecond=0).isoformat()
    if isinstance(v, float) and v.is_integer():
        return v
    return v


def _json_norm(v: Any) -> Any:
    if isinstance(v, str) and len(v) >= 19 and v[4] == "-" and v[10] == "T":
        return datetime.fromisoformat(v).replace(tzinfo=None, microsecond=0).isoformat()
    return v


def read_sheet(ws: Worksheet, report: dict[str, Any]) -> dict[str, Any]:
    """{"title", "summary": {label: value}, "tables": {title: [[header...], [row...], ...]}}"""
    rows = [list(r) for r in ws.iter_rows(values_only=True)]
    out: dict[str, Any] = {"title": rows[0][0], "summary": {}, "tables": {}}
    i = next(k for k, r in enumerate(rows) if r and r[0] == "Summary") + 1
    while i < len(rows) and rows[i] and rows[i][0] is not None:
        out["summary"][rows[i][0]] = rows[i][1]
        i += 1
    titles = {t["title"] for t in report["tables"].values()}
    while i < len(rows):
        r = rows[i]
        if r and r[0] in titles:
            block = []
            i += 1
            while i < len(rows) and any(v is not None for v in rows[i]):
                block.append(rows[i])
                i += 1
            out["tables"][r[0]] = block
        i += 1
    return out


def assert_sheet_matches(ws: Worksheet, report: dict[str, Any]) -> None:
    sheet = read_sheet(ws, report)
    assert sheet["title"] == report["title"]
    for key, label in report["summary_labels"].items():
        assert label in sheet["summary"], label
        assert _norm(sheet["summary"][label]) == _json_norm(report["summary"][key]), (label, sheet["summary"][label])
    for table in report["tables"].values():
        block = sheet["tables"][table["title"]]
        keys = [c["key"] for c in table["columns"]]
        assert list(block[0][: len(keys)]) == [c["title"] for c in table["columns"]]
        want = [*table["rows"], *([table["totals"]] if table["totals"] is not None else [])]
        got = [dict(zip(keys, r[: len(keys)], strict=True)) for r in block[1:]]
        assert len(got) == len(want), (table["title"], len(got), len(want))
        for g, w in zip(got, want, strict=True):
            for k in keys:
                assert _norm(g[k]) == _json_norm(w.get(k)), (table["title"], k, g[k], w.get(k))


def workbook_sheets(data: bytes) -> dict[str, Worksheet]:
    wb = load_workbook(io.BytesIO(data))
    return {ws.title: ws for ws in wb.worksheets}
