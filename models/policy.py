"""A clinic's journey policy: every timing of SPEC §3/§4 is data, per clinic.

`JourneyPolicy` is a plain dataclass (seconds as floats, times as "HH:MM") so it crosses
into workflows unchanged and deterministic. Add fields with defaults; never rename.
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


@dataclass
class JourneyPolicy:
    # Appointment journey (SPEC §3)
    reminder_lead: float = 24 * HOUR  # day-before ask at start - reminder_lead
    reask_interval: float = 2 * HOUR  # silence -> ask again after this
    reask_count: int = 3  # re-asks after the first ask
    voice_call_after: float = 1 * HOUR  # silence after the last re-ask -> robot call
    voice_call_attempts: int = 1
    confirm_deadline: float = 30 * 60  # not confirmed at start - this -> needs_clarification
    no_show_grace: float = 60  # start + this, unconfirmed and not checked in -> no_show
    require_check_in: bool = False  # confirmed patients must still check in by start + grace
    feedback_delay: float = 1 * HOUR  # after the visit, NPS survey after this
    survey_timeout: float = 3 * DAY  # no NPS answer -> journey closes
    quiet_hours: QuietHours | None = field(default_factory=QuietHours)
    # Treatment plans (SPEC §4)
    callback_hour: str = "09:00"  # call-back tasks fall due at this local time
    lab_results_after: float = 7 * DAY  # lab-tests stage asks the patient after this
    # History hygiene for long-lived workflows
    max_history_events: int = 8000

    def td(self, name: str) -> timedelta:
        return timedelta(seconds=float(getattr(self, name)))
