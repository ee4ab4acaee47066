"""Campaigns (issue 12): who is in today's audience of a clinic's recall, bonus or birthday
campaign (SQL over our tables), the period key that makes it once per period, the daily
Schedules, and the booking path's "the patient booked" signal to running recall journeys.

Audience rules (clinic-local dates):
* recall — the patient's last finished visit at the clinic (or the MIS base's
  `last_visit_on`, whichever is later) lies between `max_months` and `min_months` ago, and
  nothing (not cancelled) is booked after it. Period: the date of that visit, so one
  invitation per eligibility window, however many days the window spans.
* bonus — the patient's balance is at least `threshold`. Period: the last ledger entry that
  crossed the threshold plus a `repeat_days` bucket counted from it: once per crossing, and
  once more every `repeat_days` while the balance stays there.
* birthday — the birth date's day and month are today's (29 February: 28 February in other
  years). Period: the year.

Everyone else is left out and counted by reason: STOP (`opted_out`), marketing opt-out,
already invited this period, booked since (recall).
"""

from __future__ import annotations

import calendar
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import extract, func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from contracts.appointment import clinic_zone
from contracts.campaigns import (
    BIRTHDAY,
    BONUS,
    BOOK_TASK_KIND,
    CAMPAIGN_RUN_WORKFLOW,
    KINDS,
    PATIENT_BOOKED_SIGNAL,
    RECALL,
    RunInput,
    run_workflow_id,
    schedule_id,
)
from core import metrics
from core.logging import get_logger
from core.search_attributes import CLINIC_ID
from models.appointment import Appointment
from models.campaigns import (
    BirthdaySettings,
    BonusSettings,
    CampaignSend,
    CampaignSetting,
    RecallSettings,
    parse_settings,
)
from models.core import Clinic, OperatorTask, Patient, TaskState
from models.points import PointsEntry

log = get_logger("core.campaigns")

OPEN_STATES = ("claimed", "running")
TELL_TIMEOUT = timedelta(seconds=2)


@dataclass
class Member:
    patient_id: str
    period: str
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass
class Found:
    members: list[Member] = field(default_factory=list)
    left_out: dict[str, int] = field(default_factory=dict)

    def leave_out(self, reason: str) -> None:
        self.left_out[reason] = self.left_out.get(reason, 0) + 1


def months_before(d: date, months: int) -> date:
    y, m = divmod(d.year * 12 + (d.month - 1) - months, 12)
    return date(y, m + 1, min(d.day, calendar.monthrange(y, m + 1)[1]))


