"""The one booking service: every appointment journey — booked at the desk through the API
or arriving in the clinic's daily MIS import — is reserved, started, moved and cancelled
here, so both behave exactly alike (same slot check under the doctor's lock, same journey
input, same start options, same updates).

Errors are domain exceptions (`InvalidBooking` names a field, `SlotTaken` the clash); the
API maps them to 422/409, the import to a row error a person can act on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy import select as sa_select
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from contracts.appointment import (
    OPEN_STAGES,
    AppointmentInput,
    AppointmentSnapshot,
    CancelRequest,
    RescheduleRequest,
    appointment_workflow_id,
)
from core import campaigns, waitlist
from core.logging import get_logger
from core.search_attributes import APPOINTMENT_STAGE, APPOINTMENT_START, CLINIC_ID
from core.texts.catalogue import Entry, catalogue, match
from models.appointment import Appointment, clash_condition, doctor_clash, lock_doctor, lock_doctors
from models.core import Clinic, as_utc, policy_from_json
from models.waitlist import on_list, take_off_list
from workflows.appointment import AppointmentJourney

log = get_logger("booking")


class BookingError(Exception):
    """A booking the clinic's rules refuse (never a server fault)."""


class InvalidBooking(BookingError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


class KeyTaken(BookingError):
    """The Idempotency-Key already has its booking (found under the doctor's lock): a
    concurrent retry answers with that appointment instead of a slot clash with it."""

    def __init__(self, existing: Appointment) -> None:
        super().__init__("this Idempotency-Key already has its booking")
        self.existing = existing


class SlotTaken(BookingError):
    def __init__(self, clash: Appointment) -> None:
        super().__init__("the doctor already has an appointment in this slot")
        self.clash = clash

    def detail(self) -> dict[str, Any]:
        return {
            "message": str(self),
            "conflicting_appointment_id": self.clash.id,
            "conflicting_starts_at": self.clash.starts_at.isoformat(),
            "conflicting_ends_at": self.clash.ends_at.isoformat(),
        }


def journey_input(appt: Appointment, clinic: Clinic) -> AppointmentInput:
    """The journey's input, from its row and its clinic (timing policy, timezone)."""
    return AppointmentInput(
        appointment_id=appt.id,
        clinic_id=appt.clinic_id,
        patient_id=appt.patient_id,
        doctor_id=appt.doctor_id,
        starts_at=appt.starts_at,
        duration_minutes=appt.duration_minutes,
        service=appt.service,
        timezone=clinic.timezone,
        policy=policy_from_json(clinic.policy),
        plan_id=appt.plan_id,
        booked_at=appt.created_at,
        service_code=appt.service_code,
        source=appt.source,
    )


async def resolve_service(
    session: AsyncSession,
    clinic: Clinic,
    service: str | None,
    service_code: str | None,
    entries: list[Entry] | None = None,
) -> tuple[str, str | None]:
    """(service name, catalogue code): a named code must be in the clinic's catalogue; free
    text is matched to it by code or name (any language or case) and, when nothing matches,
    kept as written (no memo then)."""
    if entries is None:  # an import passes the catalogue it loaded once for many rows
        entries = await catalogue(session, clinic.id, clinic.language)
    if service_code:
        entry = match(entries, service_code, None)
        if entry is None or entry.code != service_code:
            raise InvalidBooking("service_code", f"service_code {service_code!r} is not in this clinic's catalogue")
        return service or entry.name, entry.code
    if not service:
        raise InvalidBooking("service", "name the service: service_code (from the clinic's catalogue) or service")
    entry = match(entries, None, service)
    return service, entry.code if entry else None


async def check_slot_free(
    session: AsyncSession, doctor_id: str, starts_at: datetime, ends_at: datetime, exclude: str | None = None
) -> None:
    """Raises SlotTaken; the doctor's row stays locked until the caller commits."""
    clash = await doctor_clash(session, doctor_id, starts_at, ends_at, exclude)
    if clash is not None:
        raise SlotTaken(clash)


class SlotBook:
    """The open visits of some doctors over a period, read once under their locks, for many
    bookings in one transaction (an import chunk): each slot check is answered in memory and
    each reservation joins the book, so the check is the one `check_slot_free` makes."""

    def __init__(self, doctor_ids: Iterable[str], start: datetime, end: datetime) -> None:
        self.doctor_ids, self.start, self.end = frozenset(doctor_ids), as_utc(start), as_utc(end)
        self.visits: dict[str, list[Appointment]] = {d: [] for d in self.doctor_ids}

    @classmethod
    async def load(cls, session: AsyncSession, doctor_ids: Iterable[str], start: datetime, end: datetime) -> SlotBook:
        """Locks the doctors (sorted: two writers never wait on each other in opposite
        orders), then reads their open visits that intersect [start, end)."""
        book = cls(doctor_ids, start, end)
        await lock_doctors(session, book.doctor_ids)
        if book.doctor_ids:
            q = select(Appointment).where(
                col(Appointment.doctor_id).in_(sorted(book.doctor_ids)),
                col(Appointment.stage).in_(OPEN_STAGES),
                col(Appointment.starts_at) < book.end,
                col(Appointment.ends_at) > book.start,
            )
            for a in (await session.exec(q)).all():
                book.visits[a.doctor_id].append(a)
        return book

    def covers(self, doctor_id: str, starts_at: datetime, ends_at: datetime) -> bool:
        return doctor_id in self.doctor_ids and self.start <= as_utc(starts_at) and as_utc(ends_at) <= self.end

    def clash(self, doctor_id: str, starts_at: datetime, ends_at: datetime) -> Appointment | None:
        s, e = as_utc(starts_at), as_utc(ends_at)
        return next(
            (
                a
                for a in self.visits[doctor_id]
                if a.stage in OPEN_STAGES and as_utc(a.starts_at) < e and as_utc(a.ends_at) > s
            ),
            None,
        )

    def add(self, appt: Appointment) -> None:
        self.visits[appt.doctor_id].append(appt)

    def discard(self, appt: Appointment) -> None:
        """A reservation rolled back (its savepoint) leaves the book."""
        self.visits[appt.doctor_id] = [a for a in self.visits.get(appt.doctor_id, []) if a is not appt]


# A booking's start call gives up well before api.repair would start the journey itself.
START_TIMEOUT = timedelta(seconds=5)
BOOKING_HORIZON = timedelta(days=5 * 366)


def not_too_far(starts_at: datetime) -> None:
    if starts_at > datetime.now(UTC) + BOOKING_HORIZON:
        raise InvalidBooking("starts_at", "starts_at is more than 5 years ahead")


async def by_key(session: AsyncSession, key: str) -> Appointment | None:
    return (await session.exec(select(Appointment).where(Appointment.idempotency_key == key))).first()


async def mark_started(session: AsyncSession, appt: Appointment) -> None:
    """The journey runs: the row is no longer one for api.repair to start."""
    if not appt.journey_started:
        appt.journey_started = True
        session.add(appt)
        await session.commit()


@cache
def _check_statement(clash: bool, listed: bool, key: bool, campaigns_wait: bool) -> Any:
    """A booking's one read under the doctor's lock (built once per shape; parameters bound
    at execution): a clashing visit, whether the patient is on the clinic's waiting list, the
    Idempotency-Key's appointment and, for `book`, whether a campaign waits on this booking."""
    cols: list[Any] = []
    if clash:
        q = select(Appointment.id).where(
            clash_condition(bindparam("doctor_id"), bindparam("starts_at"), bindparam("ends_at"))
        )
        cols.append(q.limit(1).scalar_subquery().label("clash"))
    if listed:
        cols.append(on_list(bindparam("patient_id"), bindparam("clinic_id")).label("listed"))
    if key:
        q = select(Appointment.id).where(col(Appointment.idempotency_key) == bindparam("key"))
        cols.append(q.scalar_subquery().label("key"))
    if campaigns_wait:
        cols.append(campaigns.booking_matters(bindparam("patient_id")).label("campaigns"))
    return sa_select(*cols)


@dataclass
class _Found:
    clash: str | None = None
    listed: bool = False
    key: str | None = None
    campaigns: bool = False


MARK_EVERY = 0.2  # seconds: the bookings of this long share one `journey_started` commit
_ROWS = Appointment.__table__.c  # type: ignore[attr-defined]
# Core, not an ORM bulk update: no session bookkeeping for rows this session never loaded.
_MARK = update(Appointment.__table__).where(_ROWS.id.in_(bindparam("ids", expanding=True))).values(journey_started=True)  # type: ignore[attr-defined]


class StartedMarks:
    """The second phase of an API booking, batched: its row is marked `journey_started` by one
    UPDATE + commit for all the bookings of the last MARK_EVERY seconds, instead of a second
    transaction (SQLite: the write lock and an fsync) inside every booking's request.

    As safe as marking each at once: a mark is only a hint for api.repair, which starts a row
    still unmarked after REPAIR_AFTER (far longer than MARK_EVERY) with the same idempotent
    start (it joins the running journey). A process that dies with marks pending, or a failed
    write (kept for the next round), costs a redundant start, never a lost or second journey."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], every: float = MARK_EVERY) -> None:
        self._sessions = sessions
        self._every = every
        self._pending: list[str] = []
        self._wake = asyncio.Event()

    def add(self, appointment_id: str) -> None:
        self._pending.append(appointment_id)
        self._wake.set()

    async def flush(self) -> int:
        """Write the pending marks now; returns how many."""
        ids, self._pending = self._pending, []
        if not ids:
            return 0
        try:
            async with self._sessions() as s:
                await s.exec(_MARK, params={"ids": ids})
                await s.commit()
        except BaseException:
            self._pending[:0] = ids  # tried again next round (or by api.repair)
            raise
        return len(ids)

    async def run(self) -> None:
        """Forever (a task of the API process): wait for a booking, gather for MARK_EVERY, write."""
        while True:
            await self._wake.wait()
            await asyncio.sleep(self._every)
            self._wake.clear()
            try:
                await self.flush()
            except Exception as e:  # noqa: BLE001 - the DB away: next round, api.repair as the backstop
                log.warning("journey_started marks not written; retrying", error=type(e).__name__)
                self._wake.set()


async def reserve(
    session: AsyncSession,
    *,
    clinic: Clinic,
    doctor_id: str,
    patient_id: str,
    starts_at: datetime,
    duration_minutes: int,
    service: str | None,
    service_code: str | None = None,
    plan_id: str | None = None,
    idempotency_key: str | None = None,
    mis_visit_id: str | None = None,
    appointment_id: str | None = None,
    source: str | None = None,
    catalogue_entries: list[Entry] | None = None,
    slots: SlotBook | None = None,
    waitlisted: bool = True,
) -> Appointment:
    """Check the slot under the doctor's lock and add the row to the session. The caller
    commits (together with whatever else belongs to the same change), then `start_journey`.
    `source` says where the booking came from (contracts.appointment.SOURCES). The patient's
    waiting-list entries this visit satisfies leave the list in the same transaction.

    For many bookings in one transaction (an import) the caller may pass what it read once:
    the catalogue, the doctors' `slots` (locked and read, covering this visit), and
    `waitlisted=False` when it knows the patient has no active waiting-list entry."""

    appt, _ = await _reserve(
        session,
        clinic=clinic,
        doctor_id=doctor_id,
        patient_id=patient_id,
        starts_at=starts_at,
        duration_minutes=duration_minutes,
        service=service,
        service_code=service_code,
        plan_id=plan_id,
        idempotency_key=idempotency_key,
        mis_visit_id=mis_visit_id,
        appointment_id=appointment_id,
        source=source,
        catalogue_entries=catalogue_entries,
        slots=slots,
        waitlisted=waitlisted,
    )
    return appt


async def _reserve(
    session: AsyncSession,
    *,
    clinic: Clinic,
    doctor_id: str,
    patient_id: str,
    starts_at: datetime,
    duration_minutes: int,
    service: str | None,
    service_code: str | None = None,
    plan_id: str | None = None,
    idempotency_key: str | None = None,
    mis_visit_id: str | None = None,
    appointment_id: str | None = None,
    source: str | None = None,
    catalogue_entries: list[Entry] | None = None,
    slots: SlotBook | None = None,
    waitlisted: bool = True,
    ask_campaigns: bool = False,
) -> tuple[Appointment, bool]:
    """`reserve`, and (`ask_campaigns`) whether `campaigns.tell_booked` has anything to do."""
    if starts_at <= datetime.now(UTC):
        raise InvalidBooking("starts_at", "starts_at is in the past")
    not_too_far(starts_at)
    ends_at = starts_at + timedelta(minutes=duration_minutes)
    service, service_code = await resolve_service(session, clinic, service, service_code, catalogue_entries)
    # Under the doctor's lock (held to the commit): first the key, then the slot. A concurrent
    # retry of the same Idempotency-Key waits here and then finds the booking it raced.
    await lock_doctor(session, doctor_id)
    # One round trip for everything read under the lock (the key first, then the slot, as
    # separate queries did): only what this booking needs — an import chunk has read its
    # doctors' visits (`slots`) and its patients' waiting-list entries already.
    if slots is not None and not slots.covers(doctor_id, starts_at, ends_at):
        slots = None
    shape = (slots is None, waitlisted, bool(idempotency_key), ask_campaigns)
    found = _Found()
    if any(shape):
        params = {
            "doctor_id": doctor_id,
            "starts_at": starts_at,
            "ends_at": ends_at,
            "patient_id": patient_id,
            "clinic_id": clinic.id,
            "key": idempotency_key,
        }
        row = (await session.exec(_check_statement(*shape), params=params)).one()  # type: ignore[call-overload]
        found = _Found(**row._asdict())
    if found.key is not None:
        existing = await session.get(Appointment, found.key)
        assert existing is not None  # read under the doctor's lock: it stays
        raise KeyTaken(existing)
    if found.clash is not None:
        clash = await session.get(Appointment, found.clash)
        assert clash is not None
        raise SlotTaken(clash)
    if slots is not None and (clash := slots.clash(doctor_id, starts_at, ends_at)) is not None:
        raise SlotTaken(clash)
    appt = Appointment(
        clinic_id=clinic.id,
        doctor_id=doctor_id,
        patient_id=patient_id,
        service=service,
        service_code=service_code,
        starts_at=starts_at,
        ends_at=ends_at,
        duration_minutes=duration_minutes,
        plan_id=plan_id,
        idempotency_key=idempotency_key,
        mis_visit_id=mis_visit_id,
        source=source,
        workflow_id="",
    )
    if appointment_id:
        appt.id = appointment_id
    appt.workflow_id = appointment_workflow_id(appt.id)
    appt.history = [{"at": datetime.now(UTC).isoformat(), "event": "booked", "stage": "booked"}]
    # Before the row joins the session: its query flushes nothing new (as before this step).
    if found.listed:
        await take_off_list(session, appt, clinic.timezone)
    session.add(appt)
    if slots is not None:
        slots.add(appt)
    return appt, bool(found.campaigns)


async def start_journey(temporal: Client, task_queue: str, appt: Appointment, clinic: Clinic) -> None:
    """Start the appointment journey for a committed row. Safe to repeat: a retried start
    joins the running journey, and a finished one is never restarted."""
    inp = journey_input(appt, clinic)
    try:
        await temporal.start_workflow(
            AppointmentJourney.run,
            inp,
            id=appointment_workflow_id(inp.appointment_id),
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            rpc_timeout=START_TIMEOUT,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(CLINIC_ID, inp.clinic_id),
                    SearchAttributePair(APPOINTMENT_STAGE, "booked"),
                    SearchAttributePair(APPOINTMENT_START, inp.starts_at),
                ]
            ),
        )
    except WorkflowAlreadyStartedError:
        pass  # it ran and finished already: the booking exists


async def book(
    session: AsyncSession,
    temporal: Client,
    task_queue: str,
    *,
    clinic: Clinic,
    marks: StartedMarks | None = None,
    **kw: Any,
) -> Appointment:
    """Reserve, commit, start. If the start fails the row is removed again: nothing
    half-written. The row is committed `journey_started = false` and marked once the journey
    runs (by `marks`, in a batch, when given): a process killed in between leaves a row
    api.repair starts the journey of."""
    appt, campaigns_wait = await _reserve(session, clinic=clinic, ask_campaigns=True, **kw)
    appt.journey_started = False
    await session.commit()
    try:
        await start_journey(temporal, task_queue, appt, clinic)
    except Exception:
        await session.delete(appt)
        await session.commit()
        raise
    if marks is not None:
        marks.add(appt.id)
    else:
        await mark_started(session, appt)
    await campaigns.tell_booked(session, temporal, appt.patient_id, campaigns_wait)  # a recall invitation stops
    return appt


async def move(
    session: AsyncSession,
    temporal: Client,
    appt: Appointment,
    starts_at: datetime,
    duration_minutes: int | None = None,
    update_id: str | None = None,
) -> AppointmentSnapshot:
    """Reschedule: the new slot is checked under the doctor's lock, the journey takes the
    new time (a new version: nothing goes out for the old one), and the row takes the slot
    in the same transaction, so a booking racing this one sees it. A refused update raises
    before anything is written. `update_id` makes a repeated call one reschedule."""
    if starts_at <= datetime.now(UTC):
        raise InvalidBooking("starts_at", "starts_at is in the past")
    not_too_far(starts_at)
    duration = duration_minutes or appt.duration_minutes
    ends_at = starts_at + timedelta(minutes=duration)
    await check_slot_free(session, appt.doctor_id, starts_at, ends_at, exclude=appt.id)
    handle = temporal.get_workflow_handle_for(AppointmentJourney.run, appt.workflow_id)
    view = await handle.execute_update(
        AppointmentJourney.reschedule, RescheduleRequest(starts_at, duration_minutes), id=update_id
    )
    if appt.starts_at != starts_at:
        # The old time is free: offered to the waiting list (the journey's sync starts it).
        await waitlist.record_freed_slot(
            session,
            appointment_id=appt.id,
            clinic_id=appt.clinic_id,
            doctor_id=appt.doctor_id,
            starts_at=appt.starts_at,
            duration_minutes=appt.duration_minutes,
            version=view.version - 1,
            reason="rescheduled",
            still_held=(starts_at, ends_at),
        )
    appt.starts_at, appt.ends_at, appt.duration_minutes = starts_at, ends_at, duration
    session.add(appt)
    if (clinic := await session.get(Clinic, appt.clinic_id)) is not None:
        await take_off_list(session, appt, clinic.timezone)  # moved early enough for the wish
    await session.commit()
    return view


async def cancel(temporal: Client, appt: Appointment, reason: str, update_id: str | None = None) -> AppointmentSnapshot:
    handle = temporal.get_workflow_handle_for(AppointmentJourney.run, appt.workflow_id)
    view = await handle.execute_update(AppointmentJourney.cancel, CancelRequest(reason), id=update_id)
    return view
