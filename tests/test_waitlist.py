"""The waiting list (issue 12) on the real dev server: the /v1/waitlist API (bad input, another
branch), and freed slots offered to waitlisted patients by the slot-offer journey — two "yes"
answers at the same instant and exactly one visit, an exhausted list raising a task for the
front desk, a reschedule freeing the old time."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import col, select
from temporalio.client import Client

from activities.treatment import TreatmentActivities
from activities.waitlist import WaitlistActivities, booking_key
from api.repair import repair_slot_offers
from cli import _create_user
from contracts.treatment_plan import PlanBooking
from contracts.waitlist import BookRequest, CandidatesRequest, slot_offer_workflow_id
from core.deps import Deps
from core.settings import Settings
from models.appointment import Appointment
from models.conversation import OpenQuestion
from models.core import MessageLog, OperatorTask, Role
from models.waitlist import SlotOffer, WaitlistEntry, fits
from tests.support.api import Api
from tests.support.appointments import add_patient, at, make_clinic
from tests.support.live import eventually
from workflows.slot_offer import SlotOfferJourney

# Slots a few minutes ahead: no reminder is due (reminder_lead 300 s in the FAST policy) and
# the offer's stop time (stop_before 20 s) leaves the journey ample time under load.
WAITLIST_POLICY = {"waitlist_wave_size": 3, "waitlist_wave_interval": 600, "waitlist_stop_before": 20}
IN_A_WEEK = (date.today() + timedelta(days=7)).isoformat()


async def _patient(api: Api, clinic: dict[str, Any], name: str, **kw: Any) -> str:
    return await add_patient(api, clinic, name, **kw)


async def _waitlist(api: Api, clinic: dict[str, Any], patient_id: str, **kw: Any) -> dict[str, Any]:
    body = {
        "patient_id": patient_id,
        "clinic_id": clinic["id"],
        "doctor_id": clinic["doctor_id"],
        "service": "Check-up",
        "until": IN_A_WEEK,
        **kw,
    }
    r = await api.as_(Role.front_desk).post("/v1/waitlist", json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


async def _book(api: Api, clinic: dict[str, Any], in_seconds: float, minutes: int = 30) -> dict[str, Any]:
    r = await api.as_(Role.front_desk).post(
        "/v1/appointments",
        json={
            "patient_id": clinic["patient_id"],
            "clinic_id": clinic["id"],
            "doctor_id": clinic["doctor_id"],
            "starts_at": at(in_seconds),
            "duration_minutes": minutes,
            "service": "Check-up",
        },
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def _offer(deps: Deps, freed_by: str) -> SlotOffer:
    async def found() -> SlotOffer:
        async with deps.sessions() as s:
            offer = (await s.exec(select(SlotOffer).where(SlotOffer.freed_by == freed_by))).first()
        assert offer is not None and offer.journey_started, "no slot offer started yet"
        return offer

    return await eventually(found, timeout=60)


async def _sent(deps: Deps, patient_id: str, kind: str) -> list[MessageLog]:
    async with deps.sessions() as s:
        q = select(MessageLog).where(
            MessageLog.patient_id == patient_id, MessageLog.direction == "out", MessageLog.kind == kind
        )
        return list((await s.exec(q)).all())


async def _asked(deps: Deps, offer_id: str, patients: list[str]) -> None:
    async def all_asked() -> None:
        async with deps.sessions() as s:
            q = select(OpenQuestion).where(OpenQuestion.subject_id == offer_id, OpenQuestion.state == "open")
            asked = {qq.patient_id for qq in (await s.exec(q)).all()}
        assert asked == set(patients), asked

    await eventually(all_asked, timeout=60)


async def _reply(api: Api, patient_id: str, text: str) -> dict[str, Any]:
    r = await api.as_(Role.operator).post("/v1/sandbox/reply", json={"patient_id": patient_id, "text": text})
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _entry(deps: Deps, entry_id: str) -> WaitlistEntry:
    async with deps.sessions() as s:
        e = await s.get(WaitlistEntry, entry_id)
    assert e is not None
    return e


# ----------------------------------------------------------------------------- the API
async def test_waitlist_api_validates_and_keeps_branches_apart(api: Api, settings: Settings) -> None:
    clinic = await make_clinic(api)
    other = await make_clinic(api)
    pid = clinic["patient_id"]
    desk = api.as_(Role.front_desk)
    good: dict[str, Any] = {
        "patient_id": pid,
        "clinic_id": clinic["id"],
        "doctor_id": clinic["doctor_id"],
        "service": "Hygiene",
        "days": [2, 4, 4],
        "windows": [{"start": "09:00", "end": "13:00"}],
        "until": IN_A_WEEK,
    }
    r = await desk.post("/v1/waitlist", json=good)
    assert r.status_code == 201, r.text
    entry = r.json()
    assert entry["days"] == [2, 4] and entry["state"] == "active" and entry["service_code"] == "hygiene", entry
    assert (await desk.post("/v1/waitlist", json=good)).status_code == 409  # already on this list

    # Bad input: 422 naming the field, nothing written.
    bad_cases: list[tuple[dict[str, Any], str]] = [
        ({"until": "2020-01-01"}, "until"),
        ({"days": [0]}, "days"),
        ({"windows": [{"start": "13:00", "end": "09:00"}]}, "windows"),
        ({"windows": [{"start": "9am", "end": "13:00"}]}, "windows"),
        ({"doctor_id": None}, "specialty"),
        ({"doctor_id": None, "specialty": "orthodontics"}, "specialty"),
        ({"doctor_id": other["doctor_id"]}, "doctor_id"),
        ({"service": None}, "service"),
        ({"service_code": "no-such-service", "service": None}, "service_code"),
        ({"patient_id": uuid.uuid4().hex}, "patient_id"),
        ({"clinic_id": uuid.uuid4().hex}, "clinic_id"),
        ({"duration_minutes": 2}, "duration_minutes"),
    ]
    for change, field in bad_cases:
        r = await desk.post("/v1/waitlist", json={**good, "service": "Whitening", **change})
        assert r.status_code == 422, (change, r.text)
        assert field in r.text, (change, r.text)
    r = await desk.get("/v1/waitlist", params={"patient_id": pid})
    assert [e["id"] for e in r.json()] == [entry["id"]]
    assert (await desk.get("/v1/waitlist", params={"state": "nope"})).status_code == 422

    # A specialty instead of a doctor: any doctor of it.
    r = await desk.post("/v1/waitlist", json={**good, "doctor_id": None, "specialty": "implantology"})
    assert r.status_code == 201, r.text

    # Another branch's front desk: 404 for the entry, 422 for the clinic, not in its list.
    name = f"desk-{uuid.uuid4().hex[:6]}"
    await _create_user(settings.database_url, name, "branch-pass-123", Role.front_desk, None, None, False, other["id"])
    r = await api.http.post("/v1/auth/token", data={"username": name, "password": "branch-pass-123"})
    h = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert (await api.http.get(f"/v1/waitlist/{entry['id']}", headers=h)).status_code == 404
    assert (await api.http.delete(f"/v1/waitlist/{entry['id']}", headers=h)).status_code == 404
    assert (await api.http.post("/v1/waitlist", headers=h, json=good)).status_code == 422
    assert entry["id"] not in [e["id"] for e in (await api.http.get("/v1/waitlist", headers=h)).json()]
    # Roles: a doctor reads, cannot add.
    assert (await api.as_(Role.doctor).get(f"/v1/waitlist/{entry['id']}")).status_code == 200
    assert (await api.as_(Role.doctor).post("/v1/waitlist", json=good)).status_code == 403

    # Off the list: 204, kept as removed.
    assert (await desk.delete(f"/v1/waitlist/{entry['id']}")).status_code == 204
    assert (await desk.get(f"/v1/waitlist/{entry['id']}")).json()["state"] == "removed"
    assert (await desk.delete(f"/v1/waitlist/{entry['id']}")).status_code == 204
    assert (await desk.post("/v1/waitlist", json=good)).status_code == 201  # may join again


# ----------------------------------------------------------------------------- offers
async def test_two_yes_at_once_exactly_one_gets_the_freed_slot(api: Api, deps: Deps) -> None:
    clinic = await make_clinic(api, **WAITLIST_POLICY)
    patients = [await _patient(api, clinic, f"Waiting {n}") for n in ("Anna", "Borys", "Vira")]
    entries = [await _waitlist(api, clinic, p) for p in patients]
    # Someone whose wish does not fit (weekend mornings only) is never asked.
    unfit = await _patient(api, clinic, "Unfit Hanna")
    slot_day = (datetime.now(UTC) + timedelta(seconds=240)).astimezone(ZoneInfo("Europe/Kyiv")).isoweekday()
    await _waitlist(api, clinic, unfit, days=[d for d in range(1, 8) if d != slot_day])

    visit = await _book(api, clinic, in_seconds=240)
    r = await api.as_(Role.front_desk).post(f"/v1/appointments/{visit['id']}/cancel", json={"reason": "can't come"})
    assert r.status_code == 200, r.text

    offer = await _offer(deps, visit["id"])
    assert offer.reason == "cancelled" and offer.workflow_id == slot_offer_workflow_id(offer.id)
    await _asked(deps, offer.id, patients)  # one wave of three, each asked on their channel
    for p in patients:
        (msg,) = await _sent(deps, p, "waitlist_offer")
        assert "Dr Shevchenko" in msg.body and "Консультация" in msg.body, msg.body  # the catalogue name, in ru
    assert await _sent(deps, unfit, "waitlist_offer") == []

    # Two patients answer yes at the same instant; the third has not answered yet.
    first, second = await asyncio.gather(_reply(api, patients[0], "да"), _reply(api, patients[1], "так"))
    assert first["outcome"] == second["outcome"] == "signalled", (first, second)
    assert first["subject_id"] == second["subject_id"] == offer.id

    async def booked() -> list[Appointment]:
        async with deps.sessions() as s:
            q = select(Appointment).where(Appointment.clinic_id == clinic["id"], col(Appointment.source) == "waitlist")
            rows = list((await s.exec(q)).all())
            done = await s.get(SlotOffer, offer.id)
        assert len(rows) == 1 and done is not None and done.state == "booked", rows
        return rows

    (appt,) = await eventually(booked, timeout=60)
    winner = appt.patient_id
    loser = patients[1] if winner == patients[0] else patients[0]
    assert winner in patients[:2]
    assert appt.starts_at == offer.starts_at and appt.doctor_id == clinic["doctor_id"]

    # The winner's visit has its own journey (booking notice), and they left the list.
    async def noticed() -> None:
        assert await _sent(deps, winner, "booking_notice")

    await eventually(noticed, timeout=60)
    r = await api.as_(Role.front_desk).get(f"/v1/appointments/{appt.id}")
    assert r.status_code == 200 and r.json()["stage"] == "booked", r.text
    assert r.json()["source"] == "waitlist" and r.json()["live"], r.json()
    # The list shows where each visit came from and filters on it.
    desk = api.as_(Role.front_desk)
    r = await desk.get("/v1/appointments", params={"clinic_id": clinic["id"], "source": "waitlist"})
    assert r.status_code == 200 and [(a["id"], a["source"]) for a in r.json()] == [(appt.id, "waitlist")], r.text
    r = await desk.get("/v1/appointments", params={"clinic_id": clinic["id"], "source": "desk"})
    assert r.status_code == 200 and [(a["id"], a["source"]) for a in r.json()] == [(visit["id"], "desk")], r.text
    r = await desk.get("/v1/appointments", params={"source": "phone"})
    assert r.status_code == 422 and "source" in r.text, r.text
    won = next(e for e in entries if e["patient_id"] == winner)
    assert (await _entry(deps, won["id"])).state == "booked"

    # The other "yes" hears it is taken and stays on the list.
    async def sorry() -> None:
        told = await _sent(deps, loser, "waitlist_taken")  # (eventually retries assertions only)
        assert len(told) == 1 and "заняли" in told[0].body, told

    await eventually(sorry, timeout=60)
    assert await _sent(deps, patients[2], "waitlist_taken") == []  # has not answered: not told

    # A later yes: taken, told so, no second visit; everyone but the winner stays listed.
    r = await _reply(api, patients[2], "да")
    assert r["outcome"] == "signalled" and r["subject_id"] == offer.id, r

    async def late_sorry() -> None:
        assert len(await _sent(deps, patients[2], "waitlist_taken")) == 1

    await eventually(late_sorry, timeout=60)
    assert len(await booked()) == 1
    for e in entries:
        if e["patient_id"] != winner:
            assert (await _entry(deps, e["id"])).state == "active"


async def test_nobody_takes_it_the_front_desk_gets_a_task(api: Api, deps: Deps) -> None:
    """A reschedule frees the old time; the only waitlisted patient says no: the list is
    exhausted, the offer closes and the front desk has a task naming the slot."""
    clinic = await make_clinic(api, **{**WAITLIST_POLICY, "waitlist_wave_interval": 3})
    waiting = await _patient(api, clinic, "Only Olha")
    await _waitlist(api, clinic, waiting)
    visit = await _book(api, clinic, in_seconds=240)
    r = await api.as_(Role.front_desk).post(
        f"/v1/appointments/{visit['id']}/reschedule", json={"starts_at": at(3 * 3600)}
    )
    assert r.status_code == 200, r.text

    offer = await _offer(deps, visit["id"])
    assert offer.reason == "rescheduled" and offer.starts_at == datetime.fromisoformat(visit["starts_at"])
    await _asked(deps, offer.id, [waiting])
    await _reply(api, waiting, "ні")

    async def unfilled() -> OperatorTask:
        async with deps.sessions() as s:
            q = select(OperatorTask).where(OperatorTask.subject_id == offer.id)
            task = (await s.exec(q)).first()
            done = await s.get(SlotOffer, offer.id)
        assert task is not None and done is not None and done.state == "exhausted"
        return task

    task = await eventually(unfilled, timeout=60)
    assert task.kind == "waitlist_unfilled" and task.clinic_id == clinic["id"]
    assert task.details["doctor_id"] == clinic["doctor_id"] and task.details["offered"] == 1
    r = await api.as_(Role.front_desk).get("/v1/tasks", params={"kind": "waitlist_unfilled", "state": "open"})
    assert task.id in [t["id"] for t in r.json()], r.text
    async with deps.sessions() as s:  # nobody waits for answers to it any more
        q = select(OpenQuestion).where(OpenQuestion.subject_id == offer.id, OpenQuestion.state == "open")
        assert (await s.exec(q)).all() == []


async def test_no_offer_too_close_to_the_slot_or_without_a_list(api: Api, deps: Deps) -> None:
    clinic = await make_clinic(api, **WAITLIST_POLICY)
    visit = await _book(api, clinic, in_seconds=600)
    r = await api.as_(Role.front_desk).post(f"/v1/appointments/{visit['id']}/cancel", json={"reason": "x"})
    assert r.status_code == 200, r.text  # nobody on the list: nothing to offer

    async def cancelled(appointment_id: str) -> None:
        async with deps.sessions() as s:
            a = await s.get(Appointment, appointment_id)
        assert a is not None and a.stage == "cancelled"

    await eventually(lambda: cancelled(visit["id"]), timeout=60)  # synced before anyone waits
    await _waitlist(api, clinic, await _patient(api, clinic, "Late Lesia"))
    soon = await _book(api, clinic, in_seconds=15, minutes=5)  # inside stop_before (20 s)
    r = await api.as_(Role.front_desk).post(f"/v1/appointments/{soon['id']}/cancel", json={"reason": "x"})
    assert r.status_code == 200, r.text

    await eventually(lambda: cancelled(soon["id"]), timeout=60)
    async with deps.sessions() as s:
        q = select(SlotOffer).where(col(SlotOffer.freed_by).in_([visit["id"], soon["id"]]))
        assert (await s.exec(q)).all() == []


async def test_desk_booking_the_slot_first_wins_over_a_yes(api: Api, deps: Deps) -> None:
    """The desk books the freed slot by phone while the offer is out: the patient's "yes"
    then meets the doctor's slot lock, hears it is taken and stays on the list."""
    clinic = await make_clinic(api, **WAITLIST_POLICY)
    waiting = await _patient(api, clinic, "Quick Kateryna")
    entry = await _waitlist(api, clinic, waiting)
    visit = await _book(api, clinic, in_seconds=240)
    r = await api.as_(Role.front_desk).post(f"/v1/appointments/{visit['id']}/cancel", json={"reason": "x"})
    assert r.status_code == 200, r.text
    offer = await _offer(deps, visit["id"])
    await _asked(deps, offer.id, [waiting])

    caller = await _patient(api, clinic, "Caller Petro")
    r = await api.as_(Role.front_desk).post(
        "/v1/appointments",
        json={
            "patient_id": caller,
            "clinic_id": clinic["id"],
            "doctor_id": clinic["doctor_id"],
            "starts_at": offer.starts_at.isoformat(),
            "duration_minutes": 30,
            "service": "Check-up",
        },
    )
    assert r.status_code == 201, r.text
    assert (await _reply(api, waiting, "да"))["outcome"] == "signalled"

    async def taken() -> None:
        async with deps.sessions() as s:
            done = await s.get(SlotOffer, offer.id)
        assert done is not None and done.state == "taken"
        told = await _sent(deps, waiting, "waitlist_taken")
        assert len(told) == 1 and "заняли" in told[0].body, told

    await eventually(taken, timeout=60)
    assert (await _entry(deps, entry["id"])).state == "active"
    async with deps.sessions() as s:
        q = select(Appointment).where(Appointment.clinic_id == clinic["id"], col(Appointment.source) == "waitlist")
        assert (await s.exec(q)).all() == []


