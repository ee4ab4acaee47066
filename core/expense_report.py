"""The monthly expense report (SPEC §5.7): which invoices were paid in a month and the
workbook that lists them. Shared by the report activity and the API's download."""

from __future__ import annotations

import io
import re
from collections import defaultdict
from datetime import date
from decimal import Decimal

from openpyxl import Workbook
from openpyxl.styles import Font
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.invoice import Invoice

MONTH_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def month_bounds(month: str) -> tuple[date, date]:
    """[first day, first day of the next month) of a YYYY-MM month."""
    m = MONTH_RE.match(month)
    if not m:
        raise ValueError(f"month {month!r} must look like YYYY-MM, e.g. 2026-10")
    y, mo = int(m[1]), int(m[2])
    return date(y, mo, 1), (date(y + 1, 1, 1) if mo == 12 else date(y, mo + 1, 1))


async def paid_in_month(session: AsyncSession, month: str) -> list[Invoice]:
    start, end = month_bounds(month)
    q = (
        select(Invoice)
        .where(col(Invoice.paid_on).is_not(None), col(Invoice.paid_on) >= start, col(Invoice.paid_on) < end)
        .order_by(col(Invoice.category), col(Invoice.expense_type), col(Invoice.paid_on))
    )
    return list((await session.exec(q)).all())


def build_expense_workbook(month: str, invoices: list[Invoice]) -> tuple[bytes, Decimal]:
    """Sheet "By category": one row per category with its expense types indented under it,
    then a grand total; sheet "Payments": every payment. Sums are per currency."""
    by_cat: dict[tuple[str, str], dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    cat_tot: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    cat_count: dict[tuple[str, str], int] = defaultdict(int)
    grand: dict[str, Decimal] = defaultdict(Decimal)
    for inv in invoices:
        amt = Decimal(inv.amount)
        by_cat[(inv.category, inv.currency)][inv.expense_type] += amt
        cat_tot[(inv.category, inv.currency)] += amt
        cat_count[(inv.category, inv.currency)] += 1
        grand[inv.currency] += amt

    wb = Workbook()
    ws = wb.active
    ws.title = "By category"
    bold = Font(bold=True)
    ws.append([f"Spending by category, payments of {month}"])
    ws["A1"].font = bold
    ws.append(["Category", "Expense type", "Currency", "Payments", "Amount"])
    for c in ws[2]:
        c.font = bold
    for cat, cur in sorted(by_cat):
        ws.append([cat, None, cur, cat_count[(cat, cur)], cat_tot[(cat, cur)]])
        ws.cell(ws.max_row, 1).font = bold
        for et, amt in sorted(by_cat[(cat, cur)].items()):
            ws.append([None, et, cur, None, amt])
    for cur, amt in sorted(grand.items()):
        ws.append(["Total", None, cur, sum(c for (_, k), c in cat_count.items() if k == cur), amt])
        ws.cell(ws.max_row, 1).font = bold
    for row in ws.iter_rows(min_row=3, min_col=5, max_col=5):
        row[0].number_format = "#,##0.00"
    ws.column_dimensions["A"].width = 28
    ws.column_dimensions["B"].width = 28

    pay = wb.create_sheet("Payments")
    pay.append(["Paid on", "Invoice", "Category", "Expense type", "Supplier", "Payer", "Currency", "Amount"])
    for c in pay[1]:
        c.font = bold
    for inv in invoices:
        pay.append(
            [
                inv.paid_on,
                inv.id,
                inv.category,
                inv.expense_type,
                inv.supplier_id,
                inv.payer_entity_id,
                inv.currency,
                Decimal(inv.amount),
            ]
        )
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue(), sum(grand.values(), Decimal("0"))
