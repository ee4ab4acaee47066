"""Treatment directions and their stage graphs: the clinic's treatment pathways as data.

A clinic manager can review this file without reading any workflow code. Every direction is
a list of stages; each stage says

* `kind`: `visit` — done at a visit (moving here books an appointment: a child appointment
  journey, or a call-back date for the operator to book one); `wait` — the patient is away
  (healing, a dental lab making a crown, lab tests) and an operator calls back on a date;
  `done` — the plan is complete.
* `next`: which stages may follow it (the only moves the plan accepts).
* `service`: what the booked visit is called by default.
* `callback_days`: for a wait stage, when the operator calls back if nobody names a date.
* `asks_lab_results`: the patient went for analyses; after the clinic's `lab_results_after`
  the journey asks whether the results are ready.

Pure module (no I/O): the treatment-plan workflow imports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from models.policy import JourneyPolicy

StageKind = Literal["visit", "wait", "done"]

CONSULTATION = "consultation"
LAB_TESTS = "lab_tests"
COMPLETED = "completed"
CANCELLED = "cancelled"  # not a graph stage: where a cancelled plan rests


@dataclass(frozen=True)
class Stage:
    key: str
    title: str
    kind: StageKind
    next: tuple[str, ...] = ()
    service: str | None = None
    callback_days: int | None = None
    asks_lab_results: bool = False

    @property
    def is_visit(self) -> bool:
        return self.kind == "visit"


@dataclass(frozen=True)
class Direction:
    key: str
    title: str
    stages: tuple[Stage, ...]

    @property
    def first(self) -> Stage:
        return self.stages[0]

    def stage(self, key: str) -> Stage:
        for s in self.stages:
            if s.key == key:
                return s
        raise KeyError(f"{self.key} has no stage {key!r}")

    def has(self, key: str) -> bool:
        return any(s.key == key for s in self.stages)


def _direction(key: str, title: str, treatment_starts: tuple[str, ...], *stages: Stage) -> Direction:
    """Every direction opens with a consultation, may send the patient for lab tests, and
    ends with `completed`."""
    head = (
        Stage(CONSULTATION, "Consultation", "visit", (LAB_TESTS, *treatment_starts, COMPLETED), service="Consultation"),
        Stage(
            LAB_TESTS,
            "Lab tests (patient went for analyses)",
            "wait",
            (*treatment_starts, COMPLETED),
            callback_days=7,
            asks_lab_results=True,
        ),
    )
    tail = (Stage(COMPLETED, "Treatment completed", "done"),)
    return Direction(key, title, head + stages + tail)


# ----------------------------------------------------------------------------- directions
IMPLANTOLOGY = _direction(
    "implantology",
    "Implantology",
    ("implant_placement_booked",),
    Stage(
        "implant_placement_booked",
        "Booked for implant placement",
        "visit",
        ("implants_placed",),
        service="Implant placement",
    ),
    Stage(
        "implants_placed", "Implants placed (osseointegration)", "wait", ("suture_removal_booked",), callback_days=90
    ),
    Stage(
        "suture_removal_booked",
        "Booked for suture removal / healing abutments",
        "visit",
        ("impressions_taken",),
        service="Suture removal / healing abutments",
    ),
    Stage(
        "impressions_taken",
        "Impressions taken (prosthesis in the lab)",
        "wait",
        ("prosthetics_booked",),
        callback_days=14,
    ),
    Stage("prosthetics_booked", "Booked for prosthetics", "visit", (COMPLETED,), service="Prosthetics on implants"),
)

ORTHODONTICS = _direction(
    "orthodontics",
    "Orthodontics",
    ("braces_fitting_booked",),
    Stage(
        "braces_fitting_booked",
        "Booked for braces / aligners fitting",
        "visit",
        ("braces_worn",),
        service="Braces fitting",
    ),
    Stage(
        "braces_worn",
        "Wearing braces (between adjustments)",
        "wait",
        ("adjustment_booked", "debonding_booked"),
        callback_days=30,
    ),
    Stage("adjustment_booked", "Booked for an adjustment", "visit", ("braces_worn",), service="Braces adjustment"),
    Stage("debonding_booked", "Booked for debonding", "visit", ("retention",), service="Debonding and retainer"),
    Stage("retention", "Retention (retainer follow-up)", "wait", (COMPLETED,), callback_days=180),
)

ORTHOPEDICS = _direction(
    "orthopedics",
    "Orthopedics (prosthetics)",
    ("preparation_booked",),
    Stage(
        "preparation_booked",
        "Booked for tooth preparation",
        "visit",
        ("impressions_taken",),
        service="Tooth preparation",
    ),
    Stage(
        "impressions_taken", "Impressions taken (prosthesis in the lab)", "wait", ("fitting_booked",), callback_days=14
    ),
    Stage(
        "fitting_booked",
        "Booked for prosthesis fitting",
        "visit",
        (COMPLETED, "impressions_taken"),
        service="Prosthesis fitting",
    ),
)

GNATHOLOGY = _direction(
    "gnathology",
    "Gnathology",
    ("diagnostics_booked",),
    Stage(
        "diagnostics_booked",
        "Booked for functional diagnostics",
        "visit",
        ("splint_in_lab",),
        service="Functional diagnostics",
    ),
    Stage("splint_in_lab", "Splint being made in the lab", "wait", ("splint_fitting_booked",), callback_days=14),
    Stage("splint_fitting_booked", "Booked for splint fitting", "visit", ("splint_therapy",), service="Splint fitting"),
    Stage("splint_therapy", "Splint therapy", "wait", ("control_visit_booked",), callback_days=60),
    Stage(
        "control_visit_booked",
        "Booked for a control visit",
        "visit",
        ("splint_therapy", COMPLETED),
        service="Gnathology control visit",
    ),
)

THERAPY = _direction(
    "therapy",
    "Therapy",
    ("treatment_booked",),
    # Several sessions (caries, root canals): the stage may follow itself.
    Stage(
        "treatment_booked",
        "Booked for a treatment session",
        "visit",
        ("treatment_booked", "control_pending", COMPLETED),
        service="Therapeutic treatment",
    ),
    Stage(
        "control_pending", "Waiting for a control check-up", "wait", ("treatment_booked", COMPLETED), callback_days=180
    ),
)

DIRECTIONS: dict[str, Direction] = {d.key: d for d in (IMPLANTOLOGY, ORTHODONTICS, ORTHOPEDICS, GNATHOLOGY, THERAPY)}


def direction(key: str) -> Direction:
    return DIRECTIONS[key]


def callback_moment(on: date, hour: str, timezone: str) -> datetime:
    """The UTC instant of `hour` ("HH:MM" or "HH:MM:SS", clinic time) on the date `on`."""
    parts = [int(p) for p in hour.split(":")]
    h, m, sec = (parts + [0, 0])[:3]
    local = datetime.combine(on, time(h, m, sec), tzinfo=ZoneInfo(timezone))
    return local.astimezone(UTC)


def default_callback_date(stage: Stage, today: date) -> date | None:
    return today + timedelta(days=stage.callback_days) if stage.callback_days else None


def _check() -> None:
    """Every `next` names a stage of its own direction (checked at import)."""
    for d in DIRECTIONS.values():
        keys = {s.key for s in d.stages}
        assert len(keys) == len(d.stages), f"{d.key}: duplicate stage keys"
        for s in d.stages:
            missing = set(s.next) - keys
            assert not missing, f"{d.key}.{s.key}: unknown next stages {missing}"


_check()


# ----------------------------------------------------------------------------- journey contracts
# Dataclasses that cross into the treatment-plan workflow (inputs, state, query view,
# activity inputs). Versionable: add fields with defaults, never rename.
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
class PlanView:
    plan_id: str
    workflow_id: str
    clinic_id: str
    patient_id: str
    direction: str
    stage: str
    stage_title: str
    stage_kind: str
    status: str
    waiting_for: str | None
    next_due_at: datetime | None
    allowed_next: list[str]
    appointments: list[LinkedAppointment]
    history: list[HistoryEntry]
    items: list[PlanItem]
    pricing: Pricing
    runs: int


# Activity inputs (the activities live in activities/treatment.py)
@dataclass
class PlanSnapshot:
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
    version: int


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