async def test_a_no_show_reported_before_the_visit_frees_its_slot(api: Api, deps: Deps) -> None:
    """The patient says they will not come today: marked a no-show ahead of a later slot the
    same day, that slot goes to the waiting list."""
    clinic = await make_clinic(api, **WAITLIST_POLICY)
    waiting = await _patient(api, clinic, "Patient Pavlo")
    await _waitlist(api, clinic, waiting, duration_minutes=20)
    visit = await _book(api, clinic, in_seconds=240)
    r = await api.as_(Role.front_desk).post(f"/v1/appointments/{visit['id']}/no-show")
    assert r.status_code == 200 and r.json()["stage"] == "no_show", r.text
    offer = await _offer(deps, visit["id"])
    assert offer.reason == "no_show" and offer.duration_minutes == 30
    await _asked(deps, offer.id, [waiting])
    (msg,) = await _sent(deps, waiting, "waitlist_offer")
    assert "Dr Shevchenko" in msg.body


def test_what_a_wish_accepts() -> None:
    """Weekday, window (the whole visit inside it), length and until-date, clinic-local."""
    kyiv = ZoneInfo("Europe/Kyiv")
    tue_10 = datetime(2026, 12, 1, 10, 0, tzinfo=kyiv)  # a Tuesday
    e = WaitlistEntry(
        clinic_id="c",
        patient_id="p",
        service="x",
        days=[2, 4],
        windows=[{"start": "09:00", "end": "11:00"}],
        until=date(2026, 12, 1),
    )
    assert fits(e, tue_10, 30, "Europe/Kyiv")
    assert fits(e, tue_10.astimezone(UTC), 60, "Europe/Kyiv")  # 10:00-11:00 local, UTC given
    assert not fits(e, tue_10 + timedelta(minutes=31), 30, "Europe/Kyiv")  # ends 11:01
    assert not fits(e, tue_10 + timedelta(days=1), 30, "Europe/Kyiv")  # Wednesday
    assert not fits(e, tue_10 + timedelta(days=2), 30, "Europe/Kyiv")  # Thursday, after until
    assert not fits(e, tue_10 - timedelta(hours=2), 30, "Europe/Kyiv")  # 08:00, before the window
    e.duration_minutes = 45
    assert not fits(e, tue_10, 30, "Europe/Kyiv")  # a 30-minute gap cannot hold a 45-minute visit
    e.days, e.windows, e.duration_minutes = [], [], None
    assert fits(e, tue_10 - timedelta(hours=9), 30, "Europe/Kyiv")  # any day, any time


