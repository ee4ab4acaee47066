"""Staff and patients talking: a staff reply on the patient's channel, and the thread.

POST /v1/patients/{id}/messages      {text, subject?}  front desk, operator (admin)
GET  /v1/patients/{id}/conversation  in and out, newest last, paginated backwards (`before`)
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, HTTPException, Query, Request, status
from pydantic import BaseModel, Field
from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from api import policy
from api.deps import SessionDep
from api.routers.webhooks import _http
from conversations.delivery import Delivery
from conversations.staff import ProviderDown, StaffMessage, StaffSendRefused, send_staff_message
from core.deps import Deps
from models.appointment import Appointment
from models.conversation import OpenQuestion
from models.core import MessageLog, OperatorTask, Patient, StaffUser
from models.treatment import TreatmentPlan

router = APIRouter(prefix="/v1/patients", tags=["conversations"])
Desk = Annotated[StaffUser, policy.may("patients", "message")]
Reader = Annotated[StaffUser, policy.may("patients", "read")]


class Subject(BaseModel):
    type: Literal["appointment", "treatment_plan"]
    id: str = Field(min_length=1, max_length=64)


class StaffMessageIn(BaseModel):
    text: str = Field(min_length=1, max_length=4096)
    subject: Subject | None = None


class QuestionRef(BaseModel):
    id: str
    kind: str
    state: str


class TaskRef(BaseModel):
    id: str
    kind: str
    state: str


class ConversationItem(BaseModel):
    id: str
    at: datetime
    direction: str  # in | out
    channel: str
    kind: str  # reminder, reask, survey, lab_results_ask, staff_message, reply, ...
    text: str | None
    status: str
    subject: Subject | None
    question: QuestionRef | None  # asked (out) / answered (in)
    task: TaskRef | None  # raised by this message (in) / resolved by this reply (out)
    sent_by: str | None  # the staff user of a staff message
    to_guardian: bool  # a child's message, delivered to (or written by) the guardian
    template: str | None  # the WhatsApp template it went in (outside the 24-hour window)


class Conversation(BaseModel):
    patient_id: str
    items: list[ConversationItem]
    next_before: str | None  # pass as `before` for older messages; null: nothing older


def messenger(request: Request) -> Delivery:
    app = request.app
    return Delivery(Deps(app.state.settings, app.state.engine, app.state.sessions, _http(request)))


async def patient_for(session: AsyncSession, patient_id: str, user: StaffUser) -> Patient:
    # Staff see only their branch: another branch's patient does not exist for them.
    patient = await policy.patient_visible(session, user, patient_id)
    if patient is None:
        raise policy.not_found("patient", patient_id)
    return patient


async def check_subject(session: AsyncSession, patient: Patient, subject: Subject | None) -> None:
    if subject is None:
        return
    row: Appointment | TreatmentPlan | None
    if subject.type == "appointment":
        row = await session.get(Appointment, subject.id)
    else:
        row = await session.get(TreatmentPlan, subject.id)
    if row is None or row.patient_id != patient.id:
        raise HTTPException(
            422,
            detail=[
                {
                    "loc": ["body", "subject", "id"],
                    "msg": f"{subject.type} {subject.id!r} is not this patient's",
                    "type": "value_error",
                }
            ],
        )


async def deliver(
    request: Request,
    session: AsyncSession,
    patient: Patient,
    user: StaffUser,
    text: str,
    subject: Subject | None,
    task_id: str | None = None,
    idempotency_key: str | None = None,
) -> MessageLog:
    """Send a staff message; refusals become 409 (saying why), provider trouble 503."""
    await check_subject(session, patient, subject)
    try:
        return await send_staff_message(
            messenger(request),
            StaffMessage(
                patient_id=patient.id,
                text=text,
                sent_by=user.id,
                subject_type=subject.type if subject else None,
                subject_id=subject.id if subject else None,
                task_id=task_id,
                idempotency_key=idempotency_key,
            ),
        )
    except StaffSendRefused as e:
        raise HTTPException(409, detail={"message": e.message, "reason": e.reason}) from None
    except ProviderDown:
        raise HTTPException(
            503, detail={"message": "the messaging provider is unavailable; try again (same Idempotency-Key)"}
        ) from None


@router.post("/{patient_id}/messages", response_model=ConversationItem, status_code=status.HTTP_201_CREATED)
async def send_message(
    patient_id: str,
    body: StaffMessageIn,
    request: Request,
    session: SessionDep,
    user: Desk,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> ConversationItem:
    patient = await patient_for(session, patient_id, user)
    row = await deliver(request, session, patient, user, body.text, body.subject, idempotency_key=idempotency_key)
    if row.status == "failed":
        raise HTTPException(
            502, detail={"message": "every channel refused the message", "error": row.error, "id": row.id}
        )
    return (await _items(session, [row]))[0]


@router.get("/{patient_id}/conversation", response_model=Conversation)
async def conversation(
    patient_id: str,
    session: SessionDep,
    user: Reader,
    limit: int = Query(50, ge=1, le=200),
    before: str | None = Query(None, max_length=32, description="a message id: return messages older than it"),
) -> Conversation:
    patient = await patient_for(session, patient_id, user)
    q = select(MessageLog).where(
        or_(MessageLog.patient_id == patient.id, MessageLog.about_patient_id == patient.id),
        col(MessageLog.status).not_in(("pending", "sending")),
    )
    if before:
        anchor = await session.get(MessageLog, before)
        if anchor is None:
            raise HTTPException(
                422, detail=[{"loc": ["query", "before"], "msg": "unknown message id", "type": "value_error"}]
            )
        q = q.where(
            or_(
                col(MessageLog.created_at) < anchor.created_at,
                (col(MessageLog.created_at) == anchor.created_at) & (col(MessageLog.id) < anchor.id),
            )
        )
    q = q.order_by(col(MessageLog.created_at).desc(), col(MessageLog.id).desc()).limit(limit + 1)
    rows = list((await session.exec(q)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    items = await _items(session, list(reversed(rows)))
    return Conversation(patient_id=patient.id, items=items, next_before=rows[-1].id if more and rows else None)


async def _items(session: AsyncSession, rows: list[MessageLog]) -> list[ConversationItem]:
    qids = {r.question_id for r in rows if r.question_id}
    tids = {r.task_id for r in rows if r.task_id}
    questions: dict[str, OpenQuestion] = {}
    tasks: dict[str, OperatorTask] = {}
    if qids:
        found = await session.exec(select(OpenQuestion).where(col(OpenQuestion.id).in_(qids)))
        questions = {q.id: q for q in found.all()}
    if tids:
        found_t = await session.exec(select(OperatorTask).where(col(OperatorTask.id).in_(tids)))
        tasks = {t.id: t for t in found_t.all()}
    now = datetime.now().astimezone()
    out = []
    for r in rows:
        q = questions.get(r.question_id or "")
        t = tasks.get(r.task_id or "")
        payload: dict[str, Any] = r.payload or {}
        subject = None
        if r.subject_id:
            stype = r.subject_type or (q.subject_type if q else None) or "appointment"
            if stype in ("appointment", "treatment_plan"):
                subject = Subject(type=stype, id=r.subject_id)  # type: ignore[arg-type]
        out.append(
            ConversationItem(
                id=r.id,
                at=r.created_at,
                direction=r.direction,
                channel=r.channel.value,
                kind=r.kind,
                text=r.body,
                status=r.status,
                subject=subject,
                question=QuestionRef(id=q.id, kind=q.kind, state=q.effective_state(now)) if q else None,
                task=TaskRef(id=t.id, kind=t.kind, state=t.state.value) if t else None,
                sent_by=r.sent_by,
                to_guardian=bool(
                    (r.direction == "out" and r.recipient_id and r.recipient_id != r.patient_id)
                    or (r.direction == "in" and r.about_patient_id and r.about_patient_id != r.patient_id)
                ),
                template=payload.get("template") if payload.get("type") == "template" else None,
            )
        )
    return out
