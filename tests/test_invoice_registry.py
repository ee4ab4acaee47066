"""The invoice registry (filters, pagination, per-supplier history) and the spending .xlsx."""

from __future__ import annotations

import io
import uuid
from decimal import Decimal

from openpyxl import load_workbook

from models.core import Role
from tests.support.api import Api
from tests.support.live import eventually
from tests.test_invoice_flow import parties, submit, to_awaiting_documents

# A month of its own: payments dated there belong to this test module alone.
MONTH = "2021-03"


async def _all(api: Api, **params: str) -> list[dict]:
    out, offset = [], 0
    while True:
        r = await api.as_(Role.accountant).get("/v1/invoices", params={**params, "limit": 2, "offset": offset})
        assert r.status_code == 200, r.text
        page = r.json()
        out += page["items"]
        offset += 2
        if offset >= page["total"]:
            return out


async def test_registry_filters_pagination_and_xlsx(api: Api, users: dict[Role, str]) -> None:
    supplier, payer = await parties(api)
    other_supplier, _ = await parties(api)
    tag = uuid.uuid4().hex[:6]
    specs = [  # (category, expense type, amount, supplier, paid on)
        (f"Materials-{tag}", "Implants", "1000.10", supplier, f"{MONTH}-03"),
        (f"Materials-{tag}", "Implants", "200.20", supplier, f"{MONTH}-15"),
        (f"Materials-{tag}", "Anaesthetics", "30.03", other_supplier, f"{MONTH}-31"),
        (f"Rent-{tag}", "Office", "5000.00", supplier, f"{MONTH}-01"),
        (f"Rent-{tag}", "Office", "777.77", supplier, "2021-04-01"),  # next month
    ]
    ids = []
    for cat, et, amount, sup, paid_on in specs:
        inv = await submit(api, Role.front_desk, category=cat, expense_type=et, amount=amount)
        await to_awaiting_documents(api, inv, sup, payer, paid_on=paid_on)
        ids.append(inv["id"])
    unpaid = await submit(api, Role.doctor, category=f"Rent-{tag}", expense_type="Office", amount="1.00")

    async def synced() -> None:
        rows = await _all(api, category=f"Rent-{tag}")
        assert {r["id"] for r in rows} == {ids[3], ids[4], unpaid["id"]}
        assert all(r["state"] in ("awaiting_closing_documents", "submitted") for r in rows)

    await eventually(synced)

    # Pagination: pages of 2 cover everything once, newest first.
    r = await api.as_(Role.accountant).get(
        "/v1/invoices", params={"category": f"Materials-{tag}", "limit": 2, "offset": 0}
    )
    page = r.json()
    assert page["total"] == 3 and len(page["items"]) == 2 and page["total_amount"] == "1230.33"
    r = await api.as_(Role.accountant).get(
        "/v1/invoices", params={"category": f"Materials-{tag}", "limit": 2, "offset": 2}
    )
    assert len(r.json()["items"]) == 1
    assert [i["id"] for i in page["items"]] == [ids[2], ids[1]]

    # Filters, alone and together.
    async def ids_of(**params: str) -> set[str]:
        return {r["id"] for r in await _all(api, **params)}

    assert await ids_of(supplier_id=other_supplier) == {ids[2]}  # a counterparty's history
    assert await ids_of(supplier_id=supplier, paid_from=f"{MONTH}-01", paid_to=f"{MONTH}-31") == {
        ids[0],
        ids[1],
        ids[3],
    }
    assert await ids_of(category=f"Materials-{tag}", expense_type="Implants") == {ids[0], ids[1]}
    assert await ids_of(category=f"Rent-{tag}", amount_min="500", amount_max="5000") == {ids[3], ids[4]}
    assert await ids_of(category=f"Rent-{tag}", payer_entity_id=payer) == {ids[3], ids[4]}
    assert await ids_of(category=f"Rent-{tag}", initiator=users[Role.doctor]) == {unpaid["id"]}
    assert await ids_of(category=f"Rent-{tag}", state="submitted") == {unpaid["id"]}
    r = await api.as_(Role.accountant).get("/v1/invoices", params={"state": "bogus"})
    assert r.status_code == 422
    r = await api.as_(Role.accountant).get("/v1/invoices", params={"amount_min": "abc"})
    assert r.status_code == 422
    # Staff outside finance see only their own invoices.
    r = await api.as_(Role.doctor).get("/v1/invoices", params={"category": f"Rent-{tag}"})
    assert {i["id"] for i in r.json()["items"]} == {unpaid["id"]}

    # The month's spreadsheet: totals equal the registry's payments of that month.
    r = await api.as_(Role.deputy_director).get("/v1/reports/expenses", params={"month": MONTH})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/vnd.openxmlformats")
    wb = load_workbook(io.BytesIO(r.content))
    ws = wb["By category"]
    rows = list(ws.iter_rows(min_row=3, values_only=True))
    cats = {row[0]: Decimal(str(row[4])) for row in rows if row[0] and row[0] != "Total"}
    types = {(row[1]): Decimal(str(row[4])) for row in rows if row[1]}
    paid = await _all(api, paid_from=f"{MONTH}-01", paid_to=f"{MONTH}-31")
    expected: dict[str, Decimal] = {}
    for inv in paid:
        expected[inv["category"]] = expected.get(inv["category"], Decimal(0)) + Decimal(inv["amount"])
    assert cats == expected
    assert cats[f"Materials-{tag}"] == Decimal("1230.33") and cats[f"Rent-{tag}"] == Decimal("5000")
    assert types["Implants"] == Decimal("1200.30") and types["Anaesthetics"] == Decimal("30.03")
    [total] = [row for row in rows if row[0] == "Total"]
    assert Decimal(str(total[4])) == sum(expected.values()) and total[3] == len(paid)
    assert wb["Payments"].max_row == len(paid) + 1

    r = await api.as_(Role.front_desk).get("/v1/reports/expenses", params={"month": MONTH})
    assert r.status_code == 403
    r = await api.as_(Role.accountant).get("/v1/reports/expenses", params={"month": "2021-13"})
    assert r.status_code == 422


async def test_suppliers_and_payers(api: Api) -> None:
    r = await api.as_(Role.accountant).post("/v1/suppliers", json={"name": ""})
    assert r.status_code == 422
    r = await api.as_(Role.front_desk).post("/v1/suppliers", json={"name": "X"})
    assert r.status_code == 403
    supplier, payer = await parties(api)
    assert supplier in {s["id"] for s in (await api.as_(Role.front_desk).get("/v1/suppliers")).json()}
    assert payer in {p["id"] for p in (await api.as_(Role.accountant).get("/v1/payer-entities")).json()}
