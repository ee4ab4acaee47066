"""Slot-offer journey activities: who to ask next, book the slot for the first "yes", close
the offer. Booking goes through core.booking (the doctor's slot lock, the same row and journey
as POST /v1/appointments) with one booking key per offer, so a slot offered once is booked at
most once, whatever retries or races happen."""

from __future__ import annotations

import uuid

from temporalio import activity
from temporalio.exceptions import ApplicationError

from contracts.waitlist import BookRequest, BookResult, Candidate, CandidatesRequest, OfferClosed, WaitlistActivityStubs
from conversations.questions import expire
from core import booking, campaigns
from core.deps import Deps
from core.logging import get_logger
from models.appointment import Appointment
from models.core import Clinic, utcnow
from models.waitlist import ACTIVE, BOOKED, SlotOffer, WaitlistEntry, busy_patients, matching_entries

log = get_logger("activities.waitlist")

WAITLIST_SOURCE = "waitlist"  # appointment.source of a visit booked from the list


def booking_key(offer_id: str) -> str:
    """One booking per offer: the Idempotency-Key of the visit a slot offer books."""
    return f"slot-offer:{offer_id}"


class WaitlistActivities(WaitlistActivityStubs):
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name="waitlist_candidates")
    async def waitlist_candidates(self, req: CandidatesRequest) -> list[Candidate]:
        async with self.deps.sessions() as s:
            offer = await s.get(SlotOffer, req.offer_id)
            clinic = await s.get(Clinic, offer.clinic_id) if offer else None
            if offer is None or clinic is None:
                raise ApplicationError("the slot offer no longer exists", type="NotFound", non_retryable=True)
            # The patient whose visit freed the slot is not offered it back.
            freed = await s.get(Appointment, offer.freed_by)
            skip = [*req.exclude_patients, *([freed.patient_id] if freed else [])]
            found = await matching_entries(s, offer, clinic.timezone, req.exclude_entries, skip, req.limit)
            offer.offered = len(req.exclude_entries) + len(found)
            s.add(offer)
            await s.commit()
        return [
            Candidate(
                entry_id=e.id,
                patient_id=e.patient_id,
                service=e.service,
                service_code=e.service_code,
                duration_minutes=e.duration_minutes,
            )
            for e in found
        ]

    @activity.defn(name="book_from_waitlist")
    async def book_from_waitlist(self, req: BookRequest) -> BookResult:
        key = booking_key(req.offer_id)
        async with self.deps.sessions() as s:
            offer = await s.get(SlotOffer, req.offer_id)
            entry = await s.get(WaitlistEntry, req.entry_id)
            clinic = await s.get(Clinic, offer.clinic_id) if offer else None
            if offer is None or clinic is None:
                raise ApplicationError("the slot offer no longer exists", type="NotFound", non_retryable=True)
            existing = await booking.by_key(s, key)
            if existing is not None:  # a retry of this step after its commit, or another answer won
                if existing.patient_id != req.patient_id:
                    return BookResult("taken")
                appt = existing
            else:
                if entry is None or entry.state != ACTIVE or entry.patient_id != req.patient_id:
                    return BookResult("gone")
                if offer.starts_at <= utcnow():
                    return BookResult("too_late")
                try:
                    appt = await booking.reserve(
                        s,
                        clinic=clinic,
                        doctor_id=offer.doctor_id,
                        patient_id=entry.patient_id,
                        starts_at=offer.starts_at,
                        duration_minutes=entry.duration_minutes or offer.duration_minutes,
                        service=entry.service,
                        service_code=entry.service_code,
                        idempotency_key=key,
                        appointment_id=uuid.uuid5(uuid.NAMESPACE_URL, key).hex,
                        source=WAITLIST_SOURCE,
                    )
                except booking.KeyTaken as e:  # a concurrent attempt committed under the lock
                    await s.commit()
                    return BookResult("booked" if e.existing.patient_id == req.patient_id else "taken", e.existing.id)
                except booking.SlotTaken:
                    await s.rollback()
                    return BookResult("taken")
                except booking.InvalidBooking as e:
                    await s.rollback()
                    log.info("waitlist booking refused", offer_id=req.offer_id, field=e.field)
                    return BookResult("too_late" if e.field == "starts_at" else "gone")
                # Under the doctor's lock: a visit the patient got meanwhile at that time
                # (another doctor, another branch) means they cannot come: not booked twice.
                if await busy_patients(s, [entry.patient_id], appt.starts_at, appt.ends_at, exclude=appt.id):
                    await s.rollback()
                    log.info("waitlist booking refused: the patient has a visit then", offer_id=req.offer_id)
                    return BookResult("busy")
                appt.journey_started = False
                entry.state, entry.booked_appointment_id, entry.updated_at = BOOKED, appt.id, utcnow()
                offer.booked_appointment_id, offer.waitlist_entry_id = appt.id, entry.id
                s.add_all([appt, entry, offer])
                await s.commit()
            # The visit's own journey, on this worker's queue (the API starts bookings there too).
            await booking.start_journey(activity.client(), activity.info().task_queue, appt, clinic)
            await booking.mark_started(s, appt)
            await campaigns.tell_booked(s, activity.client(), appt.patient_id)  # a recall invitation stops
            log.info("freed slot booked from the waiting list", offer_id=offer.id, appointment_id=appt.id)
            return BookResult("booked", appt.id)

    @activity.defn(name="close_slot_offer")
    async def close_slot_offer(self, req: OfferClosed) -> None:
        async with self.deps.sessions() as s:
            offer = await s.get(SlotOffer, req.offer_id)
            if offer is None:
                return
            offer.state, offer.offered = req.state, max(offer.offered, req.offered)
            offer.closed_at = offer.closed_at or utcnow()
            s.add(offer)
            if req.expire_questions:
                await expire(s, offer.id, f"the slot offer is {req.state}")
            await s.commit()
        log.info("slot offer closed", offer_id=req.offer_id, state=req.state)


__all__ = ["WaitlistActivities", "WAITLIST_SOURCE", "booking_key"]
