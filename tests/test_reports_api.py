"""Management reports through the live API over journeys that really ran (sandbox provider,
real worker, real Temporal): every figure by hand; the .xlsx equals the JSON; who may read
what; the monthly management pack e-mailed from its Schedule, triggered by hand."""

from __future__ import annotations

import asyncio
import io
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import load_workbook
from temporalio.client import Client

from core.deps import Deps
from core.reports import REPORTS
from core.security import hash_password
from core.settings import Settings
from models.appointment import Appointment
from models.core import Role, StaffUser
from tests.support.api import Api
from tests.support.appointments import FAST, phone, sent
from tests.support.live import eventually
from tests.support.report_sheets import assert_sheet_matches, workbook_sheets
from tests.test_invoice_flow import Inbox, smtp
from tests.test_mis_import import csv_bytes, finished, upload

__all__ = ["smtp"]
KYIV = ZoneInfo("Europe/Kyiv")


async def _clinic(api: Api) -> dict[str, Any]:
    admin = api.as_(Role.admin)
    policy = {**FAST, "reminder_lead": 3600, "reask_interval": 60, "confirm_deadline": 20, "survey_timeout": 30}
    r = await admin.post(
        "/v1/clinics",
        json={
            "name": f"Reports {uuid.uuid4().hex[:4]}",
            "address": "1 Khreshchatyk St, Kyiv",
            "phone": "+380441234567",
            "timezone": "Europe/Kyiv",
            "review_url": "https://reviews.example/r",
            "lead_sources": ["Instagram", "site", "referral", "call"],
            "policy": policy,
        },
    )
    assert r.status_code == 201, r.text
    clinic = r.json()
    assert clinic["lead_sources"] == ["instagram", "site", "referral", "call"]
    for key, specialty in (("ther", "therapy"), ("impl", "implantology")):
        r = await admin.post(
            "/v1/doctors", json={"clinic_id": clinic["id"], "full_name": f"Dr {specialty}", "specialty": specialty}
        )
        assert r.status_code == 201, r.text
        clinic[key] = r.json()["id"]
    return clinic


