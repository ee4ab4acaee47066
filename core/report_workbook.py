"""Management reports as .xlsx: a sheet per report, laid out from the same `Report` the JSON
endpoint returns (core/reports.py), so both always show the same figures.

A sheet reads top-down: the title, clinic, period and time of the report; the summary
(label | value); then each table with a bold header and a bold totals row; a chart to the
right of a table where a picture reads faster than numbers.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from openpyxl import Workbook
from openpyxl.chart import BarChart, PieChart, Reference
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from core.reports import Report, Table

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
BOLD = Font(bold=True)
TITLE = Font(bold=True, size=14)
HEAD_FILL = PatternFill("solid", fgColor="DDEBF7")
FORMATS = {"pct": '0.0"%"', "nps": "0.0", "num": "0.0", "datetime": "yyyy-mm-dd hh:mm", "date": "yyyy-mm-dd"}
SUMMARY_HEADER = "Summary"


def _cell(v: Any) -> Any:
    return v.replace(tzinfo=None) if isinstance(v, datetime) and v.tzinfo else v


def write_report(ws: Worksheet, report: Report) -> None:
    ws.append([report.title])
    ws["A1"].font = TITLE
    ws.append(["Clinic", report.clinic_name or "All clinics"])
    ws.append(["Period", f"{report.period_from.isoformat()} – {report.period_to.isoformat()} ({report.timezone})"])
    ws.append(["Generated", report.generated_at.strftime("%Y-%m-%d %H:%M UTC")])
    ws.append([])
    ws.append([SUMMARY_HEADER])
    ws.cell(ws.max_row, 1).font = BOLD
    for _key, label, value, kind in report.summary:
        ws.append([label, value])
        if kind in FORMATS:
            ws.cell(ws.max_row, 2).number_format = FORMATS[kind]
    widths: dict[int, int] = {1: 30}
    for table in report.tables:
        ws.append([])
        _write_table(ws, table, widths)
    for idx, w in widths.items():
        ws.column_dimensions[get_column_letter(idx)].width = min(max(w, 10), 60)


def _write_table(ws: Worksheet, table: Table, widths: dict[int, int]) -> None:
    ws.append([table.title])
    ws.cell(ws.max_row, 1).font = BOLD
    ws.append([c.title for c in table.columns])
    header = ws.max_row
    for i, c in enumerate(table.columns, start=1):
        cell = ws.cell(header, i)
        cell.font, cell.fill = BOLD, HEAD_FILL
        cell.alignment = Alignment(wrap_text=True, vertical="top")
        widths[i] = max(widths.get(i, 0), min(len(c.title), 24))
    for row in _rows_then_totals(table):
        ws.append([_cell(row.get(c.key)) for c in table.columns])
        for i, c in enumerate(table.columns, start=1):
            if c.type in FORMATS:
                ws.cell(ws.max_row, i).number_format = FORMATS[c.type]
            v = row.get(c.key)
            if isinstance(v, str):
                widths[i] = max(widths.get(i, 0), min(len(v), 60))
    if table.totals is not None:
        for i in range(1, len(table.columns) + 1):
            ws.cell(ws.max_row, i).font = BOLD
    last_data = ws.max_row - (1 if table.totals is not None else 0)
    if table.chart is not None and last_data > header:
        _chart(ws, table, header, last_data)


def _rows_then_totals(table: Table) -> Iterable[dict[str, Any]]:
    yield from table.rows
    if table.totals is not None:
        yield table.totals


def _chart(ws: Worksheet, table: Table, header: int, last: int) -> None:
    spec = table.chart
    assert spec is not None
    keys = [c.key for c in table.columns]
    label_col = keys.index(spec.label) + 1
    cats = Reference(ws, min_col=label_col, min_row=header + 1, max_row=last)
    chart: BarChart | PieChart
    if spec.kind == "pie":
        chart = PieChart()
    else:
        chart = BarChart()
        chart.type = "col"
        chart.y_axis.title = ""
    chart.title = spec.title or table.title
    for key in spec.values:
        col = keys.index(key) + 1
        chart.add_data(Reference(ws, min_col=col, min_row=header, max_row=last), titles_from_data=True)
    chart.set_categories(cats)
    chart.height, chart.width = 7.5, 15
    anchor = f"{get_column_letter(len(table.columns) + 2)}{header}"
    ws.add_chart(chart, anchor)


def sheet_title(report: Report) -> str:
    return report.title[:31]  # Excel's limit


def workbook_bytes(reports: list[Report]) -> bytes:
    """One workbook, a sheet per report (the management pack, or a single report)."""
    wb = Workbook()
    first = True
    for report in reports:
        if first:
            ws = wb.active
            assert ws is not None
            ws.title = sheet_title(report)
            first = False
        else:
            ws = wb.create_sheet(sheet_title(report))
        write_report(ws, report)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
