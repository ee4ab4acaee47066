"""Operator tasks raised by journeys. Idempotent on the dedup key (a unique DB row)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from temporalio import activity

from activities.deps import Deps
from core.logging import get_logger
from models.core import OperatorTask, Role, TaskState
from models.payloads import CancelTasks, TaskRef, TaskRequest

log = get_logger("activities.tasks")


class TaskActivities:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def _find(self, dedup_key: str) -> OperatorTask | None:
        async with self.deps.sessions() as s:
            q = select(OperatorTask).where(OperatorTask.dedup_key == dedup_key)
            return (await s.exec(q)).first()

    @activity.defn(name="create_operator_task")
    async def create_operator_task(self, req: TaskRequest) -> TaskRef:
        existing = await self._find(req.dedup_key)
        if existing:
            return TaskRef(task_id=existing.id, created=False)
        task = OperatorTask(
            dedup_key=req.dedup_key, kind=req.kind, title=req.title,
            assigned_role=Role(req.assigned_role), clinic_id=req.clinic_id,
            patient_id=req.patient_id, subject_type=req.subject_type, subject_id=req.subject_id,
            workflow_id=req.workflow_id, due_at=req.due_at, details=req.details,
        )
        async with self.deps.sessions() as s:
            s.add(task)
            try:
                await s.commit()
            except IntegrityError:  # a concurrent attempt won the race: same effect
                await s.rollback()
                found = await self._find(req.dedup_key)
                assert found is not None
                return TaskRef(task_id=found.id, created=False)
        log.info("operator task raised", task_id=task.id, kind=req.kind,
                 subject_id=req.subject_id, workflow_id=req.workflow_id)
        return TaskRef(task_id=task.id, created=True)

    @activity.defn(name="cancel_operator_tasks")
    async def cancel_operator_tasks(self, req: CancelTasks) -> int:
        async with self.deps.sessions() as s:
            q = select(OperatorTask).where(
                OperatorTask.subject_id == req.subject_id,
                col(OperatorTask.state).in_((TaskState.requested, TaskState.in_progress)),
            )
            if req.kinds:
                q = q.where(col(OperatorTask.kind).in_(req.kinds))
            tasks = (await s.exec(q)).all()
            for t in tasks:
                t.state = TaskState.cancelled
                t.completed_at = datetime.now(UTC)
                t.outcome = req.reason or "no longer needed"
                s.add(t)
            await s.commit()
            return len(tasks)
