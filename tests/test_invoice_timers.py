"""Stalled steps remind, then escalate (policy compressed to seconds); the monthly spending
report goes out from its Temporal Schedule."""

from __future__ import annotations

import io
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from openpyxl import load_workbook
from sqlmodel import select
from temporalio.client import Client

from contracts.invoice import INVOICE_WORKFLOW, InvoiceInput, InvoicePolicy, InvoiceSnapshot, invoice_workflow_id
from core.deps import Deps
from core.settings import Settings
from models.core import Role, StaffUser, new_id
from tests.support.api import Api
from tests.support.live import eventually
from tests.test_invoice_flow import Inbox, parties, smtp, submit, to_awaiting_documents, upload

__all__ = ["smtp"]  # the fixture, shared with the flow tests


async def _user_id(deps: Deps, username: str) -> str:
    async with deps.sessions() as s:
        return (await s.exec(select(StaffUser).where(StaffUser.username == username))).one().id


async def test_reminder_then_escalation(
    api: Api, client: Client, deps: Deps, settings: Settings, smtp: Inbox, users: dict[Role, str]
) -> None:
    initiator = await _user_id(deps, users[Role.front_desk])
    file_id = await upload(api, Role.front_desk)
    inp = InvoiceInput(
        invoice_id=new_id(),
        initiator_id=initiator,
        initiator_role="front_desk",
        category="Services",
        expense_type="Cleaning",
        amount="300.00",
        currency="UAH",
        invoice_file_id=file_id,
        policy=InvoicePolicy(remind_after=1.0, escalate_after=2.5),
    )
    handle = await client.start_workflow(
        INVOICE_WORKFLOW,
        inp,
        id=invoice_workflow_id(inp.invoice_id),
        task_queue=settings.temporal_task_queue,
        result_type=InvoiceSnapshot,
    )
    iid = inp.invoice_id
    try:

        async def tasks(state: str = "open") -> dict[str, str]:
            r = await api.as_(Role.admin).get("/v1/tasks", params={"subject_id": iid, "state": state})
            assert r.status_code == 200, r.text
            return {t["kind"]: t["assigned_role"] for t in r.json()}

        async def escalated() -> None:
            assert await tasks() == {"invoice_reminder": "deputy_director", "invoice_escalation": "director"}
            subjects = [str(m["Subject"]) for m in smtp.about(iid)]
            assert any("waits on you" in s for s in subjects), subjects
            assert any("stalled" in s for s in subjects), subjects

        await eventually(escalated, timeout=20)
        [remind] = [m for m in smtp.about(iid) if "waits on you" in str(m["Subject"])]
        assert remind["To"] == f"{users[Role.deputy_director]}@clinic.test"
        [esc] = [m for m in smtp.about(iid) if "stalled" in str(m["Subject"])]
        assert esc["To"] == f"{users[Role.director]}@clinic.test"

        # The deputy director acts: the reminders close, the next step is watched afresh.
        r = await api.as_(Role.deputy_director).post(f"/v1/invoices/{iid}/return", json={"comment": "wrong amount"})
        assert r.status_code == 200, r.text

        async def closed_and_initiator_reminded() -> None:
            assert await tasks("cancelled") == {"invoice_reminder": "deputy_director", "invoice_escalation": "director"}
            assert (await tasks()).get("invoice_reminder") == "front_desk"
            assert any(
                m["To"] == f"{users[Role.front_desk]}@clinic.test" and "waits on you" in str(m["Subject"])
                for m in smtp.about(iid)
            )

        await eventually(closed_and_initiator_reminded, timeout=20)
        # One reminder e-mail per step, however many times the activity may have run.
        assert len([m for m in smtp.about(iid) if "stalled" in str(m["Subject"])]) >= 1
        assert len({str(m["Message-ID"]) for m in smtp.about(iid)}) == len(smtp.about(iid))
    finally:
        await handle.terminate("test over")


async def test_monthly_schedule_emails_last_months_report(
    api: Api, client: Client, settings: Settings, smtp: Inbox
) -> None:
    from core.schedules import ensure_expense_report_schedule as ensure_schedule
    from workflows.monthly_report import previous_month

    today = datetime.now(ZoneInfo(settings.network_timezone)).date()
    last_month = previous_month(today)
    last_day = today.replace(day=1) - timedelta(days=1)
    supplier, payer = await parties(api)
    tag = uuid.uuid4().hex[:6]
    inv = await submit(api, category=f"Lab-{tag}", expense_type="Crowns", amount="4321.09")
    await to_awaiting_documents(api, inv, supplier, payer, paid_on=last_day.isoformat())

    schedule_id = f"monthly-expense-report-test-{tag}"
    handle = await ensure_schedule(client, settings, task_queue=settings.temporal_task_queue, schedule_id=schedule_id)
    # Idempotent: a second run updates the same schedule.
    handle = await ensure_schedule(client, settings, task_queue=settings.temporal_task_queue, schedule_id=schedule_id)
    try:
        desc = await handle.describe()
        assert desc.schedule.spec.time_zone_name == settings.network_timezone
        await handle.trigger()
        subject = f"Spending by category, {last_month}"

        async def mailed() -> None:
            assert [m for m in smtp.messages if m["Subject"] == subject]

        await eventually(mailed, timeout=30)
        [msg] = [m for m in smtp.messages if m["Subject"] == subject]
        assert f"{await _deputy_email(api)}" in msg["To"]
        [part] = list(msg.iter_attachments())
        assert part.get_filename() == f"expenses-{last_month}.xlsx"
        wb = load_workbook(io.BytesIO(part.get_payload(decode=True)))
        rows = list(wb["By category"].iter_rows(min_row=3, values_only=True))
        mine = [row for row in rows if row[0] == f"Lab-{tag}"]
        assert mine and Decimal(str(mine[0][4])) == Decimal("4321.09")
        # The attachment equals what the API serves for the same month.
        r = await api.as_(Role.accountant).get("/v1/reports/expenses", params={"month": last_month})
        api_rows = list(load_workbook(io.BytesIO(r.content))["By category"].iter_rows(min_row=3, values_only=True))
        assert api_rows == rows
    finally:
        await handle.delete()


async def _deputy_email(api: Api) -> str:
    r = await api.as_(Role.deputy_director).get("/v1/auth/me")
    return r.json()["email"]