async def test_an_offer_left_unstarted_is_started_by_the_repair_loop(
    api: Api, deps: Deps, client: Client, settings: Settings
) -> None:
    """A process killed between recording a freed slot and starting its journey: every API's
    repair loop starts it (as it does for bookings), once."""
    clinic = await make_clinic(api, **WAITLIST_POLICY)
    waiting = await _patient(api, clinic, "Repaired Roman")
    await _waitlist(api, clinic, waiting)
    row = SlotOffer(
        freed_key=f"{uuid.uuid4().hex}:v1",
        clinic_id=clinic["id"],
        doctor_id=clinic["doctor_id"],
        starts_at=datetime.now(UTC) + timedelta(seconds=240),
        duration_minutes=30,
        freed_by=uuid.uuid4().hex,
        reason="cancelled",
        workflow_id="",
    )
    row.workflow_id = slot_offer_workflow_id(row.id)
    async with deps.sessions() as s:
        s.add(row)
        await s.commit()
    assert await repair_slot_offers(deps.sessions, client, settings, older_than=timedelta(0)) >= 1
    assert await repair_slot_offers(deps.sessions, client, settings, older_than=timedelta(0)) == 0
    async with deps.sessions() as s:
        started = await s.get(SlotOffer, row.id)
    assert started is not None and started.journey_started
    await _asked(deps, row.id, [waiting])


