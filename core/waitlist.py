"""Freed slots for the waiting list (issue 12): record one when a visit stops holding its slot,
and start its slot-offer journey.

A slot frees when a visit is cancelled, moved to another time, or marked a no-show before it
starts (a patient who said they will not come today). Whatever freed it — the desk, the MIS
import, a cancelled treatment plan, the journey itself — the appointment journey's sync
(`sync_appointment`) sees the change and records it here; a reschedule through
`core.booking.move` records it in the same transaction that moves the row. Both are keyed by
the visit and the version that held the slot (`slot_offer.freed_key`), so a slot is offered
once. The offer's journey is started right after the commit; `api.repair` starts any left
unstarted (a process killed in between), like bookings.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
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

from contracts.appointment import clinic_zone
from contracts.waitlist import SlotOfferInput, WavePolicy, slot_offer_workflow_id
from core.logging import get_logger
from core.search_attributes import CLINIC_ID
from models.core import Clinic, policy_from_json, utcnow
from models.waitlist import SlotOffer, any_waiting
from workflows.slot_offer import SlotOfferJourney

log = get_logger("core.waitlist")

START_TIMEOUT = timedelta(seconds=5)


def wave_policy(clinic: Clinic) -> WavePolicy:
    p = policy_from_json(clinic.policy)
    return WavePolicy(
        wave_size=p.waitlist_wave_size,
        wave_interval=p.waitlist_wave_interval,
        stop_before=p.waitlist_stop_before,
        quiet_hours=p.quiet_hours,
        timezone=clinic.timezone,
    )


async def record_freed_slot(
    s: AsyncSession,
    *,
    appointment_id: str,
    clinic_id: str,
    doctor_id: str,
    starts_at: datetime,
    duration_minutes: int,
    version: int,
    reason: str,
    still_held: tuple[datetime, datetime] | None = None,
) -> SlotOffer | None:
    """Add the slot offer for a freed slot to the caller's transaction (in a savepoint, so a
    concurrent recorder of the same slot never fails the caller's change). None when there
    is nothing to offer: the slot starts too soon for the clinic's policy, the visit still
    overlaps it (moved by a few minutes), or nobody is on the clinic's list."""
    clinic = await s.get(Clinic, clinic_id)
    if clinic is None:
        return None
    policy = wave_policy(clinic)
    if starts_at - utcnow() <= policy.stop_before_td:
        return None
    ends_at = starts_at + timedelta(minutes=duration_minutes)
    if still_held is not None and still_held[0] < ends_at and still_held[1] > starts_at:
        return None
    local_day = starts_at.astimezone(clinic_zone(clinic.timezone)).date()
    if not await any_waiting(s, clinic_id, local_day):
        return None
    key = f"{appointment_id}:v{version}"
    q = select(SlotOffer).where(SlotOffer.freed_key == key)
    if (found := (await s.exec(q)).first()) is not None:
        return found
    offer = SlotOffer(
        freed_key=key,
        clinic_id=clinic_id,
        doctor_id=doctor_id,
        starts_at=starts_at,
        duration_minutes=duration_minutes,
        freed_by=appointment_id,
        reason=reason,
        workflow_id="",
    )
    offer.workflow_id = slot_offer_workflow_id(offer.id)
    try:
        async with s.begin_nested():
            s.add(offer)
    except IntegrityError:  # recorded by a concurrent writer a moment ago
        return (await s.exec(q)).first()
    log.info("freed slot recorded for the waiting list", offer_id=offer.id, reason=reason, clinic_id=clinic_id)
    return offer


def offer_input(offer: SlotOffer, clinic: Clinic) -> SlotOfferInput:
    return SlotOfferInput(
        offer_id=offer.id,
        clinic_id=offer.clinic_id,
        doctor_id=offer.doctor_id,
        starts_at=offer.starts_at,
        duration_minutes=offer.duration_minutes,
        policy=wave_policy(clinic),
    )


async def start_offer(s: AsyncSession, temporal: Client, task_queue: str, offer: SlotOffer) -> None:
    """Start the offer's journey (idempotent: a repeated start joins it) and mark it started."""
    clinic = await s.get(Clinic, offer.clinic_id)
    if clinic is None:
        return
    try:
        await temporal.start_workflow(
            SlotOfferJourney.run,
            offer_input(offer, clinic),
            id=offer.workflow_id,
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            rpc_timeout=START_TIMEOUT,
            search_attributes=TypedSearchAttributes([SearchAttributePair(CLINIC_ID, offer.clinic_id)]),
        )
    except WorkflowAlreadyStartedError:
        pass  # it ran and finished already
    offer.journey_started = True
    s.add(offer)
    await s.commit()


async def pending_offers(
    s: AsyncSession, *, freed_by: str | None = None, older_than: timedelta | None = None
) -> list[SlotOffer]:
    """Recorded offers whose journey is not started yet: those freed by one visit (right
    after its sync), or every one older than `older_than` (api.repair)."""
    q = select(SlotOffer).where(SlotOffer.journey_started == False)  # noqa: E712
    if freed_by is not None:
        q = q.where(SlotOffer.freed_by == freed_by)
    if older_than is not None:
        q = q.where(col(SlotOffer.created_at) < utcnow() - older_than)
    return list((await s.exec(q.order_by(col(SlotOffer.created_at)).limit(100))).all())
