"""Reports: the spending spreadsheet, and the management reports (JSON or .xlsx)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from fastapi.responses import JSONResponse

from api import policy
from api.deps import CurrentUser, SessionDep, SettingsDep
from api.errors import invalid_field
from core.expense_report import XLSX_TYPE, build_expense_workbook, month_bounds, paid_in_month
from core.report_workbook import workbook_bytes
from core.reports import MAX_PERIOD_DAYS, REPORTS, build_report, previous_month
from models.core import Clinic, StaffUser

router = APIRouter(prefix="/v1/reports", tags=["reports"])
Finance = Annotated[StaffUser, policy.may("reports", "expenses")]


@router.get(
    "/expenses",
    response_class=Response,
    responses={200: {"content": {XLSX_TYPE: {}}, "description": "an .xlsx workbook"}},
)
async def expenses(
    session: SessionDep, _: Finance, month: str = Query(..., description="YYYY-MM; payments made that month")
) -> Response:
    try:
        month_bounds(month)
    except ValueError as e:
        raise invalid_field("month", str(e), where="query") from None
    data, _total = build_expense_workbook(month, await paid_in_month(session, month))
    return Response(
        data, media_type=XLSX_TYPE, headers={"Content-Disposition": f'attachment; filename="expenses-{month}.xlsx"'}
    )


# ---------------------------------------------------------------- management reports (#13)
async def _some_report(user: CurrentUser) -> StaffUser:
    if not (policy.can(user, "reports", "management") or policy.can(user, "reports", "operator-queue")):
        raise HTTPException(403, f"role {user.role.value!r} may not read management reports")
    return user


Management = Annotated[StaffUser, Depends(_some_report)]


def _bad(field: str, msg: str) -> HTTPException:
    return invalid_field(field, msg, where="query")


@router.get(
    "/{name}",
    responses={200: {"content": {"application/json": {}, XLSX_TYPE: {}}, "description": "JSON, or .xlsx"}},
)
async def management_report(
    name: str,
    session: SessionDep,
    settings: SettingsDep,
    user: Management,
    clinic_id: str | None = Query(None, description="one clinic; omitted: every clinic you may see"),
    from_: date | None = Query(None, alias="from", description="first day (YYYY-MM-DD); default: last month"),
    to: date | None = Query(None, description="last day, inclusive; default: the end of last month"),
    format: str = Query("json", pattern="^(json|xlsx)$", description="json or xlsx"),
) -> Response:
    if name not in REPORTS:
        raise HTTPException(404, f"no report {name!r}; reports: {', '.join(REPORTS)}")
    action = "operator-queue" if name == "operator-queue" else "management"
    if not policy.can(user, "reports", action):
        allowed = ", ".join(sorted(r.value for r in policy.MATRIX["reports"][action]))
        raise HTTPException(403, f"role {user.role.value!r} may not read {name}; allowed: {allowed}")
    scope = await report_scope(session, user, clinic_id)
    tz = scope.timezone if scope.clinic is not None else settings.network_timezone
    if from_ is None and to is None:
        from_, to = previous_month(datetime.now(ZoneInfo(tz)).date())
    elif from_ is None or to is None:
        raise _bad("from" if from_ is None else "to", "give both from and to (or neither: last month)")
    if from_ > to:
        raise _bad("to", "to is before from")
    if (to - from_).days >= MAX_PERIOD_DAYS:
        raise _bad("to", f"a report covers at most {MAX_PERIOD_DAYS} days")
    report = await build_report(
        session,
        name,
        clinic_ids=scope.clinic_ids,
        period_from=from_,
        period_to=to,
        timezone=tz,
        clinic_name=scope.clinic.name if scope.clinic else None,
    )
    if format == "xlsx":
        filename = f"{name}-{from_.isoformat()}-{to.isoformat()}.xlsx"
        return Response(
            workbook_bytes([report]),
            media_type=XLSX_TYPE,
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    return JSONResponse(report.to_json())


class ReportScope:
    def __init__(self, clinic: Clinic | None, clinic_ids: list[str] | None, timezone: str) -> None:
        self.clinic, self.clinic_ids, self.timezone = clinic, clinic_ids, timezone


async def report_scope(session: SessionDep, user: StaffUser, clinic_id: str | None) -> ReportScope:
    """Branch staff (a user tied to a clinic) see only their clinic; network roles any one, or all."""
    if (own := policy.clinic_scope(user)) is not None:
        if clinic_id is not None and clinic_id != own:
            raise policy.not_found("clinic", clinic_id)
        clinic_id = own
    if clinic_id is None:
        return ReportScope(None, None, "")
    clinic = await session.get(Clinic, clinic_id)
    if clinic is None:
        raise HTTPException(404, f"clinic {clinic_id} not found")
    return ReportScope(clinic, [clinic.id], clinic.timezone)
