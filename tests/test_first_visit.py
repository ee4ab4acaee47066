"""The first-visit flag (first visit, or first after six months) is kept right by every ORM
write of an appointment, on SQLite and PostgreSQL; the lead source belongs to a clinic list."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert
from sqlmodel.ext.asyncio.session import AsyncSession

from core.db import make_engine, session_factory
from models.appointment import Appointment, first_visit_flags, months_before, refresh_first_visits
from models.core import Clinic, Doctor, Patient
from tests.test_data_layer import db_url  # noqa: F401 - the two-database fixture

__all__ = ["db_url"]


async def _people(s: AsyncSession, **patient: Any) -> tuple[Clinic, Doctor, Patient]:
    """A clinic with one doctor and one patient, flushed in session `s`."""
    clinic = Clinic(name="Smile", address="Kyiv", phone="+380441234567")
    s.add(clinic)
    await s.flush()
    doctor = Doctor(clinic_id=clinic.id, full_name="Dr A", specialty="therapy")
    person = Patient(full_name="P", phone="+380671234567", clinic_id=clinic.id, **patient)
    s.add_all([doctor, person])
    await s.flush()
    return clinic, doctor, person


def _visit(people: tuple[Clinic, Doctor, Patient], start: datetime, stage: str = "booked") -> Appointment:
    clinic, doctor, patient = people
    return Appointment(
        clinic_id=clinic.id,
        doctor_id=doctor.id,
        patient_id=patient.id,
        service="Consultation",
        starts_at=start,
        ends_at=start + timedelta(minutes=30),
        duration_minutes=30,
        stage=stage,
        workflow_id="wf",
    )


def test_months_before_clamps_the_day() -> None:
    assert months_before(datetime(2026, 8, 31, 10, tzinfo=UTC), 6) == datetime(2026, 2, 28, 10, tzinfo=UTC)
    assert months_before(datetime(2026, 3, 15, tzinfo=UTC), 6) == datetime(2025, 9, 15, tzinfo=UTC)
    assert months_before(datetime(2028, 8, 29, tzinfo=UTC), 6) == datetime(2028, 2, 29, tzinfo=UTC)


def test_rule_by_hand() -> None:
    t = lambda m, d: datetime(2026, m, d, 9, tzinfo=UTC)  # noqa: E731
    flags = first_visit_flags(
        [
            ("a", t(1, 10), "finished"),  # first ever
            ("b", t(3, 1), "finished"),  # 2 months after a
            ("c", t(9, 1), "finished"),  # exactly 6 months after b: first again
            ("d", t(9, 20), "cancelled"),  # 19 days after c: a repeat (cancelled: still flagged)
            ("e", t(10, 1), "no_show"),
        ]
    )
    assert flags == {"a": True, "b": False, "c": True, "d": False, "e": False}
    # A cancelled or missed visit never makes a later one a repeat.
    assert first_visit_flags([("x", t(1, 1), "cancelled"), ("y", t(1, 5), "no_show"), ("z", t(1, 9), "booked")]) == {
        "x": True,
        "y": True,
        "z": True,
    }


def test_mis_last_visit_counts_as_a_prior_visit() -> None:
    from datetime import date

    t = datetime(2026, 10, 5, 9, tzinfo=UTC)
    assert first_visit_flags([("a", t, "booked")], date(2026, 6, 1)) == {"a": False}  # 4 months before
    assert first_visit_flags([("a", t, "booked")], date(2026, 3, 1)) == {"a": True}  # 7 months before
    # The MIS's last visit *is* this visit (a completed-visits import): not a prior one.
    assert first_visit_flags([("a", t, "finished")], date(2026, 10, 5)) == {"a": True}


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator:  # noqa: F811
    engine = make_engine(db_url)
    yield session_factory(engine)
    await engine.dispose()


async def test_flags_follow_bookings_moves_and_stages(sessions) -> None:  # type: ignore[no-untyped-def]
    t = lambda m, d: datetime(2027, m, d, 9, tzinfo=UTC)  # noqa: E731
    async with sessions() as s:
        people = await _people(s, source="instagram")
        clinic, doctor, patient = people
        await s.commit()

        # Booked out of order: the later visit first, then an earlier one.
        later = _visit(people, t(5, 1))
        s.add(later)
        await s.commit()
        assert later.first_visit is True
        earlier = _visit(people, t(2, 1))
        s.add(earlier)
        await s.commit()
        await s.refresh(later)
        assert (earlier.first_visit, later.first_visit) == (True, False)

        # The earlier visit is cancelled: the later one is the first again.
        earlier.stage = "cancelled"
        s.add(earlier)
        await s.commit()
        await s.refresh(later)
        assert (earlier.first_visit, later.first_visit) == (True, True)

        # Moved more than six months after a real visit: first after a gap.
        earlier.stage = "finished"
        s.add(earlier)
        await s.commit()
        await s.refresh(later)
        assert later.first_visit is False
        later.starts_at, later.ends_at = t(8, 2), t(8, 2) + timedelta(minutes=30)
        s.add(later)
        await s.commit()
        await s.refresh(later)
        assert later.first_visit is True

        # Deleting a visit recomputes the others.
        mid = _visit(people, t(6, 1), "finished")
        s.add(mid)
        await s.commit()
        await s.refresh(later)
        assert (mid.first_visit, later.first_visit) == (False, False)
        await s.delete(mid)
        await s.commit()
        await s.refresh(later)
        assert later.first_visit is True

        # A bulk (Core) insert bypasses the ORM: refresh_first_visits puts it right.
        await s.exec(
            insert(Appointment).values(
                id="bulk" + patient.id[:20],
                clinic_id=clinic.id,
                doctor_id=doctor.id,
                patient_id=patient.id,
                service="Hygiene",
                starts_at=t(7, 1),
                ends_at=t(7, 1) + timedelta(minutes=30),
                duration_minutes=30,
                stage="finished",
                workflow_id="wf",
                version=1,
                asks_sent=0,
                voice_calls=0,
                first_visit=False,
                history=[],
                created_at=datetime.now(UTC),
            )
        )
        assert await refresh_first_visits(s, [patient.id]) == 1  # `later` is a repeat now
        await s.commit()
        await s.refresh(later)
        assert later.first_visit is False

        # The MIS says the patient was here a month before the earliest visit: that one is a
        # repeat too, the moment the patient's last_visit_on is written.
        await s.refresh(earlier)
        assert earlier.first_visit is True
        patient.last_visit_on = (t(2, 1) - timedelta(days=30)).date()
        s.add(patient)
        await s.commit()
        await s.refresh(earlier)
        assert earlier.first_visit is False


async def test_a_stage_change_that_keeps_a_visit_a_visit_reads_nothing_more(db_url: str) -> None:  # noqa: F811
    """Issue 14: the journey's row write on every stage change (booked -> confirmed ->
    checked_in -> finished) recomputed the patient's first-visit flags (three reads) though
    only a move in or out of NOT_A_VISIT (cancelled, no_show) can change one."""
    from sqlalchemy import event

    engine = make_engine(db_url)
    sessions = session_factory(engine)
    statements: list[str] = []

    def seen(_conn, _cur, statement, *_) -> None:  # type: ignore[no-untyped-def]
        statements.append(" ".join(statement.split()))

    try:
        async with sessions() as s:
            first = _visit(await _people(s), datetime(2027, 4, 1, 9, tzinfo=UTC))
            s.add(first)
            await s.commit()
            assert first.first_visit is True
        event.listen(engine.sync_engine, "before_cursor_execute", seen)
        for stage in ("confirmed", "checked_in", "finished"):
            async with sessions() as s:  # as the journey's sync writes it: read, set, commit
                row = await s.get(Appointment, first.id)
                assert row is not None
                row.stage = stage
                s.add(row)
                await s.commit()
        assert not [q for q in statements if "last_visit_on" in q], statements
        async with sessions() as s:  # out of the visits: the flags are recomputed
            row = await s.get(Appointment, first.id)
            assert row is not None
            row.stage = "cancelled"
            s.add(row)
            await s.commit()
        assert [q for q in statements if "last_visit_on" in q], statements
    finally:
        await engine.dispose()