async def test_waves_wait_out_the_quiet_hours_unless_the_slot_is_too_near(api: Api, deps: Deps, client: Client) -> None:
    """No offer goes out in the clinic's quiet hours: the wave waits for their end. A slot
    whose stop time comes before that end is same-day-critical: offered at once."""
    kyiv = ZoneInfo("Europe/Kyiv")
    now = datetime.now(kyiv)
    quiet = {"start": (now - timedelta(hours=1)).strftime("%H:%M"), "end": (now + timedelta(hours=2)).strftime("%H:%M")}
    clinic = await make_clinic(api, **{**WAITLIST_POLICY, "quiet_hours": quiet})
    waiting = await _patient(api, clinic, "Night Nadia")
    await _waitlist(api, clinic, waiting)

    late = await _book(api, clinic, in_seconds=4 * 3600)  # its stop time is after the quiet end
    r = await api.as_(Role.front_desk).post(f"/v1/appointments/{late['id']}/cancel", json={"reason": "x"})
    assert r.status_code == 200, r.text
    offer = await _offer(deps, late["id"])
    handle = client.get_workflow_handle_for(SlotOfferJourney.run, offer.workflow_id)

    async def held() -> None:
        view = await handle.query(SlotOfferJourney.view)
        assert view.next_wave_at is not None and view.waves == 0, view
        end = view.next_wave_at.astimezone(kyiv)
        assert end.strftime("%H:%M") == quiet["end"] and end > now, end

    await eventually(held, timeout=60)
    assert await _sent(deps, waiting, "waitlist_offer") == []

    soon = await _book(api, clinic, in_seconds=90 * 60)  # stop time before the quiet end
    r = await api.as_(Role.front_desk).post(f"/v1/appointments/{soon['id']}/cancel", json={"reason": "x"})
    assert r.status_code == 200, r.text
    urgent = await _offer(deps, soon["id"])
    await _asked(deps, urgent.id, [waiting])
    await handle.terminate("test over")  # the held offer would wait an hour


