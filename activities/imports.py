"""MIS import activities: read and check the file into per-row records (`prepare_import`),
apply a batch of rows (`apply_import_batch`), close the run (`finish_import`), and pick up
a clinic's drop folder (`scan_drop_folder`).

Every row is applied in one transaction with its ledger entry (`import_row`), so a bad row
leaves nothing behind and a retried batch (worker killed) skips rows already done. A row
whose database change is committed but whose journey start/update may not have happened
is `committed`: a retry repeats only that step, which is idempotent (the same workflow id;
the same update id, which Temporal accepts once)."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import insert, or_, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import QueryableAttribute, defer
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio import activity
from temporalio.client import Client, WorkflowUpdateFailedError

from contracts.appointment import OPEN_STAGES, appointment_workflow_id
from contracts.mis_import import ImportActivityStubs
from core import booking, imports
from core.deps import Deps
from core.logging import get_logger
from core.mis_files import (
    FileError,
    RowError,
    name_key,
    parse_date,
    parse_int,
    parse_outcome,
    parse_phone,
    parse_source,
    parse_time,
    read_table,
    region_of,
    resolve_columns,
    text,
    time_in_date_cell,
)
from core.texts.catalogue import Entry, catalogue
from models import points
from models.appointment import Appointment
from models.core import Channel, Clinic, Doctor, Patient
from models.imports import (
    DEFAULT_HEADERS,
    BatchRef,
    DropResult,
    DropScan,
    ImportInput,
    ImportKind,
    ImportMapping,
    ImportPlan,
    ImportRow,
    ImportRun,
    ImportState,
    PatientMisId,
    RowState,
)
from models.waitlist import ACTIVE as WAITLIST_ACTIVE
from models.waitlist import WaitlistEntry

log = get_logger("activities.imports")

BEFORE_VISIT = ("booked", "confirmed", "needs_clarification")
CHUNK = 50  # rows per transaction (new visits written together; any other row in its own savepoint)
# Journey starts/updates in flight per batch the import runs at once; the batches of a worker
# process share them (IN_FLIGHT), so a batch running alone, the last one say, or one whose
# neighbours are still writing rows, starts at the whole process's speed.
EFFECT_CONCURRENCY = 32
IN_FLIGHT = ImportInput("").concurrency * EFFECT_CONCURRENCY
_in_flight: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def _effects_limit() -> asyncio.Semaphore:
    """The worker process's limit on journey starts/updates in flight (one per event loop)."""
    loop = asyncio.get_running_loop()
    if (sem := _in_flight.get(loop)) is None:
        sem = _in_flight[loop] = asyncio.Semaphore(IN_FLIGHT)
    return sem


# A completed-visits file may close a visit a little before its booked time (the patient
# came early); one further ahead is a mistake in the file.
COMPLETED_AHEAD = timedelta(hours=12)
# A batch or the finish reads its run without the stored file (up to megabytes, read once by
# prepare_import).
WITHOUT_FILE = defer(cast(QueryableAttribute[Any], ImportRun.content))
TEMP_SUFFIXES = (".tmp", ".part", ".crdownload", "~")


# ------------------------------------------------------------------ preparing rows
@dataclass
class _Prepared:
    rows: list[dict[str, Any]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)


class _Batcher:
    """Rows of one family (same phone, else same MIS id / name) share a batch, so two
    batches running at once never create the same patient twice."""

    def __init__(self, size: int) -> None:
        self.size, self.current, self.filled = size, 0, 0
        self.by_key: dict[str, int] = {}

    def place(self, key: str | None) -> int:
        if key is not None and key in self.by_key:
            return self.by_key[key]
        if self.filled >= self.size:
            self.current, self.filled = self.current + 1, 0
        self.filled += 1
        if key is not None:
            self.by_key[key] = self.current
        return self.current


def _family_key(d: dict[str, Any]) -> str | None:
    if d.get("phone"):
        return f"phone:{d['phone']}"
    if d.get("guardian"):
        return f"guardian:{name_key(d['guardian'])}"
    if d.get("patient_id"):
        return f"mis:{d['patient_id']}"
    return None


def _as_stated(kind: ImportKind, a: Appointment, d: dict[str, Any]) -> bool:
    """The visit we have is as a visits/completed row states it: nothing to do for the row."""
    if kind == ImportKind.visits:
        return (
            a.doctor_id == d["doctor_id"]
            and a.starts_at == datetime.fromisoformat(d["starts_at"])
            and a.duration_minutes == d["duration"]
        )
    return a.stage not in OPEN_STAGES  # completed: a journey that has ended keeps its own outcome


def _doctor_matcher(doctors: list[Doctor]) -> Callable[[str], Doctor | None]:
    """Exact name (case, spaces, ё ignored), else the one doctor whose surname and initials
    fit ("Коваль И.В." for "Коваль Ирина Викторовна")."""
    exact = {name_key(d.full_name): d for d in doctors}

    def initials(n: str) -> str:
        parts = n.replace(".", " ").split()
        return parts[0] + " " + "".join(p[0] for p in parts[1:]) if parts else ""

    def match(raw: str) -> Doctor | None:
        k = name_key(raw)
        if k in exact:
            return exact[k]
        fits = [d for d in doctors if initials(name_key(d.full_name)) == initials(k) and len(k.split()) >= 1]
        if len(fits) == 1:
            return fits[0]
        fits = [d for d in doctors if name_key(d.full_name).split()[:1] == k.split()[:1]]
        return fits[0] if len(fits) == 1 and len(k.split()) == 1 else None

    return match


