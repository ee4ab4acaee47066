"""A clinic's journey policy: every timing of SPEC §3/§4 is data, per clinic.

`JourneyPolicy` is a plain dataclass (seconds as floats, times as "HH:MM") so it crosses
into workflows unchanged and deterministic; code reads the timings through the typed
`timedelta` properties below (`policy.confirm_deadline_td`). The defaults here are the only
ones: the API's `PolicyIn` (models/core.py) takes its defaults from `DEFAULT_POLICY`.
Add fields with defaults; never rename.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

HOUR = 3600.0
DAY = 24 * HOUR


@dataclass
class QuietHours:
    start: str = "21:00"  # local clinic time, no automated contact from here...
    end: str = "08:00"  # ...until here (the window may cross midnight)


class _Duration:
    """A typed `timedelta` view of a seconds field (`policy.reminder_lead_td`)."""

    def __init__(self, seconds_field: str, unset_follows: str | None = None) -> None:
        self.seconds_field = seconds_field
        self.unset_follows = unset_follows  # the field an unset (None) value takes

    def __get__(self, policy: object, owner: type | None = None) -> timedelta:
        value = getattr(policy, self.seconds_field)
        if value is None and self.unset_follows:
            value = getattr(policy, self.unset_follows)
        return timedelta(seconds=float(value))


@dataclass
class JourneyPolicy:
    # Appointment journey (SPEC §3)
    reminder_lead: float = 24 * HOUR  # day-before ask at start - reminder_lead
    reask_interval: float = 2 * HOUR  # silence -> ask again after this
    reask_count: int = 3  # re-asks after the first ask
    # Silence after the last re-ask -> robot call; None (the default) follows reask_interval.
    voice_call_after: float | None = None
    voice_call_attempts: int = 1
    confirm_deadline: float = 30 * 60  # not confirmed at start - this -> needs_clarification
    no_show_grace: float = 60  # start + this, unconfirmed and not checked in -> no_show
    require_check_in: bool = False  # confirmed patients must still check in by start + grace
    feedback_delay: float = 1 * HOUR  # after the visit, NPS survey after this
    survey_timeout: float = 3 * DAY  # no NPS answer -> journey closes
    quiet_hours: QuietHours | None = field(default_factory=QuietHours)
    # Who gets the public review link after the survey: "promoters" (9-10; others get the
    # internal form or a thank-you) or "everyone" (Google's review policy forbids asking only
    # happy customers). Detractors' tasks are raised either way.
    review_link_to: str = "promoters"
    # Treatment plans (SPEC §4)
    callback_hour: str = "09:00"  # call-back tasks fall due at this local time
    lab_results_after: float = 7 * DAY  # lab-tests stage asks the patient after this
    # Waiting list (issue 12): a freed slot is offered to this many waitlisted patients at a
    # time, the next wave after this long without a taker, and never closer than
    # waitlist_stop_before to the slot's start.
    waitlist_wave_size: int = 3
    waitlist_wave_interval: float = 15 * 60
    waitlist_stop_before: float = 2 * HOUR
    # History hygiene for long-lived workflows
    max_history_events: int = 8000

    # Typed timings (the fields stay seconds: that is their wire format in saved histories).
    reminder_lead_td = _Duration("reminder_lead")
    reask_interval_td = _Duration("reask_interval")
    voice_call_after_td = _Duration("voice_call_after", unset_follows="reask_interval")
    confirm_deadline_td = _Duration("confirm_deadline")
    no_show_grace_td = _Duration("no_show_grace")
    feedback_delay_td = _Duration("feedback_delay")
    survey_timeout_td = _Duration("survey_timeout")
    lab_results_after_td = _Duration("lab_results_after")
    waitlist_wave_interval_td = _Duration("waitlist_wave_interval")
    waitlist_stop_before_td = _Duration("waitlist_stop_before")


DEFAULT_POLICY = JourneyPolicy()
DURATION_FIELDS = (
    "reminder_lead",
    "reask_interval",
    "voice_call_after",
    "confirm_deadline",
    "no_show_grace",
    "feedback_delay",
    "survey_timeout",
    "lab_results_after",
    "waitlist_wave_interval",
    "waitlist_stop_before",
)
