"""Who may see what (SPEC §7 "need to know", issue 8): the role × resource matrix walked
cell by cell over HTTP and compared with the README's table; branch scoping end to end
(another clinic's objects are 404, never 403); staff management by admin."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest

from api import policy
from cli import _create_user
from contracts.invoice import InvoiceState
from core.deps import Deps
from core.settings import PROJECT_ROOT, Settings
from models.core import OperatorTask, Role
from models.invoice import Invoice
from tests.support.api import Api

MISSING = "0" * 32
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


# ---------------------------------------------------------------- the README is the matrix
def _readme_table() -> dict[tuple[str, str], str]:
    text = (PROJECT_ROOT / "README.md").read_text()
    section = text.split("## Who may do what", 1)[1]
    rows = section.splitlines()
    start = next(i for i, ln in enumerate(rows) if ln.startswith("|"))
    lines = []
    for ln in rows[start:]:  # the first table of the section, up to its last row
        if not ln.startswith("|"):
            break
        lines.append(ln)
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    titles = {t: r for r, t in policy.RESOURCE_TITLES.items()}
    out = {}
    for ln in lines[2:]:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        role = cells[0].strip("`")
        for title, value in zip(head[1:], cells[1:], strict=True):
            out[(role, titles[title])] = value
    return out


def test_readme_table_is_the_enforced_matrix() -> None:
    table = _readme_table()
    expected = {(role.value, res): policy.cell(role, res) for role in Role for res in policy.MATRIX}
    assert table == expected, "README's 'Who may do what' differs from api/policy.py (policy.render_matrix())"


# ---------------------------------------------------------------- walking every cell
class Ctx:
    """Objects the probes act on, made once: tasks of each family, another user's invoice
    and file. Every probe either reaches the handler (any status but 401/403) or is refused
    with 403."""

    def __init__(self) -> None:
        self.task: dict[str, str] = {}
        self.invoice = ""
        self.file = ""


@pytest.fixture(scope="module")
async def ctx(api: Api, deps: Deps) -> Ctx:
    c = Ctx()
    async with deps.sessions() as s:
        for family, kind in (
            ("contact", "unconfirmed"),
            ("feedback", "detractor_feedback"),
            ("invoice", "invoice_reminder"),
        ):
            t = OperatorTask(
                dedup_key=f"matrix:{uuid.uuid4().hex}", kind=kind, title="probe", details={"phone": "+380671112233"}
            )
            s.add(t)
            c.task[family] = t.id
        inv = Invoice(
            id=uuid.uuid4().hex,
            workflow_id=f"invoice-{uuid.uuid4().hex}",
            state=InvoiceState.submitted,
            version=0,
            initiator_id="someone-else",
            category="Materials",
            expense_type="Probe",
            amount=Decimal("1.00"),
            currency="UAH",
            invoice_file_id="none",
        )
        s.add(inv)
        await s.commit()
        c.invoice = inv.id
    r = await api.as_(Role.admin).post("/v1/files", files={"file": ("a.pdf", PDF, "application/pdf")})
    assert r.status_code == 201, r.text
    c.file = r.json()["id"]
    return c


Probe = Callable[[Any, Ctx], Awaitable[httpx.Response]]

PROBES: dict[tuple[str, str], Probe] = {
    ("patients", "read"): lambda a, c: a.get(f"/v1/patients/{MISSING}"),
    ("patients", "create"): lambda a, c: a.post("/v1/patients", json={}),
    ("patients", "message"): lambda a, c: a.post(f"/v1/patients/{MISSING}/messages", json={}),
    ("appointments", "read"): lambda a, c: a.get(f"/v1/appointments/{MISSING}"),
    ("appointments", "book"): lambda a, c: a.post("/v1/appointments", json={}),
    ("appointments", "check-in"): lambda a, c: a.post(f"/v1/appointments/{MISSING}/check-in"),
    ("appointments", "finish"): lambda a, c: a.post(f"/v1/appointments/{MISSING}/finish"),
    ("plans", "read"): lambda a, c: a.get(f"/v1/treatment-plans/{MISSING}"),
    ("plans", "create"): lambda a, c: a.post("/v1/treatment-plans", json={}),
    ("points", "read"): lambda a, c: a.get(f"/v1/patients/{MISSING}/points"),
    ("points", "adjust"): lambda a, c: a.post(f"/v1/patients/{MISSING}/points", json={}),
    ("waitlist", "read"): lambda a, c: a.get(f"/v1/waitlist/{MISSING}"),
    ("waitlist", "manage"): lambda a, c: a.post("/v1/waitlist", json={}),
    ("plans", "advance"): lambda a, c: a.post(f"/v1/treatment-plans/{MISSING}/advance", json={}),
    ("tasks", "contact"): lambda a, c: a.get(f"/v1/tasks/{c.task['contact']}"),
    ("tasks", "feedback"): lambda a, c: a.get(f"/v1/tasks/{c.task['feedback']}"),
    ("tasks", "invoice"): lambda a, c: a.get(f"/v1/tasks/{c.task['invoice']}"),
    ("invoices", "submit"): lambda a, c: a.post("/v1/invoices", json={}),
    ("invoices", "read-all"): lambda a, c: a.get(f"/v1/invoices/{c.invoice}"),
    ("invoices", "approve"): lambda a, c: a.post(f"/v1/invoices/{MISSING}/approve", json={}),
    ("invoices", "pay"): lambda a, c: a.post(f"/v1/invoices/{MISSING}/pay", json={}),
    ("invoices", "counterparties"): lambda a, c: a.post("/v1/suppliers", json={}),
    ("files", "upload"): lambda a, c: a.post("/v1/files"),
    ("files", "read-all"): lambda a, c: a.get(f"/v1/files/{c.file}"),
    ("reports", "expenses"): lambda a, c: a.get("/v1/reports/expenses?month=nope"),
    ("reports", "management"): lambda a, c: a.get("/v1/reports/nps?from=2026-01-01"),
    ("reports", "operator-queue"): lambda a, c: a.get("/v1/reports/operator-queue?from=2026-01-01"),
    ("sandbox", "read"): lambda a, c: a.get("/v1/sandbox/messages?limit=0"),
    ("sandbox", "reply"): lambda a, c: a.post("/v1/sandbox/reply", json={}),
    ("codec", "decode"): lambda a, c: a.post("/codec/decode", json={"payloads": []}),
    ("staff", "manage"): lambda a, c: a.get("/v1/staff?limit=0"),
    ("imports", "upload"): lambda a, c: a.post("/v1/imports"),
    ("imports", "mapping"): lambda a, c: a.api.call(a.role, "PUT", f"/v1/clinics/{MISSING}/import-mapping", json={}),
    ("campaigns", "read"): lambda a, c: a.get(f"/v1/clinics/{MISSING}/campaigns/recall"),
    ("campaigns", "manage"): lambda a, c: a.put(f"/v1/clinics/{MISSING}/campaigns/recall", json={}),
    ("directory", "read"): lambda a, c: a.get(f"/v1/clinics/{MISSING}"),
    ("directory", "manage"): lambda a, c: a.post("/v1/clinics", json={}),
}

CELLS = [(role, res, act) for role in Role for res, acts in policy.MATRIX.items() for act in acts]


def test_every_cell_has_a_probe() -> None:
    assert set(PROBES) == {(res, act) for res, acts in policy.MATRIX.items() for act in acts}


@pytest.mark.parametrize(("role", "resource", "action"), CELLS, ids=[f"{r.value}-{s}-{a}" for r, s, a in CELLS])
async def test_role_matrix(api: Api, ctx: Ctx, role: Role, resource: str, action: str) -> None:
    r = await PROBES[(resource, action)](api.as_(role), ctx)
    if role in policy.MATRIX[resource][action]:
        assert r.status_code not in (401, 403), f"{role.value} may {action} {resource}: {r.status_code} {r.text}"
    else:
        assert r.status_code == 403, f"{role.value} may not {action} {resource}: {r.status_code} {r.text}"


async def test_task_queue_shows_each_role_only_its_kinds(api: Api, ctx: Ctx) -> None:
    for role in Role:
        r = await api.as_(role).get("/v1/tasks?limit=500")
        families = policy.task_families_of(role)
        if not families:
            assert r.status_code == 403
            continue
        assert r.status_code == 200, r.text
        seen = {t["id"] for t in r.json()}
        for family, task_id in ctx.task.items():
            if family in families:
                continue
            assert task_id not in seen, f"{role.value} listed a {family} task"
        assert {policy.task_family(t["kind"]) for t in r.json()} <= families


async def test_accountant_cannot_complete_a_patient_task(api: Api, deps: Deps) -> None:
    async with deps.sessions() as s:
        t = OperatorTask(dedup_key=f"rebook:{uuid.uuid4().hex}", kind="no_show_rebook", title="call")
        s.add(t)
        await s.commit()
    assert (await api.as_(Role.accountant).post(f"/v1/tasks/{t.id}/complete")).status_code == 403
    assert (await api.as_(Role.operator).post(f"/v1/tasks/{t.id}/complete")).status_code == 200


# ---------------------------------------------------------------- branch scoping
async def _login(api: Api, settings: Settings, role: Role, clinic_id: str | None) -> dict[str, str]:
    name = f"{role.value}-{uuid.uuid4().hex[:6]}"
    await _create_user(settings.database_url, name, "branch-pass-123", role, None, None, False, clinic_id)
    r = await api.http.post("/v1/auth/token", data={"username": name, "password": "branch-pass-123"})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def _clinic_with_doctor(api: Api) -> tuple[str, str]:
    admin = api.as_(Role.admin)
    r = await admin.post(
        "/v1/clinics",
        json={
            "name": f"Branch {uuid.uuid4().hex[:4]}",
            "address": "Kyiv",
            "phone": "+380441234567",
            "timezone": "Europe/Kyiv",
        },
    )
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    r = await admin.post("/v1/doctors", json={"clinic_id": cid, "full_name": "Dr Branch", "specialty": "therapy"})
    assert r.status_code == 201, r.text
    return cid, r.json()["id"]


async def test_branch_staff_see_and_touch_only_their_clinic(api: Api, settings: Settings, deps: Deps) -> None:
    a, doc_a = await _clinic_with_doctor(api)
    b, doc_b = await _clinic_with_doctor(api)
    admin = api.as_(Role.admin)
    desk_a = await _login(api, settings, Role.front_desk, a)
    desk_b = await _login(api, settings, Role.front_desk, b)
    director = await _login(api, settings, Role.director, None)

    # B's front desk registers a patient (in B, by default) and books a visit in B.
    r = await api.http.post("/v1/patients", headers=desk_b, json={"full_name": "Petro B", "phone": "+380671230001"})
    assert r.status_code == 201 and r.json()["clinic_id"] == b, r.text
    pb = r.json()["id"]
    starts = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    visit = {
        "patient_id": pb,
        "clinic_id": b,
        "doctor_id": doc_b,
        "starts_at": starts,
        "duration_minutes": 30,
        "service": "Hygiene",
    }
    r = await api.http.post("/v1/appointments", headers=desk_b, json=visit)
    assert r.status_code == 201, r.text
    appt_b = r.json()["id"]
    async with deps.sessions() as s:
        t = OperatorTask(
            dedup_key=f"b:{uuid.uuid4().hex}", kind="unconfirmed", title="call", clinic_id=b, patient_id=pb
        )
        s.add(t)
        await s.commit()
        task_b = t.id

    # A's front desk: B's patient, appointment, task and clinic do not exist for them.
    for url in (
        f"/v1/patients/{pb}",
        f"/v1/appointments/{appt_b}",
        f"/v1/tasks/{task_b}",
        f"/v1/clinics/{b}",
        f"/v1/doctors/{doc_b}",
    ):
        r = await api.http.get(url, headers=desk_a)
        assert r.status_code == 404, (url, r.status_code, r.text)
    for url, body in (
        (f"/v1/appointments/{appt_b}/cancel", {"reason": "not mine"}),
        (f"/v1/appointments/{appt_b}/confirm", None),
        (f"/v1/appointments/{appt_b}/reschedule", {"starts_at": starts}),
        (f"/v1/tasks/{task_b}/complete", None),
    ):
        r = await api.http.post(url, headers=desk_a, json=body)
        assert r.status_code == 404, (url, r.status_code, r.text)
    assert pb not in {p["id"] for p in (await api.http.get("/v1/patients?limit=500", headers=desk_a)).json()}
    assert appt_b not in {x["id"] for x in (await api.http.get("/v1/appointments?limit=500", headers=desk_a)).json()}
    listed = (await api.http.get(f"/v1/tasks?clinic_id={b}", headers=desk_a)).json()
    assert listed == []
    assert [c["id"] for c in (await api.http.get("/v1/clinics", headers=desk_a)).json()] == [a]
    assert {d["clinic_id"] for d in (await api.http.get("/v1/doctors", headers=desk_a)).json()} == {a}
    # Booking into B, or B's patient into A: the ids "do not exist" (422 naming the field).
    r = await api.http.post("/v1/appointments", headers=desk_a, json={**visit, "doctor_id": doc_b})
    assert r.status_code == 422 and "clinic_id" in r.text, r.text
    r = await api.http.post("/v1/appointments", headers=desk_a, json={**visit, "clinic_id": a, "doctor_id": doc_a})
    assert r.status_code == 422 and "patient_id" in r.text, r.text
    r = await api.http.post(
        "/v1/patients", headers=desk_a, json={"full_name": "X", "phone": "+380671230002", "clinic_id": b}
    )
    assert r.status_code == 422 and "clinic_id" in r.text, r.text

    # B's own desk and network staff (a director without a clinic, admin) still see it all.
    for headers in (desk_b, director, admin.api.headers(Role.admin)):
        assert (await api.http.get(f"/v1/patients/{pb}", headers=headers)).status_code == 200
        assert (await api.http.get(f"/v1/appointments/{appt_b}", headers=headers)).status_code == 200
    assert (await api.http.get(f"/v1/tasks/{task_b}", headers=desk_b)).status_code == 200
    r = await api.http.post(f"/v1/appointments/{appt_b}/cancel", headers=desk_b, json={"reason": "patient called"})
    assert r.status_code == 200, r.text


# ---------------------------------------------------------------- staff management
async def test_admin_manages_staff_and_deactivation_revokes_tokens(api: Api) -> None:
    admin = api.as_(Role.admin)
    clinic, _ = await _clinic_with_doctor(api)
    name = f"olga-{uuid.uuid4().hex[:6]}"
    r = await admin.post("/v1/staff", json={"username": name, "password": "front-desk-pass", "role": "front_desk"})
    assert r.status_code == 422 and "clinic_id" in r.text  # a front desk works at a branch
    r = await admin.post(
        "/v1/staff", json={"username": name, "password": "front-desk-pass", "role": "front_desk", "clinic_id": MISSING}
    )
    assert r.status_code == 422 and "clinic_id" in r.text
    r = await admin.post(
        "/v1/staff", json={"username": name, "password": "front-desk-pass", "role": "front_desk", "clinic_id": clinic}
    )
    assert r.status_code == 201, r.text
    user = r.json()
    assert user["clinic_id"] == clinic and user["active"] and "password" not in r.text
    dup = await admin.post(
        "/v1/staff", json={"username": name, "password": "front-desk-pass", "role": "operator", "clinic_id": clinic}
    )
    assert dup.status_code == 409
    assert name in {u["username"] for u in (await admin.get(f"/v1/staff?clinic_id={clinic}")).json()}

    tok = (await api.http.post("/v1/auth/token", data={"username": name, "password": "front-desk-pass"})).json()
    h = {"Authorization": f"Bearer {tok['access_token']}"}
    assert (await api.http.get("/v1/auth/me", headers=h)).json()["role"] == "front_desk"

    # A role change applies to the token already held.
    r = await admin.patch(f"/v1/staff/{user['id']}", json={"role": "operator"})
    assert r.status_code == 200 and r.json()["role"] == "operator"
    assert (await api.http.get("/v1/auth/me", headers=h)).json()["role"] == "operator"
    assert (await admin.patch(f"/v1/staff/{user['id']}", json={"clinic_id": MISSING})).status_code == 422
    for field in ("role", "active", "password"):  # an explicit null is a 422 naming it, never a 500
        r = await admin.patch(f"/v1/staff/{user['id']}", json={field: None})
        assert r.status_code == 422 and field in r.text, (field, r.status_code, r.text)

    # Deactivation: the token stops working at once, and reactivation does not revive it.
    r = await admin.patch(f"/v1/staff/{user['id']}", json={"active": False})
    assert r.status_code == 200 and r.json()["active"] is False
    assert (await api.http.get("/v1/auth/me", headers=h)).status_code == 401
    assert (
        await api.http.post("/v1/auth/token", data={"username": name, "password": "front-desk-pass"})
    ).status_code == 401
    assert (await admin.patch(f"/v1/staff/{user['id']}", json={"active": True})).status_code == 200
    assert (await api.http.get("/v1/auth/me", headers=h)).status_code == 401
    again = await api.http.post("/v1/auth/token", data={"username": name, "password": "front-desk-pass"})
    assert again.status_code == 200
    assert (await api.as_(Role.director).get("/v1/staff")).status_code == 403


def test_readme_names_every_role() -> None:
    text = (PROJECT_ROOT / "README.md").read_text()
    for role in Role:
        assert re.search(rf"`{role.value}`", text)
