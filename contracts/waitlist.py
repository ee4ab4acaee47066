"""The slot-offer journey's contract (issue 12, the waiting list): names, input, activity
requests and results, typed activity stubs.

A freed slot is offered to matching waitlisted patients in waves; the first "yes" books it
(through the same doctor-slot lock as `POST /v1/appointments`), later ones hear "sorry, taken"
and stay on the list. Pure: no I/O library is imported. Add fields with defaults; never rename.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from temporalio import activity

from contracts.policy import QuietHours

SLOT_OFFER_WORKFLOW = "SlotOfferJourney"
SLOT_OFFER_STATE_QUERY = "state"
SLOT_OFFER_SUBJECT = "slot_offer"  # open questions' subject_type
SLOT_OFFER_QUESTION = "slot_offer"  # open questions' kind
# Patient texts (core/texts/defaults.py), rendered by the messaging activity.
OFFER_TEXT = "waitlist_offer"
TAKEN_TEXT = "waitlist_taken"
TAKE_BUTTON = "button.waitlist_take"
SKIP_BUTTON = "button.waitlist_skip"
# The front desk's task when nobody on the list took the slot.
UNFILLED_TASK = "waitlist_unfilled"


def slot_offer_workflow_id(offer_id: str) -> str:
    return f"slot-offer-{offer_id}"


@dataclass
class WavePolicy:
    """The clinic's waiting-list policy (JourneyPolicy.waitlist_*), in seconds."""

    wave_size: int = 3
    wave_interval: float = 15 * 60
    stop_before: float = 2 * 3600
    # The clinic's quiet hours (local, in `timezone`): a wave due then waits for their end,
    # unless that would be past the offer's stop time (same-day-critical).
    quiet_hours: QuietHours | None = None
    timezone: str = "UTC"

    @property
    def wave_interval_td(self) -> timedelta:
        return timedelta(seconds=self.wave_interval)

    @property
    def stop_before_td(self) -> timedelta:
        return timedelta(seconds=self.stop_before)


@dataclass
class SlotOfferInput:
    offer_id: str
    clinic_id: str
    doctor_id: str
    starts_at: datetime  # aware
    duration_minutes: int
    policy: WavePolicy = field(default_factory=WavePolicy)


@dataclass
class Candidate:
    entry_id: str
    patient_id: str
    service: str = ""
    service_code: str | None = None
    duration_minutes: int | None = None


@dataclass
class CandidatesRequest:
    offer_id: str
    exclude_entries: list[str] = field(default_factory=list)
    exclude_patients: list[str] = field(default_factory=list)
    limit: int = 3


@dataclass
class BookRequest:
    offer_id: str
    entry_id: str
    patient_id: str


@dataclass
class BookResult:
    # booked: this patient has the slot now · taken: the slot is someone else's (another
    # answer won, or the desk booked it) · gone: the entry left the list meanwhile ·
    # too_late: the slot's start has passed · busy: the patient has another visit at that
    # time (the offer stays open for the others, like gone)
    status: str
    appointment_id: str | None = None


@dataclass
class OfferClosed:
    """Close the offer's row (`state`) and the open questions nobody may answer any more."""

    offer_id: str
    state: str  # booked / taken / too_close / exhausted
    offered: int = 0
    expire_questions: bool = True


@dataclass
class SlotOfferSnapshot:
    offer_id: str
    state: str
    offered: list[str] = field(default_factory=list)  # patient ids asked
    declined: list[str] = field(default_factory=list)
    waiting_yes: list[str] = field(default_factory=list)
    booked_patient_id: str | None = None
    booked_appointment_id: str | None = None
    told_taken: list[str] = field(default_factory=list)
    waves: int = 0
    next_wave_at: datetime | None = None  # a wave held back by the clinic's quiet hours


class WaitlistActivityStubs:
    @activity.defn(name="waitlist_candidates")
    async def waitlist_candidates(self, req: CandidatesRequest) -> list[Candidate]:
        raise NotImplementedError

    @activity.defn(name="book_from_waitlist")
    async def book_from_waitlist(self, req: BookRequest) -> BookResult:
        raise NotImplementedError

    @activity.defn(name="close_slot_offer")
    async def close_slot_offer(self, req: OfferClosed) -> None:
        raise NotImplementedError
