"""Spending reports as spreadsheets."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query, Response

from activities.reports import XLSX_TYPE, build_expense_workbook, month_bounds, paid_in_month
from api.deps import Roles, SessionDep
from models.core import Role

router = APIRouter(prefix="/v1/reports", tags=["reports"])
Finance = Roles(Role.deputy_director, Role.accountant, Role.director)


@router.get("/expenses", response_class=Response,
            responses={200: {"content": {XLSX_TYPE: {}}, "description": "an .xlsx workbook"}})
async def expenses(session: SessionDep, _: Finance,
                   month: str = Query(..., description="YYYY-MM; payments made that month")
                   ) -> Response:
    try:
        month_bounds(month)
    except ValueError as e:
        raise HTTPException(422, detail=[{"loc": ["query", "month"], "msg": str(e),
                                          "type": "value_error"}]) from None
    data, _total = build_expense_workbook(month, await paid_in_month(session, month))
    return Response(data, media_type=XLSX_TYPE, headers={
        "Content-Disposition": f'attachment; filename="expenses-{month}.xlsx"'})