def local_today(clinic: Clinic, now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(clinic_zone(clinic.timezone)).date()


async def settings_of(session: AsyncSession, clinic_id: str, kind: str) -> Any:
    row = await session.get(CampaignSetting, (clinic_id, kind))
    return parse_settings(kind, row.settings if row else None)


# ------------------------------------------------------------------ audiences
def _opt_outs(p: Patient, found: Found) -> bool:
    if p.opted_out:
        found.leave_out("opted_out")
        return True
    if p.marketing_opt_out:
        found.leave_out("marketing_opt_out")
        return True
    return False


async def booked_after(session: AsyncSession, patient_ids: list[str]) -> dict[str, datetime]:
    """Each patient's latest visit start that is not cancelled (any clinic)."""
    if not patient_ids:
        return {}
    q = (
        select(Appointment.patient_id, func.max(Appointment.starts_at))
        .where(col(Appointment.patient_id).in_(patient_ids), Appointment.stage != "cancelled")
        .group_by(col(Appointment.patient_id))
    )
    out: dict[str, datetime] = {}
    for pid, latest in (await session.exec(q)).all():
        if latest is not None:
            out[pid] = latest if isinstance(latest, datetime) else datetime.fromisoformat(str(latest))
    return {k: (v if v.tzinfo else v.replace(tzinfo=UTC)) for k, v in out.items()}


async def recall_audience(session: AsyncSession, clinic: Clinic, s: RecallSettings, today: date) -> Found:
    zone = clinic_zone(clinic.timezone)
    lo, hi = months_before(today, s.max_months), months_before(today, s.min_months)
    # The window in UTC instants, a day's margin each side; the exact dates are checked below.
    lo_at = datetime.combine(lo - timedelta(days=1), time(0), zone).astimezone(UTC)
    last: dict[str, datetime] = {}
    q = (
        select(Appointment.patient_id, func.max(Appointment.starts_at))
        .where(Appointment.clinic_id == clinic.id, Appointment.stage == "finished")
        .group_by(col(Appointment.patient_id))
        .having(func.max(Appointment.starts_at) >= lo_at)
    )
    for pid, at in (await session.exec(q)).all():
        at = at if isinstance(at, datetime) else datetime.fromisoformat(str(at))
        last[pid] = at if at.tzinfo else at.replace(tzinfo=UTC)
    # Visits before our time, from the MIS patient base.
    mis = select(Patient.id, col(Patient.last_visit_on)).where(
        Patient.clinic_id == clinic.id, col(Patient.last_visit_on).is_not(None), col(Patient.last_visit_on) >= lo
    )
    for pid, on in (await session.exec(mis)).all():
        if on is None:
            continue
        at = datetime.combine(on, time(23, 59), zone).astimezone(UTC)
        if pid not in last or at > last[pid]:
            last[pid] = at
    window = {pid: at for pid, at in last.items() if lo <= at.astimezone(zone).date() <= hi}
    found = Found()
    if not window:
        return found
    latest = await booked_after(session, list(window))
    patients = {p.id: p for p in (await session.exec(select(Patient).where(col(Patient.id).in_(list(window))))).all()}
    for pid, at in sorted(window.items()):
        p = patients.get(pid)
        if p is None or _opt_outs(p, found):
            continue
        if latest.get(pid) is not None and latest[pid] > at:
            found.leave_out("booked_since")
            continue
        visit = at.astimezone(zone).date().isoformat()
        found.members.append(Member(pid, visit, {"last_visit": visit, "last_visit_at": at.isoformat()}))
    return found


async def bonus_audience(session: AsyncSession, clinic: Clinic, s: BonusSettings, today: date) -> Found:
    found = Found()
    q = select(Patient).where(Patient.clinic_id == clinic.id, Patient.loyalty_points >= s.threshold)
    patients = list((await session.exec(q)).all())
    if not patients:
        return found
    crossing = (
        select(PointsEntry.patient_id, func.max(PointsEntry.created_at))
        .where(
            col(PointsEntry.patient_id).in_([p.id for p in patients]),
            PointsEntry.balance_after >= s.threshold,
            PointsEntry.balance_after - PointsEntry.delta < s.threshold,
        )
        .group_by(col(PointsEntry.patient_id))
    )
    zone = clinic_zone(clinic.timezone)
    crossed: dict[str, date] = {}
    for pid, at in (await session.exec(crossing)).all():
        at = at if isinstance(at, datetime) else datetime.fromisoformat(str(at))
        crossed[pid] = (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(zone).date()
    for p in sorted(patients, key=lambda p: p.id):
        if _opt_outs(p, found):
            continue
        since = crossed.get(p.id, date(2000, 1, 1))  # a balance from before the ledger
        bucket = max(0, (today - since).days) // s.repeat_days
        period = f"{s.threshold}@{since.isoformat()}#{bucket}"
        found.members.append(Member(p.id, period, {"points": p.loyalty_points}))
    return found


async def birthday_audience(session: AsyncSession, clinic: Clinic, s: BirthdaySettings, today: date) -> Found:
    days = [today.day]
    if today.month == 2 and today.day == 28 and not calendar.isleap(today.year):
        days.append(29)  # born on 29 February: greeted on the 28th in other years
    q = select(Patient).where(
        Patient.clinic_id == clinic.id,
        col(Patient.birth_date).is_not(None),
        extract("month", col(Patient.birth_date)) == today.month,
        extract("day", col(Patient.birth_date)).in_(days),
    )
    found = Found()
    for p in sorted((await session.exec(q)).all(), key=lambda p: p.id):
        if _opt_outs(p, found):
            continue
        found.members.append(Member(p.id, str(today.year)))
    return found


async def audience(session: AsyncSession, clinic: Clinic, kind: str, s: Any, today: date) -> Found:
    if kind == RECALL:
        return await recall_audience(session, clinic, s, today)
    if kind == BONUS:
        return await bonus_audience(session, clinic, s, today)
    if kind == BIRTHDAY:
        return await birthday_audience(session, clinic, s, today)
    raise ValueError(f"unknown campaign kind {kind!r}")


async def still_booked_since(session: AsyncSession, send: CampaignSend) -> bool:
    """A recall's patient booked a visit after the one the invitation is about."""
    at = send.facts.get("last_visit_at")
    if not at:
        return False
    latest = (await booked_after(session, [send.patient_id])).get(send.patient_id)
    return latest is not None and latest > datetime.fromisoformat(at)


# ------------------------------------------------------------------ how a campaign did
REACHED = ("running", "accepted", "declined", "no_answer", "booked")  # the invitation went out
BOOKED_WITHIN = timedelta(days=30)


@dataclass
class Summary:
    by_state: dict[str, int]
    invited: int
    booked_within_30_days: int  # invited patients who booked a visit within 30 days after it


async def summary(session: AsyncSession, clinic_id: str, kind: str, since: datetime, until: datetime) -> Summary:
    """How the campaign's invitations of a period ended, and how many brought a booking (the
    seed clinic's "60 % of those invited booked")."""
    rows = (
        await session.exec(
            select(CampaignSend).where(
                CampaignSend.clinic_id == clinic_id,
                CampaignSend.kind == kind,
                col(CampaignSend.created_at) >= since,
                col(CampaignSend.created_at) < until,
            )
        )
    ).all()
    by_state: dict[str, int] = {}
    for r in rows:
        by_state[r.state] = by_state.get(r.state, 0) + 1
    reached = [r for r in rows if r.state in REACHED]
    booked = 0
    if reached:
        q = select(Appointment.patient_id, Appointment.created_at).where(
            col(Appointment.patient_id).in_([r.patient_id for r in reached]),
            Appointment.stage != "cancelled",
            col(Appointment.created_at) >= min(r.created_at for r in reached),
        )
        made: dict[str, list[datetime]] = {}
        for pid, at in (await session.exec(q)).all():
            made.setdefault(pid, []).append(at)
        booked = sum(
            1
            for r in reached
            if any(r.created_at <= at < r.created_at + BOOKED_WITHIN for at in made.get(r.patient_id, []))
        )
    return Summary(by_state=by_state, invited=len(reached), booked_within_30_days=booked)


# ------------------------------------------------------------------ the booking path
def booking_matters(patient_id: Any) -> Any:
    """Is there anything `tell_booked` would change for this patient (an open "book this
    patient" task, a running recall)? A SQL condition over a value or a bound parameter: the
    booking path asks it inside its own check and skips `tell_booked` when false."""
    task = select(OperatorTask.id).where(
        col(OperatorTask.patient_id) == patient_id,
        col(OperatorTask.kind) == BOOK_TASK_KIND,
        col(OperatorTask.state).in_((TaskState.requested, TaskState.in_progress)),
    )
    recall = select(CampaignSend.id).where(
        col(CampaignSend.patient_id) == patient_id,
        col(CampaignSend.kind) == RECALL,
        col(CampaignSend.state).in_(OPEN_STATES),
    )
    return or_(task.exists(), recall.exists())


async def tell_booked(session: AsyncSession, temporal: Client, patient_id: str, matters: bool = True) -> int:
    """The patient booked a visit: running recall journeys stop now (each also checks before
    every send, so a missed signal only delays the stop), and open "book this patient" tasks
    of any campaign are done. Never fails the booking. `matters=False`: the booking already
    found nothing to change (`booking_matters`)."""
    if not matters:
        return 0
    tasks = (
        await session.exec(
            select(OperatorTask).where(
                OperatorTask.patient_id == patient_id,
                OperatorTask.kind == BOOK_TASK_KIND,
                col(OperatorTask.state).in_((TaskState.requested, TaskState.in_progress)),
            )
        )
    ).all()
    for t in tasks:
        t.state, t.completed_at, t.outcome = TaskState.completed, datetime.now(UTC), "the patient booked a visit"
        session.add(t)
    if tasks:
        await session.commit()
        for t in tasks:
            metrics.task_closed(t.kind, "completed")
    rows = (
        await session.exec(
            select(CampaignSend).where(
                CampaignSend.patient_id == patient_id,
                CampaignSend.kind == RECALL,
                col(CampaignSend.state).in_(OPEN_STATES),
            )
        )
    ).all()
    told = 0
    for row in rows:
        try:
            # Short: the booking's answer does not wait on this (the journey checks anyway).
            await temporal.get_workflow_handle(row.workflow_id).signal(PATIENT_BOOKED_SIGNAL, rpc_timeout=TELL_TIMEOUT)
            told += 1
        except RPCError as e:
            if e.status != RPCStatusCode.NOT_FOUND:
                log.warning("recall journey not told of a booking", workflow_id=row.workflow_id, error=str(e.status))
        except Exception as e:  # noqa: BLE001 - the booking stands; the journey checks before sending
            log.warning("recall journey not told of a booking", workflow_id=row.workflow_id, error=type(e).__name__)
    return told


# ------------------------------------------------------------------ schedules
def _schedule(clinic: Clinic, kind: str, send_at: str, task_queue: str) -> Schedule:
    hour, minute = (int(x) for x in send_at.split(":"))
    return Schedule(
        action=ScheduleActionStartWorkflow(
            CAMPAIGN_RUN_WORKFLOW,
            RunInput(clinic_id=clinic.id, kind=kind),
            id=run_workflow_id(clinic.id, kind),
            task_queue=task_queue,
            execution_timeout=timedelta(hours=12),
            typed_search_attributes=TypedSearchAttributes([SearchAttributePair(CLINIC_ID, clinic.id)]),
        ),
        spec=ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(
                    hour=[ScheduleRange(hour)],
                    minute=[ScheduleRange(minute)],
                    comment=f"daily {send_at} clinic time",
                )
            ],
            time_zone_name=clinic.timezone,
        ),
        # A run missed while the cluster was down still happens the same day.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=timedelta(hours=6)),
    )


