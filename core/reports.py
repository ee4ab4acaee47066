"""Management reports (SPEC §6, issue 13): each figure is defined once here, as an SQL
aggregate over our tables, and returned as a `Report` that the JSON endpoint serialises and
the workbook (core/report_workbook.py) lays out. Nothing here asks Temporal.

Definitions (the period is [from 00:00, to+1 00:00) in the clinic's timezone, or the
network's when several clinics are in scope; a visit belongs to the period by its start):

- first-time patient: a patient with a *finished* visit in the period flagged `first_visit`
  (their first visit, or first after six months: models.appointment); counted once, at their
  earliest such visit. "returning" = they had a real visit before (six months or more ago),
  with us or by the MIS patient base's `last_visit_on`.
- first-time booking: a patient with any visit in the period flagged `first_visit` (whatever
  became of it); converted = that patient is a first-time patient of the period.
- visits by specialty: finished visits per doctor specialty; of them, those booked from the
  waiting list (`appointment.source = 'waitlist'`: a freed slot a waitlisted patient took).
- NPS: finished visits in the period whose survey went out; promoters answer 9-10,
  detractors 0-6; NPS = (promoters - detractors) / answers x 100; response rate = answers /
  surveys. Detractor tasks: `detractor_feedback` tasks about those visits, opened and closed.
- confirmations: visits of the period that were asked (a reminder or a robot call went out
  for their current time): first outcome confirmed by the patient (per channel of the reply
  that confirmed; `voice` = the robot call) / declined / no answer (the deadline handed it to
  an operator); confirmed by an operator; no-show rate = no-shows / (no-shows + attended);
  operator calls saved = visits the patient confirmed without a person calling.
- operator queue: open tasks now (`requested`, `in-progress`) by kind and age, oldest first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, case, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession as SAAsyncSession
from sqlmodel.ext.asyncio.session import AsyncSession

from models.appointment import NOT_A_VISIT, Appointment
from models.core import Clinic, Doctor, MessageLog, OperatorTask, Patient, TaskState

REPORTS: dict[str, str] = {
    "first-time-patients": "First-time patients",
    "visits-by-specialty": "Visits by specialty",
    "patients-by-source": "First-time patients by lead source",
    "first-visit-conversion": "First-visit conversion",
    "nps": "NPS",
    "confirmations": "Confirmations and no-shows",
    "operator-queue": "Operator queue",
}
MAX_PERIOD_DAYS = 731
ATTENDED = ("finished", "checked_in")
OPEN_TASK = (TaskState.requested.value, TaskState.in_progress.value)
CLOSED_TASK = (TaskState.completed.value, TaskState.cancelled.value)
AGE_BUCKETS: tuple[tuple[str, str, timedelta | None], ...] = (
    ("under_1d", "< 1 day", timedelta(days=1)),
    ("d1_3", "1–3 days", timedelta(days=3)),
    ("d3_7", "3–7 days", timedelta(days=7)),
    ("over_7d", "> 7 days", None),
)
QUEUE_LIST_LIMIT = 500
UNKNOWN = "unknown"

a = Appointment.__table__.c  # type: ignore[attr-defined]
d = Doctor.__table__.c  # type: ignore[attr-defined]
p = Patient.__table__.c  # type: ignore[attr-defined]
t = OperatorTask.__table__.c  # type: ignore[attr-defined]
m = MessageLog.__table__.c  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------- the shape
@dataclass
class Column:
    key: str
    title: str
    type: str = "int"  # int | pct | nps | text | date | datetime


@dataclass
class Chart:
    kind: str  # bar | pie
    label: str  # column key of the categories
    values: list[str]  # column keys of the series
    title: str = ""


@dataclass
class Table:
    key: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]] = field(default_factory=list)
    totals: dict[str, Any] | None = None
    chart: Chart | None = None


@dataclass
class Report:
    name: str
    title: str
    clinic_id: str | None
    clinic_name: str | None
    period_from: date
    period_to: date
    timezone: str
    generated_at: datetime
    summary: list[tuple[str, str, Any, str]]  # (key, label, value, type)
    tables: list[Table]

    def to_json(self) -> dict[str, Any]:
        return {
            "report": self.name,
            "title": self.title,
            "clinic_id": self.clinic_id,
            "clinic_name": self.clinic_name,
            "from": self.period_from.isoformat(),
            "to": self.period_to.isoformat(),
            "timezone": self.timezone,
            "generated_at": self.generated_at.isoformat(),
            "summary": {k: _json(v) for k, _l, v, _t in self.summary},
            "summary_labels": {k: label for k, label, _v, _t in self.summary},
            "tables": {
                tb.key: {
                    "title": tb.title,
                    "columns": [dataclasses.asdict(c) for c in tb.columns],
                    "rows": [{k: _json(v) for k, v in r.items()} for r in tb.rows],
                    "totals": {k: _json(v) for k, v in tb.totals.items()} if tb.totals is not None else None,
                }
                for tb in self.tables
            },
        }


def _json(v: Any) -> Any:
    return v.isoformat() if isinstance(v, date | datetime) else v


@dataclass
class Scope:
    """Which clinics (None: the whole network) and which period, as UTC bounds."""

    clinic_ids: list[str] | None
    period_from: date
    period_to: date
    timezone: str
    now: datetime

    @property
    def start(self) -> datetime:
        return datetime.combine(self.period_from, datetime.min.time(), ZoneInfo(self.timezone)).astimezone(UTC)

    @property
    def end(self) -> datetime:
        nxt = self.period_to + timedelta(days=1)
        return datetime.combine(nxt, datetime.min.time(), ZoneInfo(self.timezone)).astimezone(UTC)

    def visits(self, *conds: Any) -> Any:
        """Visits of the period in scope (the composite index clinic_id, starts_at serves it)."""
        out = [a.starts_at >= self.start, a.starts_at < self.end, *conds]
        if self.clinic_ids is not None:
            out.append(a.clinic_id.in_(self.clinic_ids))
        return and_(*out)


def previous_month(today: date) -> tuple[date, date]:
    last = today.replace(day=1) - timedelta(days=1)
    return last.replace(day=1), last


def pct(part: int, whole: int) -> float | None:
    return round(100.0 * part / whole, 1) if whole else None


def nps_score(promoters: int, detractors: int, answers: int) -> float | None:
    return round(100.0 * (promoters - detractors) / answers, 1) if answers else None


async def _rows(session: AsyncSession | SAAsyncSession, q: Select[Any]) -> Sequence[Any]:
    conn = await session.connection()
    return (await conn.execute(q)).all()


async def _names(session: AsyncSession, model: Any, ids: set[str], attr: str) -> dict[str, str]:
    if not ids:
        return {}
    tbl = model.__table__.c
    rows = await _rows(session, select(tbl.id, getattr(tbl, attr)).where(tbl.id.in_(sorted(ids))))
    return {r[0]: r[1] for r in rows}


async def _clinic_tz(session: AsyncSession, ids: set[str]) -> dict[str, str]:
    return await _names(session, Clinic, ids, "timezone")


def _local(ts: datetime, tz: str) -> datetime:
    return ts.astimezone(ZoneInfo(tz)).replace(tzinfo=None)


# ---------------------------------------------------------------------------- shared figures
def first_time_patients_q(scope: Scope) -> Any:
    """One row per first-time patient of the period: their earliest finished first visit,
    and whether they had a real visit before it (returning after six months)."""
    b = Appointment.__table__.alias("b")  # type: ignore[attr-defined]
    earlier = exists().where(
        b.c.patient_id == a.patient_id, b.c.starts_at < a.starts_at, b.c.stage.not_in(sorted(NOT_A_VISIT))
    )
    rn = func.row_number().over(partition_by=a.patient_id, order_by=(a.starts_at, a.id))
    inner = (
        select(
            a.id.label("appointment_id"),
            a.patient_id,
            a.clinic_id,
            a.doctor_id,
            a.starts_at,
            case((earlier, 1), else_=0).label("was_back"),
            rn.label("rn"),
        )
        .where(scope.visits(a.first_visit.is_(True), a.stage == "finished"))
        .subquery("ft_all")
    )
    return select(inner).where(inner.c.rn == 1).subquery("ft")


def first_bookings_q(scope: Scope) -> Any:
    """One row per patient with a first-visit booking in the period (earliest), converted or not."""
    ft = first_time_patients_q(scope)
    rn = func.row_number().over(partition_by=a.patient_id, order_by=(a.starts_at, a.id))
    inner = (
        select(a.patient_id, a.clinic_id, rn.label("rn"))
        .where(scope.visits(a.first_visit.is_(True)))
        .subquery("fb_all")
    )
    converted = case((exists().where(ft.c.patient_id == inner.c.patient_id), 1), else_=0)
    return (
        select(inner.c.patient_id, inner.c.clinic_id, converted.label("converted"))
        .where(inner.c.rn == 1)
        .subquery("fb")
    )


# ---------------------------------------------------------------------------- reports
async def first_time_patients(session: AsyncSession, scope: Scope) -> tuple[list[Any], list[Table]]:
    ft = first_time_patients_q(scope)
    rows = await _rows(
        session,
        select(ft, p.full_name, p.source, p.last_visit_on, d.full_name.label("doctor"), d.specialty)
        .join(Patient.__table__, p.id == ft.c.patient_id)  # type: ignore[attr-defined]
        .join(Doctor.__table__, d.id == ft.c.doctor_id)  # type: ignore[attr-defined]
        .order_by(ft.c.starts_at, ft.c.appointment_id),
    )
    clinics = await _names(session, Clinic, {r.clinic_id for r in rows}, "name")
    tzs = await _clinic_tz(session, {r.clinic_id for r in rows})

    def returning_(r: Any) -> bool:
        # A real visit with us before, or the MIS base's last visit on an earlier day (the same
        # rule as the first-visit flag: models.appointment.first_visit_flags).
        mis = r.last_visit_on
        if isinstance(mis, str):
            mis = date.fromisoformat(mis[:10])
        return bool(r.was_back) or (mis is not None and mis < r.starts_at.astimezone(UTC).date())

    back = {r.patient_id: returning_(r) for r in rows}
    total = len(rows)
    returning = sum(back.values())
    per: dict[str, list[int]] = {}
    for r in rows:
        c = per.setdefault(r.clinic_id, [0, 0])
        c[0] += 1
        c[1] += back[r.patient_id]
    names = clinics
    by_clinic = Table(
        "by_clinic",
        "By clinic",
        [
            Column("clinic", "Clinic", "text"),
            Column("first_time", "First-time patients"),
            Column("new", "New"),
            Column("returning", "Returning after 6+ months"),
        ],
        [
            {"clinic": names.get(cid, cid), "first_time": n, "new": n - ret, "returning": ret}
            for cid, (n, ret) in sorted(per.items(), key=lambda kv: names.get(kv[0], kv[0]))
        ],
        {"clinic": "Total", "first_time": total, "new": total - returning, "returning": returning},
        Chart("bar", "clinic", ["new", "returning"], "First-time patients by clinic"),
    )
    listing = Table(
        "patients",
        "Patients",
        [
            Column("first_visit", "First visit", "datetime"),
            Column("patient", "Patient", "text"),
            Column("patient_id", "Patient id", "text"),
            Column("source", "Lead source", "text"),
            Column("clinic", "Clinic", "text"),
            Column("doctor", "Doctor", "text"),
            Column("specialty", "Specialty", "text"),
            Column("returning", "Returning", "text"),
        ],
        [
            {
                "first_visit": _local(r.starts_at, tzs.get(r.clinic_id, scope.timezone)),
                "patient": r.full_name,
                "patient_id": r.patient_id,
                "source": r.source or UNKNOWN,
                "clinic": clinics.get(r.clinic_id, r.clinic_id),
                "doctor": r.doctor,
                "specialty": r.specialty,
                "returning": "yes" if back[r.patient_id] else "no",
            }
            for r in rows
        ],
    )
    summary = [
        ("first_time_patients", "First-time patients", total, "int"),
        ("new_patients", "Never visited before", total - returning, "int"),
        ("returning_patients", "Returning after 6+ months", returning, "int"),
    ]
    return summary, [by_clinic, listing]


async def visits_by_specialty(session: AsyncSession, scope: Scope) -> tuple[list[Any], list[Table]]:
    rows = await _rows(
        session,
        select(d.specialty, func.count().label("n"))
        .select_from(Appointment.__table__.join(Doctor.__table__, d.id == a.doctor_id))  # type: ignore[attr-defined]
        .where(scope.visits(a.stage == "finished"))
        .group_by(d.specialty)
        .order_by(func.count().desc(), d.specialty),
    )
    total, table = _share_table(
        "by_specialty",
        "Finished visits by specialty",
        ("specialty", "Specialty"),
        ("visits", "Visits"),
        [(r.specialty, r.n) for r in rows],
        "Visits by specialty",
    )
    waitlist = await _rows(
        session,
        select(func.count()).where(scope.visits(a.stage == "finished", a.source == "waitlist")),
    )
    summary = [
        ("finished_visits", "Finished visits", total, "int"),
        ("from_waitlist", "of them booked from the waiting list (a freed slot)", int(waitlist[0][0]), "int"),
    ]
    return summary, [table]


def _share_table(
    name: str, title: str, key: tuple[str, str], count: tuple[str, str], rows: list[tuple[Any, int]], chart: str
) -> tuple[int, Table]:
    """A count-and-share table (one row per key, a Total row, a pie chart) and its total."""
    (k, k_label), (c, c_label) = key, count
    total = sum(n for _, n in rows)
    return total, Table(
        name,
        title,
        [Column(k, k_label, "text"), Column(c, c_label), Column("share", "%", "pct")],
        [{k: v, c: n, "share": pct(n, total)} for v, n in rows],
        {k: "Total", c: total, "share": 100.0 if total else None},
        Chart("pie", k, [c], chart),
    )


async def patients_by_source(session: AsyncSession, scope: Scope) -> tuple[list[Any], list[Table]]:
    ft = first_time_patients_q(scope)
    src = func.coalesce(p.source, UNKNOWN)
    rows = await _rows(
        session,
        select(src.label("source"), func.count().label("n"))
        .select_from(ft.join(Patient.__table__, p.id == ft.c.patient_id))  # type: ignore[attr-defined]
        .group_by(src)
        .order_by(func.count().desc(), src),
    )
    total, table = _share_table(
        "by_source",
        "First-time patients by lead source",
        ("source", "Lead source"),
        ("patients", "Patients"),
        [(r.source, r.n) for r in rows],
        "First-time patients by source",
    )
    return [("first_time_patients", "First-time patients", total, "int")], [table]


async def first_visit_conversion(session: AsyncSession, scope: Scope) -> tuple[list[Any], list[Table]]:
    fb = first_bookings_q(scope)
    src = func.coalesce(p.source, UNKNOWN)
    joined = fb.join(Patient.__table__, p.id == fb.c.patient_id)  # type: ignore[attr-defined]
    by_src = await _rows(
        session,
        select(src.label("source"), func.count().label("n"), func.sum(fb.c.converted).label("conv"))
        .select_from(joined)
        .group_by(src)
        .order_by(func.count().desc(), src),
    )
    by_cl = await _rows(
        session,
        select(fb.c.clinic_id, func.count().label("n"), func.sum(fb.c.converted).label("conv"))
        .group_by(fb.c.clinic_id)
        .order_by(fb.c.clinic_id),
    )
    names = await _names(session, Clinic, {r.clinic_id for r in by_cl}, "name")
    total = sum(r.n for r in by_src)
    conv = sum(int(r.conv or 0) for r in by_src)
    cols = [
        Column("booked", "First-time bookings"),
        Column("reached", "Reached the consultation"),
        Column("rate", "Conversion %", "pct"),
    ]

    def row(label_key: str, label: Any, n: int, c: Any) -> dict[str, Any]:
        c = int(c or 0)
        return {label_key: label, "booked": n, "reached": c, "rate": pct(c, n)}

    t_src = Table(
        "by_source",
        "By lead source",
        [Column("source", "Lead source", "text"), *cols],
        [row("source", r.source, r.n, r.conv) for r in by_src],
        row("source", "Total", total, conv),
        Chart("bar", "source", ["booked", "reached"], "First-time bookings and consultations by source"),
    )
    t_cl = Table(
        "by_clinic",
        "By clinic",
        [Column("clinic", "Clinic", "text"), *cols],
        [row("clinic", names.get(r.clinic_id, r.clinic_id), r.n, r.conv) for r in by_cl],
        row("clinic", "Total", total, conv),
    )
    summary = [
        ("first_time_bookings", "First-time bookings", total, "int"),
        ("reached_consultation", "Reached the consultation", conv, "int"),
        ("conversion", "Conversion %", pct(conv, total), "pct"),
    ]
    return summary, [t_src, t_cl]


def _nps_cols(first: Column) -> list[Column]:
    return [
        first,
        Column("surveys", "Surveys sent"),
        Column("answers", "Answers"),
        Column("response_rate", "Response rate %", "pct"),
        Column("promoters", "Promoters (9–10)"),
        Column("passives", "Passives (7–8)"),
        Column("detractors", "Detractors (0–6)"),
        Column("nps", "NPS", "nps"),
        Column("detractor_tasks_opened", "Detractor tasks opened"),
        Column("detractor_tasks_closed", "Detractor tasks closed"),
    ]


def _nps_row(label_key: str, label: Any, c: dict[str, int]) -> dict[str, Any]:
    return {
        label_key: label,
        "surveys": c["surveys"],
        "answers": c["answers"],
        "response_rate": pct(c["answers"], c["surveys"]),
        "promoters": c["promoters"],
        "passives": c["passives"],
        "detractors": c["detractors"],
        "nps": nps_score(c["promoters"], c["detractors"], c["answers"]),
        "detractor_tasks_opened": c["opened"],
        "detractor_tasks_closed": c["closed"],
    }


async def nps(session: AsyncSession, scope: Scope) -> tuple[list[Any], list[Table]]:
    answered = and_(a.survey_sent_at.is_not(None), a.nps.is_not(None))

    def n(cond: Any) -> Any:
        return func.sum(case((cond, 1), else_=0))

    rows = await _rows(
        session,
        select(
            a.clinic_id,
            a.doctor_id,
            n(a.survey_sent_at.is_not(None)).label("surveys"),
            n(answered).label("answers"),
            n(and_(answered, a.nps >= 9)).label("promoters"),
            n(and_(answered, a.nps >= 7, a.nps <= 8)).label("passives"),
            n(and_(answered, a.nps <= 6)).label("detractors"),
        )
        .where(scope.visits(a.stage == "finished"))
        .group_by(a.clinic_id, a.doctor_id),
    )
    tasks = await _rows(
        session,
        select(
            a.clinic_id,
            a.doctor_id,
            func.count().label("opened"),
            n(t.state.in_(CLOSED_TASK)).label("closed"),
        )
        .select_from(OperatorTask.__table__.join(Appointment.__table__, a.id == t.subject_id))  # type: ignore[attr-defined]
        .where(scope.visits(t.kind == "detractor_feedback"))
        .group_by(a.clinic_id, a.doctor_id),
    )
    keys = ("surveys", "answers", "promoters", "passives", "detractors", "opened", "closed")
    per_doc: dict[tuple[str, str], dict[str, int]] = {}
    for r in rows:
        c = per_doc.setdefault((r.clinic_id, r.doctor_id), dict.fromkeys(keys, 0))
        for k in keys[:5]:
            c[k] = int(getattr(r, k) or 0)
    for r in tasks:
        c = per_doc.setdefault((r.clinic_id, r.doctor_id), dict.fromkeys(keys, 0))
        c["opened"], c["closed"] = int(r.opened), int(r.closed or 0)
    clinics = await _names(session, Clinic, {k[0] for k in per_doc}, "name")
    doctors = await _names(session, Doctor, {k[1] for k in per_doc}, "full_name")
    per_clinic: dict[str, dict[str, int]] = {}
    for (cid, _did), c in per_doc.items():
        acc = per_clinic.setdefault(cid, dict.fromkeys(keys, 0))
        for k in keys:
            acc[k] += c[k]
    total = {k: sum(c[k] for c in per_clinic.values()) for k in keys}
    t_cl = Table(
        "by_clinic",
        "By clinic",
        _nps_cols(Column("clinic", "Clinic", "text")),
        [_nps_row("clinic", clinics.get(cid, cid), c) for cid, c in sorted(per_clinic.items())],
        _nps_row("clinic", "Total", total),
        Chart("bar", "clinic", ["nps"], "NPS by clinic"),
    )
    t_doc = Table(
        "by_doctor",
        "By doctor",
        [Column("clinic", "Clinic", "text"), *_nps_cols(Column("doctor", "Doctor", "text"))],
        [
            {"clinic": clinics.get(cid, cid), **_nps_row("doctor", doctors.get(did, did), c)}
            for (cid, did), c in sorted(
                per_doc.items(), key=lambda kv: (clinics.get(kv[0][0], ""), doctors.get(kv[0][1], ""))
            )
        ],
        {"clinic": "Total", **_nps_row("doctor", None, total)},
        Chart("bar", "doctor", ["nps"], "NPS by doctor"),
    )
    summary = [
        ("nps", "NPS", nps_score(total["promoters"], total["detractors"], total["answers"]), "nps"),
        ("surveys", "Surveys sent", total["surveys"], "int"),
        ("answers", "Answers", total["answers"], "int"),
        ("response_rate", "Response rate %", pct(total["answers"], total["surveys"]), "pct"),
        ("promoters", "Promoters (9–10)", total["promoters"], "int"),
        ("passives", "Passives (7–8)", total["passives"], "int"),
        ("detractors", "Detractors (0–6)", total["detractors"], "int"),
        ("detractor_tasks_opened", "Detractor tasks opened", total["opened"], "int"),
        ("detractor_tasks_closed", "Detractor tasks closed", total["closed"], "int"),
    ]
    return summary, [t_cl, t_doc]


async def confirmations(session: AsyncSession, scope: Scope) -> tuple[list[Any], list[Table]]:
    asked = or_(a.asks_sent > 0, a.voice_calls > 0)

    def n(cond: Any) -> Any:
        return func.sum(case((cond, 1), else_=0))

    rows = await _rows(
        session,
        select(
            a.clinic_id,
            func.count().label("visits"),
            n(asked).label("asked"),
            n(and_(asked, a.confirmation == "confirmed")).label("confirmed"),
            n(and_(asked, a.confirmation == "declined")).label("declined"),
            n(and_(asked, a.confirmation == "no_answer")).label("no_answer"),
            n(a.operator_confirmed.is_(True)).label("operator_confirmed"),
            n(a.stage == "no_show").label("no_shows"),
            n(a.stage.in_(ATTENDED)).label("attended"),
        )
        .where(scope.visits())
        .group_by(a.clinic_id)
        .order_by(a.clinic_id),
    )
    # The channel of a patient's confirmation: the reply that confirmed it, i.e. the latest
    # inbound message routed to this visit at or before the confirmation.
    channel = (
        select(m.channel)
        .where(m.subject_id == a.id, m.direction == "in", m.kind == "reply", m.created_at <= a.confirmed_at)
        .order_by(m.created_at.desc())
        .limit(1)
        .correlate(Appointment.__table__)  # type: ignore[attr-defined]
        .scalar_subquery()
    )
    ch = func.coalesce(channel, UNKNOWN)
    by_ch = await _rows(
        session,
        select(a.clinic_id, ch.label("channel"), func.count().label("n"))
        .where(scope.visits(asked, a.confirmation == "confirmed"))
        .group_by(a.clinic_id, ch)
        .order_by(a.clinic_id, ch),
    )
    names = await _names(session, Clinic, {r.clinic_id for r in rows}, "name")
    keys = ("visits", "asked", "confirmed", "declined", "no_answer", "operator_confirmed", "no_shows", "attended")

    def line(label: Any, c: dict[str, int]) -> dict[str, Any]:
        other = c["asked"] - c["confirmed"] - c["declined"] - c["no_answer"]
        return {
            "clinic": label,
            "visits": c["visits"],
            "asked": c["asked"],
            "confirmed": c["confirmed"],
            "confirmed_rate": pct(c["confirmed"], c["asked"]),
            "declined": c["declined"],
            "no_answer": c["no_answer"],
            "other": other,
            "operator_confirmed": c["operator_confirmed"],
            "no_shows": c["no_shows"],
            "no_show_rate": pct(c["no_shows"], c["no_shows"] + c["attended"]),
            "calls_saved": c["confirmed"],
        }

    per = {r.clinic_id: {k: int(getattr(r, k) or 0) for k in keys} for r in rows}
    total = {k: sum(c[k] for c in per.values()) for k in keys}
    t_cl = Table(
        "by_clinic",
        "By clinic",
        [
            Column("clinic", "Clinic", "text"),
            Column("visits", "Visits"),
            Column("asked", "Asked to confirm"),
            Column("confirmed", "Confirmed by the patient"),
            Column("confirmed_rate", "Confirmed %", "pct"),
            Column("declined", "Declined"),
            Column("no_answer", "No answer → operator"),
            Column("other", "Other (cancelled or pending)"),
            Column("operator_confirmed", "Confirmed by an operator"),
            Column("no_shows", "No-shows"),
            Column("no_show_rate", "No-show %", "pct"),
            Column("calls_saved", "Operator calls saved"),
        ],
        [line(names.get(cid, cid), c) for cid, c in per.items()],
        line("Total", total),
        Chart("bar", "clinic", ["confirmed", "declined", "no_answer"], "Outcome of the automatic asks"),
    )
    ch_rows: list[dict[str, Any]] = []
    per_channel: dict[str, int] = {}
    for r in by_ch:
        ch_rows.append({"clinic": names.get(r.clinic_id, r.clinic_id), "channel": r.channel, "confirmed": r.n})
        per_channel[r.channel] = per_channel.get(r.channel, 0) + r.n
    t_ch = Table(
        "by_channel",
        "Patient confirmations by clinic and channel (voice = the robot call)",
        [Column("clinic", "Clinic", "text"), Column("channel", "Channel", "text"), Column("confirmed", "Confirmed")],
        ch_rows,
        {"clinic": "Total", "channel": None, "confirmed": sum(per_channel.values())},
    )
    t_net = Table(
        "channels",
        "Patient confirmations by channel",
        [Column("channel", "Channel", "text"), Column("confirmed", "Confirmed"), Column("share", "%", "pct")],
        [
            {"channel": k, "confirmed": v, "share": pct(v, total["confirmed"])}
            for k, v in sorted(per_channel.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        {"channel": "Total", "confirmed": total["confirmed"], "share": 100.0 if total["confirmed"] else None},
        Chart("pie", "channel", ["confirmed"], "Confirmations by channel"),
    )
    tl = line("Total", total)
    summary = [
        ("visits", "Visits", tl["visits"], "int"),
        ("asked", "Asked to confirm", tl["asked"], "int"),
        ("confirmed", "Confirmed by the patient", tl["confirmed"], "int"),
        ("confirmed_rate", "Confirmed % of asked", tl["confirmed_rate"], "pct"),
        ("voice_confirmed", "…of them on the robot call", per_channel.get("voice", 0), "int"),
        ("declined", "Declined", tl["declined"], "int"),
        ("no_answer", "No answer → operator", tl["no_answer"], "int"),
        ("operator_confirmed", "Confirmed by an operator", tl["operator_confirmed"], "int"),
        ("no_shows", "No-shows", tl["no_shows"], "int"),
        ("no_show_rate", "No-show %", tl["no_show_rate"], "pct"),
        ("calls_saved", "Operator calls saved", tl["calls_saved"], "int"),
    ]
    return summary, [t_cl, t_net, t_ch]


async def operator_queue(session: AsyncSession, scope: Scope) -> tuple[list[Any], list[Table]]:
    now = scope.now
    conds: list[Any] = [t.state.in_(OPEN_TASK)]
    if scope.clinic_ids is not None:
        conds.append(t.clinic_id.in_(scope.clinic_ids))
    bucket_cols = []
    lower: timedelta = timedelta(0)
    for key, _title, upper in AGE_BUCKETS:
        cond = [t.created_at <= now - lower]
        if upper is not None:
            cond.append(t.created_at > now - upper)
        bucket_cols.append(func.sum(case((and_(*cond), 1), else_=0)).label(key))
        lower = upper or lower
    rows = await _rows(
        session,
        select(t.kind, func.count().label("open"), func.min(t.created_at).label("oldest"), *bucket_cols)
        .where(*conds)
        .group_by(t.kind)
        .order_by(func.min(t.created_at), t.kind),
    )
    oldest = await _rows(
        session,
        select(t.id, t.kind, t.title, t.clinic_id, t.assigned_role, t.created_at, t.due_at)
        .where(*conds)
        .order_by(t.created_at, t.id)
        .limit(QUEUE_LIST_LIMIT),
    )
    names = await _names(session, Clinic, {r.clinic_id for r in oldest if r.clinic_id}, "name")
    tz = ZoneInfo(scope.timezone)

    def ts(v: datetime | None) -> datetime | None:
        if v is None:
            return None
        v = v if v.tzinfo else v.replace(tzinfo=UTC)
        return v.astimezone(tz).replace(tzinfo=None)

    def age_h(v: datetime) -> float:
        v = v if v.tzinfo else v.replace(tzinfo=UTC)
        return round((now - v).total_seconds() / 3600, 1)

    kinds = [
        {
            "kind": r.kind,
            "open": r.open,
            **{k: int(getattr(r, k) or 0) for k, _t, _u in AGE_BUCKETS},
            "oldest": ts(r.oldest),
        }
        for r in rows
    ]
    total = {"kind": "Total", "open": sum(k["open"] for k in kinds)}
    total.update({k: sum(x[k] for x in kinds) for k, _t, _u in AGE_BUCKETS})
    total["oldest"] = min((k["oldest"] for k in kinds), default=None)
    t_kind = Table(
        "by_kind",
        "Open tasks by kind and age",
        [
            Column("kind", "Kind", "text"),
            Column("open", "Open"),
            *[Column(k, title) for k, title, _u in AGE_BUCKETS],
            Column("oldest", "Oldest since", "datetime"),
        ],
        kinds,
        total,
        Chart("bar", "kind", [k for k, _t, _u in AGE_BUCKETS], "Open tasks by kind and age"),
    )
    t_list = Table(
        "oldest",
        f"Open tasks, oldest first (up to {QUEUE_LIST_LIMIT})",
        [
            Column("created", "Since", "datetime"),
            Column("age_hours", "Age, hours", "num"),
            Column("kind", "Kind", "text"),
            Column("title", "Task", "text"),
            Column("clinic", "Clinic", "text"),
            Column("assigned_role", "For", "text"),
            Column("due", "Due", "datetime"),
            Column("task_id", "Task id", "text"),
        ],
        [
            {
                "created": ts(r.created_at),
                "age_hours": age_h(r.created_at),
                "kind": r.kind,
                "title": r.title,
                "clinic": names.get(r.clinic_id, r.clinic_id or ""),
                "assigned_role": r.assigned_role,
                "due": ts(r.due_at),
                "task_id": r.id,
            }
            for r in oldest
        ],
    )
    summary = [("open_tasks", "Open tasks", total["open"], "int")]
    summary += [(f"open_{k}", f"Open {title}", total[k], "int") for k, title, _u in AGE_BUCKETS]
    return summary, [t_kind, t_list]


BUILDERS = {
    "first-time-patients": first_time_patients,
    "visits-by-specialty": visits_by_specialty,
    "patients-by-source": patients_by_source,
    "first-visit-conversion": first_visit_conversion,
    "nps": nps,
    "confirmations": confirmations,
    "operator-queue": operator_queue,
}


async def build_report(
    session: AsyncSession,
    name: str,
    *,
    clinic_ids: list[str] | None,
    period_from: date,
    period_to: date,
    timezone: str,
    clinic_name: str | None = None,
    now: datetime | None = None,
) -> Report:
    scope = Scope(clinic_ids, period_from, period_to, timezone, now or datetime.now(UTC))
    summary, tables = await BUILDERS[name](session, scope)
    return Report(
        name=name,
        title=REPORTS[name],
        clinic_id=clinic_ids[0] if clinic_ids and len(clinic_ids) == 1 else None,
        clinic_name=clinic_name,
        period_from=period_from,
        period_to=period_to,
        timezone=timezone,
        generated_at=scope.now,
        summary=summary,
        tables=tables,
    )
