"""Spending reports as spreadsheets."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Response

from activities.reports import XLSX_TYPE, build_expense_workbook, month_bounds, paid_in_month
from api.deps import SessionDep, require_roles
from models.core import Role, StaffUser

router = APIRouter(prefix="/v1/reports", tags=["reports"])
Finance = Annotated[StaffUser, Depends(require_roles(Role.deputy_director, Role.accountant, Role.director))]


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
        raise HTTPException(422, detail=[{"loc": ["query", "month"], "msg": str(e), "type": "value_error"}]) from None
    data, _total = build_expense_workbook(month, await paid_in_month(session, month))
    return Response(
        data, media_type=XLSX_TYPE, headers={"Content-Disposition": f'attachment; filename="expenses-{month}.xlsx"'}
    )
