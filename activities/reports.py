"""Spending by category (and by expense type within it) for the payments of one month, as an
.xlsx. Shared by `GET /v1/reports/expenses` and the monthly e-mail."""

from __future__ import annotations

import hashlib
import io
import re
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

from openpyxl import Workbook
from openpyxl.styles import Font
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.deps import Deps
from contracts.invoice import MonthlyReportInput, ReportFile
from contracts.management_pack import (
    BUILD_MANAGEMENT_PACK_ACTIVITY,
    MANAGEMENT_PACK_RECIPIENT_ROLE,
    PACK_RECIPIENTS_ACTIVITY,
    ManagementPackFile,
    ManagementPackInput,
    PackRecipients,
)
from core.logging import get_logger
from core.report_workbook import workbook_bytes
from core.reports import REPORTS, Report, build_report
from models.core import Clinic, Role, StaffUser
from models.invoice import Invoice

log = get_logger("activities.reports")
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


async def build_pack(
    session: AsyncSession, month: str, timezone: str, clinic: Clinic | None = None
) -> tuple[bytes, list[Report]]:
    """Every management report over one month, for the whole network (in the network's
    timezone) or one clinic (in its own): the monthly pack."""
    first, nxt = month_bounds(month)
    reports = [
        await build_report(
            session,
            name,
            clinic_ids=[clinic.id] if clinic else None,
            period_from=first,
            period_to=nxt - timedelta(days=1),
            timezone=clinic.timezone if clinic else timezone,
            clinic_name=clinic.name if clinic else None,
        )
        for name in REPORTS
    ]
    return workbook_bytes(reports), reports


def _headline(reports: list[Report]) -> dict[str, str]:
    """A few figures for the e-mail body (counts and rates only, no patient data)."""
    want = {
        "first-time-patients": ["first_time_patients"],
        "first-visit-conversion": ["conversion"],
        "nps": ["nps", "response_rate"],
        "confirmations": ["confirmed_rate", "no_show_rate", "calls_saved"],
        "operator-queue": ["open_tasks"],
    }
    out: dict[str, str] = {}
    for r in reports:
        for key, label, value, kind in r.summary:
            if key in want.get(r.name, []):
                shown = "n/a" if value is None else (f"{value}%" if kind == "pct" else str(value))
                out[f"{r.title}: {label}"] = shown
    return out


class ReportActivities:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name="build_expense_report")
    async def build_expense_report(self, inp: MonthlyReportInput) -> ReportFile:
        """Writes the month's workbook under DATA_DIR/reports (only its path enters history)."""
        assert inp.month
        async with self.deps.sessions() as s:
            invoices = await paid_in_month(s, inp.month)
        data, total = build_expense_workbook(inp.month, invoices)
        folder = self.deps.settings.data_dir / "reports"
        folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(data).hexdigest()[:12]
        filename = f"expenses-{inp.month}.xlsx"
        path = folder / f"expenses-{inp.month}-{digest}.xlsx"
        path.write_bytes(data)
        log.info("expense report built", month=inp.month, payments=len(invoices))
        return ReportFile(month=inp.month, path=str(path), filename=filename, total=str(total), payments=len(invoices))

    @activity.defn(name=BUILD_MANAGEMENT_PACK_ACTIVITY)
    async def build_management_pack(self, inp: ManagementPackInput) -> ManagementPackFile:
        """Writes the month's management pack under DATA_DIR/reports (only its path enters history)."""
        assert inp.month
        try:
            month_bounds(inp.month)
        except ValueError as e:
            raise ApplicationError(str(e), type="BadMonth", non_retryable=True) from None
        async with self.deps.sessions() as s:
            clinic = await s.get(Clinic, inp.clinic_id) if inp.clinic_id else None
            if inp.clinic_id and clinic is None:
                raise ApplicationError("the clinic no longer exists", type="NotFound", non_retryable=True)
            data, reports = await build_pack(s, inp.month, inp.timezone, clinic)
        folder = self.deps.settings.data_dir / "reports"
        folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(data).hexdigest()[:12]
        which = f"-{clinic.code or clinic.id[:8]}" if clinic else ""
        path = folder / f"management-{inp.month}{which}-{digest}.xlsx"
        path.write_bytes(data)
        log.info("management pack built", month=inp.month, clinic_id=inp.clinic_id, sheets=len(reports))
        return ManagementPackFile(
            month=inp.month,
            path=str(path),
            filename=f"management-pack-{inp.month}{which}.xlsx",
            sheets=len(reports),
            headline=_headline(reports),
            clinic_id=clinic.id if clinic else None,
            clinic_name=clinic.name if clinic else None,
        )

    @activity.defn(name=PACK_RECIPIENTS_ACTIVITY)
    async def management_pack_recipients(self, inp: ManagementPackInput) -> PackRecipients:
        """Active directors with an e-mail address, split by reach (network / their clinic)."""
        out = PackRecipients()
        async with self.deps.sessions() as s:
            q = select(StaffUser).where(
                StaffUser.role == Role(MANAGEMENT_PACK_RECIPIENT_ROLE),
                StaffUser.active == True,  # noqa: E712
                col(StaffUser.email).is_not(None),
            )
            for u in (await s.exec(q.order_by(col(StaffUser.id)))).all():
                if u.clinic_id is None:
                    out.network.append(u.id)
                else:
                    out.clinics.setdefault(u.clinic_id, []).append(u.id)
        return out