# ------------------------------------------------------------- leaving the list
async def test_a_booking_that_fulfils_the_wish_takes_the_patient_off_the_list(api: Api, deps: Deps) -> None:
    """Booked at the desk with the doctor before `until` (the shared booking path, as an MIS
    import or another offer): the entry is `booked` with that visit, and a slot freed later
    is not offered to the patient."""
    clinic = await make_clinic(api, **WAITLIST_POLICY)
    desk = api.as_(Role.front_desk)
    waiting = await _patient(api, clinic, "Booked Bohdan")
    entry = await _waitlist(api, clinic, waiting)
    r = await desk.post(
        "/v1/appointments",
        json={
            "patient_id": waiting,
            "clinic_id": clinic["id"],
            "doctor_id": clinic["doctor_id"],
            "starts_at": at(2 * 86400),
            "duration_minutes": 30,
            "service": "Check-up",
        },
    )
    assert r.status_code == 201 and r.json()["source"] == "desk", r.text
    booked = r.json()["id"]
    r = await desk.get(f"/v1/waitlist/{entry['id']}")
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["booked_appointment_id"]) == ("booked", booked), r.json()
    r = await desk.get("/v1/waitlist", params={"clinic_id": clinic["id"]})
    assert r.status_code == 200 and r.json() == [], r.text

    # A slot freed afterwards is not offered to them (nobody else is listed: no offer at all).
    visit = await _book(api, clinic, in_seconds=240)
    r = await desk.post(f"/v1/appointments/{visit['id']}/cancel", json={"reason": "x"})
    assert r.status_code == 200, r.text

    async def cancelled() -> None:
        async with deps.sessions() as s:
            a = await s.get(Appointment, visit["id"])
        assert a is not None and a.stage == "cancelled"

    await eventually(cancelled, timeout=60)
    async with deps.sessions() as s:
        assert (await s.exec(select(SlotOffer).where(SlotOffer.freed_by == visit["id"]))).all() == []
    assert await _sent(deps, waiting, "waitlist_offer") == []