async def ensure_schedule(temporal: Client, task_queue: str, clinic: Clinic, kind: str, settings: Any) -> bool:
    """Create or update the campaign's daily Schedule when it is on; delete it when off.
    Returns whether a schedule exists now."""
    sid = schedule_id(clinic.id, kind)
    if not settings.enabled:
        try:
            await temporal.get_schedule_handle(sid).delete()
        except RPCError as e:
            if e.status != RPCStatusCode.NOT_FOUND:
                raise
        return False
    schedule = _schedule(clinic, kind, settings.send_at, task_queue)
    try:
        await temporal.create_schedule(sid, schedule)
    except ScheduleAlreadyRunningError:

        def _update(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await temporal.get_schedule_handle(sid).update(_update)
    return True


async def start_run(temporal: Client, task_queue: str, clinic_id: str, kind: str) -> str:
    """A run now, beside the Schedule's (the same workflow; its claims make it harmless)."""
    wf_id = f"{run_workflow_id(clinic_id, kind)}-now-{uuid.uuid4().hex[:8]}"
    await temporal.start_workflow(
        CAMPAIGN_RUN_WORKFLOW,
        RunInput(clinic_id=clinic_id, kind=kind),
        id=wf_id,
        task_queue=task_queue,
        execution_timeout=timedelta(hours=12),
        search_attributes=TypedSearchAttributes([SearchAttributePair(CLINIC_ID, clinic_id)]),
    )
    return wf_id


async def ensure_all_schedules(temporal: Client, task_queue: str, session: AsyncSession) -> int:
    """Every clinic's campaign Schedules as their settings say (`journeys schedules`)."""
    n = 0
    rows = (await session.exec(select(CampaignSetting, Clinic).where(CampaignSetting.clinic_id == Clinic.id))).all()
    for row, clinic in rows:  # a clinic that never set a campaign has none to keep
        if row.kind in KINDS:
            n += await ensure_schedule(temporal, task_queue, clinic, row.kind, parse_settings(row.kind, row.settings))
    return n
