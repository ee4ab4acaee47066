"""The operator queue: tasks journeys raise for people (FHIR Task-like)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, Field
from sqlmodel import col, select

from api import policy
from api.deps import MAX_OFFSET, CurrentUser, SessionDep
from api.errors import check_choice, invalid_field
from api.routers.conversations import Subject, deliver, patient_for
from core import metrics
from models.core import OperatorTask, OperatorTaskPublic, Role, StaffUser, TaskState


async def _some_tasks(user: CurrentUser) -> StaffUser:
    """Any task family at all (which kinds: policy.task_kind_filter)."""
    if not policy.task_families(user):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"role {user.role.value!r} has no operator tasks")
    return user


router = APIRouter(prefix="/v1/tasks", tags=["tasks"])
Staff = Annotated[StaffUser, Depends(_some_tasks)]

_STATE_ALIASES = {
    "open": (TaskState.requested, TaskState.in_progress),
    "closed": (TaskState.completed, TaskState.cancelled),
}


class TaskComplete(BaseModel):
    outcome: str | None = Field(None, max_length=1000)
    reply: str | None = Field(
        None,
        min_length=1,
        max_length=4096,
        description="an answer to send the patient on their channel before completing (unread_message tasks)",
    )


@router.get("", response_model=list[OperatorTaskPublic])
async def list_tasks(
    session: SessionDep,
    user: Staff,
    state: str = Query("open", description="open, closed, or a FHIR Task.status"),
    kind: str | None = None,
    clinic_id: str | None = None,
    subject_id: str | None = None,
    assigned_role: Role | None = None,
    limit: int = Query(100, ge=1, le=500),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
) -> list[OperatorTask]:
    check_choice("state", state, [*_STATE_ALIASES, *[s.value for s in TaskState]])
    states = _STATE_ALIASES[state] if state in _STATE_ALIASES else (TaskState(state),)
    q = select(OperatorTask).where(col(OperatorTask.state).in_(states), policy.task_kind_filter(user))
    if (cond := policy.clinic_filter(user, OperatorTask.clinic_id)) is not None:
        q = q.where(cond)
    if kind:
        q = q.where(OperatorTask.kind == kind)
    if clinic_id:
        q = q.where(OperatorTask.clinic_id == clinic_id)
    if subject_id:
        q = q.where(OperatorTask.subject_id == subject_id)
    if assigned_role:
        q = q.where(OperatorTask.assigned_role == assigned_role)
    q = q.order_by(col(OperatorTask.due_at).asc().nulls_first(), col(OperatorTask.created_at))
    return list((await session.exec(q.offset(offset).limit(limit))).all())


@router.get("/{task_id}", response_model=OperatorTaskPublic)
async def get_task(task_id: str, session: SessionDep, user: Staff) -> OperatorTask:
    return await _visible(session, user, task_id)


@router.post("/{task_id}/complete", response_model=OperatorTaskPublic)
async def complete_task(
    task_id: str, request: Request, session: SessionDep, user: Staff, body: TaskComplete | None = None
) -> OperatorTask:
    task = await _visible(session, user, task_id)
    if task.state in (TaskState.completed, TaskState.cancelled):
        raise HTTPException(409, f"task is already {task.state.value}")
    outcome = body.outcome if body else None
    if body is not None and body.reply is not None:
        # The answer goes out first: refused (opted out, WhatsApp window) -> 409, task stays open.
        if not policy.can(user, "patients", "message"):
            raise HTTPException(403, f"role {user.role.value!r} may not write to patients")
        if not task.patient_id:
            raise invalid_field("reply", "this task is not about a patient; there is nobody to answer")
        patient = await patient_for(session, task.patient_id, user)
        subject = (
            Subject(type=task.subject_type, id=task.subject_id)  # type: ignore[arg-type]
            if task.subject_type in ("appointment", "treatment_plan") and task.subject_id
            else None
        )
        sent = await deliver(request, session, patient, user, body.reply, subject, task_id=task.id)
        outcome = outcome or f"answered the patient (message {sent.id})"
        await session.refresh(task)
        if task.state in (TaskState.completed, TaskState.cancelled):
            return task  # completed meanwhile by someone else; the answer went out once
    task.state = TaskState.completed
    task.completed_at = datetime.now(UTC)
    task.completed_by = user.id
    task.outcome = outcome
    session.add(task)
    await session.commit()
    metrics.task_closed(task.kind, "completed")
    await session.refresh(task)
    return task


async def _visible(session: SessionDep, user: StaffUser, task_id: str) -> OperatorTask:
    """Another clinic's task is 404 (as a missing one); a kind the role may not see is 403."""
    task = await session.get(OperatorTask, task_id)
    if task is None or not policy.in_scope(user, task.clinic_id):  # network tasks: network staff
        raise policy.not_found("task", task_id)
    policy.ensure_task_kind(user, task.kind)
    return task
