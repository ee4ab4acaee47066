"""The appointment planner (workflows/planner.py) on real timelines, without a server:
the DEFAULT policy (24 h ask, 2 h re-asks x3, robot call 1 h later, deadline 30 min before,
no-show 1 min after, survey 1 h after the visit, 3 days to answer), quiet hours 21:00-08:00
across midnight and across both daylight-saving changes, and bookings made inside the
confirmation deadline. Times are Kyiv wall-clock times, as a clinic reads them."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from contracts.appointment import JourneyState
from contracts.policy import JourneyPolicy
from workflows import planner

KYIV = ZoneInfo("Europe/Kyiv")
P = JourneyPolicy()


def k(text: str) -> datetime:
    """'2026-05-05 10:00' Kyiv wall time, as an aware UTC datetime (the workflow's clock)."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=KYIV).astimezone(UTC)


def local(t: datetime) -> str:
    return t.astimezone(KYIV).strftime("%Y-%m-%d %H:%M")


def booked(start: str, at: str, **kw: object) -> JourneyState:
    """A journey whose notice went out, booked at `at` for a visit at `start`."""
    s = JourneyState(starts_at=k(start), duration_minutes=30, notice_version=1, version_booked_at=k(at))
    return replace(s, **kw)  # type: ignore[arg-type]


CASES = [
    # (what, state, now, booked_at, expected (Kyiv time, step) or None)
    (
        "a fresh booking sends its notice at once",
        booked("2026-05-05 10:00", "2026-04-28 14:00", notice_version=0),
        "2026-04-28 14:00",
        "2026-04-28 14:00",
        ("2026-04-28 14:00", "notice"),
    ),
    (
        "a booking made at night sends its notice at 08:00",
        booked("2026-05-05 10:00", "2026-05-04 23:30", notice_version=0),
        "2026-05-04 23:30",
        "2026-05-04 23:30",
        ("2026-05-05 08:00", "notice"),
    ),
    (
        "...unless the visit comes before 08:00: then the notice goes now",
        booked("2026-05-05 07:30", "2026-05-04 23:30", notice_version=0),
        "2026-05-04 23:30",
        "2026-05-04 23:30",
        ("2026-05-04 23:30", "notice"),
    ),
    (
        "the day-before ask: exactly 24 h before the visit",
        booked("2026-05-05 10:00", "2026-04-28 14:00"),
        "2026-04-28 14:01",
        "2026-04-28 14:00",
        ("2026-05-04 10:00", "ask"),
    ),
    (
        "booked for tomorrow morning: the ask goes at once, not 24 h before",
        booked("2026-05-05 11:00", "2026-05-04 16:00"),
        "2026-05-04 16:01",
        "2026-05-04 16:00",
        ("2026-05-04 16:00", "ask"),
    ),
    (
        "a 07:00 visit: its day-before ask waits for the end of quiet hours",
        booked("2026-05-05 07:00", "2026-04-28 14:00"),
        "2026-04-28 14:01",
        "2026-04-28 14:00",
        ("2026-05-04 08:00", "ask"),
    ),
    (
        "silence after the ask: a re-ask 2 h later",
        booked("2026-05-05 10:00", "2026-04-28 14:00", asks_sent=1, last_contact_at=k("2026-05-04 10:00")),
        "2026-05-04 10:05",
        "2026-04-28 14:00",
        ("2026-05-04 12:00", "ask"),
    ),
    (
        "a re-ask due at 22:00 waits until 08:00 (quiet hours across midnight)",
        booked("2026-05-06 12:00", "2026-04-28 14:00", asks_sent=2, last_contact_at=k("2026-05-04 20:00")),
        "2026-05-04 20:05",
        "2026-04-28 14:00",
        ("2026-05-05 08:00", "ask"),
    ),
    (
        "a re-ask whose 08:00 would be past the deadline keeps its night time (same-day critical)",
        booked("2026-05-05 08:15", "2026-04-28 14:00", asks_sent=1, last_contact_at=k("2026-05-04 23:00")),
        "2026-05-04 23:05",
        "2026-04-28 14:00",
        ("2026-05-05 01:00", "ask"),
    ),
    (
        "three re-asks unanswered: the robot call one re-ask interval (2 h) after the last",
        booked("2026-05-05 10:00", "2026-04-28 14:00", asks_sent=4, last_contact_at=k("2026-05-04 16:00")),
        "2026-05-04 16:05",
        "2026-04-28 14:00",
        ("2026-05-04 18:00", "voice_call"),
    ),
    (
        "messenger and SMS dead: the robot call at once",
        booked("2026-05-05 10:00", "2026-04-28 14:00", channel_dead=True, last_contact_at=k("2026-05-04 10:00")),
        "2026-05-04 10:01",
        "2026-04-28 14:00",
        ("2026-05-04 10:01", "voice_call"),
    ),
    (
        "every ask and call spent: the deadline, 30 min before the visit",
        booked(
            "2026-05-05 10:00",
            "2026-04-28 14:00",
            asks_sent=4,
            voice_calls=1,
            last_contact_at=k("2026-05-04 17:00"),
        ),
        "2026-05-04 17:05",
        "2026-04-28 14:00",
        ("2026-05-05 09:30", "deadline"),
    ),
    (
        "an opted-out patient is not asked: the deadline hands the visit to an operator",
        booked("2026-05-05 10:00", "2026-04-28 14:00", opted_out=True),
        "2026-04-28 14:01",
        "2026-04-28 14:00",
        ("2026-05-05 09:30", "deadline"),
    ),
    (
        "booked inside the deadline (by phone, for now): no ask, no deadline; no-show 1 min after",
        booked("2026-05-05 12:00", "2026-05-05 11:45"),
        "2026-05-05 11:46",
        "2026-05-05 11:45",
        ("2026-05-05 12:01", "no_show"),
    ),
    (
        "needs clarification: only the no-show watch remains",
        booked("2026-05-05 12:00", "2026-04-28 14:00", stage="needs_clarification", asks_stopped=True),
        "2026-05-05 11:31",
        "2026-04-28 14:00",
        ("2026-05-05 12:01", "no_show"),
    ),
    (
        "confirmed: the visit is over at its end (no no-show watch without required check-in)",
        booked("2026-05-05 12:00", "2026-04-28 14:00", stage="confirmed", asks_stopped=True),
        "2026-05-05 11:00",
        "2026-04-28 14:00",
        ("2026-05-05 12:30", "visit_over"),
    ),
    (
        "finished: the after-care memo at once",
        booked("2026-05-05 12:00", "2026-04-28 14:00", stage="finished", finished_at=k("2026-05-05 12:25")),
        "2026-05-05 12:25",
        "2026-04-28 14:00",
        ("2026-05-05 12:25", "post_memo"),
    ),
    (
        "memo sent: the survey 1 h after the visit",
        booked(
            "2026-05-05 12:00",
            "2026-04-28 14:00",
            stage="finished",
            finished_at=k("2026-05-05 12:25"),
            post_memo_done=True,
        ),
        "2026-05-05 12:26",
        "2026-04-28 14:00",
        ("2026-05-05 13:25", "survey"),
    ),
    (
        "a visit finished at 20:30: the survey waits for 08:00",
        booked(
            "2026-05-05 20:00",
            "2026-04-28 14:00",
            stage="finished",
            finished_at=k("2026-05-05 20:30"),
            post_memo_done=True,
        ),
        "2026-05-05 20:31",
        "2026-04-28 14:00",
        ("2026-05-06 08:00", "survey"),
    ),
    (
        "survey unanswered: the journey closes 3 days later",
        booked(
            "2026-05-05 12:00",
            "2026-04-28 14:00",
            stage="finished",
            finished_at=k("2026-05-05 12:25"),
            post_memo_done=True,
            survey_sent_at=k("2026-05-05 13:25"),
        ),
        "2026-05-05 13:26",
        "2026-04-28 14:00",
        ("2026-05-08 13:25", "survey_timeout"),
    ),
    # Daylight saving: Kyiv moves 03:00 -> 04:00 on 2026-03-29 and 04:00 -> 03:00 on 2026-10-25.
    (
        "spring change: 24 h before Sunday 12:00 is Saturday 11:00 (24 real hours)",
        booked("2026-03-29 12:00", "2026-03-20 12:00"),
        "2026-03-20 12:01",
        "2026-03-20 12:00",
        ("2026-03-28 11:00", "ask"),
    ),
    (
        "spring change: a re-ask due Saturday 22:00 waits for Sunday 08:00 summer time",
        booked("2026-03-29 15:00", "2026-03-20 12:00", asks_sent=1, last_contact_at=k("2026-03-28 20:00")),
        "2026-03-28 20:05",
        "2026-03-20 12:00",
        ("2026-03-29 08:00", "ask"),
    ),
    (
        "autumn change: 24 h before Sunday 12:00 is Saturday 13:00",
        booked("2026-10-25 12:00", "2026-10-20 12:00"),
        "2026-10-20 12:01",
        "2026-10-20 12:00",
        ("2026-10-24 13:00", "ask"),
    ),
    (
        "autumn change: a re-ask due Saturday 22:00 waits for Sunday 08:00 winter time",
        booked("2026-10-25 15:00", "2026-10-20 12:00", asks_sent=1, last_contact_at=k("2026-10-24 20:00")),
        "2026-10-24 20:05",
        "2026-10-20 12:00",
        ("2026-10-25 08:00", "ask"),
    ),
]


@pytest.mark.parametrize(("what", "state", "now", "booked_at", "expected"), CASES, ids=[c[0] for c in CASES])
def test_next_step_on_real_timelines(
    what: str, state: JourneyState, now: str, booked_at: str, expected: tuple[str, str] | None
) -> None:
    planned = planner.next_step(state, P, k(now), k(booked_at), KYIV)
    got = None if planned is None else (local(planned[0]), planned[1])
    assert got == expected


def test_quiet_hours_off_sends_at_night() -> None:
    s = booked("2026-05-06 12:00", "2026-04-28 14:00", asks_sent=2, last_contact_at=k("2026-05-04 20:00"))
    planned = planner.next_step(s, replace(P, quiet_hours=None), k("2026-05-04 20:05"), k("2026-04-28 14:00"), KYIV)
    assert planned is not None and (local(planned[0]), planned[1]) == ("2026-05-04 22:00", "ask")


def test_nothing_planned_once_closed() -> None:
    s = booked("2026-05-05 12:00", "2026-04-28 14:00", stage="cancelled")
    assert planner.next_step(s, P, k("2026-05-05 09:00"), k("2026-04-28 14:00"), KYIV) is None


def test_a_notice_on_its_way_holds_the_first_ask_only_for_its_head_start() -> None:
    """Issue 16: the first ask waits for an in-flight notice at most NOTICE_HEAD_START after
    the notice set off, and never past the deadline; nothing waits for a new notice."""
    head = planner.NOTICE_HEAD_START
    # Booked two hours before a 12:00 visit: the ask is due at once, the notice left at 10:00.
    s = booked("2026-05-05 12:00", "2026-05-05 10:00")
    sent_at = k("2026-05-05 10:00")
    planned = planner.next_step(s, P, sent_at, sent_at, KYIV, notice_since=sent_at)
    assert planned == (sent_at + head, "ask")
    # Still on its way a minute later: the ask goes (before, it waited for the notice).
    later = sent_at + 6 * head
    assert planner.next_step(s, P, later, sent_at, KYIV, notice_since=sent_at) == (sent_at + head, "ask")
    # Booked 5 s before the deadline (11:30): the ask does not wait past it.
    close = k("2026-05-05 11:30") - head / 2
    s = replace(booked("2026-05-05 12:00", "2026-05-05 11:29"), version_booked_at=close)
    assert planner.next_step(s, P, close, close, KYIV, notice_since=close) == (close, "ask")
    # A reschedule while the first notice is still on its way: its notice waits for the slot.
    s = booked("2026-05-06 12:00", "2026-05-05 10:00", version=2, notice_version=1)
    planned = planner.next_step(s, P, sent_at, sent_at, KYIV, notice_since=sent_at)
    assert planned is not None and planned[1] != "notice"
