"""Management reports over a small known dataset, every figure checked by hand arithmetic,
on SQLite and PostgreSQL; the workbook read back with openpyxl matches the JSON.

The dataset (October 2026, clinics in Europe/Kyiv: UTC+3 until Oct 25, then UTC+2):

    pat. source     visit clinic doctor (specialty)  start UTC   stage      notes
    P1 instagram    a1    C1  D1 therapy         Oct 05 07:00 finished   first; nps 10; confirmed whatsapp
                    a2    C1  D2 implantology    Oct 20 07:00 finished   repeat; nps 9; confirmed on robot call
    P2 site         a3    C1  D1                 Mar 02 07:00 finished   first (before the period)
                    a4    C1  D1                 Oct 06 07:00 finished   first after 7 months; nps 6;
                                                                         no answer, operator confirmed
    P3 site         a5    C1  D1                 Sep 01 07:00 finished   first (before the period)
                    a6    C1  D2                 Oct 07 07:00 finished   repeat; survey unanswered; not asked;
                                                                         booked from the waiting list
    P4 referral     a7    C1  D1                 Oct 08 07:00 cancelled  first booking; declined
                    a8    C1  D1                 Oct 15 07:00 finished   first (a7 cancelled); nps 8; telegram
    P5 (none)       a9    C2  D3 therapy         Oct 09 07:00 no_show    first booking; 3 asks, no answer
    P6 call         a10   C2  D3                 Oct 10 07:00 finished   first; nps 3; confirmed sms
    P7 instagram    a12   C1  D1                 Sep 30 21:30 finished   Oct 01 00:30 Kyiv: inside; no outcome
    P8 site         a11   C1  D1                 Oct 31 22:30 finished   Nov 01 00:30 Kyiv: outside
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from core.db import make_engine, session_factory
from core.report_workbook import workbook_bytes
from core.reports import REPORTS, build_report
from models.appointment import Appointment, apply_confirmation_facts
from models.core import Channel, Clinic, Doctor, MessageLog, OperatorTask, Patient, TaskState
from tests.support.report_sheets import assert_sheet_matches, workbook_sheets
from tests.test_data_layer import db_url  # noqa: F401 - the two-database fixture

__all__ = ["db_url"]
OCT_FROM, OCT_TO = date(2026, 10, 1), date(2026, 10, 31)
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
TZ = "Europe/Kyiv"


def utc(m: int, d: int, h: int = 7, mi: int = 0, y: int = 2026) -> datetime:
    return datetime(y, m, d, h, mi, tzinfo=UTC)


@pytest.fixture
async def world(db_url: str) -> AsyncIterator[dict[str, Any]]:  # noqa: F811
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    w: dict[str, Any] = {"sessions": sessions}
    async with sessions() as s:
        c1 = Clinic(name="Podil", address="Kyiv", phone="+380441234567", timezone=TZ)
        c2 = Clinic(name="Obolon", address="Kyiv", phone="+380441234568", timezone=TZ)
        s.add_all([c1, c2])
        await s.flush()
        d1 = Doctor(clinic_id=c1.id, full_name="Dr Koval", specialty="therapy")
        d2 = Doctor(clinic_id=c1.id, full_name="Dr Bondar", specialty="implantology")
        d3 = Doctor(clinic_id=c2.id, full_name="Dr Shevchenko", specialty="therapy")
        src = ["instagram", "site", "site", "referral", None, "call", "instagram", "site"]
        pts = [
            Patient(full_name=f"Patient {i + 1}", phone=f"+38067123450{i}", source=v, clinic_id=c1.id)
            for i, v in enumerate(src)
        ]
        s.add_all([d1, d2, d3, *pts])
        await s.flush()
        P = {f"P{i + 1}": x for i, x in enumerate(pts)}  # noqa: N806

        def visit(key: str, pat: str, clinic: Clinic, doc: Doctor, start: datetime, stage: str, **kw: Any) -> None:
            history: list[tuple[datetime, str]] = kw.pop("history", [])
            appt = Appointment(
                clinic_id=clinic.id,
                doctor_id=doc.id,
                patient_id=P[pat].id,
                service="Consultation",
                starts_at=start,
                ends_at=start + timedelta(minutes=30),
                duration_minutes=30,
                stage=stage,
                workflow_id=f"appointment-{key}",
                history=[{"at": at.isoformat(), "event": ev, "stage": stage} for at, ev in history],
                **kw,
            )
            apply_confirmation_facts(appt, history)
            s.add(appt)
            w[key] = appt

        def asked(start: datetime, *events: str) -> list[tuple[datetime, str]]:
            t0 = start - timedelta(days=1)
            out = [(t0 - timedelta(days=1), "booked"), (t0, "ask_sent")]
            out += [(t0 + timedelta(hours=i + 1), e) for i, e in enumerate(events)]
            return out

        def survey(start: datetime) -> tuple[datetime, str]:
            return (start + timedelta(hours=2), "survey_sent")

        a1 = utc(10, 5)
        visit("a1", "P1", c1, d1, a1, "finished", asks_sent=1, nps=10,
              history=[*asked(a1, "patient_confirmed"), survey(a1), (a1 + timedelta(hours=3), "nps_10")])  # fmt: skip
        a2 = utc(10, 20)
        visit("a2", "P1", c1, d2, a2, "finished", asks_sent=2, voice_calls=1, nps=9,
              history=[*asked(a2, "reask_sent", "voice_call", "patient_confirmed"), survey(a2)])  # fmt: skip
        visit("a3", "P2", c1, d1, utc(3, 2), "finished")
        a4 = utc(10, 6)
        visit("a4", "P2", c1, d1, a4, "finished", asks_sent=1, nps=6,
              history=[*asked(a4, "deadline_unconfirmed", "confirmed_by_operator"), survey(a4)])  # fmt: skip
        visit("a5", "P3", c1, d1, utc(9, 1), "finished")
        a6 = utc(10, 7)
        visit("a6", "P3", c1, d2, a6, "finished", history=[(a6 - timedelta(hours=1), "booked"), survey(a6)],
              source="waitlist")  # fmt: skip
        a7 = utc(10, 8)
        visit("a7", "P4", c1, d1, a7, "cancelled", asks_sent=1, history=asked(a7, "patient_declined", "cancelled"))
        a8 = utc(10, 15)
        visit(
            "a8",
            "P4",
            c1,
            d1,
            a8,
            "finished",
            asks_sent=1,
            nps=8,
            history=[*asked(a8, "patient_confirmed"), survey(a8)],
        )
        a9 = utc(10, 9)
        visit("a9", "P5", c2, d3, a9, "no_show", asks_sent=3,
              history=asked(a9, "reask_sent", "reask_sent", "deadline_unconfirmed", "no_show"))  # fmt: skip
        a10 = utc(10, 10)
        visit(
            "a10",
            "P6",
            c2,
            d3,
            a10,
            "finished",
            asks_sent=1,
            nps=3,
            history=[*asked(a10, "patient_confirmed"), survey(a10)],
        )
        a12 = utc(9, 30, 21, 30)
        visit("a12", "P7", c1, d1, a12, "finished", asks_sent=1, history=asked(a12))
        visit(
            "a11",
            "P8",
            c1,
            d1,
            utc(10, 31, 22, 30),
            "finished",
            asks_sent=1,
            history=asked(utc(10, 31, 22, 30), "patient_confirmed"),
        )
        await s.flush()

        # Inbound replies: the one at or before each confirmation gives its channel.
        def reply(key: str, channel: Channel, at: datetime) -> None:
            key_ = f"in:{w[key].id}:{channel}:{at.isoformat()}"
            s.add(MessageLog(idempotency_key=key_, direction="in", channel=channel, kind="reply",
                             status="signalled", subject_id=w[key].id, created_at=at))  # fmt: skip

        def confirmed_at(key: str) -> datetime:
            at = w[key].confirmed_at
            assert at is not None
            return at

        reply("a1", Channel.sms, confirmed_at("a1") - timedelta(hours=5))  # an earlier question by SMS
        reply("a1", Channel.whatsapp, confirmed_at("a1") - timedelta(seconds=1))
        reply("a1", Channel.telegram, confirmed_at("a1") + timedelta(minutes=5))  # "thanks", after
        reply("a2", Channel.voice, confirmed_at("a2"))
        reply("a8", Channel.telegram, confirmed_at("a8") - timedelta(seconds=2))
        reply("a10", Channel.sms, confirmed_at("a10") - timedelta(seconds=1))

        def task(key: str | None, kind: str, clinic: Clinic, created: datetime, state: TaskState) -> None:
            dedup = f"{kind}:{w[key].id if key else clinic.id}:{created.isoformat()}"
            s.add(OperatorTask(dedup_key=dedup, kind=kind, title=f"{kind} task",
                               clinic_id=clinic.id, subject_type="appointment", subject_id=w[key].id if key else None,
                               state=state, created_at=created))  # fmt: skip

        task("a4", "detractor_feedback", c1, NOW - timedelta(days=20), TaskState.completed)
        task("a10", "detractor_feedback", c2, NOW - timedelta(days=5), TaskState.requested)
        task("a3", "detractor_feedback", c1, NOW - timedelta(days=200), TaskState.requested)  # March visit
        task(None, "unconfirmed", c1, NOW - timedelta(hours=2), TaskState.requested)
        task(None, "unconfirmed", c1, NOW - timedelta(days=2), TaskState.in_progress)
        task(None, "declined", c2, NOW - timedelta(days=10), TaskState.requested)
        await s.commit()
        w.update(c1=c1, c2=c2, d1=d1, d2=d2, d3=d3, P=P)
    yield w
    await engine.dispose()


async def _report(w: dict[str, Any], name: str, clinic: Clinic | None = None) -> dict[str, Any]:
    async with w["sessions"]() as s:
        r = await build_report(
            s,
            name,
            clinic_ids=[clinic.id] if clinic else [w["c1"].id, w["c2"].id],
            period_from=OCT_FROM,
            period_to=OCT_TO,
            timezone=TZ,
            clinic_name=clinic.name if clinic else None,
            now=NOW,
        )
    out = r.to_json()
    # The workbook of the same report carries the same figures.
    assert_sheet_matches(next(iter(workbook_sheets(workbook_bytes([r])).values())), out)
    return out


def rows(report: dict[str, Any], table: str, key: str) -> dict[Any, dict[str, Any]]:
    return {r[key]: r for r in report["tables"][table]["rows"]}


def test_first_visit_flags_of_the_dataset(world: dict[str, Any]) -> None:
    first = {
        k for k in ("a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "a10", "a11", "a12") if world[k].first_visit
    }
    assert first == {"a1", "a3", "a4", "a5", "a7", "a8", "a9", "a10", "a11", "a12"}


async def test_first_time_patients(world: dict[str, Any]) -> None:
    r = await _report(world, "first-time-patients")
    # P1 (a1), P2 (a4, returning after 7 months), P4 (a8), P6 (a10), P7 (a12); not P8 (Nov 1 in Kyiv).
    assert r["summary"] == {"first_time_patients": 5, "new_patients": 4, "returning_patients": 1}
    listing = r["tables"]["patients"]["rows"]
    assert [x["patient"] for x in listing] == ["Patient 7", "Patient 1", "Patient 2", "Patient 6", "Patient 4"]
    assert listing[0]["first_visit"] == "2026-10-01T00:30:00"  # local time of the clinic
    assert [x["returning"] for x in listing] == ["no", "no", "yes", "no", "no"]
    by = rows(r, "by_clinic", "clinic")
    assert (by["Podil"]["first_time"], by["Podil"]["new"], by["Podil"]["returning"]) == (4, 3, 1)
    assert (by["Obolon"]["first_time"], by["Obolon"]["returning"]) == (1, 0)
    one = await _report(world, "first-time-patients", world["c2"])
    assert one["summary"]["first_time_patients"] == 1 and one["clinic_name"] == "Obolon"


async def test_visits_by_specialty(world: dict[str, Any]) -> None:
    r = await _report(world, "visits-by-specialty")
    # Finished in October: a1 a4 a8 a10 a12 therapy (5), a2 a6 implantology (2): 5/7, 2/7.
    assert r["summary"] == {"finished_visits": 7, "from_waitlist": 1}  # a6 took a freed slot
    by = rows(r, "by_specialty", "specialty")
    assert (by["therapy"]["visits"], by["therapy"]["share"]) == (5, 71.4)
    assert (by["implantology"]["visits"], by["implantology"]["share"]) == (2, 28.6)
    c1 = await _report(world, "visits-by-specialty", world["c1"])
    assert rows(c1, "by_specialty", "specialty")["therapy"]["visits"] == 4  # a1 a4 a8 a12


async def test_patients_by_source(world: dict[str, Any]) -> None:
    r = await _report(world, "patients-by-source")
    by = rows(r, "by_source", "source")
    # instagram P1 P7, site P2, referral P4, call P6: 2/5, 1/5 x3.
    assert {k: (v["patients"], v["share"]) for k, v in by.items()} == {
        "instagram": (2, 40.0),
        "site": (1, 20.0),
        "referral": (1, 20.0),
        "call": (1, 20.0),
    }
    assert r["tables"]["by_source"]["totals"]["patients"] == 5


async def test_first_visit_conversion(world: dict[str, Any]) -> None:
    r = await _report(world, "first-visit-conversion")
    # First-visit bookings in October: P1 P2 P4 (a7, then a8) P5 (no-show) P6 P7 = 6; reached 5.
    assert r["summary"] == {"first_time_bookings": 6, "reached_consultation": 5, "conversion": 83.3}
    src = rows(r, "by_source", "source")
    assert {k: (v["booked"], v["reached"], v["rate"]) for k, v in src.items()} == {
        "instagram": (2, 2, 100.0),
        "site": (1, 1, 100.0),
        "referral": (1, 1, 100.0),
        "call": (1, 1, 100.0),
        "unknown": (1, 0, 0.0),
    }
    cl = rows(r, "by_clinic", "clinic")
    assert (cl["Podil"]["booked"], cl["Podil"]["reached"], cl["Podil"]["rate"]) == (4, 4, 100.0)
    assert (cl["Obolon"]["booked"], cl["Obolon"]["reached"], cl["Obolon"]["rate"]) == (2, 1, 50.0)


async def test_nps(world: dict[str, Any]) -> None:
    r = await _report(world, "nps")
    s = r["summary"]
    # Surveys: a1 a2 a4 a6 a8 a10 = 6; answers 5 (a6 silent); promoters a1 a2, passive a8,
    # detractors a4 a10: NPS (2 - 2) / 5 = 0; response 5/6.
    assert (s["surveys"], s["answers"], s["response_rate"]) == (6, 5, 83.3)
    assert (s["promoters"], s["passives"], s["detractors"], s["nps"]) == (2, 1, 2, 0.0)
    # Detractor tasks about October visits: a4 (closed), a10 (open); a3's is March.
    assert (s["detractor_tasks_opened"], s["detractor_tasks_closed"]) == (2, 1)
    cl = rows(r, "by_clinic", "clinic")
    # Podil: a1 10, a2 9, a4 6, a6 -, a8 8: (2 - 1) / 4 = 25; 4/5 answered.
    assert (cl["Podil"]["nps"], cl["Podil"]["response_rate"], cl["Podil"]["detractor_tasks_opened"]) == (25.0, 80.0, 1)
    assert (cl["Obolon"]["nps"], cl["Obolon"]["detractor_tasks_closed"]) == (-100.0, 0)
    doc = rows(r, "by_doctor", "doctor")
    # Koval: a1 10, a4 6, a8 8 -> (1 - 1) / 3 = 0; Bondar: a2 9, a6 - -> 100, 1/2 answered.
    assert (doc["Dr Koval"]["nps"], doc["Dr Koval"]["answers"]) == (0.0, 3)
    assert (doc["Dr Bondar"]["nps"], doc["Dr Bondar"]["response_rate"]) == (100.0, 50.0)
    assert doc["Dr Shevchenko"]["nps"] == -100.0


async def test_confirmations(world: dict[str, Any]) -> None:
    r = await _report(world, "confirmations")
    s = r["summary"]
    # October visits: a1 a2 a4 a6 a7 a8 a9 a10 a12 = 9; asked all but a6 = 8; confirmed by the
    # patient a1 a2 a8 a10 = 4 (50%), declined a7, no answer a4 a9; operator confirmed a4;
    # no-shows a9 of 8 that reached their time (7 attended + 1): 12.5%.
    assert (s["visits"], s["asked"], s["confirmed"], s["confirmed_rate"]) == (9, 8, 4, 50.0)
    assert (s["declined"], s["no_answer"], s["operator_confirmed"]) == (1, 2, 1)
    assert (s["no_shows"], s["no_show_rate"], s["calls_saved"], s["voice_confirmed"]) == (1, 12.5, 4, 1)
    cl = rows(r, "by_clinic", "clinic")
    assert (cl["Podil"]["visits"], cl["Podil"]["asked"], cl["Podil"]["confirmed"], cl["Podil"]["other"]) == (7, 6, 3, 1)
    assert (cl["Podil"]["no_show_rate"], cl["Obolon"]["no_show_rate"], cl["Obolon"]["calls_saved"]) == (0.0, 50.0, 1)
    ch = rows(r, "channels", "channel")
    assert {k: (v["confirmed"], v["share"]) for k, v in ch.items()} == {
        "whatsapp": (1, 25.0),
        "voice": (1, 25.0),
        "telegram": (1, 25.0),
        "sms": (1, 25.0),
    }
    per = {(x["clinic"], x["channel"]): x["confirmed"] for x in r["tables"]["by_channel"]["rows"]}
    assert per == {("Podil", "whatsapp"): 1, ("Podil", "voice"): 1, ("Podil", "telegram"): 1, ("Obolon", "sms"): 1}


async def test_operator_queue(world: dict[str, Any]) -> None:
    r = await _report(world, "operator-queue")
    # Open: unconfirmed 2h and 2d old (Podil), declined 10d and detractor a10 5d (Obolon), and
    # a3's detractor task 200 days old; the completed one is not in the queue.
    assert r["summary"] == {"open_tasks": 5, "open_under_1d": 1, "open_d1_3": 1, "open_d3_7": 1, "open_over_7d": 2}
    kinds = r["tables"]["by_kind"]["rows"]
    assert [k["kind"] for k in kinds] == ["detractor_feedback", "declined", "unconfirmed"]  # oldest first
    assert (kinds[2]["under_1d"], kinds[2]["d1_3"], kinds[0]["d3_7"], kinds[0]["over_7d"]) == (1, 1, 1, 1)
    ages = [x["age_hours"] for x in r["tables"]["oldest"]["rows"]]
    assert ages == [4800.0, 240.0, 120.0, 48.0, 2.0]
    podil = await _report(world, "operator-queue", world["c1"])
    assert podil["summary"]["open_tasks"] == 3


async def test_pack_has_a_sheet_per_report(world: dict[str, Any]) -> None:
    reports = []
    async with world["sessions"]() as s:
        for name in REPORTS:
            reports.append(
                await build_report(
                    s, name, clinic_ids=None, period_from=OCT_FROM, period_to=OCT_TO, timezone=TZ, now=NOW
                )
            )
    sheets = workbook_sheets(workbook_bytes(reports))
    assert list(sheets) == [r.title[:31] for r in reports]
    for r in reports:
        assert_sheet_matches(sheets[r.title[:31]], r.to_json())
        if any(t.chart for t in r.tables if t.rows):
            assert sheets[r.title[:31]]._charts, r.name


def test_confirmation_facts_follow_the_current_version() -> None:
    from models.appointment import confirmation_facts

    t = utc(10, 1)
    h = lambda *evs: [(t + timedelta(minutes=i), e) for i, e in enumerate(evs)]  # noqa: E731
    f = confirmation_facts(h("booked", "ask_sent", "patient_declined", "patient_confirmed"))
    assert (f.confirmation, f.confirmed_at) == ("declined", None)  # the first answer counts
    f = confirmation_facts(h("booked", "ask_sent", "patient_confirmed", "rescheduled_v2", "ask_sent"))
    assert (f.confirmation, f.confirmed_at, f.operator_confirmed) == (None, None, False)  # asked afresh
    f = confirmation_facts(h("booked", "ask_sent", "deadline_unconfirmed", "confirmed_by_operator", "survey_sent"))
    assert (f.confirmation, f.operator_confirmed, f.survey_sent_at) == ("no_answer", True, t + timedelta(minutes=4))
