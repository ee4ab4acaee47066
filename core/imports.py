"""The MIS import as a service shared by its three ways in (API upload, `journeys import`,
the drop folder): register a file as an import run, start its workflow, read its status,
and keep each clinic's daily drop-folder Schedule."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
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
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from models.core import Clinic
from models.imports import (
    DROP_FOLDER_WORKFLOW,
    IMPORT_WORKFLOW,
    OUTCOMES,
    DropScan,
    ImportInput,
    ImportKind,
    ImportMapping,
    ImportRow,
    ImportRun,
    RowState,
    drop_schedule_id,
    import_workflow_id,
)

MAX_ERRORS_SHOWN = 500


async def register(
    session: AsyncSession,
    *,
    clinic: Clinic,
    kind: ImportKind,
    file_name: str,
    content: bytes,
    source: str,
    created_by: str | None = None,
    dedup_key: str | None = None,
) -> tuple[ImportRun, bool]:
    """Store the file as a queued import run. With `dedup_key` (the drop folder: clinic +
    content hash) the same file registers once: (the existing run, False)."""
    if dedup_key is not None:
        q = select(ImportRun).where(ImportRun.dedup_key == dedup_key)
        existing = (await session.exec(q)).first()
        if existing is not None:
            return existing, False
    run = ImportRun(
        clinic_id=clinic.id,
        kind=kind,
        source=source,
        file_name=file_name[-255:],
        sha256=hashlib.sha256(content).hexdigest(),
        content=content,
        dedup_key=dedup_key,
        workflow_id="",
        created_by=created_by,
    )
    run.workflow_id = import_workflow_id(run.id)
    session.add(run)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        q = select(ImportRun).where(ImportRun.dedup_key == dedup_key)
        return (await session.exec(q)).one(), False
    return run, True


def import_queue(task_queue: str) -> str:
    """The MIS imports' own task queue beside the journeys' `task_queue`: an import's workflow
    and batches run on their own worker slots, never queued behind the activities of the
    journeys the import itself starts (those stay on `task_queue`)."""
    return f"{task_queue}-imports"


async def start(temporal: Client, task_queue: str, run: ImportRun) -> None:
    """Start (or join) the run's workflow on the imports' queue; safe to repeat."""
    try:
        await temporal.start_workflow(
            IMPORT_WORKFLOW,
            ImportInput(import_id=run.id),
            id=run.workflow_id,
            task_queue=import_queue(task_queue),
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
    except WorkflowAlreadyStartedError:
        pass  # it ran already


@dataclass
class RowProblem:
    row: int
    column: str | None
    reason: str


@dataclass
class Status:
    id: str
    clinic_id: str
    kind: str
    state: str
    source: str
    file_name: str
    workflow_id: str
    total_rows: int | None
    processed_rows: int
    progress: float
    counts: dict[str, int]
    error: str | None
    errors: list[RowProblem] = field(default_factory=list)
    created_at: Any = None
    finished_at: Any = None


async def status(session: AsyncSession, run: ImportRun, with_errors: bool = True) -> Status:
    q = (
        select(ImportRow.outcome, func.count())
        .where(ImportRow.import_id == run.id, ImportRow.state == RowState.done)
        .group_by(col(ImportRow.outcome))
    )
    counts = dict.fromkeys(OUTCOMES, 0)
    processed = 0
    for outcome, n in (await session.exec(q)).all():
        key = "errors" if outcome == "error" else (outcome or "unchanged")
        counts[key] = counts.get(key, 0) + n
        processed += n
    total_q = select(func.count()).select_from(ImportRow).where(ImportRow.import_id == run.id)
    total = (await session.exec(total_q)).one() if run.total_rows is not None else None
    problems: list[RowProblem] = []
    if with_errors:
        eq = (
            select(ImportRow)
            .where(ImportRow.import_id == run.id, ImportRow.outcome == "error")
            .order_by(col(ImportRow.row))
            .limit(MAX_ERRORS_SHOWN)
        )
        problems = [RowProblem(r.row, r.column, r.reason or "") for r in (await session.exec(eq)).all()]
    progress = 1.0 if run.state in ("completed", "failed") else (processed / total if total else 0.0)
    return Status(
        id=run.id,
        clinic_id=run.clinic_id,
        kind=run.kind,
        state=run.state,
        source=run.source,
        file_name=run.file_name,
        workflow_id=run.workflow_id,
        total_rows=total,
        processed_rows=processed,
        progress=round(progress, 4),
        counts=counts,
        error=run.error,
        errors=problems,
        created_at=run.created_at,
        finished_at=run.finished_at,
    )


async def mapping_of(session: AsyncSession, clinic_id: str) -> ImportMapping:
    """The clinic's mapping, or the defaults (not stored) when it has none."""
    return await session.get(ImportMapping, clinic_id) or ImportMapping(clinic_id=clinic_id)


# ------------------------------------------------------------------ drop-folder schedule
def _schedule(clinic: Clinic, mapping: ImportMapping, task_queue: str) -> Schedule:
    hour, minute = (int(x) for x in mapping.daily_at.split(":"))
    return Schedule(
        action=ScheduleActionStartWorkflow(
            DROP_FOLDER_WORKFLOW,
            DropScan(clinic_id=clinic.id),
            id=f"mis-drop-scan-{clinic.id}",
            task_queue=task_queue,
            execution_timeout=timedelta(hours=6),
        ),
        spec=ScheduleSpec(
            calendars=[ScheduleCalendarSpec(hour=[ScheduleRange(hour)], minute=[ScheduleRange(minute)])],
            time_zone_name=clinic.timezone,
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure_drop_schedule(temporal: Client, task_queue: str, clinic: Clinic, mapping: ImportMapping) -> str:
    """Create or update the clinic's daily drop-folder Schedule (at `daily_at`, clinic-local)."""
    sid = drop_schedule_id(clinic.id)
    schedule = _schedule(clinic, mapping, task_queue)
    try:
        await temporal.create_schedule(sid, schedule)
    except ScheduleAlreadyRunningError:

        def _update(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await temporal.get_schedule_handle(sid).update(_update)
    return sid


async def ensure_all_drop_schedules(temporal: Client, task_queue: str, session: AsyncSession) -> int:
    q = select(Clinic).where(col(Clinic.code).is_not(None))
    n = 0
    for clinic in (await session.exec(q)).all():
        await ensure_drop_schedule(temporal, task_queue, clinic, await mapping_of(session, clinic.id))
        n += 1
    return n
