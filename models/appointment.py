"""The appointment table: the journey's record in the database. The workflow is the live
truth while it runs; the row mirrors it (stage, counters, history) so lists and finished
journeys are served from the database."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from functools import cache
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint, and_, bindparam, event, inspect, update
from sqlalchemy import select as sa_select
from sqlalchemy.orm import Session
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from contracts.appointment import FHIR_STATUS, OPEN_STAGES
from models.core import TZ, Doctor, Patient, as_utc, new_id, utcnow


class Appointment(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("idempotency_key", name="uq_appointment_idempotency_key"),
        Index("ix_appointment_clinic_starts", "clinic_id", "starts_at"),  # reports: a clinic's period
        UniqueConstraint("clinic_id", "mis_visit_id", name="uq_appointment_mis_visit"),
        Index("ix_appointment_patient_starts", "patient_id", "starts_at"),  # a patient's earlier visits
    )
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    clinic_id: str = Field(foreign_key="clinic.id", index=True, max_length=32)
    doctor_id: str = Field(foreign_key="doctor.id", index=True, max_length=32)
    patient_id: str = Field(foreign_key="patient.id", index=True, max_length=32)
    service: str = Field(max_length=200)
    service_code: str | None = Field(default=None, max_length=64)  # the clinic catalogue's code
    starts_at: datetime = TZ(nullable=False, index=True)
    ends_at: datetime = TZ(nullable=False)
    duration_minutes: int
    stage: str = Field(default="booked", index=True, max_length=32)
    version: int = Field(default=1)
    workflow_id: str = Field(max_length=255)
    idempotency_key: str | None = Field(default=None, max_length=255)
    plan_id: str | None = Field(default=None, index=True, max_length=32)
    mis_visit_id: str | None = Field(default=None, max_length=64)  # the clinic MIS's visit id (imports)
    # How the visit came to be, where it matters to reports: "waitlist" = a freed slot taken by
    # a waitlisted patient (issue 12); None = booked at the desk, by a plan or by an import.
    source: str | None = Field(default=None, index=True, max_length=16)
    asks_sent: int = Field(default=0)
    voice_calls: int = Field(default=0)
    nps: int | None = None
    # The patient's first visit, or first after FIRST_VISIT_GAP_MONTHS without one. Kept right on
    # every flush that adds, moves, re-stages or deletes a visit (see _keep_first_visit_flags).
    first_visit: bool = Field(default=False, index=True)
    # What the automatic confirmation achieved for the current version (see confirmation_facts):
    # confirmed / declined / no_answer (the deadline handed it to an operator), or None yet.
    confirmation: str | None = Field(default=None, max_length=16)
    confirmed_at: datetime | None = TZ(nullable=True)  # the patient's confirmation (channel lookup)
    operator_confirmed: bool = Field(default=False)  # a person confirmed it by phone
    survey_sent_at: datetime | None = TZ(nullable=True)  # the NPS survey went out
    cancel_reason: str | None = Field(default=None, max_length=500)
    history: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # False from the booking's commit until its journey is known to run: a booking whose API
    # died in between is found by api.repair and its journey started (no row without a journey).
    journey_started: bool = Field(default=True, index=True)
    # The journey's state counter this row shows (AppointmentSnapshot.journey_revision): a row
    # write made beside the journey lands only on the row it was computed from. 0: not yet
    # written by a journey that carries it.
    journey_revision: int = Field(default=0)
    created_at: datetime = TZ(nullable=False, default=utcnow)
    updated_at: datetime | None = TZ(nullable=True)

    @property
    def fhir_status(self) -> str:
        return FHIR_STATUS[self.stage]


async def lock_doctor(session: AsyncSession, doctor_id: str) -> None:
    """Hold the doctor's slot lock until the caller's commit, so two bookings (or a booking
    and a reschedule) of one doctor are checked and written one after the other.

    PostgreSQL: the doctor's row, SELECT ... FOR UPDATE. SQLite has no row locks and its
    default (deferred) transactions let two writers read the same free slot: a no-op UPDATE
    as the first write takes the database's write lock (what BEGIN IMMEDIATE does) before the
    check reads, waiting out the other writer (busy_timeout) instead of racing it.

    Taken once per transaction: a booking's key check and slot check, or an import chunk's
    rows of one doctor (locked up front, before each row's savepoint), do not lock again. A
    lock taken inside a savepoint counts only there (rolling it back may release it)."""
    if _doctor_locked(session, doctor_id):
        return
    bind = session.bind
    # Plain Core statements, built once: no ORM bulk-update bookkeeping on the hot path.
    sqlite = bind is not None and bind.dialect.name == "sqlite"
    if sqlite:
        await session.exec(_LOCK_SQLITE, params={"doctor_id": doctor_id})
    else:
        await session.exec(_LOCK_FOR_UPDATE, params={"doctor_id": doctor_id})  # type: ignore[call-overload]
    _mark_doctor_locked(session, doctor_id)


_DOCTOR = Doctor.__table__.c  # type: ignore[attr-defined]
_LOCK_SQLITE = update(Doctor.__table__).where(_DOCTOR.id == bindparam("doctor_id")).values(id=_DOCTOR.id)  # type: ignore[attr-defined]
_LOCK_FOR_UPDATE = sa_select(_DOCTOR.id).where(_DOCTOR.id == bindparam("doctor_id")).with_for_update()


async def lock_doctors(session: AsyncSession, doctor_ids: Iterable[str]) -> None:
    """`lock_doctor` for many doctors in one statement (an import chunk's): PostgreSQL locks
    their rows in id order (two writers never wait on each other in opposite orders); on
    SQLite one write takes the database's write lock for all of them."""
    ids = sorted({d for d in doctor_ids if not _doctor_locked(session, d)})
    if not ids:
        return
    bind = session.bind
    if bind is not None and bind.dialect.name == "sqlite":
        await session.exec(update(Doctor).where(col(Doctor.id).in_(ids)).values(id=Doctor.id))
    else:
        q = select(Doctor.id).where(col(Doctor.id).in_(ids)).order_by(col(Doctor.id)).with_for_update()
        await session.exec(q)
    for d in ids:
        _mark_doctor_locked(session, d)


def _live_transactions(session: AsyncSession) -> list[Any]:
    sync = session.sync_session
    return [t for t in (sync.get_transaction(), sync.get_nested_transaction()) if t is not None]


def _doctor_locked(session: AsyncSession, doctor_id: str) -> bool:
    """Locked in this transaction, or in the savepoint we are in (a lock taken before a
    savepoint outlives its rollback; one taken inside it may not)."""
    live = _live_transactions(session)
    held: list[tuple[Any, set[str]]] = session.sync_session.info.get("doctor_locks", [])
    return any(doctor_id in ids and any(t is x for x in live) for t, ids in held)


def _mark_doctor_locked(session: AsyncSession, doctor_id: str) -> None:
    sync = session.sync_session
    live = _live_transactions(session)
    txn = sync.get_nested_transaction() or sync.get_transaction()
    held = [(t, ids) for t, ids in sync.info.get("doctor_locks", []) if any(t is x for x in live)]
    for t, ids in held:
        if t is txn:
            ids.add(doctor_id)
            break
    else:
        held.append((txn, {doctor_id}))
    sync.info["doctor_locks"] = held


async def doctor_clash(
    session: AsyncSession, doctor_id: str, starts_at: datetime, ends_at: datetime, exclude: str | None = None
) -> Appointment | None:
    """An open visit of the same doctor that intersects [starts_at, ends_at), if any.
    (Timestamps are stored in UTC on every database, so this compares in SQL.)

    Takes the doctor's lock first (`lock_doctor`), held until the caller commits."""
    await lock_doctor(session, doctor_id)
    return (
        await session.exec(select(Appointment).where(clash_condition(doctor_id, starts_at, ends_at, exclude)))
    ).first()


def clash_condition(doctor_id: Any, starts_at: Any, ends_at: Any, exclude: Any = None) -> Any:
    """WHERE an appointment is an open visit of the doctor intersecting [starts_at, ends_at)
    (values or bound parameters); `exclude` leaves one appointment out (a reschedule's own)."""
    cond = and_(
        col(Appointment.doctor_id) == doctor_id,
        col(Appointment.stage).in_(OPEN_STAGES),
        col(Appointment.starts_at) < ends_at,
        col(Appointment.ends_at) > starts_at,
    )
    return cond if exclude is None else and_(cond, col(Appointment.id) != exclude)


# ---------------------------------------------------------------------------- first visits
FIRST_VISIT_GAP_MONTHS = 6
# Stages that are not a visit (it did not and will not happen): they never make a later visit
# a repeat one. A cancelled or missed first booking is itself still flagged: it is a first-time
# enquiry that did not convert (management's conversion report counts it).
NOT_A_VISIT = frozenset({"cancelled", "no_show"})


def months_before(t: datetime, months: int) -> datetime:
    """The same wall-clock instant `months` calendar months earlier (day clamped to the month)."""
    y, m = divmod(t.year * 12 + (t.month - 1) - months, 12)
    m += 1
    last = [31, 29 if y % 4 == 0 and (y % 100 != 0 or y % 400 == 0) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    return t.replace(year=y, month=m, day=min(t.day, last[m - 1]))


def first_visit_flags(
    visits: Iterable[tuple[str, datetime, str]], last_visit_on: date | None = None
) -> dict[str, bool]:
    """One patient's visits as (id, starts_at, stage) -> {id: first_visit}.

    A visit is a first one when no *other* real visit (stage not in NOT_A_VISIT) of the patient
    started within the FIRST_VISIT_GAP_MONTHS before it (ties on the start broken by id).
    `last_visit_on` (the MIS patient base's last visit, from before our records) counts as a
    real visit for visits on a later day."""
    ordered = sorted(((as_utc(t), i, st) for i, t, st in visits), key=lambda v: (v[0], v[1]))
    out: dict[str, bool] = {}
    mis = datetime(last_visit_on.year, last_visit_on.month, last_visit_on.day, tzinfo=UTC) if last_visit_on else None
    last_real: datetime | None = None
    for t, i, st in ordered:
        before = last_real
        if mis is not None and last_visit_on is not None and last_visit_on < t.date():
            before = mis if before is None else max(before, mis)
        out[i] = before is None or before <= months_before(t, FIRST_VISIT_GAP_MONTHS)
        if st not in NOT_A_VISIT:
            last_real = t
    return out


def refresh_first_visits_sync(session: Session, patient_ids: Iterable[str]) -> int:
    """Recompute `first_visit` for every appointment of these patients (pending rows of this
    session included, deleted ones excluded); returns how many flags changed. On PostgreSQL the
    patients' rows are locked first, so two concurrent writers for one patient take turns."""
    ids = sorted({p for p in patient_ids if p})
    if not ids:
        return 0
    changed = 0
    with session.no_autoflush:
        for chunk in (ids[i : i + 500] for i in range(0, len(ids), 500)):
            mis_last, visits = _patients_and_visits(session, chunk)
            rows: dict[str, Appointment] = {a.id: a for a in visits}
            for obj in session.new:
                if isinstance(obj, Appointment) and obj.patient_id in chunk:
                    rows[obj.id] = obj
            for obj in session.deleted:
                if isinstance(obj, Appointment):
                    rows.pop(obj.id, None)
            by_patient: dict[str, list[Appointment]] = {}
            for a in rows.values():
                by_patient.setdefault(a.patient_id, []).append(a)
            for pid, visits in by_patient.items():
                flags = first_visit_flags(((a.id, a.starts_at, a.stage) for a in visits), mis_last.get(pid))
                for a in visits:
                    if a.first_visit != flags[a.id]:
                        a.first_visit = flags[a.id]
                        changed += 1
    return changed


def _patients_and_visits(session: Session, chunk: list[str]) -> tuple[dict[str, date | None], list[Appointment]]:
    """The patients' MIS last visits and their stored visits. PostgreSQL: the patients' rows
    are locked (and their last visits read) first, then the visits read, so a writer that
    waited for the lock sees what the other committed. SQLite has no row locks (a writer
    holds the whole database's), so one statement reads both."""
    if session.get_bind().dialect.name != "sqlite":
        mis_last = _last_visits(session, chunk, lock=True)
        return mis_last, list(session.scalars(select(Appointment).where(col(Appointment.patient_id).in_(chunk))))
    one = len(chunk) == 1  # a booking, a sync: one patient (no expanding IN to render)
    params = {"patient_id": chunk[0]} if one else {"patient_ids": chunk}
    stored: dict[str, date | None] = {}
    visits: list[Appointment] = []
    for pid, last, appt in session.execute(_patients_and_visits_statement(one), params):
        stored[pid] = last
        if appt is not None:
            visits.append(appt)
    return _pending_last_visits(session, chunk, stored), visits


@cache
def _patients_and_visits_statement(one: bool) -> Any:
    pt = Patient.__table__.c  # type: ignore[attr-defined]
    which = pt.id == bindparam("patient_id") if one else pt.id.in_(bindparam("patient_ids", expanding=True))
    return (
        sa_select(pt.id, pt.last_visit_on, Appointment)
        .select_from(Patient.__table__)  # type: ignore[attr-defined]
        .outerjoin(Appointment, col(Appointment.patient_id) == pt.id)
        .where(which)
    )


def _last_visits(session: Session, patient_ids: list[str], lock: bool = False) -> dict[str, date | None]:
    """Each patient's MIS last visit date, as this session sees it (pending changes included);
    `lock`: their rows stay locked to the end of the transaction (PostgreSQL)."""
    if not patient_ids:
        return {}
    pt = Patient.__table__.c  # type: ignore[attr-defined]
    q = sa_select(pt.id, pt.last_visit_on).where(pt.id.in_(patient_ids))
    rows = session.execute(q.with_for_update() if lock else q).all()
    return _pending_last_visits(session, patient_ids, {r[0]: r[1] for r in rows})


def _pending_last_visits(
    session: Session, patient_ids: list[str], stored: dict[str, date | None]
) -> dict[str, date | None]:
    """`stored` with this session's pending patient changes over it."""
    wanted = set(patient_ids)
    for obj in (*session.new, *session.dirty):
        if isinstance(obj, Patient) and obj.id in wanted:
            stored[obj.id] = obj.last_visit_on
    return stored


async def refresh_first_visits(session: AsyncSession, patient_ids: Iterable[str]) -> int:
    """For writers that bypass the ORM (bulk INSERT/UPDATE): call before commit."""
    ids = list(patient_ids)
    return await session.run_sync(lambda s: refresh_first_visits_sync(s, ids))


_FIRST_VISIT_INPUTS = ("starts_at", "stage", "patient_id")


def _visit_or_not_changes(old: Any, new: Any) -> bool:
    """Whether a stage change moves the appointment in or out of NOT_A_VISIT (the only way a
    stage counts for first-visit flags). An unknown old stage counts as a change."""
    if not old or not new:
        return True
    return (old[0] in NOT_A_VISIT) != (new[-1] in NOT_A_VISIT)


@event.listens_for(Session, "before_flush")
def _keep_first_visit_flags(session: Session, _ctx: Any, _instances: Any) -> None:
    """Every ORM write of an appointment (booking, reschedule, the journey's sync, a plan's
    visit, an import) that adds one, deletes one or changes its start, stage or patient — or
    of a patient's MIS `last_visit_on` — recomputes that patient's first-visit flags in the
    same transaction."""
    patients: set[str] = set()
    for obj in session.new:
        if isinstance(obj, Appointment):
            patients.add(obj.patient_id)
    for obj in session.deleted:
        if isinstance(obj, Appointment):
            patients.add(obj.patient_id)
    for obj in session.dirty:
        if isinstance(obj, Patient):
            if inspect(obj).attrs["last_visit_on"].history.has_changes():
                patients.add(obj.id)
            continue
        if not isinstance(obj, Appointment):
            continue
        state = inspect(obj)
        for name in _FIRST_VISIT_INPUTS:
            hist = state.attrs[name].history
            if hist.has_changes():
                if name == "stage" and not _visit_or_not_changes(hist.deleted, hist.added):
                    continue  # e.g. booked -> confirmed: still a visit, no flag can change
                patients.add(obj.patient_id)
                if name == "patient_id":  # the patient it moved away from, too
                    patients.update(v for v in hist.deleted if isinstance(v, str))
    if patients:
        refresh_first_visits_sync(session, patients)


# ---------------------------------------------------------------------------- confirmation facts
@dataclass
class ConfirmationFacts:
    confirmation: str | None = None  # confirmed | declined | no_answer
    confirmed_at: datetime | None = None
    operator_confirmed: bool = False
    survey_sent_at: datetime | None = None

    def columns(self) -> dict[str, Any]:
        """The `appointment` columns these facts fill (the field names are theirs)."""
        return asdict(self)


_FIRST_ANSWER = {"patient_confirmed": "confirmed", "patient_declined": "declined", "deadline_unconfirmed": "no_answer"}


def confirmation_facts(history: Iterable[tuple[datetime, str]]) -> ConfirmationFacts:
    """From a journey's history (at, event): what the automatic asks of the *current* version
    achieved (the first of: the patient confirmed, declined, or the deadline passed and an
    operator took over), whether a person confirmed by phone, and when the survey went out.
    A reschedule starts a new version: its asks are judged afresh, as the counters are."""
    out = ConfirmationFacts()
    for at, ev in history:
        if ev.startswith("rescheduled_v"):
            out.confirmation, out.confirmed_at, out.operator_confirmed = None, None, False
        elif ev in _FIRST_ANSWER and out.confirmation is None:
            out.confirmation = _FIRST_ANSWER[ev]
            if ev == "patient_confirmed":
                out.confirmed_at = as_utc(at)
        elif ev == "confirmed_by_operator":
            out.operator_confirmed = True
        elif ev == "survey_sent":
            out.survey_sent_at = as_utc(at)
    return out


def apply_confirmation_facts(row: Appointment, history: Iterable[tuple[datetime, str]]) -> None:
    for name, value in confirmation_facts(history).columns().items():
        setattr(row, name, value)
