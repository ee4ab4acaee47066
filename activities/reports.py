"""Spending by category (and by expense type within it) for the payments of one month, as an
.xlsx. Shared by `GET /v1/reports/expenses` and the monthly e-mail."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.exceptions import ApplicationError

from contracts.invoice import ExpenseReportActivityStubs, MonthlyReportInput, ReportFile
from contracts.management_pack import (
    BUILD_MANAGEMENT_PACK_ACTIVITY,
    MANAGEMENT_PACK_RECIPIENT_ROLE,
    PACK_RECIPIENTS_ACTIVITY,
    ManagementPackActivityStubs,
    ManagementPackFile,
    ManagementPackInput,
    PackRecipients,
)
from core.deps import Deps
from core.expense_report import build_expense_workbook, month_bounds, paid_in_month
from core.logging import get_logger
from core.report_workbook import workbook_bytes
from core.reports import REPORTS, Report, build_report
from models.core import Clinic, Role, StaffUser

log = get_logger("activities.reports")


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


class ReportActivities(ExpenseReportActivityStubs, ManagementPackActivityStubs):
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
