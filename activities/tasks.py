"""Operator tasks raised by journeys. Idempotent on the dedup key (a unique DB row)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlmodel import col, select
from temporalio import activity

from activities.heartbeat import heartbeats
from contracts.common import CancelTasks, TaskActivityStubs, TaskRef, TaskRequest
from core import metrics
from core.db import insert_once
from core.deps import Deps
from core.logging import get_logger
from models.core import MessageLog, OperatorTask, Role, TaskState

log = get_logger("activities.tasks")


class TaskActivities(TaskActivityStubs):
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name="create_operator_task")
    @heartbeats
    async def create_operator_task(self, req: TaskRequest) -> TaskRef:
        task = OperatorTask(
            dedup_key=req.dedup_key,
            kind=req.kind,
            title=req.title,
            assigned_role=Role(req.assigned_role),
            clinic_id=req.clinic_id,
            patient_id=req.patient_id,
            subject_type=req.subject_type,
            subject_id=req.subject_id,
            workflow_id=req.workflow_id,
            due_at=req.due_at,
            details=req.details,
        )
        async with self.deps.sessions() as s:
            task, created = await insert_once(s, task, OperatorTask.dedup_key, req.dedup_key)
            if created and (message_id := req.details.get("message_log_id")):
                # The patient's message this task is about: the conversation shows the link.
                msg = await s.get(MessageLog, message_id)
                if msg is not None and msg.task_id is None:
                    msg.task_id = task.id
                    s.add(msg)
                    await s.commit()
        if not created:
            return TaskRef(task_id=task.id, created=False)
        metrics.task_opened(req.kind)
        log.info(
            "operator task raised",
            task_id=task.id,
            kind=req.kind,
            subject_id=req.subject_id,
            workflow_id=req.workflow_id,
        )
        return TaskRef(task_id=task.id, created=True)

    @activity.defn(name="cancel_operator_tasks")
    @heartbeats
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
            for t in tasks:
                metrics.task_closed(t.kind, "cancelled")
            return len(tasks)