async def test_a_plan_visit_that_fulfils_the_wish_takes_the_patient_off_the_list(api: Api, deps: Deps) -> None:
    """A treatment plan's stage books its visit in its own activity (the plan's journey then
    starts the visit's): that booking takes the patient off the list too, marked `plan`."""
    clinic = await make_clinic(api)
    waiting = await _patient(api, clinic, "Planned Polina")
    entry = await _waitlist(api, clinic, waiting)
    appointment_id = uuid.uuid4().hex
    booked = await TreatmentActivities(deps).book_plan_appointment(
        PlanBooking(
            appointment_id=appointment_id,
            idempotency_key=f"test-plan:{appointment_id}",
            plan_id=uuid.uuid4().hex,
            clinic_id=clinic["id"],
            patient_id=waiting,
            doctor_id=clinic["doctor_id"],
            starts_at=datetime.now(UTC).replace(microsecond=0) + timedelta(days=2),
            duration_minutes=30,
            service="Check-up",
        )
    )
    assert booked.created, booked
    after = await _entry(deps, entry["id"])
    assert (after.state, after.booked_appointment_id) == ("booked", appointment_id)
    async with deps.sessions() as s:
        row = await s.get(Appointment, appointment_id)
    assert row is not None and row.source == "plan"


async def test_an_entry_past_its_until_reads_expired(api: Api, deps: Deps) -> None:
    """Past `until` (the clinic's date) an active entry reads `expired` in the entry, in the
    list and in its filter; it no longer blocks a new wish and can still be removed."""
    clinic = await make_clinic(api)
    desk = api.as_(Role.front_desk)
    patient = await _patient(api, clinic, "Late Larysa")
    old = await _waitlist(api, clinic, patient)
    today = datetime.now(ZoneInfo("Europe/Kyiv")).date()
    async with deps.sessions() as s:
        e = await s.get(WaitlistEntry, old["id"])
        assert e is not None
        e.until = today - timedelta(days=1)
        s.add(e)
        await s.commit()

    r = await desk.get(f"/v1/waitlist/{old['id']}")
    assert r.status_code == 200 and r.json()["state"] == "expired", r.text
    listed = {
        st: [x["id"] for x in (await desk.get("/v1/waitlist", params={"clinic_id": clinic["id"], "state": st})).json()]
        for st in ("active", "expired")
    }
    assert listed == {"active": [], "expired": [old["id"]]}, listed
    new = await _waitlist(api, clinic, patient)  # was 409 "already on this list"
    r = await desk.get("/v1/waitlist", params={"clinic_id": clinic["id"]})
    assert [(x["id"], x["state"]) for x in r.json()] == [(new["id"], "active")], r.text
    assert (await desk.delete(f"/v1/waitlist/{old['id']}")).status_code == 204
    assert (await desk.get(f"/v1/waitlist/{old['id']}")).json()["state"] == "removed"


