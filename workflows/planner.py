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
# When the first ask falls due while the booking notice is still on its way, it waits up to
# this long after the notice set off (the usual order: notice, then ask) and then goes out
# beside it: a slow provider or a dead worker's notice never holds the ask (issue 16). Not a
# clinic policy: a notice normally leaves in well under a second.
NOTICE_HEAD_START = timedelta(seconds=10)


def quiet(at: datetime, p: JourneyPolicy, tz: tzinfo, critical_by: datetime | None = None) -> datetime:
    """`at`, moved out of the clinic's quiet hours (unless that would pass `critical_by`)."""
    return next_send_time(at, p.quiet_hours, tz, critical_by)


def next_step(
    s: JourneyState,
    p: JourneyPolicy,
    now: datetime,
    booked_at: datetime,
    tz: tzinfo,
    *,
    sending: bool = False,
    notice_since: datetime | None = None,
    fitted: bool = False,
) -> Planned | None:
    """The earliest due step, or None when nothing is planned (the journey waits for news).

    `sending`: a send is on its way beside the journey (issue 16): no notice or contact is
    planned until it is done, but every timer still is. `notice_since`: the notice has been
    on its way in its own slot since then; contacts are still planned (the first ask gives
    it NOTICE_HEAD_START). `fitted`: re-asks and robot calls are fitted before the deadline
    (plan_contacts; journeys patched for it)."""
    assert s.starts_at is not None
    start = s.starts_at
    plan: list[Planned] = []
    if s.stage in BEFORE_VISIT or s.stage == "checked_in":
        if s.notice_version != s.version and s.stage in BEFORE_VISIT and not sending and notice_since is None:
            # The booking notice goes first: an ask never precedes it.
            return quiet(now, p, tz, critical_by=start), "notice"
        deadline = start - p.confirm_deadline_td
        booked_late = s.version_booked_at is not None and s.version_booked_at >= deadline
        if s.stage == "booked" and not s.asks_stopped and not booked_late:
            # (Booked inside the deadline window, e.g. by phone for today: nobody to ask.)
            plan.append((deadline, "deadline"))
            contact = (
                None
                if sending
                else next_contact(s, p, now, deadline, booked_at, tz, fitted=fitted, notice_since=notice_since)
            )
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
    s: JourneyState,
    p: JourneyPolicy,
    now: datetime,
    deadline: datetime,
    booked_at: datetime,
    tz: tzinfo,
    *,
    fitted: bool = False,
    notice_since: datetime | None = None,
) -> Planned | None:
    """The next automatic ask or voice call of this version, if one still fits before the
    confirmation deadline."""
    assert s.starts_at is not None
    if s.opted_out:
        return None
    if fitted and s.asks_sent > 0 and not s.channel_dead:
        plan, _ = _owed(s, p, deadline)
        if not plan:
            return None
        at, kind = plan[0]
        at = quiet(at, p, tz, critical_by=deadline)
        return None if at >= deadline else (at, "ask" if kind == "ask" else "voice_call")
    calls_left = s.voice_calls < p.voice_call_attempts
    step: Step
    if s.channel_dead:
        if not calls_left:
            return None
        at = now if s.last_contact_at is None or s.voice_calls == 0 else s.last_contact_at + p.voice_call_after_td
        step = "voice_call"
    elif s.asks_sent == 0:
        at = max(s.starts_at - p.reminder_lead_td, booked_at)
        if notice_since is not None and at < notice_since + NOTICE_HEAD_START < deadline:
            at = notice_since + NOTICE_HEAD_START
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


def plan_contacts(
    *,
    last: datetime,
    deadline: datetime,
    reasks_left: int,
    calls_left: int,
    reask_interval: timedelta,
    call_after: timedelta,
) -> tuple[list[tuple[datetime, str]], int]:
    """The contacts still owed after the last one (re-asks, then robot calls: the seed's
    silence -> re-asks -> robot call -> operator at the deadline), each strictly before the
    deadline. On the policy's own gaps when they fit; otherwise spread evenly over the time
    left (never further apart than the policy's gap). Re-asks that would come closer than a
    quarter of their gap are given up (the robot call matters more and always gets its place
    when the first ask fitted); how many were given up is returned with the plan, so it is
    recorded, never silent."""
    kinds = ["ask"] * reasks_left + ["call"] * calls_left
    gaps = [reask_interval] * reasks_left + [call_after] * calls_left
    unfitted = 0
    while kinds:
        at, plan = last, []
        for kind, gap in zip(kinds, gaps, strict=True):
            at += gap
            plan.append((at, kind))
        if plan[-1][0] < deadline:
            return plan, unfitted
        step = (deadline - last) / (len(kinds) + 1)
        if all(step >= gap / 4 for kind, gap in zip(kinds, gaps, strict=True) if kind == "ask"):
            plan, at = [], last
            for kind, gap in zip(kinds, gaps, strict=True):
                at += min(gap, step)
                plan.append((at, kind))
            return plan, unfitted
        drop = kinds.index("ask") if "ask" in kinds else 0
        del kinds[drop], gaps[drop]
        unfitted += 1
    return [], unfitted


def _owed(s: JourneyState, p: JourneyPolicy, deadline: datetime) -> tuple[list[tuple[datetime, str]], int]:
    assert s.last_contact_at is not None
    return plan_contacts(
        last=s.last_contact_at,
        deadline=deadline,
        reasks_left=max(0, p.reask_count - (s.asks_sent - 1)),
        calls_left=max(0, p.voice_call_attempts - s.voice_calls),
        reask_interval=p.reask_interval_td,
        call_after=p.voice_call_after_td,
    )


def unfitted_contacts(s: JourneyState, p: JourneyPolicy) -> int:
    """How many re-asks of this version cannot be fitted before the deadline any more."""
    if s.asks_sent == 0 or s.channel_dead or s.opted_out or s.last_contact_at is None or s.starts_at is None:
        return 0
    return _owed(s, p, s.starts_at - p.confirm_deadline_td)[1]
