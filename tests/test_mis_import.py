"""The daily MIS import end to end, with real files (CSV in UTF-8 and Windows-1251, XLSX):
the API upload, the import workflow on the real dev server, journeys started through the
same booking service as the API, re-import, reschedule, cancel-by-absence, bad rows,
guardians, completed visits, the drop-folder schedule triggered by hand, and a worker
killed mid-import."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from openpyxl import Workbook
from sqlmodel import col, select
from temporalio.client import Client

from contracts.mis_import import import_workflow_id
from core.deps import Deps
from core.imports import import_queue
from core.settings import Settings
from models import points
from models.appointment import Appointment
from models.core import MessageLog, Patient, Role
from models.imports import ImportRow, PatientMisId
from models.waitlist import WaitlistEntry
from tests.support.api import Api
from tests.support.appointments import FAST, phone
from tests.support.live import eventually

KYIV = ZoneInfo("Europe/Kyiv")
VISIT_HEADERS = [
    "ID визита",
    "№ карты",
    "ФИО",
    "Телефон",
    "Дата рождения",
    "Представитель",
    "Дата",
    "Время",
    "Врач",
    "Услуга",
]


def tomorrow(days: int = 1) -> date:
    return (datetime.now(KYIV) + timedelta(days=days)).date()


def csv_bytes(headers: list[str], rows: list[list[Any]], sep: str = ";", encoding: str = "utf-8") -> bytes:
    lines = [sep.join(headers)] + [sep.join("" if v is None else str(v) for v in r) for r in rows]
    return ("\r\n".join(lines) + "\r\n").encode(encoding)


def xlsx_bytes(headers: list[str], rows: list[list[Any]]) -> bytes:
    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(headers)
    for r in rows:
        ws.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


async def make_clinic(api: Api, **extra: Any) -> dict[str, Any]:
    admin = api.as_(Role.admin)
    r = await admin.post(
        "/v1/clinics",
        json={
            "name": f"Улыбка {uuid.uuid4().hex[:4]}",
            "address": "ул. Крещатик 1, Киев",
            "phone": "+380441234567",
            "timezone": "Europe/Kyiv",
            "policy": FAST,  # asks start 5 minutes before a visit: none during these tests
            **extra,
        },
    )
    assert r.status_code == 201, r.text
    clinic = r.json()
    for name in ("Коваль Ирина Викторовна", "Бондар Олег Петрович"):
        r = await admin.post("/v1/doctors", json={"clinic_id": clinic["id"], "full_name": name, "specialty": "therapy"})
        assert r.status_code == 201, r.text
        clinic.setdefault("doctors", []).append(r.json()["id"])
    return clinic


async def upload(api: Api, clinic_id: str, kind: str, name: str, content: bytes) -> str:
    r = await api.as_(Role.front_desk).post(
        "/v1/imports", data={"clinic_id": clinic_id, "kind": kind}, files={"file": (name, content)}
    )
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


async def finished(api: Api, import_id: str, timeout: float = 120) -> dict[str, Any]:
    async def done() -> dict[str, Any]:
        r = await api.as_(Role.operator).get(f"/v1/imports/{import_id}")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["state"] in ("completed", "failed"), body
        return dict(body)

    result: dict[str, Any] = await eventually(done, timeout=timeout, interval=0.5)
    return result


async def visits_of(deps: Deps, clinic_id: str) -> dict[str, Appointment]:
    async with deps.sessions() as s:
        q = select(Appointment).where(Appointment.clinic_id == clinic_id)
        return {a.mis_visit_id or a.id: a for a in (await s.exec(q)).all()}


async def test_visits_csv_utf8_create_then_reimport_unchanged(api: Api, deps: Deps, client: Client) -> None:
    clinic = await make_clinic(api)
    day = tomorrow()
    mom = phone()
    rows = [
        [
            "V-1",
            "K-100",
            "Петренко Олена Ивановна",
            mom,
            "12.03.1988",
            "",
            day.strftime("%d.%m.%Y"),
            "09:00",
            "Коваль Ирина Викторовна",
            "Консультация",
        ],
        # A child without a phone: linked to the guardian named in the row (the mother, above).
        [
            "V-2",
            "K-101",
            "Петренко Марко Андреевич",
            "",
            "01.02.2016",
            "Петренко Олена Ивановна",
            day.strftime("%d.%m.%Y"),
            "09:30",
            "Коваль И.В.",
            "Гигиена",
        ],
        # A second child whose row carries the parent's number (as the seed clinic's MIS does).
        [
            "V-3",
            "K-102",
            "Петренко Софья Андреевна",
            mom,
            "05.06.2019",
            "Петренко Олена Ивановна",
            day.strftime("%d.%m.%Y"),
            "10:00",
            "Бондар Олег Петрович",
            "Осмотр",
        ],
    ]
    content = csv_bytes(VISIT_HEADERS, rows, sep=";", encoding="utf-8")
    first_id = await upload(api, clinic["id"], "visits", "visits.csv", content)
    first = await finished(api, first_id)
    assert first["state"] == "completed", first
    assert first["counts"]["created"] == 3 and first["counts"]["errors"] == 0, first
    assert first["progress"] == 1.0 and first["total_rows"] == 3

    visits = await visits_of(deps, clinic["id"])
    assert set(visits) == {"V-1", "V-2", "V-3"}
    async with deps.sessions() as s:
        mother = await s.get(Patient, visits["V-1"].patient_id)
        marko = await s.get(Patient, visits["V-2"].patient_id)
        sofia = await s.get(Patient, visits["V-3"].patient_id)
        assert mother is not None and marko is not None and sofia is not None
        assert mother.phone == mom and mother.clinic_id == clinic["id"]
        assert marko.guardian_id == mother.id and marko.phone is None
        assert sofia.guardian_id == mother.id and sofia.phone is None
        links = (await s.exec(select(PatientMisId).where(PatientMisId.clinic_id == clinic["id"]))).all()
        assert {x.mis_patient_id: x.patient_id for x in links} == {
            "K-100": mother.id,
            "K-101": marko.id,
            "K-102": sofia.id,
        }
    want = datetime(day.year, day.month, day.day, 9, 30, tzinfo=KYIV)
    assert visits["V-2"].starts_at == want.astimezone(UTC)
    assert visits["V-2"].doctor_id == clinic["doctors"][0]  # "Коваль И.В." matched by initials

    # Journeys started exactly like API bookings: the appointment journey, live.
    r = await api.as_(Role.operator).get(f"/v1/appointments/{visits['V-1'].id}")
    assert r.status_code == 200 and r.json()["live"] is True and r.json()["stage"] == "booked", r.text
    desc = await client.get_workflow_handle(visits["V-1"].workflow_id).describe()
    assert desc.workflow_type == "AppointmentJourney"
    # The import itself (workflow and batches) ran on the imports' own queue, so its batches
    # never waited behind the activities of the journeys it started (those are on the main one).
    imp = client.get_workflow_handle(import_workflow_id(first_id))
    assert (await imp.describe()).task_queue == import_queue(desc.task_queue) == f"{desc.task_queue}-imports"
    scheduled = [
        e.activity_task_scheduled_event_attributes.task_queue.name
        async for e in imp.fetch_history_events()
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    assert scheduled and set(scheduled) == {import_queue(desc.task_queue)}

    async def noticed() -> None:
        async with deps.sessions() as s:
            q = select(MessageLog).where(col(MessageLog.subject_id).in_([a.id for a in visits.values()]))
            sent = [m for m in (await s.exec(q)).all() if m.kind == "booking_notice"]
            assert len(sent) == 3, [m.kind for m in sent]

    await eventually(noticed, timeout=60)

    # The same file again: nothing changes, nothing is sent.
    again = await finished(api, await upload(api, clinic["id"], "visits", "visits.csv", content))
    assert again["counts"] == {**again["counts"], "created": 0, "unchanged": 3, "rescheduled": 0, "errors": 0}
    after = await visits_of(deps, clinic["id"])
    assert {k: (a.id, a.version) for k, a in after.items()} == {k: (a.id, 1) for k, a in visits.items()}
    async with deps.sessions() as s:
        q = select(MessageLog).where(col(MessageLog.subject_id).in_([a.id for a in visits.values()]))
        assert len([m for m in (await s.exec(q)).all() if m.direction == "out"]) == 3
        n_patients = len((await s.exec(select(Patient).where(Patient.clinic_id == clinic["id"]))).all())
        assert n_patients == 3


async def test_cp1251_reschedule_and_cancel_by_absence(api: Api, deps: Deps) -> None:
    clinic = await make_clinic(api)
    day = tomorrow(2)
    d = day.strftime("%d.%m.%Y")
    people = [(f"V{i}", f"P{i}", f"Шевченко Тарас {i}", phone()) for i in range(4)]
    rows = [
        [vid, pid, name, tel, "", "", d, f"1{i}:00", "Бондар Олег Петрович", "Пломба"]
        for i, (vid, pid, name, tel) in enumerate(people)
    ]
    first = await finished(
        api,
        await upload(
            api, clinic["id"], "visits", "day.csv", csv_bytes(VISIT_HEADERS, rows, sep=",", encoding="cp1251")
        ),
    )
    assert first["counts"]["created"] == 4, first
    before = await visits_of(deps, clinic["id"])

    # Not authoritative yet: a later file without V3 leaves V3 alone.
    partial = rows[:3]
    r = await finished(
        api, await upload(api, clinic["id"], "visits", "day2.csv", csv_bytes(VISIT_HEADERS, partial, ",", "cp1251"))
    )
    assert r["counts"]["cancelled"] == 0 and r["counts"]["unchanged"] == 3, r

    r = await api.as_(Role.director).put(
        f"/v1/clinics/{clinic['id']}/import-mapping", json={"authoritative_days": True, "daily_at": "06:30"}
    )
    assert r.status_code == 200, r.text
    # V0 moves to 16:30, V1 and V2 stay, V3 is gone from the MIS schedule of that day.
    moved = [list(x) for x in partial]
    moved[0][7] = "16:30"
    r = await finished(
        api, await upload(api, clinic["id"], "visits", "day3.csv", csv_bytes(VISIT_HEADERS, moved, ",", "cp1251"))
    )
    assert (r["counts"]["rescheduled"], r["counts"]["unchanged"], r["counts"]["cancelled"]) == (1, 2, 1), r

    desk = api.as_(Role.operator)
    v0 = (await desk.get(f"/v1/appointments/{before['V0'].id}")).json()
    assert v0["version"] == 2 and v0["stage"] == "booked", v0
    assert v0["starts_at"].startswith(
        datetime(day.year, day.month, day.day, 16, 30, tzinfo=KYIV).astimezone(UTC).isoformat()[:16]
    )
    assert any(h["event"] == "rescheduled_v2" for h in v0["history"])

    async def cancelled() -> None:
        v3 = (await desk.get(f"/v1/appointments/{before['V3'].id}")).json()
        assert v3["stage"] == "cancelled", v3

    await eventually(cancelled, timeout=30)
    # Importing the same authoritative file again changes nothing more.
    r = await finished(
        api, await upload(api, clinic["id"], "visits", "day3.csv", csv_bytes(VISIT_HEADERS, moved, ",", "cp1251"))
    )
    assert (r["counts"]["rescheduled"], r["counts"]["cancelled"], r["counts"]["unchanged"]) == (0, 0, 3), r


async def test_later_file_finds_known_patients_and_books_them_like_the_desk(api: Api, deps: Deps) -> None:
    """A later file's new visits (applied together, a chunk at a time) find the patients we
    know by MIS id and by phone + name, create each new patient once even when the file lists
    them twice, refuse a slot the same file took a row earlier with nothing of that row left,
    take a waiting patient off the list, and keep the first-visit flags."""
    clinic = await make_clinic(api)
    kov, bon = "Коваль Ирина Викторовна", "Бондар Олег Петрович"
    d1, d3 = tomorrow().strftime("%d.%m.%Y"), tomorrow(3).strftime("%d.%m.%Y")
    anna, iryna, new_tel, refused_tel = phone(), phone(), phone(), phone()
    first = [
        ["V-1", "K-1", "Мельник Анна", anna, "", "", d1, "09:00", kov, "Осмотр"],
        ["V-2", "", "Гончар Ирина", iryna, "", "", d1, "09:00", bon, "Осмотр"],
    ]
    r = await finished(api, await upload(api, clinic["id"], "visits", "a.csv", csv_bytes(VISIT_HEADERS, first)))
    assert r["counts"]["created"] == 2, r
    known = await visits_of(deps, clinic["id"])
    body = {"patient_id": known["V-1"].patient_id, "clinic_id": clinic["id"], "doctor_id": clinic["doctors"][0]}
    body |= {"service": "Осмотр", "until": tomorrow(10).isoformat()}
    w = await api.as_(Role.front_desk).post("/v1/waitlist", json=body)
    assert w.status_code == 201, w.text

    second = [
        ["V-3", "K-1", "Мельник Анна", anna, "", "", d3, "09:00", kov, "Осмотр"],  # by MIS id; was waiting
        ["V-4", "", "Гончар Ирина", iryna, "", "", d3, "10:00", kov, "Осмотр"],  # by phone + name
        ["V-5", "K-5", "Савчук Лев", new_tel, "", "", d3, "11:00", kov, "Осмотр"],  # new
        ["V-6", "K-6", "Савчук Ева", new_tel, "", "", d3, "11:00", bon, "Осмотр"],  # same phone, other name
        ["V-7", "K-5", "Савчук Лев", new_tel, "", "", d3, "12:00", bon, "Осмотр"],  # K-5 again
        ["V-8", "K-8", "Руденко Олег", refused_tel, "", "", d3, "11:00", kov, "Осмотр"],  # V-5's slot
    ]
    r = await finished(api, await upload(api, clinic["id"], "visits", "b.csv", csv_bytes(VISIT_HEADERS, second)))
    assert (r["counts"]["created"], r["counts"]["errors"]) == (5, 1), r
    assert [(e["row"], e["column"]) for e in r["errors"]] == [(7, "Время")], r["errors"]
    v = await visits_of(deps, clinic["id"])
    assert set(v) == {"V-1", "V-2", "V-3", "V-4", "V-5", "V-6", "V-7"}
    assert v["V-3"].patient_id == known["V-1"].patient_id and v["V-4"].patient_id == known["V-2"].patient_id
    assert v["V-7"].patient_id == v["V-5"].patient_id != v["V-6"].patient_id
    assert (v["V-5"].first_visit, v["V-7"].first_visit, v["V-3"].first_visit) == (True, False, False)
    assert all(a.source == "import" for a in v.values())
    async with deps.sessions() as s:
        q = select(Patient).where(Patient.clinic_id == clinic["id"])
        assert sorted(p.full_name for p in (await s.exec(q)).all()) == [
            "Гончар Ирина",
            "Мельник Анна",
            "Савчук Ева",
            "Савчук Лев",
        ]
        assert (await s.exec(select(Patient).where(Patient.phone == refused_tel))).first() is None
        links = (await s.exec(select(PatientMisId).where(PatientMisId.clinic_id == clinic["id"]))).all()
        assert sorted(x.mis_patient_id for x in links) == ["K-1", "K-5", "K-6"]
        entry = (await s.exec(select(WaitlistEntry).where(WaitlistEntry.id == w.json()["id"]))).one()
        assert (entry.state, entry.booked_appointment_id) == ("booked", v["V-3"].id)

    async def journeys_run() -> None:  # each started like a desk booking
        for vid in ("V-3", "V-4", "V-5", "V-6", "V-7"):
            a = await api.as_(Role.operator).get(f"/v1/appointments/{v[vid].id}")
            assert a.status_code == 200 and a.json()["live"] is True, a.text

    await eventually(journeys_run, timeout=60)
    async with deps.sessions() as s:
        q2 = select(Appointment).where(col(Appointment.id).in_([a.id for a in v.values()]))
        assert all(a.journey_started for a in (await s.exec(q2)).all())


async def test_xlsx_bad_rows_do_not_block_good_ones(api: Api, deps: Deps) -> None:
    clinic = await make_clinic(api)
    day = tomorrow()
    good_phone, unknown_doctor_phone = phone(), phone()
    at10 = datetime(day.year, day.month, day.day, 10, 0)
    rows: list[list[Any]] = [
        ["G1", "C1", "Мельник Анна", good_phone, None, None, at10, None, "Коваль Ирина Викторовна", "Осмотр"],
        ["B1", "C2", "Гуменюк Ольга", unknown_doctor_phone, None, None, at10, None, "Доктор Хаус", "Осмотр"],
        ["B2", "C3", "Ткаченко Ирина", phone(), None, None, "32.13.2026", "10:00", "Коваль Ирина Викторовна", ""],
        ["B3", "C4", "", phone(), None, None, at10, None, "Коваль Ирина Викторовна", ""],
        [
            "B4",
            "C5",
            "Лысенко Петр",
            phone(),
            None,
            None,
            datetime(2020, 1, 1, 10, 0),
            None,
            "Коваль Ирина Викторовна",
            "",
        ],
        ["G1", "C6", "Кравец Мария", phone(), None, None, at10, None, "Бондар Олег Петрович", ""],
        ["B6", "C7", "Бойко Иван", "12345", None, None, at10, None, "Бондар Олег Петрович", ""],
        # Same doctor, same time as G1: the slot is taken; nothing of this row is written.
        ["B7", "C8", "Олийнык Степан", phone(), None, None, at10, None, "Коваль Ирина Викторовна", ""],
        ["G2", "C9", "Савченко Юлия", phone(), None, None, day, "11:15", "Бондар Олег Петрович", ""],
    ]
    res = await finished(api, await upload(api, clinic["id"], "visits", "visits.xlsx", xlsx_bytes(VISIT_HEADERS, rows)))
    assert res["counts"]["created"] == 2 and res["counts"]["errors"] == 7, res
    errors = {e["row"]: e for e in res["errors"]}
    assert set(errors) == {3, 4, 5, 6, 7, 8, 9}
    assert errors[3]["column"] == "Врач" and "Доктор Хаус" in errors[3]["reason"]
    assert errors[4]["column"] == "Дата" and "DD.MM.YYYY" in errors[4]["reason"]
    assert errors[5]["column"] == "ФИО"
    assert errors[6]["column"] == "Дата" and "already begun" in errors[6]["reason"]
    assert errors[7]["column"] == "ID визита" and "row 2" in errors[7]["reason"]
    assert errors[8]["column"] == "Телефон"
    assert errors[9]["column"] == "Время" and "already has a visit" in errors[9]["reason"]
    visits = await visits_of(deps, clinic["id"])
    assert set(visits) == {"G1", "G2"}
    async with deps.sessions() as s:  # nothing half-written: no patient for a refused row
        for tel in (unknown_doctor_phone,):
            assert (await s.exec(select(Patient).where(Patient.phone == tel))).first() is None
        q = select(Patient).where(Patient.clinic_id == clinic["id"])
        assert len((await s.exec(q)).all()) == 2


async def test_unreadable_files_are_refused_at_upload(api: Api) -> None:
    clinic = await make_clinic(api)
    desk = api.as_(Role.front_desk)
    r = await desk.post(
        "/v1/imports",
        data={"clinic_id": clinic["id"], "kind": "visits"},
        files={"file": ("x.csv", "Имя;Фамилия\nа;б\n".encode())},
    )
    assert r.status_code == 422 and "ID визита" in r.text, r.text
    r = await desk.post(
        "/v1/imports", data={"clinic_id": clinic["id"], "kind": "visitz"}, files={"file": ("x.csv", b"a;b\n")}
    )
    assert r.status_code == 422, r.text
    r = await desk.post(
        "/v1/imports", data={"clinic_id": "nope", "kind": "visits"}, files={"file": ("x.csv", b"a;b\n")}
    )
    assert r.status_code == 422 and "clinic_id" in r.text, r.text
    r = await api.as_(Role.director).put(f"/v1/clinics/{clinic['id']}/import-mapping", json={"columns": {"fio": "X"}})
    assert r.status_code == 422 and "unknown field" in r.text, r.text


async def test_patients_base_with_guardians_and_custom_mapping(api: Api, deps: Deps) -> None:
    clinic = await make_clinic(api)
    r = await api.as_(Role.director).put(
        f"/v1/clinics/{clinic['id']}/import-mapping",
        json={"columns": {"patient_id": "Карта", "loyalty_points": "Бали"}},
    )
    assert r.status_code == 200 and r.json()["headers"]["patient_id"] == ["Карта"], r.text
    parent = phone()
    headers = [
        "Карта",
        "ФИО",
        "Телефон",
        "Дата рождения",
        "Представитель",
        "ID представителя",
        "Источник",
        "Последний визит",
        "Бали",
    ]
    rows: list[list[Any]] = [
        # The child comes first in the file; its guardian's row follows.
        ["2", "Коваленко Дмитрий", parent, date(2017, 4, 1), "Коваленко Светлана", "1", "Сайт", date(2025, 1, 10), 0],
        ["1", "Коваленко Светлана", parent, date(1985, 9, 9), None, None, "Инстаграм", date(2025, 3, 2), 150],
        ["3", "Иваненко Олег", "", None, "Неизвестный Человек", None, None, None, None],
        ["4", "Сидоренко Нина", phone(), None, None, None, "Голубиная почта", None, None],
    ]
    res = await finished(api, await upload(api, clinic["id"], "patients", "patients.xlsx", xlsx_bytes(headers, rows)))
    assert res["counts"]["created"] == 2 and res["counts"]["errors"] == 2, res
    errs = {e["row"]: e for e in res["errors"]}
    assert errs[4]["column"] == "Представитель" and "import the patient base first" in errs[4]["reason"]
    assert errs[5]["column"] == "Источник"
    async with deps.sessions() as s:
        links = {
            x.mis_patient_id: x.patient_id
            for x in (await s.exec(select(PatientMisId).where(PatientMisId.clinic_id == clinic["id"]))).all()
        }
        mom, kid = await s.get(Patient, links["1"]), await s.get(Patient, links["2"])
        assert mom is not None and kid is not None
        assert kid.guardian_id == mom.id and kid.phone is None and mom.phone == parent
        assert (mom.source, mom.loyalty_points, mom.last_visit_on) == ("instagram", 150, date(2025, 3, 2))
        assert kid.source == "site" and kid.birth_date == date(2017, 4, 1)
    # Again, with one change: one patient updated, the other unchanged.
    rows[1][8] = 175
    res = await finished(
        api, await upload(api, clinic["id"], "patients", "patients.xlsx", xlsx_bytes(headers, rows[:2]))
    )
    assert (res["counts"]["created"], res["counts"]["updated"], res["counts"]["unchanged"]) == (0, 1, 1), res
    # The MIS balance arrives through the points ledger: each row is the difference.
    async with deps.sessions() as s:
        ledger = await points.entries(s, links["1"], 10, 0)
        assert sorted((e.kind, e.delta) for e in ledger) == [("import", 25), ("import", 150)]
        assert await points.balance(s, links["1"]) == 175


async def test_completed_visits_close_open_journeys_and_record_history(api: Api, deps: Deps) -> None:
    clinic = await make_clinic(api)
    tel = phone()
    soon = (datetime.now(KYIV) + timedelta(hours=1)).replace(second=0, microsecond=0)
    booked = [
        ["C-1", "M-1", "Гнатюк Леся", tel, "", "", f"{soon:%d.%m.%Y}", f"{soon:%H:%M}", "Коваль Ирина Викторовна", ""],
        [
            "C-2",
            "M-9",
            "Панченко Ира",
            phone(),
            "",
            "",
            f"{soon:%d.%m.%Y}",
            f"{soon:%H:%M}",
            "Бондар Олег Петрович",
            "",
        ],
    ]
    res = await finished(api, await upload(api, clinic["id"], "visits", "v.csv", csv_bytes(VISIT_HEADERS, booked)))
    assert res["counts"]["created"] == 2, res
    before = await visits_of(deps, clinic["id"])
    yesterday = (datetime.now(KYIV) - timedelta(days=1)).date().strftime("%d.%m.%Y")
    headers = ["ID визита", "№ карты", "ФИО", "Телефон", "Дата", "Время", "Врач", "Услуга", "Статус"]
    rows = [
        # The patient came a little early for C-1 (the MIS is the truth), and had a visit yesterday
        # we never had a journey for; C-2 did not come; H-2 is a no-show we never knew of.
        [
            "C-1",
            "M-1",
            "Гнатюк Леся",
            tel,
            f"{soon:%d.%m.%Y}",
            f"{soon:%H:%M}",
            "Коваль Ирина Викторовна",
            "",
            "пришёл",
        ],
        ["H-1", "M-1", "Гнатюк Леся", tel, yesterday, "09:00", "Бондар Олег Петрович", "Осмотр", "Пришел"],
        [
            "C-2",
            "M-9",
            "Панченко Ира",
            "",
            f"{soon:%d.%m.%Y}",
            f"{soon:%H:%M}",
            "Бондар Олег Петрович",
            "",
            "не пришёл",
        ],
        ["H-2", "M-2", "Новый Пациент", phone(), yesterday, "10:00", "Бондар Олег Петрович", "Осмотр", "неявка"],
        ["H-3", "M-3", "Ещё Пациент", phone(), yesterday, "11:00", "Бондар Олег Петрович", "Осмотр", "может быть"],
    ]
    res = await finished(api, await upload(api, clinic["id"], "completed", "completed.csv", csv_bytes(headers, rows)))
    assert (res["counts"]["created"], res["counts"]["updated"], res["counts"]["errors"]) == (2, 2, 1), res
    assert res["errors"][0]["row"] == 6 and res["errors"][0]["column"] == "Статус"
    desk = api.as_(Role.operator)

    async def closed() -> None:
        c1 = (await desk.get(f"/v1/appointments/{before['C-1'].id}")).json()
        c2 = (await desk.get(f"/v1/appointments/{before['C-2'].id}")).json()
        assert (c1["stage"], c2["stage"]) == ("finished", "no_show"), (c1, c2)

    await eventually(closed, timeout=60)
    visits = await visits_of(deps, clinic["id"])
    assert visits["H-1"].stage == "finished" and visits["H-1"].patient_id == before["C-1"].patient_id
    assert visits["H-1"].first_visit is True  # the patient's first visit with us
    assert visits["H-2"].stage == "no_show"

    async def synced() -> None:
        c1 = (await visits_of(deps, clinic["id"]))["C-1"]
        assert c1.stage == "finished" and c1.first_visit is False  # the second within 6 months

    await eventually(synced, timeout=30)
    # Importing the same completed file again changes nothing.
    res = await finished(api, await upload(api, clinic["id"], "completed", "completed.csv", csv_bytes(headers, rows)))
    assert (res["counts"]["created"], res["counts"]["updated"], res["counts"]["unchanged"]) == (0, 0, 4), res


async def test_drop_folder_schedule_triggered_by_hand(api: Api, deps: Deps, client: Client, settings: Settings) -> None:
    code = f"podil-{uuid.uuid4().hex[:6]}"
    clinic = await make_clinic(api, code=code)
    r = await api.as_(Role.director).put(f"/v1/clinics/{clinic['id']}/import-mapping", json={"daily_at": "07:15"})
    assert r.status_code == 200 and r.json()["schedule_id"] == f"mis-drop-{clinic['id']}", r.text
    desc = await client.get_schedule_handle(f"mis-drop-{clinic['id']}").describe()
    spec = desc.schedule.spec
    assert spec.time_zone_name == "Europe/Kyiv"
    assert spec.calendars[0].hour[0].start == 7 and spec.calendars[0].minute[0].start == 15

    assert settings.import_dir is not None
    folder = Path(settings.import_dir) / code
    folder.mkdir(parents=True, exist_ok=True)
    d = tomorrow().strftime("%d.%m.%Y")
    content = csv_bytes(
        VISIT_HEADERS, [["D-1", "", "Руденко Ян", phone(), "", "", d, "15:00", "Бондар Олег Петрович", ""]]
    )
    (folder / "visits-tomorrow.csv").write_bytes(content)
    (folder / "visits.csv.part").write_bytes(b"still being written")

    r = await api.as_(Role.front_desk).post("/v1/imports/scan", json={"clinic_id": clinic["id"]})
    assert r.status_code == 202, r.text

    async def imported() -> list[dict[str, Any]]:
        runs = (await api.as_(Role.operator).get(f"/v1/imports?clinic_id={clinic['id']}")).json()
        assert len(runs) == 1 and runs[0]["state"] == "completed", runs
        return list(runs)

    runs = await eventually(imported, timeout=90, interval=0.5)
    assert runs[0]["source"] == "drop" and runs[0]["counts"]["created"] == 1
    assert not (folder / "visits-tomorrow.csv").exists()
    assert [p.name.endswith("-visits-tomorrow.csv") for p in (folder / "processed").iterdir()] == [True]
    assert (folder / "visits.csv.part").exists()  # a file still being written is left alone

    # The same content dropped again (another name) is not imported twice: it is moved aside.
    (folder / "visits-again.csv").write_bytes(content)
    await client.get_schedule_handle(f"mis-drop-{clinic['id']}").trigger()

    async def set_aside() -> None:
        assert (folder / "duplicates").is_dir() and len(list((folder / "duplicates").iterdir())) == 1

    await eventually(set_aside, timeout=90, interval=0.5)
    runs = (await api.as_(Role.operator).get(f"/v1/imports?clinic_id={clinic['id']}")).json()
    assert len(runs) == 1
    assert set(await visits_of(deps, clinic["id"])) == {"D-1"}


async def test_rows_ledger_counts_every_row_once(deps: Deps, api: Api) -> None:
    """Counts come from the per-row ledger: one entry per file row, whatever happened."""
    clinic = await make_clinic(api)
    d = tomorrow(3).strftime("%d.%m.%Y")
    rows = [
        [f"L{i}", "", f"Пациент {i}", phone(), "", "", d, f"{8 + i}:00", "Коваль Ирина Викторовна", ""]
        for i in range(5)
    ]
    res = await finished(api, await upload(api, clinic["id"], "visits", "l.csv", csv_bytes(VISIT_HEADERS, rows)))
    async with deps.sessions() as s:
        ledger = (await s.exec(select(ImportRow).where(ImportRow.import_id == res["id"]))).all()
    assert sorted(r.row for r in ledger) == [2, 3, 4, 5, 6]
    assert all(r.state == "done" for r in ledger)


async def test_worker_killed_mid_import_applies_no_row_twice(
    api: Api, deps: Deps, client: Client, settings: Settings, tmp_path: Path
) -> None:
    import asyncio
    import signal
    import subprocess

    from sqlalchemy import func

    from core import imports
    from models.core import Clinic
    from models.imports import IMPORT_WORKFLOW, ImportInput, ImportKind, ImportRun
    from tests.test_worker_killed import _start_worker, _worker_env

    clinic = await make_clinic(api)
    r = await api.as_(Role.director).put(
        f"/v1/clinics/{clinic['id']}/import-mapping", json={"default_duration_minutes": 5}
    )
    assert r.status_code == 200, r.text
    n = 240
    # One doctor, 100 five-minute slots a day over four days: no two visits clash.
    rows = []
    for i in range(n):
        d = tomorrow(4 + i // 100)
        slot = i % 100
        rows.append(
            [
                f"K{i}",
                f"P{i}",
                f"Пациент Номер {i}",
                phone(),
                "",
                "",
                f"{d:%d.%m.%Y}",
                f"{8 + slot // 12:02d}:{slot % 12 * 5:02d}",
                "Коваль Ирина Викторовна",
                "",
            ]
        )
    tq = f"import-killed-{uuid.uuid4().hex[:8]}"
    async with deps.sessions() as s:
        c = await s.get(Clinic, clinic["id"])
        assert c is not None
        run, _ = await imports.register(
            s,
            clinic=c,
            kind=ImportKind.visits,
            file_name="big.csv",
            content=csv_bytes(VISIT_HEADERS, rows),
            source="cli",
        )
    env = _worker_env(settings, tq)
    log = tmp_path / "worker.log"
    worker = _start_worker(env, log)
    try:
        await client.start_workflow(
            IMPORT_WORKFLOW, ImportInput(run.id, batch_size=20, concurrency=2), id=run.workflow_id, task_queue=tq
        )

        async def done_rows() -> int:
            async with deps.sessions() as s:
                q = (
                    select(func.count())
                    .select_from(ImportRow)
                    .where(ImportRow.import_id == run.id, ImportRow.state == "done")
                )
                return int((await s.exec(q)).one())

        async def some_applied() -> None:
            assert await done_rows() >= 40

        await eventually(some_applied, timeout=120, interval=0.1)
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        assert await done_rows() < n, "the import finished before the worker could be killed"
        worker = _start_worker(env, log)

        async def completed() -> None:
            async with deps.sessions() as s:
                r = await s.get(ImportRun, run.id)
                assert r is not None and r.state == "completed", r and r.state

        await eventually(completed, timeout=240, interval=0.5)
        async with deps.sessions() as s:
            r = await s.get(ImportRun, run.id)
            assert r is not None
            st = await imports.status(s, r)
            assert st.counts["created"] == n and st.counts["errors"] == 0, (st.counts, st.errors[:5], st.total_rows)
            appts = (await s.exec(select(Appointment).where(Appointment.clinic_id == clinic["id"]))).all()
            assert len(appts) == n and {a.mis_visit_id for a in appts} == {f"K{i}" for i in range(n)}
            assert all(a.version == 1 for a in appts)
            patients = (await s.exec(select(Patient).where(Patient.clinic_id == clinic["id"]))).all()
            assert len(patients) == n

        async def one_journey_each() -> None:
            count = await client.count_workflows(f"ClinicId = '{clinic['id']}' AND WorkflowType = 'AppointmentJourney'")
            assert count.count == n, count.count

        await eventually(one_journey_each, timeout=60, interval=1)
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
        await asyncio.sleep(0)


async def test_cli_import_follows_with_progress_and_lists_refused_rows(
    api: Api, deps: Deps, settings: Settings, tmp_path: Path
) -> None:
    import asyncio
    import sys

    from tests.test_worker_killed import _worker_env

    code = f"cli-{uuid.uuid4().hex[:6]}"
    clinic = await make_clinic(api, code=code)
    d = tomorrow().strftime("%d.%m.%Y")
    rows = [
        ["X1", "", "Левченко Ива", phone(), "", "", d, "09:00", "Бондар Олег Петрович", ""],
        ["X2", "", "Мороз Ян", phone(), "", "", d, "25:00", "Бондар Олег Петрович", ""],
        ["X3", "", "Клименко Ия", phone(), "", "", d, "10:00", "Бондар Олег Петрович", ""],
    ]
    path = tmp_path / "visits.xlsx"
    path.write_bytes(xlsx_bytes(VISIT_HEADERS, rows))
    env = _worker_env(settings, settings.temporal_task_queue)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli",
        "import",
        str(path),
        "--clinic",
        code,
        "--kind",
        "visits",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=180)
    text = out.decode()
    assert proc.returncode == 0, text
    assert "created: 2" in text and "errors: 1" in text, text
    assert "row 3, column 'Время': '25:00' is not a time of day" in text, text
    assert set(await visits_of(deps, clinic["id"])) == {"X1", "X3"}

    bad = tmp_path / "bad.csv"
    bad.write_bytes("Кто;Когда\nя;завтра\n".encode("cp1251"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli",
        "import",
        str(bad),
        "--clinic",
        code,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 2 and "no column for visit_id" in out.decode(), out.decode()


async def test_worker_queues_setting_picks_the_workers_a_process_runs(deps: Deps, client: Client) -> None:
    """WORKER_QUEUES: one process may serve both queues (the default) or only the journeys'
    or only the imports' (a big import then gets its own process)."""
    from dataclasses import replace

    from worker import build_workers

    for which in ("all", "journeys", "imports"):
        tq = f"wq-{uuid.uuid4().hex[:8]}"  # not the session worker's queue
        want = {"all": [tq, import_queue(tq)], "journeys": [tq], "imports": [import_queue(tq)]}[which]
        settings = deps.settings.model_copy(update={"worker_queues": which, "temporal_task_queue": tq})
        assert [w.task_queue for w in build_workers(client, replace(deps, settings=settings))] == want
    assert Settings(WORKER_QUEUES="imports").worker_queues == "imports"
