"""Campaign audiences in SQL (issue 12) on SQLite and PostgreSQL: the recall window's edges
(clinic-local dates, the MIS base's last visit, booked or cancelled since), the bonus period
(threshold crossings and the repeat bucket), birthdays (29 February), and who is left out."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from core import campaigns
from core.db import make_engine, session_factory
from models import points
from models.appointment import Appointment
from models.campaigns import BirthdaySettings, BonusSettings, RecallSettings
from models.core import Clinic, Doctor, Patient
from tests.test_points import db_url  # noqa: F401 - the sqlite/postgresql fixture

KYIV = ZoneInfo("Europe/Kyiv")
TODAY = date(2026, 11, 26)  # window: 2026-05-26 .. 2026-06-26


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[Any]:  # noqa: F811
    engine = make_engine(db_url)
    yield session_factory(engine)
    await engine.dispose()


def test_months_before_keeps_to_the_month_end() -> None:
    assert campaigns.months_before(date(2026, 8, 31), 6) == date(2026, 2, 28)
    assert campaigns.months_before(date(2026, 1, 15), 5) == date(2025, 8, 15)
    assert campaigns.months_before(date(2028, 8, 29), 6) == date(2028, 2, 29)


async def _world(s: Any) -> tuple[Clinic, Clinic, str]:
    clinic = Clinic(name="A", address="x", phone="+380441234567", timezone="Europe/Kyiv")
    other = Clinic(name="B", address="y", phone="+380441234567", timezone="Europe/Kyiv")
    s.add(clinic)
    s.add(other)
    await s.flush()
    doctor = Doctor(clinic_id=clinic.id, full_name="Dr", specialty="therapy")
    s.add(doctor)
    await s.flush()
    return clinic, other, doctor.id


def _patient(s: Any, clinic: Clinic, **kw: Any) -> str:
    p = Patient(full_name="P " + uuid.uuid4().hex[:4], phone=None, clinic_id=clinic.id, **kw)
    s.add(p)
    return p.id


def _visit(s: Any, clinic: Clinic, doctor: str, pid: str, day: date, stage: str = "finished") -> None:
    at = datetime.combine(day, time(10), KYIV).astimezone(UTC)
    s.add(
        Appointment(
            clinic_id=clinic.id,
            doctor_id=doctor,
            patient_id=pid,
            service="x",
            starts_at=at,
            ends_at=at + timedelta(minutes=30),
            duration_minutes=30,
            stage=stage,
            workflow_id=f"appointment-{uuid.uuid4().hex}",
        )
    )


async def test_recall_window_and_who_is_left_out(sessions: Any) -> None:
    async with sessions() as s:
        clinic, other, doctor = await _world(s)
        p: dict[str, str] = {}
        for name in ("mid", "first_day", "last_day", "too_old", "too_recent", "booked", "cancelled", "came_again"):
            p[name] = _patient(s, clinic)
        p["mis"] = _patient(s, clinic, last_visit_on=date(2026, 6, 1))
        p["stop"] = _patient(s, clinic, opted_out=True)
        p["no_ads"] = _patient(s, clinic, marketing_opt_out=True)
        p["elsewhere"] = _patient(s, other)
        await s.flush()
        for name, day in (
            ("mid", date(2026, 6, 10)),
            ("first_day", date(2026, 5, 26)),
            ("last_day", date(2026, 6, 26)),
            ("too_old", date(2026, 5, 25)),
            ("too_recent", date(2026, 6, 27)),
            ("booked", date(2026, 6, 10)),
            ("cancelled", date(2026, 6, 10)),
            ("came_again", date(2026, 6, 10)),
            ("stop", date(2026, 6, 10)),
            ("no_ads", date(2026, 6, 10)),
        ):
            _visit(s, clinic, doctor, p[name], day)
        _visit(s, clinic, doctor, p["mid"], date(2025, 12, 1))  # older: the last visit counts
        _visit(s, clinic, doctor, p["booked"], date(2026, 12, 3), stage="booked")
        _visit(s, clinic, doctor, p["cancelled"], date(2026, 12, 3), stage="cancelled")
        _visit(s, clinic, doctor, p["came_again"], date(2026, 9, 1))
        _visit(s, other, doctor, p["elsewhere"], date(2026, 6, 10))
        await s.commit()

        found = await campaigns.recall_audience(s, clinic, RecallSettings(), TODAY)
    periods = {m.patient_id: m.period for m in found.members}
    assert periods == {
        p["mid"]: "2026-06-10",
        p["first_day"]: "2026-05-26",
        p["last_day"]: "2026-06-26",
        p["cancelled"]: "2026-06-10",  # a cancelled booking is nothing booked
        p["mis"]: "2026-06-01",
    }
    assert found.left_out == {"booked_since": 1, "opted_out": 1, "marketing_opt_out": 1}


async def test_bonus_once_per_crossing_and_every_repeat_days(sessions: Any) -> None:
    async with sessions() as s:
        clinic, _, _ = await _world(s)
        rich, poor, legacy = _patient(s, clinic), _patient(s, clinic), _patient(s, clinic, loyalty_points=9000)
        await s.flush()
        await points.apply(s, rich, 2300, kind=points.MANUAL, reason="visits")
        await points.apply(s, poor, 2000, kind=points.MANUAL, reason="visits")
        await s.commit()
        today = campaigns.local_today(clinic)
        st = BonusSettings()
        first = {m.patient_id: m.period for m in (await campaigns.bonus_audience(s, clinic, st, today)).members}
        assert set(first) == {rich, legacy}
        assert first[rich] == f"2250@{today.isoformat()}#0"
        assert first[legacy] == f"2250@2000-01-01#{(today - date(2000, 1, 1)).days // 30}"  # before the ledger
        same = {m.patient_id: m.period for m in (await campaigns.bonus_audience(s, clinic, st, today)).members}
        assert same == first  # a re-run the same day: the same period
        later = await campaigns.bonus_audience(s, clinic, st, today + timedelta(days=30))
        assert {m.patient_id: m.period for m in later.members}[rich] == f"2250@{today.isoformat()}#1"
        # Spent below the threshold: out; a new crossing later is a new period.
        await points.apply(s, rich, -1000, kind=points.MANUAL, reason="spent")
        await s.commit()
        assert rich not in {m.patient_id for m in (await campaigns.bonus_audience(s, clinic, st, today)).members}


async def test_birthdays_in_the_clinic_zone_and_29_february(sessions: Any) -> None:
    async with sessions() as s:
        clinic, _, _ = await _world(s)
        leap = _patient(s, clinic, birth_date=date(1992, 2, 29))
        feb28 = _patient(s, clinic, birth_date=date(1990, 2, 28))
        _patient(s, clinic, birth_date=date(1990, 3, 1))
        _patient(s, clinic)  # no birth date
        stop = _patient(s, clinic, birth_date=date(1980, 2, 28), opted_out=True)
        await s.commit()
        st = BirthdaySettings()
        plain = await campaigns.birthday_audience(s, clinic, st, date(2027, 2, 28))
        assert {m.patient_id for m in plain.members} == {leap, feb28}
        assert {m.period for m in plain.members} == {"2027"}
        assert plain.left_out == {"opted_out": 1} and stop not in {m.patient_id for m in plain.members}
        in_leap_year = await campaigns.birthday_audience(s, clinic, st, date(2028, 2, 29))
        assert {m.patient_id for m in in_leap_year.members} == {leap}
