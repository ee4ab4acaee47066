"""The treatment-plan journey's contract (SPEC §4): names, input, state, the one snapshot,
commands, activity inputs and typed activity stubs. The direction graph itself (stages, who moves them) is
contracts/treatment_directions.py. Pure: no I/O library is imported.
Versionable: add fields with defaults, never rename."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from temporalio import activity

from contracts.policy import JourneyPolicy

# ------------------------------------------------------------------ names
TREATMENT_PLAN_WORKFLOW = "TreatmentPlanJourney"
STATE_QUERY = "state"
ADVANCE_UPDATE = "advance"
CANCEL_UPDATE = "cancel"
PLAN_TASK_KINDS = ("plan_callback", "plan_rebook")


def plan_workflow_id(plan_id: str) -> str:
    return f"treatment-plan-{plan_id}"


# ------------------------------------------------------------------ dataclasses
@dataclass
class Actor:
    user_id: str | None = None
    role: str | None = None  # front_desk, doctor, ... or "journey" for automatic steps


@dataclass
class PlanItem:
    service: str
    unit_price: str  # exact decimal as text
    quantity: int
    line_total: str
    tooth: int | None = None


@dataclass
class Pricing:
    subtotal: str
    discount_percent: str
    discount_amount: str
    bonus_points: int
    total: str


@dataclass
class HistoryEntry:
    at: datetime
    action: str  # created, advanced, appointment_booked, appointment_<stage>, callback_task, ...
    by_user: str | None = None
    by_role: str | None = None
    from_stage: str | None = None
    to_stage: str | None = None
    appointment_id: str | None = None
    note: str | None = None


@dataclass
class LinkedAppointment:
    appointment_id: str
    workflow_id: str
    plan_stage: str
    doctor_id: str
    starts_at: datetime
    duration_minutes: int
    service: str
    stage: str = "booked"  # the appointment journey's stage; final once it ends
    running: bool = True
    reason: str | None = None


@dataclass
class PendingTimer:
    id: int
    kind: str  # callback | lab_ask
    fire_at: datetime
    stage: str


@dataclass
class PlanState:
    plan_id: str
    clinic_id: str
    patient_id: str
    direction: str
    timezone: str
    stage: str
    items: list[PlanItem]
    pricing: Pricing
    policy: JourneyPolicy = field(default_factory=JourneyPolicy)
    status: str = "active"  # active, completed, cancelled
    history: list[HistoryEntry] = field(default_factory=list)
    appointments: list[LinkedAppointment] = field(default_factory=list)
    timers: list[PendingTimer] = field(default_factory=list)
    seq: int = 0  # ids for bookings and timers; stable across continue-as-new
    sync_version: int = 0
    runs: int = 1  # how many runs (continue-as-new generations) this plan has had
    created_by: Actor = field(default_factory=Actor)


@dataclass
class PlanInput:
    state: PlanState
    started: bool = False  # False only for the very first run (writes the "created" entry)


@dataclass
class AppointmentRequest:
    doctor_id: str
    starts_at: datetime
    duration_minutes: int
    service: str | None = None


@dataclass
class VisitObservation:
    appointment_id: str
    stage: str


@dataclass
class AdvanceRequest:
    to_stage: str
    actor: Actor = field(default_factory=Actor)
    appointment: AppointmentRequest | None = None
    callback_at: datetime | None = None  # the call-back moment (callback_hour, clinic time)
    note: str | None = None
    policy: JourneyPolicy | None = None  # the clinic's current policy for a booked visit
    # Live stages of running child journeys as the API just read them (their `state` query).
    # A visit the doctor finished counts as done at once: the child journey itself only ends
    # after the after-care memo and the feedback survey, which need not hold the plan up.
    observed: list[VisitObservation] = field(default_factory=list)


@dataclass
class CancelRequest:
    reason: str
    actor: Actor = field(default_factory=Actor)
    cancel_visits: bool = True  # also cancel visits booked for the plan that have not happened


@dataclass
class PlanSnapshot:
    """The one snapshot of a plan: the `state` query's answer, every update's result, the
    journey's result and the `sync_treatment_plan` input (the row takes its columns). Field
    names are the wire format: in-flight syncs scheduled before the view fields were added
    carry only the first ten and `version`, and still decode (the rest have defaults)."""

    plan_id: str
    workflow_id: str
    clinic_id: str
    patient_id: str
    direction: str
    stage: str
    status: str
    next_due_at: datetime | None
    pricing: Pricing
    items: list[PlanItem]
    version: int = 0  # the sync's order: the row never goes back to an older one
    stage_title: str = ""
    stage_kind: str = ""
    waiting_for: str | None = None
    allowed_next: list[str] = field(default_factory=list)
    appointments: list[LinkedAppointment] = field(default_factory=list)
    history: list[HistoryEntry] = field(default_factory=list)
    runs: int = 1


# Activity inputs (the activities live in activities/treatment.py)
@dataclass
class PlanBooking:
    appointment_id: str
    idempotency_key: str
    plan_id: str
    clinic_id: str
    patient_id: str
    doctor_id: str
    starts_at: datetime
    duration_minutes: int
    service: str


@dataclass
class BookedAppointment:
    appointment_id: str
    workflow_id: str
    created: bool


class TreatmentPlanActivityStubs:
    """The plan journey's own activities (implemented by activities.treatment)."""

    @activity.defn(name="sync_treatment_plan")
    async def sync_treatment_plan(self, snap: PlanSnapshot) -> bool:
        raise NotImplementedError

    @activity.defn(name="book_plan_appointment")
    async def book_plan_appointment(self, b: PlanBooking) -> BookedAppointment:
        raise NotImplementedError