async def _patient(api: Api, clinic: dict[str, Any], source: str | None, channel: str = "sms") -> str:
    body = {"full_name": "Test Patient", "phone": phone(), "preferred_channel": channel, "clinic_id": clinic["id"]}
    if source:
        body["source"] = source
    r = await api.as_(Role.front_desk).post("/v1/patients", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["source"] == (source.lower() if source else None)
    return str(r.json()["id"])


async def _book(api: Api, clinic: dict[str, Any], patient: str, doctor: str, in_s: float) -> str:
    r = await api.as_(Role.front_desk).post(
        "/v1/appointments",
        json={
            "patient_id": patient,
            "clinic_id": clinic["id"],
            "doctor_id": clinic[doctor],
            "starts_at": (datetime.now(UTC) + timedelta(seconds=in_s)).isoformat(),
            "duration_minutes": 5,
            "service": "Consultation",
        },
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def _view(api: Api, aid: str) -> dict[str, Any]:
    r = await api.as_(Role.front_desk).get(f"/v1/appointments/{aid}")
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _until(api: Api, aid: str, check: Any, timeout: float = 40) -> None:
    async def ok() -> None:
        v = await _view(api, aid)
        assert check(v), (v["stage"], [h["event"] for h in v["history"]])

    await eventually(ok, timeout=timeout)


async def _say(api: Api, patient: str, text: str) -> None:
    r = await api.as_(Role.operator).post("/v1/sandbox/reply", json={"patient_id": patient, "text": text})
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "signalled", r.json()


async def _act(api: Api, aid: str, *actions: str) -> None:
    roles = {"confirm": Role.operator, "check-in": Role.front_desk, "finish": Role.doctor, "cancel": Role.front_desk}
    for action in actions:
        kw = {"json": {"reason": "patient called"}} if action == "cancel" else {}
        r = await api.as_(roles[action]).post(f"/v1/appointments/{aid}/{action}", **kw)
        assert r.status_code == 200, (action, r.text)


def _asked(v: dict[str, Any]) -> bool:
    return v["asks_sent"] >= 1


async def _surveyed(deps: Deps, aid: str) -> None:
    async def ok() -> None:
        assert "survey" in [m.kind for m in await sent(deps, aid)]

    await eventually(ok, timeout=40)


async def _report(api: Api, name: str, params: dict[str, str], role: Role = Role.director) -> dict[str, Any]:
    r = await api.as_(role).get(f"/v1/reports/{name}", params=params)
    assert r.status_code == 200, r.text
    out = dict(r.json())
    if name != "operator-queue":  # (its task ages move between two calls)
        x = await api.as_(role).get(f"/v1/reports/{name}", params={**params, "format": "xlsx"})
        assert x.status_code == 200, x.text
        assert x.headers["content-type"].startswith("application/vnd.openxmlformats")
        [ws] = workbook_sheets(x.content).values()
        assert_sheet_matches(ws, out)
    return out


def _rows(report: dict[str, Any], table: str, key: str) -> dict[Any, dict[str, Any]]:
    return {r[key]: r for r in report["tables"][table]["rows"]}


async def test_reports_over_journeys_that_ran(api: Api, deps: Deps) -> None:
    c = await _clinic(api)
    # A source outside the clinic's list is refused, naming the field; nothing is written.
    r = await api.as_(Role.front_desk).post(
        "/v1/patients",
        json={"full_name": "X", "phone": phone(), "clinic_id": c["id"], "source": "prodoctorov"},
    )
    assert r.status_code == 422 and "source" in r.text, r.text
    pa = await _patient(api, c, "Instagram")
    pb = await _patient(api, c, "site")
    pc = await _patient(api, c, "referral")
    pd = await _patient(api, c, None, channel="whatsapp")
    ids: dict[str, str] = {}

    async def patient_a() -> None:
        # v1: first visit, confirmed by SMS reply, finished, NPS 10; then v4, a repeat visit the
        # operator confirms after an unanswered ask, finished, survey unanswered.
        ids["v1"] = v1 = await _book(api, c, pa, "ther", 400)
        await _until(api, v1, _asked)
        await _say(api, pa, "Так, буду")
        await _until(api, v1, lambda v: v["stage"] == "confirmed")
        await _act(api, v1, "check-in", "finish")
        await _surveyed(deps, v1)
        await _say(api, pa, "10")
        await _until(api, v1, lambda v: v["nps"] == 10)
        ids["v4"] = v4 = await _book(api, c, pa, "impl", 500)
        await _until(api, v4, _asked)
        await _act(api, v4, "confirm", "check-in", "finish")
        await _surveyed(deps, v4)

    async def patient_b() -> None:  # v2: declines, the desk cancels
        ids["v2"] = v2 = await _book(api, c, pb, "impl", 60)
        await _until(api, v2, _asked)
        await _say(api, pb, "Не смогу")
        await _until(api, v2, lambda v: v["stage"] == "needs_clarification")
        await _act(api, v2, "cancel")

    async def patient_c() -> None:  # v3: silence, the deadline hands it to an operator; NPS 3
        ids["v3"] = v3 = await _book(api, c, pc, "ther", 30)
        await _until(api, v3, lambda v: v["stage"] == "needs_clarification")
        await _act(api, v3, "confirm", "check-in", "finish")
        await _surveyed(deps, v3)
        await _say(api, pc, "3")
        await _until(api, v3, lambda v: v["nps"] == 3)

    async def patient_d() -> None:  # v5: confirms on WhatsApp, cancels later
        ids["v5"] = v5 = await _book(api, c, pd, "ther", 800)
        await _until(api, v5, _asked)
        await _say(api, pd, "да")
        await _until(api, v5, lambda v: v["stage"] == "confirmed")
        await _act(api, v5, "cancel")

    await asyncio.gather(patient_a(), patient_b(), patient_c(), patient_d())

    async def synced() -> None:  # the journeys' last syncs have reached the rows
        async with deps.sessions() as s:
            rows = {k: await s.get(Appointment, v) for k, v in ids.items()}
        assert all(r is not None and r.survey_sent_at for k, r in rows.items() if k in ("v1", "v3", "v4"))
        assert {k: r.first_visit for k, r in rows.items() if r} == {
            "v1": True,
            "v2": True,
            "v3": True,
            "v4": False,  # a's second visit
            "v5": True,
        }

    await eventually(synced)
    today = datetime.now(KYIV).date()
    params = {
        "clinic_id": c["id"],
        "from": (today - timedelta(days=1)).isoformat(),
        "to": (today + timedelta(1)).isoformat(),
    }

    ft = await _report(api, "first-time-patients", params)
    assert ft["summary"] == {"first_time_patients": 2, "new_patients": 2, "returning_patients": 0}  # a (v1), c (v3)
    assert sorted(x["patient_id"] for x in ft["tables"]["patients"]["rows"]) == sorted([pa, pc])

    sp = await _report(api, "visits-by-specialty", params)
    by = _rows(sp, "by_specialty", "specialty")  # finished: v1 v3 therapy, v4 implantology
    assert (by["therapy"]["visits"], by["therapy"]["share"], by["implantology"]["share"]) == (2, 66.7, 33.3)

    src = await _report(api, "patients-by-source", params)
    assert {k: (v["patients"], v["share"]) for k, v in _rows(src, "by_source", "source").items()} == {
        "instagram": (1, 50.0),
        "referral": (1, 50.0),
    }

    conv = await _report(api, "first-visit-conversion", params)  # a c reached; b d did not
    assert conv["summary"] == {"first_time_bookings": 4, "reached_consultation": 2, "conversion": 50.0}
    assert {k: (v["booked"], v["reached"]) for k, v in _rows(conv, "by_source", "source").items()} == {
        "instagram": (1, 1),
        "referral": (1, 1),
        "site": (1, 0),
        "unknown": (1, 0),
    }

    nps = await _report(api, "nps", params)
    s = nps["summary"]  # surveys v1 v3 v4; answers 10 and 3: (1 - 1) / 2 = 0; 2/3 answered
    assert (s["surveys"], s["answers"], s["response_rate"], s["nps"]) == (3, 2, 66.7, 0.0)
    assert (s["detractor_tasks_opened"], s["detractor_tasks_closed"]) == (1, 0)
    doc = _rows(nps, "by_doctor", "doctor")
    assert (doc["Dr therapy"]["nps"], doc["Dr implantology"]["nps"], doc["Dr implantology"]["surveys"]) == (
        0.0,
        None,
        1,
    )

    conf = await _report(api, "confirmations", params)
    s = conf["summary"]
    # 5 visits, all asked; the patient confirmed v1 (SMS) and v5 (WhatsApp): 40%; v2 declined;
    # v3 unanswered -> operator; v4 other; operators confirmed v3 and v4; no no-shows of 3.
    assert (s["visits"], s["asked"], s["confirmed"], s["confirmed_rate"]) == (5, 5, 2, 40.0)
    assert (s["declined"], s["no_answer"], s["operator_confirmed"], s["calls_saved"]) == (1, 1, 2, 2)
    assert (s["no_shows"], s["no_show_rate"]) == (0, 0.0)
    assert {k: v["confirmed"] for k, v in _rows(conf, "channels", "channel").items()} == {"sms": 1, "whatsapp": 1}

    queue = await _report(api, "operator-queue", params, role=Role.ops)
    kinds = _rows(queue, "by_kind", "kind")
    assert kinds["detractor_feedback"]["open"] == 1 and kinds["detractor_feedback"]["under_1d"] == 1
    # The director sees every task kind (an operator does not see detractor feedback: #8).
    r = await api.as_(Role.director).get("/v1/tasks", params={"clinic_id": c["id"], "state": "open"})
    assert queue["summary"]["open_tasks"] == len(r.json())
    [task] = [t for t in r.json() if t["kind"] == "detractor_feedback"]
    assert (await api.as_(Role.director).post(f"/v1/tasks/{task['id']}/complete")).status_code == 200
    nps = await _report(api, "nps", params)
    assert (nps["summary"]["detractor_tasks_opened"], nps["summary"]["detractor_tasks_closed"]) == (1, 1)


async def test_who_may_read_reports(api: Api, deps: Deps) -> None:
    c = await _clinic(api)
    other = await _clinic(api)
    # A clinic's lead-source list: slugs, lower-cased, never empty.
    admin = api.as_(Role.admin)
    r = await admin.patch(f"/v1/clinics/{other['id']}", json={"lead_sources": ["Site", "tiktok", "site"]})
    assert r.status_code == 200 and r.json()["lead_sources"] == ["site", "tiktok"], r.text
    for bad_list in ([], ["two words"], None):
        r = await admin.patch(f"/v1/clinics/{other['id']}", json={"lead_sources": bad_list})
        assert r.status_code == 422, (bad_list, r.text)
    p = {"clinic_id": c["id"], "from": "2026-10-01", "to": "2026-10-31"}
    for role in (Role.director, Role.deputy_director, Role.admin):
        assert (await api.as_(role).get("/v1/reports/nps", params=p)).status_code == 200, role
    for role in (Role.front_desk, Role.operator, Role.doctor, Role.accountant, Role.ops):
        assert (await api.as_(role).get("/v1/reports/nps", params=p)).status_code == 403, role
    assert (await api.as_(Role.ops).get("/v1/reports/operator-queue", params=p)).status_code == 200
    assert (await api.as_(Role.operator).get("/v1/reports/operator-queue", params=p)).status_code == 403
    director = api.as_(Role.director)
    assert (await director.get("/v1/reports/nope", params=p)).status_code == 404
    bad = [
        {**p, "from": "2026-11-01"},  # after `to`
        {**p, "from": "2026-13-01"},
        {"clinic_id": c["id"], "from": "2026-10-01"},  # `to` missing
        {**p, "from": "2020-01-01"},  # longer than two years
        {**p, "format": "pdf"},
    ]
    for q in bad:
        r = await director.get("/v1/reports/nps", params=q)
        assert r.status_code == 422, (q, r.text)
    assert (await director.get("/v1/reports/nps", params={**p, "clinic_id": "nope"})).status_code == 404
    # Default period: last month; no clinic: the whole network.
    r = await director.get("/v1/reports/confirmations")
    assert r.status_code == 200 and r.json()["clinic_id"] is None

    # A branch director sees only their clinic: no clinic_id means theirs, another one is 404.
    name = f"branch-{uuid.uuid4().hex[:6]}"
    async with deps.sessions() as s:
        s.add(StaffUser(username=name, password_hash=hash_password("pw-branch-123"), role=Role.director,
                        clinic_id=c["id"]))  # fmt: skip
        await s.commit()
    r = await api.http.post("/v1/auth/token", data={"username": name, "password": "pw-branch-123"})
    h = {"Authorization": f"Bearer {r.json()['access_token']}"}
    r = await api.http.get("/v1/reports/nps", headers=h, params={"from": "2026-10-01", "to": "2026-10-31"})
    assert r.status_code == 200 and r.json()["clinic_id"] == c["id"] and r.json()["clinic_name"] == c["name"]
    r = await api.http.get("/v1/reports/nps", headers=h, params={"clinic_id": other["id"]})
    assert r.status_code == 404


async def test_monthly_pack_emails_last_months_workbook(
    api: Api, client: Client, deps: Deps, settings: Settings, smtp: Inbox
) -> None:
    from core.schedules import ensure_management_pack_schedule as ensure_schedule
    from workflows.monthly_report import previous_month

    today = datetime.now(ZoneInfo(settings.network_timezone)).date()
    month = previous_month(today)
    last_day = today.replace(day=1) - timedelta(days=1)
    # Last month's visits arrive by the MIS import (they cannot be booked in the past).
    tag = uuid.uuid4().hex[:6]
    clinic = await _imported_last_month(api, tag, last_day)
    # The clinic's own director (tied to it) gets that clinic's pack, not the network's.
    branch_email = f"branch-{tag}@clinic.test"
    async with deps.sessions() as s:
        s.add(StaffUser(username=f"branch-{tag}", password_hash=hash_password("pw-branch-123"), role=Role.director,
                        clinic_id=clinic["id"], email=branch_email))  # fmt: skip
        await s.commit()
    schedule_id = f"monthly-management-pack-test-{tag}"
    handle = await ensure_schedule(client, settings, task_queue=settings.temporal_task_queue, schedule_id=schedule_id)
    handle = await ensure_schedule(client, settings, task_queue=settings.temporal_task_queue, schedule_id=schedule_id)
    try:
        desc = await handle.describe()
        assert desc.schedule.spec.time_zone_name == settings.network_timezone
        cal = desc.schedule.spec.calendars[0]
        assert [r.start for r in cal.day_of_month] == [1]
        await handle.trigger()
        subject = f"Management pack, {month}"

        def mail(subj: str) -> list[Any]:
            return [m for m in smtp.messages if m["Subject"] == subj]

        async def mailed() -> None:
            assert mail(subject) and mail(f"{subject}, {clinic['name']}")

        await eventually(mailed, timeout=90)
        [msg] = mail(subject)
        me = await api.as_(Role.director).get("/v1/auth/me")
        assert me.json()["email"] in msg["To"] and branch_email not in msg["To"]
        [part] = list(msg.iter_attachments())
        assert part.get_filename() == f"management-pack-{month}.xlsx"
        data = part.get_payload(decode=True)
        sheets = workbook_sheets(data)
        assert list(sheets) == [t[:31] for t in REPORTS.values()]
        # Each sheet equals the JSON the API gives for the same month over the whole network.
        first = last_day.replace(day=1).isoformat()
        for name, title in REPORTS.items():
            if name == "operator-queue":
                continue  # the queue is "now": ages move between the e-mail and this call
            r = await api.as_(Role.director).get(
                f"/v1/reports/{name}", params={"from": first, "to": last_day.isoformat()}
            )
            assert_sheet_matches(sheets[title[:31]], r.json())
        wb = load_workbook(io.BytesIO(data))
        spec = {row[0]: row[1] for row in wb["Visits by specialty"].iter_rows(values_only=True)}
        assert spec[f"implantology-{tag}"] == 1  # the imported clinic's visits are in the pack
        conv = [row for row in wb["First-visit conversion"].iter_rows(values_only=True) if row[0] == clinic["name"]]
        assert conv and conv[0][1:4] == (3, 2, 66.7)
        assert "First-time patients" in msg.get_body(preferencelist=("plain",)).get_content()

        # The branch director's pack: their clinic only, each sheet equal to the clinic's JSON.
        [own] = mail(f"{subject}, {clinic['name']}")
        assert own["To"] == branch_email
        [part] = list(own.iter_attachments())
        sheets = workbook_sheets(part.get_payload(decode=True))
        for name, title in REPORTS.items():
            assert list(sheets[title[:31]].iter_rows(min_row=2, max_row=2, values_only=True))[0][:2] == (
                "Clinic",
                clinic["name"],
            )
            if name == "operator-queue":
                continue
            r = await api.as_(Role.director).get(
                f"/v1/reports/{name}", params={"clinic_id": clinic["id"], "from": first, "to": last_day.isoformat()}
            )
            assert_sheet_matches(sheets[title[:31]], r.json())
        ft = [
            row
            for row in sheets["First-time patients"].iter_rows(values_only=True)
            if row[0] == "First-time patients" and isinstance(row[1], int)  # the summary line
        ]
        assert ft[0][1] == 2  # M-1 and M-4, as in test_reports_over_an_import
    finally:
        await handle.delete()


async def _imported_last_month(api: Api, tag: str, last_day: Any) -> dict[str, Any]:
    """A clinic whose last month arrives by the MIS import: the patient base (with lead sources
    in the MIS's words and last visits from before our time), then the completed visits.

        card  patient   source           MIS last visit      visits last month (L)
        M-1   Гнатюк    Инстаграм        -                   H-1 L/05 therapy finished (first)
                                                             H-2 L/12 implantology finished (repeat)
        M-2   Панченко  Сайт             60 days before L/06  H-3 L/06 therapy finished (a repeat)
        M-3   Новий     Звонок           -                   H-4 L/07 implantology no-show (first booking)
        M-4   Ещё       По рекомендации  8 months before     H-5 L/08 therapy finished (first, returning)
    """
    admin = api.as_(Role.admin)
    r = await admin.post(
        "/v1/clinics",
        json={"name": f"Imported {tag}", "address": "Kyiv", "phone": "+380441234567", "timezone": "Europe/Kyiv",
              "policy": FAST},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    clinic = dict(r.json())
    for name, specialty in (
        ("Коваль Ирина Викторовна", f"therapy-{tag}"),
        ("Бондар Олег Петрович", f"implantology-{tag}"),
    ):
        r = await admin.post("/v1/doctors", json={"clinic_id": clinic["id"], "full_name": name, "specialty": specialty})
        assert r.status_code == 201, r.text
    first = last_day.replace(day=1)
    day = lambda d: first.replace(day=d)  # noqa: E731
    phones = [phone() for _ in range(4)]
    base = [
        ["M-1", "Гнатюк Леся", phones[0], "Инстаграм", ""],
        ["M-2", "Панченко Ира", phones[1], "Сайт", (day(6) - timedelta(days=60)).strftime("%d.%m.%Y")],
        ["M-3", "Новий Пацієнт", phones[2], "Звонок", ""],
        ["M-4", "Ещё Пациент", phones[3], "По рекомендации", (day(8) - timedelta(days=240)).strftime("%d.%m.%Y")],
    ]
    headers = ["№ карты", "ФИО", "Телефон", "Источник", "Последний визит"]
    res = await finished(api, await upload(api, clinic["id"], "patients", "p.csv", csv_bytes(headers, base)))
    assert res["counts"]["created"] == 4 and res["counts"]["errors"] == 0, res
    ther, impl = "Коваль Ирина Викторовна", "Бондар Олег Петрович"
    visits = [
        ["H-1", "M-1", "Гнатюк Леся", phones[0], day(5), "09:00", ther, "Осмотр", "пришёл"],
        ["H-2", "M-1", "Гнатюк Леся", phones[0], day(12), "09:00", impl, "Имплантация", "пришёл"],
        ["H-3", "M-2", "Панченко Ира", phones[1], day(6), "10:00", ther, "Осмотр", "пришёл"],
        ["H-4", "M-3", "Новий Пацієнт", phones[2], day(7), "11:00", impl, "Консультация", "неявка"],
        ["H-5", "M-4", "Ещё Пациент", phones[3], day(8), "12:00", ther, "Осмотр", "пришёл"],
    ]
    for v in visits:
        v[4] = v[4].strftime("%d.%m.%Y")
    headers = ["ID визита", "№ карты", "ФИО", "Телефон", "Дата", "Время", "Врач", "Услуга", "Статус"]
    res = await finished(api, await upload(api, clinic["id"], "completed", "c.csv", csv_bytes(headers, visits)))
    assert res["counts"]["created"] == 5 and res["counts"]["errors"] == 0, res
    clinic["ther"], clinic["impl"] = f"therapy-{tag}", f"implantology-{tag}"
    return clinic


async def test_reports_over_an_import(api: Api) -> None:
    from workflows.monthly_report import previous_month

    today = datetime.now(KYIV).date()
    last_day = today.replace(day=1) - timedelta(days=1)
    tag = uuid.uuid4().hex[:6]
    c = await _imported_last_month(api, tag, last_day)
    assert previous_month(today) == f"{last_day:%Y-%m}"
    params = {"clinic_id": c["id"], "from": last_day.replace(day=1).isoformat(), "to": last_day.isoformat()}

    ft = await _report(api, "first-time-patients", params)
    # M-1 (H-1, never before) and M-4 (H-5, the MIS saw them 8 months earlier); M-2's H-3 comes
    # 60 days after an MIS visit; M-3 did not come.
    assert ft["summary"] == {"first_time_patients": 2, "new_patients": 1, "returning_patients": 1}
    assert [x["patient"] for x in ft["tables"]["patients"]["rows"]] == ["Гнатюк Леся", "Ещё Пациент"]
    src = await _report(api, "patients-by-source", params)
    assert {k: v["patients"] for k, v in _rows(src, "by_source", "source").items()} == {"instagram": 1, "referral": 1}
    conv = await _report(api, "first-visit-conversion", params)  # M-1 M-3 M-4 booked a first visit; 2 came
    assert conv["summary"] == {"first_time_bookings": 3, "reached_consultation": 2, "conversion": 66.7}
    assert _rows(conv, "by_source", "source")["call"] == {"source": "call", "booked": 1, "reached": 0, "rate": 0.0}
    sp = await _report(api, "visits-by-specialty", params)  # H-1 H-3 H-5 therapy, H-2 implantology
    by = _rows(sp, "by_specialty", "specialty")
    assert (by[c["ther"]]["visits"], by[c["ther"]]["share"], by[c["impl"]]["share"]) == (3, 75.0, 25.0)
    conf = await _report(api, "confirmations", params)  # nobody was asked (imported after the fact)
    s = conf["summary"]
    assert (s["visits"], s["asked"], s["no_shows"], s["no_show_rate"]) == (5, 0, 1, 20.0)
    nps = await _report(api, "nps", params)
    assert (nps["summary"]["surveys"], nps["summary"]["nps"]) == (0, None)
