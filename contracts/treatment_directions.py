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

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from types import MappingProxyType
from typing import Literal
from zoneinfo import ZoneInfo

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

DIRECTIONS: Mapping[str, Direction] = MappingProxyType(
    {d.key: d for d in (IMPLANTOLOGY, ORTHODONTICS, ORTHOPEDICS, GNATHOLOGY, THERAPY)}
)


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