async def test_a_patient_with_a_visit_at_that_time_is_neither_offered_nor_booked(api: Api, deps: Deps) -> None:
    """A waitlisted patient who already has a visit overlapping the freed slot (another
    branch, so their wish still stands) is not asked, and a "yes" that meets such a visit
    under the doctor's lock books nothing: the offer stays open for the others."""
    clinic = await make_clinic(api, **WAITLIST_POLICY)
    branch = await make_clinic(api)
    busy = await _patient(api, clinic, "Busy Bohdana")
    free = await _patient(api, clinic, "Free Fedir")
    busy_entry = await _waitlist(api, clinic, busy)
    await _waitlist(api, clinic, free)
    starts = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    async with deps.sessions() as s:
        offer = SlotOffer(
            freed_key=f"{uuid.uuid4().hex}:v1",
            clinic_id=clinic["id"],
            doctor_id=clinic["doctor_id"],
            starts_at=starts,
            duration_minutes=30,
            freed_by=uuid.uuid4().hex,
            reason="cancelled",
            workflow_id="slot-offer-test",
            journey_started=True,  # nothing for the repair loop: this test plays the journey
        )
        s.add(offer)
        await s.commit()
    acts = WaitlistActivities(deps)
    before = await acts.waitlist_candidates(CandidatesRequest(offer_id=offer.id, limit=3))
    assert [c.patient_id for c in before] == [busy, free], before

    # The busy patient gets a visit at another branch overlapping the slot.
    r = await api.as_(Role.admin).post(
        "/v1/appointments",
        json={
            "patient_id": busy,
            "clinic_id": branch["id"],
            "doctor_id": branch["doctor_id"],
            "starts_at": (starts + timedelta(minutes=15)).isoformat(),
            "duration_minutes": 30,
            "service": "Check-up",
        },
    )
    assert r.status_code == 201, r.text
    found = await acts.waitlist_candidates(CandidatesRequest(offer_id=offer.id, limit=3))
    assert [c.patient_id for c in found] == [free], found

    # Their "yes" (asked before that visit) books nothing and leaves them on the list.
    result = await acts.book_from_waitlist(BookRequest(offer_id=offer.id, entry_id=busy_entry["id"], patient_id=busy))
    assert result.status == "busy" and result.appointment_id is None, result
    async with deps.sessions() as s:
        assert (
            await s.exec(select(Appointment).where(Appointment.idempotency_key == booking_key(offer.id)))
        ).all() == []
    assert (await _entry(deps, busy_entry["id"])).state == "active"
