"""Supplier invoice journey end to end: live API, real Temporal, local SMTP server."""

from __future__ import annotations

import asyncio
import email
import uuid
from collections.abc import Iterator
from datetime import date
from email.message import EmailMessage
from email.policy import default as email_policy

import pytest
from aiosmtpd.controller import Controller

from contracts.invoice import InvoiceSnapshot
from core.deps import Deps
from core.temporal import workflow_runner
from models.core import Role
from tests.support.api import Api
from tests.support.live import eventually, free_port

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


class Inbox:
    """aiosmtpd handler: keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
        msg = email.message_from_bytes(envelope.content, policy=email_policy)
        msg["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
        self.messages.append(msg)  # type: ignore[arg-type]
        return "250 OK"

    def about(self, text: str) -> list[EmailMessage]:
        return [m for m in self.messages if text in str(m["Subject"])]


@pytest.fixture(scope="module")
def smtp(deps: Deps) -> Iterator[Inbox]:
    """A local SMTP server; the session worker's settings are swapped for a copy pointing at it
    (activities read deps.settings per call) and restored afterwards."""
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    original = deps.settings
    deps.settings = original.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": port})
    try:
        yield inbox
    finally:
        deps.settings = original
        controller.stop()


async def upload(api: Api, role: Role, content: bytes = PDF, name: str = "invoice.pdf") -> str:
    r = await api.as_(role).post("/v1/files", files={"file": (name, content, "application/pdf")})
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def parties(api: Api) -> tuple[str, str]:
    r = await api.as_(Role.accountant).post(
        "/v1/suppliers", json={"name": f"Dental Supply {uuid.uuid4().hex[:4]}", "tax_id": uuid.uuid4().hex[:10]}
    )
    assert r.status_code == 201, r.text
    supplier = r.json()["id"]
    r = await api.as_(Role.deputy_director).post(
        "/v1/payer-entities", json={"name": f"Clinic LLC {uuid.uuid4().hex[:4]}"}
    )
    assert r.status_code == 201, r.text
    return supplier, r.json()["id"]


async def submit(api: Api, role: Role = Role.front_desk, **over: str) -> dict:
    body = {
        "category": "Materials",
        "expense_type": "Implants",
        "amount": "1250.50",
        "currency": "UAH",
        "invoice_file_id": await upload(api, role),
        "comment": "for March implant cases",
        **over,
    }
    r = await api.as_(role).post("/v1/invoices", json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def state_of(api: Api, invoice_id: str) -> str:
    r = await api.as_(Role.accountant).get(f"/v1/invoices/{invoice_id}")
    assert r.status_code == 200, r.text
    return r.json()["state"]


async def to_awaiting_documents(api: Api, inv: dict, supplier: str, payer: str, paid_on: str | None = None) -> None:
    r = await api.as_(Role.deputy_director).post(f"/v1/invoices/{inv['id']}/approve", json={"payer_entity_id": payer})
    assert r.status_code == 200 and r.json()["state"] == "approved", r.text
    body = {"supplier_id": supplier, **({"paid_on": paid_on} if paid_on else {})}
    r = await api.as_(Role.accountant).post(f"/v1/invoices/{inv['id']}/pay", json=body)
    assert r.status_code == 200 and r.json()["state"] == "paid", r.text

    async def moved() -> None:
        assert await state_of(api, inv["id"]) == "awaiting_closing_documents"

    await eventually(moved)


async def test_happy_path_with_emails(api: Api, smtp: Inbox, users: dict[Role, str], client) -> None:  # type: ignore[no-untyped-def]
    supplier, payer = await parties(api)
    inv = await submit(api)
    assert inv["state"] == "submitted" and inv["amount"] == "1250.50"
    assert inv["next_step_owner"] == "deputy_director"
    await to_awaiting_documents(api, inv, supplier, payer)

    async def mailed() -> None:
        assert smtp.about(f"Invoice {inv['id']} paid"), [m["Subject"] for m in smtp.messages]
        assert smtp.about("closing documents")

    await eventually(mailed)
    [notice] = [m for m in smtp.messages if m["Subject"] == f"Invoice {inv['id']} paid"]
    assert f"{users[Role.deputy_director]}@clinic.test" in notice["To"]
    [ask] = [m for m in smtp.about(inv["id"]) if "closing documents" in str(m["Subject"])]
    assert ask["To"] == f"{users[Role.front_desk]}@clinic.test"

    doc = await upload(api, Role.front_desk, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 64, "act.doc")
    r = await api.as_(Role.front_desk).post(f"/v1/invoices/{inv['id']}/closing-documents", json={"file_ids": [doc]})
    assert r.status_code == 200 and r.json()["state"] == "documents_submitted", r.text
    r = await api.as_(Role.accountant).post(f"/v1/invoices/{inv['id']}/verify")
    assert r.status_code == 200 and r.json()["state"] == "completed", r.text

    r = await api.as_(Role.front_desk).get(f"/v1/invoices/{inv['id']}")
    body = r.json()
    assert body["state"] == "completed" and body["paid_on"] == date.today().isoformat()
    assert body["supplier_id"] == supplier and body["payer_entity_id"] == payer
    assert body["closing_file_ids"] == [doc]
    steps = [(a["action"], a["to_state"]) for a in body["actions"]]
    assert steps == [
        ("submit", "submitted"),
        ("approve", "approved"),
        ("pay", "paid"),
        ("await_closing_documents", "awaiting_closing_documents"),
        ("closing_documents", "documents_submitted"),
        ("verify", "completed"),
    ]
    assert all(a["actor_id"] and a["at"] for a in body["actions"])

    async def registry_synced() -> None:
        r = await api.as_(Role.accountant).get("/v1/invoices", params={"supplier_id": supplier})
        [row] = r.json()["items"]
        assert row["state"] == "completed" and len(row["actions"]) == 6

    await eventually(registry_synced)
    from core.search_attributes import EXPENSE_CATEGORY, INVOICE_STATE

    desc = await client.get_workflow_handle(f"invoice-{inv['id']}").describe()
    assert desc.typed_search_attributes.get(INVOICE_STATE) == "completed"
    assert desc.typed_search_attributes.get(EXPENSE_CATEGORY) == "Materials"
    # Each e-mail exactly once, however often activities ran.
    assert len(smtp.about(inv["id"])) == 2
    # The finished history replays against today's workflow code (no non-determinism).
    from temporalio.worker import Replayer

    from workflows.invoice import InvoiceApproval

    history = await client.get_workflow_handle(f"invoice-{inv['id']}").fetch_history()
    await Replayer(
        workflows=[InvoiceApproval], workflow_runner=workflow_runner(), data_converter=client.data_converter
    ).replay_workflow(history)


async def test_rework_twice_then_approve(api: Api) -> None:
    inv = await submit(api, Role.doctor)
    deputy, doctor = api.as_(Role.deputy_director), api.as_(Role.doctor)
    for i in range(2):
        r = await deputy.post(f"/v1/invoices/{inv['id']}/return", json={"comment": f"fix {i}"})
        assert r.status_code == 200 and r.json()["state"] == "returned_for_rework", r.text
        r = await doctor.post(
            f"/v1/invoices/{inv['id']}/resubmit", json={"amount": f"{1000 + i}.00", "comment": f"fixed {i}"}
        )
        assert r.status_code == 200 and r.json()["state"] == "submitted", r.text
    _, payer = await parties(api)
    r = await deputy.post(f"/v1/invoices/{inv['id']}/approve", json={"payer_entity_id": payer})
    assert r.status_code == 200 and r.json()["state"] == "approved"
    body = r.json()
    assert body["amount"] == "1001.00" and body["comment"] == "fixed 1"
    assert [a["action"] for a in body["actions"]] == ["submit", "return", "resubmit", "return", "resubmit", "approve"]
    assert body["actions"][1]["comment"] == "fix 0"
    assert body["actions"][4]["data"]["changed"]["amount"] == "1001.00"


async def test_reject_ends_the_journey(api: Api, client) -> None:  # type: ignore[no-untyped-def]
    inv = await submit(api)
    r = await api.as_(Role.deputy_director).post(f"/v1/invoices/{inv['id']}/reject", json={"comment": "not budgeted"})
    assert r.status_code == 200 and r.json()["state"] == "rejected"
    result = await client.get_workflow_handle(f"invoice-{inv['id']}", result_type=InvoiceSnapshot).result()
    assert result.state == "rejected"
    r = await api.as_(Role.deputy_director).post(f"/v1/invoices/{inv['id']}/approve", json={"payer_entity_id": "x"})
    assert r.status_code in (409, 422)
    r = await api.as_(Role.accountant).post(f"/v1/invoices/{inv['id']}/verify")
    assert r.status_code == 409 and r.json()["detail"]["state"] == "rejected"


async def test_wrong_role_wrong_state_missing_choice(api: Api) -> None:
    supplier, payer = await parties(api)
    inv = await submit(api)
    iid = inv["id"]
    # Wrong role, checked by the API.
    for role, path, body in [
        (Role.accountant, "approve", {"payer_entity_id": payer}),
        (Role.front_desk, "reject", {"comment": "x"}),
        (Role.operator, "return", {"comment": "x"}),
        (Role.deputy_director, "pay", {"supplier_id": supplier}),
        (Role.front_desk, "verify", {}),
        (Role.doctor, "return-documents", {"comment": "x"}),
    ]:
        r = await api.as_(role).post(f"/v1/invoices/{iid}/{path}", json=body)
        assert r.status_code == 403, (path, r.text)
    # Not the initiator: the workflow's validator refuses (Forbidden -> 403).
    r = await api.as_(Role.deputy_director).post(f"/v1/invoices/{iid}/return", json={"comment": "again"})
    assert r.status_code == 200
    r = await api.as_(Role.operator).post(f"/v1/invoices/{iid}/resubmit", json={"comment": "x"})
    assert r.status_code == 403 and "initiator" in r.json()["detail"]["message"]
    # Wrong state: 409 naming it.
    for role, path, body in [
        (Role.accountant, "pay", {"supplier_id": supplier}),
        (Role.accountant, "verify", {}),
        (Role.accountant, "return-documents", {"comment": "x"}),
        (Role.deputy_director, "approve", {"payer_entity_id": payer}),
        (Role.front_desk, "closing-documents", {"file_ids": [inv["invoice_file_id"]]}),
    ]:
        r = await api.as_(role).post(f"/v1/invoices/{iid}/{path}", json=body)
        assert r.status_code == 409, (path, r.text)
        assert r.json()["detail"]["state"] == "returned_for_rework"
    # Missing choice: 422.
    r = await api.as_(Role.front_desk).post(f"/v1/invoices/{iid}/resubmit", json={})
    assert r.status_code == 422, r.text
    r = await api.as_(Role.front_desk).post(f"/v1/invoices/{iid}/resubmit", json={"amount": "99.99"})
    assert r.status_code == 200 and r.json()["state"] == "submitted"
    r = await api.as_(Role.deputy_director).post(f"/v1/invoices/{iid}/approve", json={})
    assert r.status_code == 422 and r.json()["detail"]["field"] == "payer_entity_id"
    r = await api.as_(Role.deputy_director).post(f"/v1/invoices/{iid}/reject", json={})
    assert r.status_code == 422
    r = await api.as_(Role.deputy_director).post(f"/v1/invoices/{iid}/approve", json={"payer_entity_id": "nope"})
    assert r.status_code == 422
    # Admin may stand in for the deputy director.
    r = await api.as_(Role.admin).post(f"/v1/invoices/{iid}/approve", json={"payer_entity_id": payer})
    assert r.status_code == 200 and r.json()["state"] == "approved"
    r = await api.as_(Role.accountant).post(f"/v1/invoices/{iid}/pay", json={})
    assert r.status_code == 422 and r.json()["detail"]["field"] == "supplier_id"
    # Rejected nothing: history holds only the accepted actions.
    r = await api.as_(Role.front_desk).get(f"/v1/invoices/{iid}")
    assert [a["action"] for a in r.json()["actions"]] == ["submit", "return", "resubmit", "approve"]
    assert r.json()["actions"][-1]["actor_role"] == "admin"
    # Others cannot see someone else's invoice; unknown ids are 404.
    assert (await api.as_(Role.operator).get(f"/v1/invoices/{iid}")).status_code == 403
    assert (await api.as_(Role.accountant).get("/v1/invoices/nope")).status_code == 404


async def test_submit_validation(api: Api) -> None:
    fid = await upload(api, Role.front_desk)
    base = {"category": "Rent", "expense_type": "Office", "amount": "10.00", "invoice_file_id": fid}
    staff = api.as_(Role.front_desk)
    for bad in [
        {"amount": 10.5},
        {"amount": "-1"},
        {"amount": "1.234"},
        {"amount": "abc"},
        {"category": ""},
        {"invoice_file_id": "missing"},
    ]:
        r = await staff.post("/v1/invoices", json={**base, **bad})
        assert r.status_code == 422, (bad, r.text)
    r = await staff.post("/v1/invoices", json={k: v for k, v in base.items() if k != "amount"})
    assert r.status_code == 422
    # Another person's upload cannot be attached by a non-finance user.
    r = await api.as_(Role.doctor).post("/v1/invoices", json=base)
    assert r.status_code == 422


async def test_closing_documents_returned_then_accepted(api: Api, smtp: Inbox) -> None:
    supplier, payer = await parties(api)
    inv = await submit(api, Role.operator)
    await to_awaiting_documents(api, inv, supplier, payer)
    iid = inv["id"]
    op = api.as_(Role.operator)
    for attempt in range(2):
        doc = await upload(api, Role.operator, b"\x89PNG\r\n\x1a\n" + bytes(32), "waybill.png")
        r = await op.post(f"/v1/invoices/{iid}/closing-documents", json={"file_ids": [doc]})
        assert r.status_code == 200 and r.json()["state"] == "documents_submitted", r.text
        if attempt == 0:
            r = await api.as_(Role.accountant).post(
                f"/v1/invoices/{iid}/return-documents", json={"comment": "tax invoice missing"}
            )
            assert r.status_code == 200
            assert r.json()["state"] == "awaiting_closing_documents"
    r = await api.as_(Role.accountant).post(f"/v1/invoices/{iid}/verify")
    assert r.status_code == 200 and r.json()["state"] == "completed"
    assert len(r.json()["closing_file_ids"]) == 2

    async def returned_mail() -> None:
        assert smtp.about("closing documents returned")

    await eventually(returned_mail)


async def test_concurrent_actions_one_wins(api: Api) -> None:
    _, payer = await parties(api)
    inv = await submit(api)
    deputy = api.as_(Role.deputy_director)
    results = await asyncio.gather(
        deputy.post(f"/v1/invoices/{inv['id']}/approve", json={"payer_entity_id": payer}),
        deputy.post(f"/v1/invoices/{inv['id']}/reject", json={"comment": "no"}),
    )
    assert sorted(r.status_code for r in results) == [200, 409]
