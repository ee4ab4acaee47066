"""Quiet hours: the one rule every automated send follows, whatever journey plans it.

`next_send_time(at, quiet_hours, tz)` moves a planned send out of the clinic's quiet window
(to the window's end, local time). Pure and deterministic: journeys call it on workflow time
when they plan a send (the appointment journey's asks, memos and survey; a plan's
lab-results question; any later campaign). A send that would then come too late
(`critical_by`, e.g. the confirmation deadline) is same-day-critical and keeps its time.
Staff messages are not automated: a person decides when to write.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo

from contracts.policy import QuietHours


def _minutes(hhmm: str) -> int:
    h, m = (int(x) for x in hhmm.split(":"))
    return h * 60 + m


def in_quiet_hours(at: datetime, qh: QuietHours | None, tz: tzinfo) -> bool:
    if qh is None:
        return False
    start, end = _minutes(qh.start), _minutes(qh.end)
    if start == end:
        return False
    local = at.astimezone(tz)
    t = local.hour * 60 + local.minute
    return (start <= t < end) if start < end else (t >= start or t < end)


def next_send_time(at: datetime, qh: QuietHours | None, tz: tzinfo, critical_by: datetime | None = None) -> datetime:
    """`at`, or the end of the quiet window `at` falls in (unless that is past `critical_by`)."""
    if qh is None or not in_quiet_hours(at, qh, tz):
        return at
    local = at.astimezone(tz)
    eh, em = divmod(_minutes(qh.end), 60)
    end_local = local.replace(hour=eh, minute=em, second=0, microsecond=0)
    if end_local <= local:
        end_local = (local + timedelta(days=1)).replace(hour=eh, minute=em, second=0, microsecond=0)
    moved = end_local.astimezone(at.tzinfo)
    if critical_by is not None and moved >= critical_by:
        return at
    return moved
