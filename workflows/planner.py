"""The appointment journey's planner: from the journey's state, what is due next and when.

Pure functions of (state, policy, now, when the version was booked, the clinic's timezone):
no workflow API, no I/O, so a table of real timelines tests them without a server
(tests/test_planner.py). The workflow runs the step the planner names when its time comes,
and asks again after every change. Quiet hours are the one shared rule
(models.quiet_hours.next_send_time).
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import Literal

from contracts.appointment import BEFORE_VISIT, JourneyState
from contracts.policy import JourneyPolicy
from models.quiet_hours import next_send_time

Step = Literal[
    "notice",  # booking / reschedule notice
    "ask",  # the day-before ask or a re-ask
    "voice_call",
    "deadline",  # not confirmed by start - confirm_deadline: to an operator
    "no_show",
    "visit_over",
    "post_memo",
    "survey",
    "answer_feedback",
    "survey_timeout",
]
Planned = tuple[datetime, Step]


def quiet(at: datetime, p: JourneyPolicy, tz: tzinfo, critical_by: datetime | None = None) -> datetime:
    """`at`, moved out of the clinic's quiet hours (unless that would pass `critical_by`)."""
    return next_send_time(at, p.quiet_hours, tz, critical_by)


def next_step(s: JourneyState, p: JourneyPolicy, now: datetime, booked_at: datetime, tz: tzinfo) -> Planned | None:
    """The earliest due step, or None when nothing is planned (the journey waits for news)."""
    assert s.starts_at is not None
    start = s.starts_at
    plan: list[Planned] = []
    if s.stage in BEFORE_VISIT or s.stage == "checked_in":
        if s.notice_version != s.version and s.stage in BEFORE_VISIT:
            # The booking notice goes first: an ask never precedes it.
            return quiet(now, p, tz, critical_by=start), "notice"
        deadline = start - p.confirm_deadline_td
        booked_late = s.version_booked_at is not None and s.version_booked_at >= deadline
        if s.stage == "booked" and not s.asks_stopped and not booked_late:
            # (Booked inside the deadline window, e.g. by phone for today: nobody to ask.)
            plan.append((deadline, "deadline"))
            contact = next_contact(s, p, now, deadline, booked_at, tz)
            if contact is not None:
                plan.append(contact)
        if s.stage in ("booked", "needs_clarification") or (s.stage == "confirmed" and p.require_check_in):
            plan.append((start + p.no_show_grace_td, "no_show"))
        if s.stage in ("confirmed", "checked_in"):
            plan.append((start + timedelta(minutes=s.duration_minutes), "visit_over"))
    elif s.stage == "finished":
        assert s.finished_at is not None
        if not s.post_memo_done:
            plan.append((quiet(s.finished_at, p, tz), "post_memo"))
        elif s.survey_sent_at is None:
            plan.append((quiet(s.finished_at + p.feedback_delay_td, p, tz), "survey"))
        elif s.nps_answered:
            plan.append((now, "answer_feedback"))
        else:
            plan.append((s.survey_sent_at + p.survey_timeout_td, "survey_timeout"))
    if not plan:
        return None
    return min(plan, key=lambda x: x[0])


def next_contact(
    s: JourneyState, p: JourneyPolicy, now: datetime, deadline: datetime, booked_at: datetime, tz: tzinfo
) -> Planned | None:
    """The next automatic ask or voice call of this version, if one still fits before the
    confirmation deadline."""
    assert s.starts_at is not None
    if s.opted_out:
        return None
    calls_left = s.voice_calls < p.voice_call_attempts
    step: Step
    if s.channel_dead:
        if not calls_left:
            return None
        at = now if s.last_contact_at is None or s.voice_calls == 0 else s.last_contact_at + p.voice_call_after_td
        step = "voice_call"
    elif s.asks_sent == 0:
        at = max(s.starts_at - p.reminder_lead_td, booked_at)
        step = "ask"
    elif s.asks_sent <= p.reask_count:
        assert s.last_contact_at is not None
        at = s.last_contact_at + p.reask_interval_td
        step = "ask"
    elif calls_left:
        assert s.last_contact_at is not None
        at = s.last_contact_at + p.voice_call_after_td
        step = "voice_call"
    else:
        return None
    at = quiet(at, p, tz, critical_by=deadline)
    if at >= deadline:
        return None  # too late to ask: the deadline hands it to an operator
    return at, step