class ImportActivities(ImportActivityStubs):
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    # -------------------------------------------------------------- prepare
    @activity.defn(name="prepare_import")
    async def prepare_import(self, inp: ImportInput) -> ImportPlan:
        async with self.deps.sessions() as s:
            run = await s.get(ImportRun, inp.import_id)
            if run is None:
                raise RuntimeError("import run not found")
            if run.state == ImportState.failed:
                return ImportPlan(total_rows=0, failed=True)
            if run.total_rows is None:
                await self._parse_into_rows(s, run, inp.batch_size)
                if run.state == ImportState.failed:
                    return ImportPlan(total_rows=0, failed=True)
            q = (
                select(ImportRow.phase, ImportRow.batch)
                .where(ImportRow.import_id == run.id, ImportRow.state != RowState.done)
                .distinct()
            )
            phases: dict[int, set[int]] = {}
            for phase, batch in (await s.exec(q)).all():
                phases.setdefault(phase, set()).add(batch)
            return ImportPlan(
                total_rows=run.total_rows or 0,
                phases=[sorted(phases[p]) for p in sorted(phases)],
            )

    async def _parse_into_rows(self, s: AsyncSession, run: ImportRun, batch_size: int) -> None:
        clinic = await s.get(Clinic, run.clinic_id)
        assert clinic is not None
        mapping = await imports.mapping_of(s, clinic.id)
        now = datetime.now(UTC)
        try:
            table = read_table(run.content)
            cols = resolve_columns(table.headers, mapping.columns, ImportKind(run.kind))
        except FileError as e:
            run.state, run.error, run.finished_at = ImportState.failed, str(e)[:1000], now
            s.add(run)
            await s.commit()
            return
        headers = {f: table.headers[i] for f, i in cols.items()}
        run.headers = headers
        doctors = list((await s.exec(select(Doctor).where(Doctor.clinic_id == clinic.id))).all())
        ctx = _RowContext(
            kind=ImportKind(run.kind),
            clinic=clinic,
            mapping=mapping,
            headers=headers,
            region=region_of(clinic.phone),
            tz=ZoneInfo(clinic.timezone),
            now=now,
            doctor=_doctor_matcher(doctors),
            lead_sources=list(clinic.lead_sources),
        )
        batcher = _Batcher(batch_size)
        records: list[dict[str, Any]] = []
        first_row_of: dict[str, int] = {}
        for n, cells in table.rows:

            def cell(f: str, cells: list[Any] = cells) -> Any:
                i = cols.get(f)
                return cells[i] if i is not None and i < len(cells) else None

            rec: dict[str, Any] = {"import_id": run.id, "row": n, "batch": 0, "phase": 0, "column": None}
            rec |= {"reason": None, "appointment_id": None, "patient_id": None}
            try:
                data = ctx.parse(cell)
                vid = data.get("visit_id")
                if vid is not None:
                    if vid in first_row_of:
                        raise RowError(
                            headers.get("visit_id"),
                            f"visit id {vid} is listed again (first in row {first_row_of[vid]}); list each visit once",
                        )
                    first_row_of[vid] = n
                phase = (
                    1 if (ctx.kind == ImportKind.patients and (data.get("guardian") or data.get("guardian_id"))) else 0
                )
                rec |= {"data": data, "state": RowState.pending.value, "outcome": None, "phase": phase}
            except RowError as e:
                rec |= {"data": {}, "state": RowState.done.value, "outcome": "error"}
                rec |= {"column": e.column, "reason": e.reason[:500]}
                # A bad row still names its visit: an authoritative file does not cancel it.
                vid = text(cell("visit_id"))
                if vid and vid not in first_row_of:
                    first_row_of[vid] = n
            records.append(rec)
        await self._mark_unchanged(s, run, ctx.kind, records)
        for rec in records:  # the rows left to apply, in batches of families
            if rec["state"] == RowState.pending.value:
                rec["batch"] = batcher.place(_family_key(rec["data"])) + rec["phase"] * 1_000_000
        if ctx.kind == ImportKind.visits and mapping.authoritative_days:
            records += await self._absent_visits(s, run, ctx, set(first_row_of), records)
        if records:
            await (await s.connection()).execute(insert(ImportRow), records)
        run.total_rows = len(records)
        run.state, run.started_at = ImportState.running, now
        s.add(run)
        await s.commit()

    async def _mark_unchanged(
        self, s: AsyncSession, run: ImportRun, kind: ImportKind, records: list[dict[str, Any]]
    ) -> None:
        """Visits we already have as the file states them are done here, in a few reads (a
        daily file repeats most of yesterday's): no batch carries them."""
        if kind == ImportKind.patients:
            return
        pending = {r["data"]["visit_id"]: r for r in records if r["state"] == RowState.pending.value}
        ids = sorted(pending)
        for i in range(0, len(ids), 500):
            q = select(Appointment).where(
                Appointment.clinic_id == run.clinic_id, col(Appointment.mis_visit_id).in_(ids[i : i + 500])
            )
            for a in (await s.exec(q)).all():
                rec = pending[a.mis_visit_id or ""]
                if _as_stated(kind, a, rec["data"]):
                    rec |= {"state": RowState.done.value, "outcome": "unchanged"}
                    rec |= {"appointment_id": a.id, "patient_id": a.patient_id}

    async def _absent_visits(
        self, s: AsyncSession, run: ImportRun, ctx: _RowContext, listed: set[str], records: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """The file is the whole day for every day it lists: the clinic's MIS visits of those
        days that it does not list were cancelled there."""
        days = {date.fromisoformat(r["data"]["day"]) for r in records if r["data"].get("day")}
        out: list[dict[str, Any]] = []
        for day in sorted(days):
            start = datetime(day.year, day.month, day.day, tzinfo=ctx.tz)
            q = select(Appointment).where(
                Appointment.clinic_id == ctx.clinic.id,
                col(Appointment.mis_visit_id).is_not(None),
                col(Appointment.stage).in_(BEFORE_VISIT),
                col(Appointment.starts_at) >= max(start.astimezone(UTC), ctx.now),
                col(Appointment.starts_at) < (start + timedelta(days=1)).astimezone(UTC),
            )
            for a in (await s.exec(q.order_by(col(Appointment.starts_at)))).all():
                if a.mis_visit_id in listed:
                    continue
                out.append(
                    {
                        "import_id": run.id,
                        "row": -(len(out) + 1),
                        "batch": 2_000_000 + len(out) // 200,
                        "phase": 2,
                        "state": RowState.pending.value,
                        "outcome": None,
                        "column": None,
                        "reason": None,
                        "data": {"action": "cancel_absent", "visit_id": a.mis_visit_id, "day": day.isoformat()},
                        "appointment_id": a.id,
                        "patient_id": a.patient_id,
                    }
                )
        return out

    # -------------------------------------------------------------- apply
    @activity.defn(name="apply_import_batch")
    async def apply_import_batch(self, ref: BatchRef) -> int:
        async with self.deps.sessions() as s:
            run = await s.get(ImportRun, ref.import_id, options=[WITHOUT_FILE])
            assert run is not None
            clinic = await s.get(Clinic, run.clinic_id)
            assert clinic is not None
            mapping = await imports.mapping_of(s, clinic.id)
            q = (
                select(ImportRow)
                .where(ImportRow.import_id == run.id, ImportRow.batch == ref.batch, ImportRow.state != RowState.done)
                .order_by(col(ImportRow.row))
            )
            rows = list((await s.exec(q)).all())
        applier = _Applier(self.deps, activity.client(), run, clinic, mapping)
        pending = [r for r in rows if r.state == RowState.pending]
        sem = _effects_limit()
        effects: list[ImportRow] = []
        started: list[asyncio.Task[bool]] = []

        async def one(row: ImportRow) -> bool:
            async with sem:
                ok = await applier.effect(row)
            activity.heartbeat(row.row)
            return ok

        def follow(committed: list[ImportRow]) -> None:
            effects.extend(committed)
            started.extend(asyncio.create_task(one(r)) for r in committed)

        # A chunk's journeys start while the next chunk is applied.
        follow([r for r in rows if r.state == RowState.committed])  # a retried batch
        try:
            for i in range(0, len(pending), CHUNK):
                follow(await applier.apply_chunk(pending[i : i + CHUNK]))
            waiting: set[asyncio.Task[bool]] = set(started)
            while waiting:  # starts queued behind other batches' (one limit per process): alive
                done, waiting = await asyncio.wait(waiting, timeout=5, return_when=asyncio.FIRST_EXCEPTION)
                if any(not t.cancelled() and t.exception() is not None for t in done):
                    break  # gather raises it; the rest are cancelled below
                activity.heartbeat()
            results = await asyncio.gather(*started)
        except BaseException:
            for t in started:
                t.cancel()
            await asyncio.gather(*started, return_exceptions=True)
            raise
        await applier.mark_done([r for r, ok in zip(effects, results, strict=True) if ok])
        return len(rows)

    # -------------------------------------------------------------- finish
    @activity.defn(name="finish_import")
    async def finish_import(self, import_id: str) -> str:
        async with self.deps.sessions() as s:
            run = await s.get(ImportRun, import_id, options=[WITHOUT_FILE])
            assert run is not None
            if run.state not in (ImportState.completed, ImportState.failed):
                run.state, run.finished_at = ImportState.completed, datetime.now(UTC)
                s.add(run)
                await s.commit()
            st = await imports.status(s, run, with_errors=False)
        log.info("import finished", import_id=import_id, kind=run.kind, state=run.state, **st.counts)
        return str(run.state)

    # -------------------------------------------------------------- drop folder
    @activity.defn(name="scan_drop_folder")
    async def scan_drop_folder(self, scan: DropScan) -> DropResult:
        settings = self.deps.settings
        out = DropResult()
        async with self.deps.sessions() as s:
            clinic = await s.get(Clinic, scan.clinic_id)
            if clinic is None or not clinic.code:
                log.warning("drop folder scan for a clinic without a code", clinic_id=scan.clinic_id)
                return out
            assert settings.import_dir is not None
            folder = Path(settings.import_dir) / clinic.code
            if not folder.is_dir():
                folder.mkdir(parents=True, exist_ok=True)
                return out
            files = sorted(
                p
                for p in folder.iterdir()
                if p.is_file() and not p.name.startswith((".", "~$")) and not p.name.endswith(TEMP_SUFFIXES)
            )
            for path in files:
                activity.heartbeat(path.name)
                content = path.read_bytes()
                sha = hashlib.sha256(content).hexdigest()
                run, created = await imports.register(
                    s,
                    clinic=clinic,
                    kind=kind_from_name(path.name),
                    file_name=path.name,
                    content=content,
                    source="drop",
                    dedup_key=f"drop:{clinic.id}:{sha}",
                )
                await imports.start(activity.client(), settings.temporal_task_queue, run)
                if created:
                    out.import_ids.append(run.id)
                else:
                    out.skipped += 1
                _move_aside(path, folder / ("processed" if created else "duplicates"))
        log.info("drop folder scanned", clinic_id=scan.clinic_id, started=len(out.import_ids), skipped=out.skipped)
        return out


def kind_from_name(name: str) -> ImportKind:
    """The drop folder tells files apart by name: completed…, patients…, anything else is
    a visits file."""
    low = name.casefold()
    if low.startswith(("completed", "выполнен", "завершен", "проведен")):
        return ImportKind.completed
    if low.startswith(("patients", "пациент")):
        return ImportKind.patients
    return ImportKind.visits


def _move_aside(path: Path, to: Path) -> None:
    to.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    target = to / f"{stamp}-{path.name}"
    n = 1
    while target.exists():
        target, n = to / f"{stamp}-{n}-{path.name}", n + 1
    shutil.move(str(path), target)


# ------------------------------------------------------------------ parsing one row
@dataclass
class _RowContext:
    kind: ImportKind
    clinic: Clinic
    mapping: ImportMapping
    headers: dict[str, str]
    region: str | None
    tz: ZoneInfo
    now: datetime
    doctor: Callable[[str], Doctor | None]
    lead_sources: list[str]

    def h(self, f: str) -> str:
        return self.headers.get(f, f)

    def parse(self, cell: Callable[[str], Any]) -> dict[str, Any]:
        d: dict[str, Any] = {}
        d["full_name"] = text(cell("full_name"))
        if not d["full_name"]:
            raise RowError(self.h("full_name"), "the patient's full name is empty")
        d["patient_id"] = text(cell("patient_id"))
        d["phone"] = parse_phone(cell("phone"), self.h("phone"), self.region)
        d["guardian"] = text(cell("guardian"))
        bd = cell("birth_date")
        if text(bd):
            b = parse_date(bd, self.h("birth_date"))
            if b > self.now.date():
                raise RowError(self.h("birth_date"), f"the birth date {b:%d.%m.%Y} is in the future")
            d["birth_date"] = b.isoformat()
        if self.kind != ImportKind.completed:
            d["source"] = parse_source(cell("source"), self.h("source"), self.lead_sources)
        if self.kind == ImportKind.patients:
            return self._patient(d, cell)
        d["visit_id"] = text(cell("visit_id"))
        if not d["visit_id"]:
            raise RowError(self.h("visit_id"), "the visit id is empty")
        if not (d["patient_id"] or d["phone"] or d["guardian"]):
            raise RowError(
                self.h("phone"),
                "no phone, no patient id and no guardian: the patient can be neither matched nor reached",
            )
        raw_date = cell("date")
        day = parse_date(raw_date, self.h("date"))
        at = parse_time(cell("time"), self.h("time")) if text(cell("time")) else time_in_date_cell(raw_date)
        if at is None:
            raise RowError(self.h("time"), "the visit has no time; write it as HH:MM")
        starts = datetime.combine(day, at, tzinfo=self.tz)
        d["starts_at"], d["day"] = starts.astimezone(UTC).isoformat(), day.isoformat()
        d["duration"] = (
            parse_int(cell("duration"), self.h("duration"), 5, 720)
            if text(cell("duration"))
            else self.mapping.default_duration_minutes
        )
        doctor_name = text(cell("doctor"))
        if not doctor_name:
            raise RowError(self.h("doctor"), "the doctor is empty")
        doc = self.doctor(doctor_name)
        if doc is None:
            raise RowError(
                self.h("doctor"),
                f"{doctor_name!r} is not a doctor of this clinic; add the doctor (POST /v1/doctors) or fix the name",
            )
        d["doctor_id"] = doc.id
        d["service"] = (text(cell("service")) or self.mapping.default_service)[:200]
        if self.kind == ImportKind.visits:
            if starts <= self.now:
                raise RowError(
                    self.h("date"),
                    f"the visit at {starts:%d.%m.%Y %H:%M} has already begun; a visits file lists upcoming visits",
                )
        else:
            d["status"] = parse_outcome(cell("status"), self.h("status"))
            if starts > self.now + COMPLETED_AHEAD:
                raise RowError(self.h("date"), f"the visit at {starts:%d.%m.%Y %H:%M} has not happened yet")
        return d

    def _patient(self, d: dict[str, Any], cell: Callable[[str], Any]) -> dict[str, Any]:
        if not d["patient_id"]:
            raise RowError(self.h("patient_id"), "the patient id (card number) is empty")
        d["guardian_id"] = text(cell("guardian_id"))
        lv = cell("last_visit")
        if text(lv):
            d["last_visit"] = parse_date(lv, self.h("last_visit")).isoformat()
        if text(cell("loyalty_points")):
            d["loyalty_points"] = parse_int(cell("loyalty_points"), self.h("loyalty_points"), 0, 10_000_000)
        email = text(cell("email"))
        if email:
            if "@" not in email or " " in email:
                raise RowError(self.h("email"), f"{email!r} is not an e-mail address")
            d["email"] = email[:320]
        return d


# ------------------------------------------------------------------ applying one row
class _Applier:
    def __init__(self, deps: Deps, temporal: Client, run: ImportRun, clinic: Clinic, mapping: ImportMapping) -> None:
        self.deps, self.temporal, self.run, self.clinic, self.mapping = deps, temporal, run, clinic, mapping
        self.kind = ImportKind(run.kind)
        self.tq = deps.settings.temporal_task_queue
        self.fast = True  # new visits written in bulk (see _create_visit)
        self._appts: dict[int, Appointment] = {}  # row -> the visit it created (for its start)

    async def apply_chunk(self, rows: list[ImportRow]) -> list[ImportRow]:
        """Apply rows in one transaction, each row inside its own savepoint with its ledger
        entry: a refused row rolls back to its savepoint (nothing of it stays) and records
        why. Returns the rows whose journey start/update must follow (`committed`). Should
        the chunk's transaction fail as a whole (a deadlock between two batches on
        PostgreSQL), the rows are applied one transaction each instead."""
        try:
            async with self.deps.sessions() as s:
                await self._preload(s, rows)
                follow = [row for row in rows if await self._apply_in(s, row)]
                await self._flush_new(s)
                await s.commit()
                return follow
        except DBAPIError:
            # Row by row, each in its own savepoint (a duplicate another import wrote a moment
            # ago is looked up again there).
            self.fast = False
            for row in rows:
                self._appts.pop(row.row, None)
            out: list[ImportRow] = []
            for row in rows:
                async with self.deps.sessions() as s:
                    await self._preload(s, [row])
                    if await self._apply_in(s, row):
                        out.append(row)
                    await s.commit()
            self.fast = True
            return out

    async def _preload(self, s: AsyncSession, rows: list[ImportRow]) -> None:
        """The chunk's ledger rows and the visits it names, in two queries (the session's
        identity map then answers the per-row look-ups)."""
        q = select(ImportRow).where(ImportRow.import_id == self.run.id, col(ImportRow.row).in_([r.row for r in rows]))
        self._ledger_rows = {r.row: r for r in (await s.exec(q)).all()}
        ids = [r.data["visit_id"] for r in rows if r.data.get("visit_id")]
        self._visits: dict[str, Appointment] = {}
        if ids:
            q2 = select(Appointment).where(
                Appointment.clinic_id == self.clinic.id, col(Appointment.mis_visit_id).in_(ids)
            )
            self._visits = {a.mis_visit_id or "": a for a in (await s.exec(q2)).all()}
        await self._preload_for_visits(s, rows)

    async def _preload_for_visits(self, s: AsyncSession, rows: list[ImportRow]) -> None:
        """Per chunk, not per row: the catalogue; which MIS patient ids and phones are not
        known yet (a new patient's row then needs no look-ups); and the new visits' doctors,
        locked up front in a fixed order (one lock per doctor for the whole chunk, and two
        chunks never wait on each other in opposite orders)."""
        self._entries: list[Entry] | None = None
        self._absent_links: set[str] = set()
        self._absent_phones: set[str] = set()
        self._touched: set[str] = set()  # ids/phones this chunk wrote: look them up again
        self._slots: booking.SlotBook | None = None
        self._links: dict[str, str] = {}  # MIS patient id -> patient id (known, or added by the chunk)
        self._by_phone: dict[str, list[Patient]] = {}
        self._patients: dict[str, Patient] = {}
        self._waitlisted: set[str] = set()  # known patients with an active waiting-list entry
        self._slow_keys: set[str] = set()  # phones/ids of rows applied one savepoint each
        self._new_patients: list[Patient] = []
        self._new_rows: list[Any] = []  # the chunk's new visits and MIS id links, written after their patients
        if self.kind == ImportKind.patients:
            return
        fresh = [d for d in (r.data for r in rows) if d.get("action") is None and d.get("visit_id") not in self._visits]
        if not fresh:
            return
        if self.kind == ImportKind.visits:
            self._entries = await catalogue(s, self.clinic.id, self.clinic.language)
            # The new visits' doctors locked up front in a fixed order, and their visits read.
            starts = [datetime.fromisoformat(d["starts_at"]) for d in fresh]
            ends = [t + timedelta(minutes=d["duration"]) for t, d in zip(starts, fresh, strict=True)]
            self._slots = await booking.SlotBook.load(s, {d["doctor_id"] for d in fresh}, min(starts), max(ends))
        mis_ids = sorted({d["patient_id"] for d in fresh if d.get("patient_id")})
        if mis_ids:
            q = select(PatientMisId).where(
                PatientMisId.clinic_id == self.clinic.id, col(PatientMisId.mis_patient_id).in_(mis_ids)
            )
            self._links = {m.mis_patient_id: m.patient_id for m in (await s.exec(q)).all()}
            self._absent_links = set(mis_ids) - set(self._links)
        phones = sorted({d["phone"] for d in fresh if d.get("phone")})
        if phones or self._links:
            q2 = select(Patient).where(
                or_(col(Patient.phone).in_(phones), col(Patient.id).in_(sorted(set(self._links.values()))))
            )
            for p in (await s.exec(q2)).all():
                self._patients[p.id] = p
                if p.phone:
                    self._by_phone.setdefault(p.phone, []).append(p)
            self._absent_phones = set(phones) - set(self._by_phone)
        if self._patients:
            q3 = select(WaitlistEntry.patient_id).where(
                WaitlistEntry.clinic_id == self.clinic.id,
                WaitlistEntry.state == WAITLIST_ACTIVE,
                col(WaitlistEntry.patient_id).in_(sorted(self._patients)),
            )
            self._waitlisted = set((await s.exec(q3)).all())

    async def _apply_in(self, s: AsyncSession, row: ImportRow) -> bool:
        activity.heartbeat(row.row)
        fresh = self._ledger_rows.get(row.row)
        if fresh is None or fresh.state != RowState.pending:  # applied by a previous attempt
            return fresh is not None and fresh.state == RowState.committed
        if self._unchanged(row):  # the common case of a daily re-import: no savepoint needed
            await self._ledger(s, row, RowState.done, "unchanged", row.appointment_id, row.patient_id)
            return False
        if (settled := self._fast_patient(row)) is not None:
            return await self._create_visit(s, row, *settled)
        # One savepoint for this row; the chunk's new visits so far are written first, and
        # later rows of the same family take this path too (they may need what it adds).
        await self._flush_new(s)
        d = row.data
        self._slow_keys.update(k for k in (d.get("phone"), d.get("patient_id")) if k)
        for attempt in range(2):
            sp = await s.begin_nested()
            try:
                follow = await self._apply(s, row)
                await sp.commit()
                return follow
            except (RowError, booking.SlotTaken, booking.InvalidBooking) as e:
                await sp.rollback()
                self._undo(row)
                problem = self._problem(e)
            except IntegrityError:
                # Another import wrote the same visit or patient a moment ago: look again.
                await sp.rollback()
                self._undo(row)
                if attempt == 1:
                    raise
                if vid := row.data.get("visit_id"):
                    q = select(Appointment).where(
                        Appointment.clinic_id == self.clinic.id, Appointment.mis_visit_id == vid
                    )
                    if (found := (await s.exec(q)).first()) is not None:
                        self._visits[vid] = found
                continue
            await self._ledger_error(s, row, *problem)
            return False
        return False

    def _problem(self, e: RowError | booking.BookingError) -> tuple[str | None, str]:
        """A refused row's column and reason, as the clinic reads them."""
        if isinstance(e, RowError):
            return e.column, e.reason
        if isinstance(e, booking.SlotTaken):
            c, tz = e.clash, ZoneInfo(self.clinic.timezone)
            return (
                self._h("time"),
                "the doctor already has a visit "
                f"{c.starts_at.astimezone(tz):%d.%m.%Y %H:%M}–{c.ends_at.astimezone(tz):%H:%M}"
                + (f" (visit id {c.mis_visit_id})" if c.mis_visit_id else "")
                + "; fix the time or the doctor in the MIS",
            )
        return self._h("date"), e.message if isinstance(e, booking.InvalidBooking) else str(e)

    def _undo(self, row: ImportRow) -> None:
        """The row's savepoint was rolled back: the visit it reserved is gone again."""
        appt = self._appts.pop(row.row, None)
        if appt is not None and self._slots is not None:
            self._slots.discard(appt)

    # ---------------------------------------------------------- new visits in bulk
    def _fast_patient(self, row: ImportRow) -> tuple[Patient, bool] | None:
        """A new visit whose patient the chunk's look-ups settle (by MIS id, else phone +
        name, else a new patient), as `_patient` would: (patient, whether new). None: the row
        takes its own savepoint (a guardian, a waiting-list patient, a family already
        applied that way, a patient not loaded)."""
        d = row.data
        if not self.fast or self.kind != ImportKind.visits or self._slots is None or d.get("action") is not None:
            return None
        if d.get("visit_id") in self._visits or d.get("guardian"):
            return None
        mis_id, phone = d.get("patient_id"), d.get("phone")
        if (mis_id and mis_id in self._slow_keys) or (phone and phone in self._slow_keys):
            return None
        p: Patient | None = None
        if mis_id and mis_id in self._links:
            p = self._patients.get(self._links[mis_id])
            if p is None:
                return None
        elif phone:
            key = name_key(d["full_name"])
            p = next((c for c in self._by_phone.get(phone, []) if name_key(c.full_name) == key), None)
        if p is not None:
            return None if p.id in self._waitlisted else (p, False)
        new = self._new_patient(
            {
                "full_name": d["full_name"][:200],
                "phone": phone,
                "birth_date": date.fromisoformat(d["birth_date"]) if d.get("birth_date") else None,
                "guardian_id": None,
                "source": d.get("source"),
            }
        )
        return new, True

    async def _create_visit(self, s: AsyncSession, row: ImportRow, patient: Patient, new: bool) -> bool:
        """A new visit checked like any booking (booking.reserve, the slot answered from the
        chunk's book) with no savepoint: a refused row has added nothing yet. Its patient and
        MIS id link join the session only once the visit is accepted, and everything is
        written at the end of the chunk (`_flush_new`), patients first."""
        d = row.data
        try:
            with s.no_autoflush:
                appt = await booking.reserve(
                    s,
                    clinic=self.clinic,
                    doctor_id=d["doctor_id"],
                    patient_id=patient.id,
                    starts_at=datetime.fromisoformat(d["starts_at"]),
                    duration_minutes=d["duration"],
                    service=d["service"],
                    mis_visit_id=d["visit_id"],
                    source="import",
                    catalogue_entries=self._entries,
                    slots=self._slots,
                    waitlisted=False,
                )
        except (RowError, booking.BookingError) as e:
            await self._ledger_error(s, row, *self._problem(e))
            return False
        appt.journey_started = False  # api.repair starts it should this import be abandoned
        s.expunge(appt)  # added again after its patient (_flush_new)
        self._new_rows.append(appt)
        self._appts[row.row] = appt
        self._visits[d["visit_id"]] = appt
        if new:
            self._new_patients.append(patient)
            self._patients[patient.id] = patient
            if patient.phone:
                self._by_phone.setdefault(patient.phone, []).append(patient)
                self._touched.add(patient.phone)
        mis_id = d.get("patient_id")
        if mis_id and mis_id not in self._links:
            self._new_rows.append(PatientMisId(clinic_id=self.clinic.id, mis_patient_id=mis_id, patient_id=patient.id))
            self._links[mis_id] = patient.id
            self._touched.add(mis_id)
        await self._ledger(s, row, RowState.committed, "created", appt.id, patient.id)
        return True

    async def _flush_new(self, s: AsyncSession) -> None:
        """Write the chunk's new patients, then their visits and links (in two flushes: the
        unit of work does not order inserts by foreign key)."""
        if not self._new_patients and not self._new_rows:
            return
        s.add_all(self._new_patients)
        await s.flush()
        s.add_all(self._new_rows)
        await s.flush()
        self._new_patients, self._new_rows = [], []

    async def mark_done(self, rows: list[ImportRow]) -> None:
        """The journeys of these rows run: one write for the whole batch."""
        if not rows:
            return
        async with self.deps.sessions() as s:
            await s.exec(
                update(ImportRow)
                .where(col(ImportRow.import_id) == self.run.id, col(ImportRow.row).in_([r.row for r in rows]))
                .values(state=RowState.done)
            )
            started = [r.appointment_id for r in rows if r.outcome == "created" and r.appointment_id]
            if started:
                await s.exec(update(Appointment).where(col(Appointment.id).in_(started)).values(journey_started=True))
            await s.commit()

    def _h(self, f: str) -> str:
        """The file's header for a field (errors name the column the clinic sees)."""
        return str(self.run.headers.get(f) or DEFAULT_HEADERS[f][0])

    async def _ledger_error(self, s: AsyncSession, row: ImportRow, column: str | None, reason: str) -> None:
        r = await s.get(ImportRow, (row.import_id, row.row))
        assert r is not None
        r.state, r.outcome, r.column, r.reason = RowState.done, "error", column, reason[:500]
        s.add(r)

    async def _error(self, row: ImportRow, column: str | None, reason: str) -> None:
        async with self.deps.sessions() as s:
            await self._ledger_error(s, row, column, reason)
            await s.commit()

    async def _ledger(
        self, s: AsyncSession, row: ImportRow, state: RowState, outcome: str, appt: str | None, patient: str | None
    ) -> None:
        r = await s.get(ImportRow, (row.import_id, row.row))
        assert r is not None
        r.state, r.outcome, r.appointment_id, r.patient_id = state, outcome, appt, patient
        s.add(r)
        row.state, row.outcome, row.appointment_id, row.patient_id = state, outcome, appt, patient

    def _unchanged(self, row: ImportRow) -> bool:
        """A visit we already have, as the file states it (sets the row's ids)."""
        d = row.data
        a = self._visits.get(d.get("visit_id") or "") if d.get("action") is None else None
        if a is None or self.kind == ImportKind.patients:
            return False
        same = _as_stated(self.kind, a, d)
        if same:
            row.appointment_id, row.patient_id = a.id, a.patient_id
        return same

    async def _apply(self, s: AsyncSession, row: ImportRow) -> bool:
        d = row.data
        if d.get("action") == "cancel_absent":
            await self._ledger(s, row, RowState.committed, "cancelled", row.appointment_id, row.patient_id)
            return True
        if self.kind == ImportKind.patients:
            return await self._apply_patient(s, row)
        existing = self._visits.get(d["visit_id"])
        if self.kind == ImportKind.completed:
            return await self._apply_completed(s, row, existing)
        starts_at = datetime.fromisoformat(d["starts_at"])
        if existing is None:
            patient = await self._patient(s, d)
            appt = await booking.reserve(
                s,
                clinic=self.clinic,
                doctor_id=d["doctor_id"],
                patient_id=patient.id,
                starts_at=starts_at,
                duration_minutes=d["duration"],
                service=d["service"],
                mis_visit_id=d["visit_id"],
                source="import",
                catalogue_entries=self._entries,
                slots=self._slots,
            )
            appt.journey_started = False  # api.repair starts it should this import be abandoned
            self._appts[row.row] = appt
            await self._ledger(s, row, RowState.committed, "created", appt.id, patient.id)
            return True
        same = existing.starts_at == starts_at and existing.duration_minutes == d["duration"]
        if existing.doctor_id != d["doctor_id"]:
            raise RowError(
                self._h("doctor"),
                f"visit {d['visit_id']} is booked with another doctor here; a visit cannot change doctor: "
                "cancel it in the MIS and book a new visit",
            )
        if same:
            await self._ledger(s, row, RowState.done, "unchanged", existing.id, existing.patient_id)
            return False
        if existing.stage not in BEFORE_VISIT:
            raise RowError(
                self._h("date"),
                f"visit {d['visit_id']} is already {existing.stage.replace('_', ' ')}: it cannot be moved",
            )
        if starts_at <= datetime.now(UTC):
            raise RowError(self._h("date"), "the new time is in the past")
        await self._ledger(s, row, RowState.committed, "rescheduled", existing.id, existing.patient_id)
        return True

    async def _apply_completed(self, s: AsyncSession, row: ImportRow, existing: Appointment | None) -> bool:
        d = row.data
        if existing is not None:
            if existing.stage in OPEN_STAGES:
                await self._ledger(s, row, RowState.committed, "updated", existing.id, existing.patient_id)
                return True
            await self._ledger(s, row, RowState.done, "unchanged", existing.id, existing.patient_id)
            return False
        # A visit we never had a journey for (booked before the import began, or by phone):
        # its record feeds the reports and the first-visit count; nothing is sent.
        patient = await self._patient(s, d)
        starts_at = datetime.fromisoformat(d["starts_at"])
        appt = Appointment(
            clinic_id=self.clinic.id,
            doctor_id=d["doctor_id"],
            patient_id=patient.id,
            service=d["service"],
            starts_at=starts_at,
            ends_at=starts_at + timedelta(minutes=d["duration"]),
            duration_minutes=d["duration"],
            stage=d["status"],
            mis_visit_id=d["visit_id"],
            workflow_id="",
            history=[{"at": datetime.now(UTC).isoformat(), "event": "imported_completed", "stage": d["status"]}],
        )
        appt.workflow_id = appointment_workflow_id(appt.id)
        s.add(appt)
        await self._ledger(s, row, RowState.done, "created", appt.id, patient.id)
        return False

    async def _apply_patient(self, s: AsyncSession, row: ImportRow) -> bool:
        d = row.data
        link = await s.get(PatientMisId, (self.clinic.id, d["patient_id"]))
        guardian: Patient | None = None
        if d.get("guardian_id"):
            glink = await s.get(PatientMisId, (self.clinic.id, d["guardian_id"]))
            if glink is None:
                raise RowError(
                    self._h("guardian_id"),
                    f"guardian {d['guardian_id']} is not in this file or the patient base; add the guardian's row",
                )
            guardian = await s.get(Patient, glink.patient_id)
        elif d.get("guardian"):
            guardian = await self._guardian(s, d["guardian"], d.get("phone"))
        p = await s.get(Patient, link.patient_id) if link else None
        if p is None:
            p = await self._match(s, d, guardian)
        want: dict[str, Any] = {
            "full_name": d["full_name"][:200],
            "birth_date": date.fromisoformat(d["birth_date"]) if d.get("birth_date") else None,
            "guardian_id": guardian.id if guardian else None,
            "phone": None if guardian else d.get("phone"),
            "source": d.get("source"),
            "last_visit_on": date.fromisoformat(d["last_visit"]) if d.get("last_visit") else None,
            "loyalty_points": d.get("loyalty_points"),
            "email": d.get("email"),
        }
        if p is None:
            p = self._new_patient(want)
            s.add(p)
            outcome = "created"
        else:
            outcome = "unchanged"
            for k, v in want.items():
                # The MIS is the source of truth for what it states; blank cells keep ours.
                if v is None or not hasattr(p, k) or k == "phone" and guardian is not None or k == "loyalty_points":
                    continue
                if getattr(p, k) != v:
                    setattr(p, k, v)
                    outcome = "updated"
            s.add(p)
        await s.flush()
        # The MIS balance arrives through the points ledger: one row for the difference.
        pts = want.get("loyalty_points")
        if pts is not None and pts != p.loyalty_points:
            await points.apply(s, p.id, pts - p.loyalty_points, kind=points.IMPORT, reason="MIS import")
            set_committed_value(p, "loyalty_points", pts)
            outcome = "updated" if outcome == "unchanged" else outcome
        if link is None:
            s.add(PatientMisId(clinic_id=self.clinic.id, mis_patient_id=d["patient_id"], patient_id=p.id))
        await self._ledger(s, row, RowState.done, outcome, None, p.id)
        return False

    def _new_patient(self, want: dict[str, Any]) -> Patient:
        p = Patient(
            full_name=want["full_name"],
            phone=want.get("phone"),
            birth_date=want.get("birth_date"),
            guardian_id=want.get("guardian_id"),
            clinic_id=self.clinic.id,
            preferred_channel=Channel.sms,
            email=want.get("email"),
        )
        if want.get("last_visit_on"):
            p.last_visit_on = want["last_visit_on"]
        if want.get("source"):
            p.source = want["source"]
        return p

    # ---------------------------------------------------------- patients
    async def _patient(self, s: AsyncSession, d: dict[str, Any]) -> Patient:
        """The visit's patient: by the clinic's MIS patient id, else phone + name (a child:
        the guardian named in the row, whose phone the row carries); created if new."""
        mis_id = d.get("patient_id")
        known_new = bool(mis_id) and mis_id in self._absent_links and mis_id not in self._touched
        link = await s.get(PatientMisId, (self.clinic.id, mis_id)) if mis_id and not known_new else None
        if link is not None:
            p = await s.get(Patient, link.patient_id)
            assert p is not None
            return p
        guardian = await self._guardian(s, d["guardian"], d.get("phone")) if d.get("guardian") else None
        p = await self._match(s, d, guardian)
        if p is None:
            p = self._new_patient(
                {
                    "full_name": d["full_name"][:200],
                    "phone": None if guardian else d.get("phone"),
                    "birth_date": date.fromisoformat(d["birth_date"]) if d.get("birth_date") else None,
                    "guardian_id": guardian.id if guardian else None,
                    "source": d.get("source"),
                }
            )
            s.add(p)
            await s.flush()
            self._touched.add(p.phone or "")
        if d.get("patient_id"):
            s.add(PatientMisId(clinic_id=self.clinic.id, mis_patient_id=d["patient_id"], patient_id=p.id))
            self._touched.add(d["patient_id"])
        return p

    async def _match(self, s: AsyncSession, d: dict[str, Any], guardian: Patient | None) -> Patient | None:
        key = name_key(d["full_name"])
        if guardian is not None:
            q = select(Patient).where(Patient.guardian_id == guardian.id)
        elif d.get("phone"):
            if d["phone"] in getattr(self, "_absent_phones", ()) and d["phone"] not in self._touched:
                return None  # no patient had this phone when the chunk began, and none was added
            q = select(Patient).where(Patient.phone == d["phone"])
        else:
            return None
        return next((p for p in (await s.exec(q)).all() if name_key(p.full_name) == key), None)

    async def _guardian(self, s: AsyncSession, name: str, phone: str | None) -> Patient:
        """The guardian named in a row: by phone + name, else by name among the clinic's
        patients; a guardian with a phone we do not know yet is added."""
        key = name_key(name)
        if phone:
            q = select(Patient).where(Patient.phone == phone)
            found = next((p for p in (await s.exec(q)).all() if name_key(p.full_name) == key), None)
            if found is not None:
                return found
        q2 = select(Patient).where(Patient.clinic_id == self.clinic.id, Patient.full_name == " ".join(name.split()))
        same = [p for p in (await s.exec(q2)).all() if p.phone]
        if len(same) == 1 and not phone:
            return same[0]
        if not phone:
            raise RowError(
                self._h("guardian"),
                f"guardian {name!r} is not a patient of this clinic{' (several have this name)' if same else ''} "
                "and the row has no phone: import the patient base first or add the guardian's phone",
            )
        g = Patient(full_name=" ".join(name.split())[:200], phone=phone, clinic_id=self.clinic.id)
        s.add(g)
        await s.flush()
        self._touched.add(phone)
        return g

    # ---------------------------------------------------------- journeys
    async def effect(self, row: ImportRow) -> bool:
        """The journey side of a committed row; idempotent. False: the row ended as an error."""
        if row.outcome == "created" and (made := self._appts.get(row.row)) is not None:
            # The visit this batch just wrote: no need to read it back.
            await booking.start_journey(self.temporal, self.tq, made, self.clinic)
            return True
        async with self.deps.sessions() as s:
            appt = await s.get(Appointment, row.appointment_id) if row.appointment_id else None
            assert appt is not None
            uid = f"{self.run.workflow_id}-row{row.row}"
            try:
                if row.outcome == "created":
                    await booking.start_journey(self.temporal, self.tq, appt, self.clinic)
                elif row.outcome == "rescheduled":
                    d = row.data
                    await booking.move(
                        s, self.temporal, appt, datetime.fromisoformat(d["starts_at"]), d["duration"], update_id=uid
                    )
                elif row.outcome == "cancelled":
                    day = row.data.get("day", "")
                    await booking.cancel(
                        self.temporal, appt, f"not in the clinic's MIS schedule for {day}", update_id=uid
                    )
                elif row.outcome == "updated":  # a completed visit whose journey is open
                    await self._close_visit(appt, row.data["status"], uid)
            except booking.SlotTaken as e:
                await self._error(row, self._h("time"), f"the doctor already has a visit at that time ({e.clash.id})")
                return False
            except booking.InvalidBooking as e:
                await self._error(row, self._h("date"), e.message)
                return False
            except WorkflowUpdateFailedError as e:
                # The journey refused (its stage moved on meanwhile): say so on the row.
                cause = getattr(e, "cause", None)
                msg = getattr(cause, "message", None) or "the journey refused the change"
                await self._error(row, None, f"visit {appt.mis_visit_id}: {msg}")
                return False
        return True

    async def _close_visit(self, appt: Appointment, status: str, uid: str) -> None:
        from contracts.appointment import StaffAction

        h = self.temporal.get_workflow_handle(appt.workflow_id)
        if status == "no_show":
            await h.execute_update("no_show", StaffAction(note="MIS: no-show"), id=f"{uid}-noshow")
            return
        if appt.stage in BEFORE_VISIT:
            await h.execute_update("check_in", StaffAction(note="MIS: visit completed"), id=f"{uid}-in")
        await h.execute_update("finish", StaffAction(note="MIS: visit completed"), id=f"{uid}-finish")
