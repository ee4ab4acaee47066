"""Treatment plans (SPEC §4): create (starts the plan journey), read its live state, move it
along the direction's stage graph, cancel it; operators list plans from the database.

Moves are workflow *updates*: their validators reject a move the graph does not allow
(409, naming the allowed stages) before anything is written.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Header, HTTPException, Query, status
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from temporalio.client import Client, WorkflowQueryRejectedError
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from api import policy as access
from api.deps import MAX_OFFSET, SessionDep, SettingsDep, TemporalDep
from api.errors import check_choice, invalid_field
from contracts.appointment import APPOINTMENT_STATE_QUERY
from contracts.treatment_directions import DIRECTIONS, callback_moment, default_callback_date
from contracts.treatment_plan import (
    Actor,
    AdvanceRequest,
    AppointmentRequest,
    CancelRequest,
    PlanInput,
    PlanItem,
    PlanSnapshot,
    PlanState,
    Pricing,
    VisitObservation,
    plan_workflow_id,
)
from core.search_attributes import CLINIC_ID, TREATMENT_DIRECTION, TREATMENT_STAGE
from models import points
from models.core import Clinic, StaffUser, as_utc, new_id, policy_from_json
from models.treatment import (
    AdvanceIn,
    CancelIn,
    PlanCreate,
    PlanRow,
    PricingError,
    TreatmentPlan,
    price_plan,
    upsert_plan,
)
from workflows.treatment_plan import TreatmentPlanJourney

# Namespace for plan ids derived from an Idempotency-Key (fixed: the same key, the same id).
PLAN_KEYS = uuid.UUID("6f1c2d0e-6a43-4d7b-9a53-2f4b8e1c7a10")

router = APIRouter(prefix="/v1/treatment-plans", tags=["treatment plans"])

Planner = Annotated[StaffUser, access.may("plans", "create")]
Mover = Annotated[StaffUser, access.may("plans", "advance")]
Reader = Annotated[StaffUser, access.may("plans", "read")]
CHILD_QUERY_TIMEOUT = timedelta(seconds=3)


def _actor(user: Any) -> Actor:
    return Actor(user_id=user.id, role=user.role.value)


# ---------------------------------------------------------------- create
@router.post("", status_code=status.HTTP_201_CREATED)
async def create_plan(
    body: PlanCreate,
    session: SessionDep,
    temporal: TemporalDep,
    settings: SettingsDep,
    user: Planner,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> dict[str, Any]:
    """201 with the computed total and the first stage. The same `Idempotency-Key` (per staff
    user) again returns the same plan and starts no second journey."""
    clinic = await session.get(Clinic, body.clinic_id)
    if clinic is None or not access.in_scope(user, clinic.id):
        raise invalid_field("clinic_id", f"clinic_id {body.clinic_id!r} does not exist")
    if await access.patient_visible(session, user, body.patient_id) is None:
        raise invalid_field("patient_id", f"patient_id {body.patient_id!r} does not exist")
    try:
        price = price_plan(body.items, body.discount_percent, body.bonus_points)
    except PricingError as e:
        raise invalid_field(e.field, str(e)) from None
    d = DIRECTIONS[body.direction]
    # A retried request with the same key names the same plan (and so the same workflow id).
    plan_id = uuid.uuid5(PLAN_KEYS, f"{user.id}:{idempotency_key}").hex if idempotency_key else new_id()
    existing = await session.get(TreatmentPlan, plan_id) if idempotency_key else None
    if existing is not None:
        if (existing.patient_id, existing.clinic_id, existing.direction) != (
            body.patient_id,
            body.clinic_id,
            body.direction,
        ):
            raise HTTPException(409, "this Idempotency-Key was used for a different plan")
    items = [
        PlanItem(
            service=ln.service,
            tooth=ln.tooth,
            unit_price=str(ln.unit_price),
            quantity=ln.quantity,
            line_total=str(ln.line_total),
        )
        for ln in price.lines
    ]
    pricing = Pricing(
        subtotal=str(price.subtotal),
        discount_percent=str(price.discount_percent),
        discount_amount=str(price.discount_amount),
        bonus_points=price.bonus_points,
        total=str(price.total),
    )
    state = PlanState(
        plan_id=plan_id,
        clinic_id=clinic.id,
        patient_id=body.patient_id,
        direction=d.key,
        timezone=clinic.timezone,
        stage=d.first.key,
        items=items,
        pricing=pricing,
        policy=policy_from_json(clinic.policy),
        created_by=_actor(user),
    )
    wf_id = plan_workflow_id(plan_id)
    snapshot = PlanSnapshot(
        plan_id=plan_id,
        workflow_id=wf_id,
        clinic_id=clinic.id,
        patient_id=body.patient_id,
        direction=d.key,
        stage=d.first.key,
        status="active",
        next_due_at=None,
        pricing=pricing,
        items=items,
        version=0,
    )
    if existing is None:
        # The plan row and its points spend in one transaction, before the journey starts:
        # a plan never runs on points the patient does not have.
        try:
            await upsert_plan(session, snapshot)
            if price.bonus_points:
                await points.apply(
                    session,
                    body.patient_id,
                    -price.bonus_points,
                    kind=points.PLAN_SPEND,
                    reason="treatment plan",
                    plan_id=plan_id,
                    staff_user_id=user.id,
                )
            await session.commit()
        except points.NotEnoughPoints as e:
            await session.rollback()
            raise invalid_field(
                "bonus_points", f"bonus_points ({e.wanted}) exceed the patient's balance ({e.balance} points)"
            ) from None
        except IntegrityError:  # the same Idempotency-Key a moment ago: that request owns the spend
            await session.rollback()
            existing = await session.get(TreatmentPlan, plan_id)
            if existing is None:
                raise
    elif existing.status == "cancelled":
        raise HTTPException(409, "the plan of this Idempotency-Key was cancelled; create a new plan")
    try:
        await temporal.start_workflow(
            TreatmentPlanJourney.run,
            PlanInput(state=state),
            id=wf_id,
            task_queue=settings.temporal_task_queue,
            # A retry joins the plan already started; a finished plan is never started again.
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(CLINIC_ID, clinic.id),
                    SearchAttributePair(TREATMENT_DIRECTION, d.key),
                    SearchAttributePair(TREATMENT_STAGE, d.first.key),
                ]
            ),
        )
    except WorkflowAlreadyStartedError:  # that plan ran and finished already
        pass
    except Exception:
        # No journey: the plan is void, and its points go back (with an Idempotency-Key, a retry
        # gets 409 and makes a new plan).
        await session.rollback()
        row = await session.get(TreatmentPlan, plan_id)
        if row is not None and row.sync_version == 0 and existing is None:
            row.status = "cancelled"
            session.add(row)
            await points.refund_plan(session, plan_id, reason="treatment plan not started")
            await session.commit()
        raise
    return {
        "id": plan_id,
        "workflow_id": wf_id,
        "direction": d.key,
        "stage": d.first.key,
        "stage_title": d.first.title,
        "allowed_next": list(d.first.next),
        **dataclasses.asdict(pricing),
        "items": [dataclasses.asdict(i) for i in items],
    }


# ---------------------------------------------------------------- read
@router.get("")
async def list_plans(
    session: SessionDep,
    user: Reader,
    clinic_id: str | None = None,
    direction: str | None = None,
    stage: str | None = None,
    status_: str | None = Query(None, alias="status"),
    patient_id: str | None = None,
    due_before: datetime | date | None = Query(None, description="date or timestamp"),
    limit: int = Query(100, ge=1, le=500),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
) -> list[PlanRow]:
    check_choice("direction", direction, DIRECTIONS)
    q = select(TreatmentPlan)
    if (cond := access.clinic_filter(user, TreatmentPlan.clinic_id)) is not None:
        q = q.where(cond)
    if clinic_id:
        q = q.where(TreatmentPlan.clinic_id == clinic_id)
    if direction:
        q = q.where(TreatmentPlan.direction == direction)
    if stage:
        q = q.where(TreatmentPlan.stage == stage)
    if status_:
        q = q.where(TreatmentPlan.status == status_)
    if patient_id:
        q = q.where(TreatmentPlan.patient_id == patient_id)
    if due_before is not None:
        limit_at = (
            as_utc(due_before)
            if isinstance(due_before, datetime)
            else datetime.combine(due_before, datetime.min.time(), tzinfo=UTC)
        )
        q = q.where(col(TreatmentPlan.next_due_at) < limit_at)
    q = q.order_by(col(TreatmentPlan.next_due_at).asc().nulls_last(), col(TreatmentPlan.created_at))
    rows = (await session.exec(q.offset(offset).limit(limit))).all()
    return [PlanRow.model_validate(r, from_attributes=True) for r in rows]


@router.get("/{plan_id}")
async def get_plan(plan_id: str, session: SessionDep, temporal: TemporalDep, user: Reader) -> dict[str, Any]:
    row = await _row(session, plan_id, user)
    view = await _view(temporal, row)
    live = await _child_stages(temporal, view)
    out = dataclasses.asdict(view)
    for a in out["appointments"]:
        a["journey_stage"] = live.get(a["appointment_id"], a["stage"])
    return out


# ---------------------------------------------------------------- changes (updates)
@router.post("/{plan_id}/advance")
async def advance(
    plan_id: str, body: AdvanceIn, session: SessionDep, temporal: TemporalDep, user: Mover
) -> dict[str, Any]:
    row = await _row(session, plan_id, user)
    clinic = await session.get(Clinic, row.clinic_id)
    assert clinic is not None
    policy = policy_from_json(clinic.policy)
    today = datetime.now(ZoneInfo(clinic.timezone)).date()
    d = DIRECTIONS[row.direction]
    callback_on = body.callback_on
    if callback_on is not None and callback_on < today:
        raise invalid_field("callback_on", f"callback_on is in the past (clinic date is {today})")
    if callback_on is None and body.appointment is None and d.has(body.to_stage):
        stage = d.stage(body.to_stage)
        if stage.kind == "wait" and not stage.asks_lab_results:
            callback_on = default_callback_date(stage, today)
    appointment = None
    if body.appointment is not None:
        a = body.appointment
        if a.starts_at <= datetime.now(UTC):
            raise invalid_field("appointment.starts_at", "starts_at is in the past")
        appointment = AppointmentRequest(
            doctor_id=a.doctor_id, starts_at=as_utc(a.starts_at), duration_minutes=a.duration_minutes, service=a.service
        )
    handle = temporal.get_workflow_handle_for(TreatmentPlanJourney.run, row.workflow_id)
    view = await handle.query(TreatmentPlanJourney.state)
    observed = [VisitObservation(k, v) for k, v in (await _child_stages(temporal, view)).items()]
    req = AdvanceRequest(
        to_stage=body.to_stage,
        actor=_actor(user),
        appointment=appointment,
        callback_at=callback_moment(callback_on, policy.callback_hour, clinic.timezone) if callback_on else None,
        note=body.note,
        policy=policy,
        observed=observed,
    )
    out = await handle.execute_update(TreatmentPlanJourney.advance, req)
    return dataclasses.asdict(out)


@router.post("/{plan_id}/cancel")
async def cancel(
    plan_id: str, body: CancelIn, session: SessionDep, temporal: TemporalDep, user: Planner
) -> dict[str, Any]:
    row = await _row(session, plan_id, user)
    out = await temporal.get_workflow_handle_for(TreatmentPlanJourney.run, row.workflow_id).execute_update(
        TreatmentPlanJourney.cancel,
        CancelRequest(reason=body.reason, actor=_actor(user), cancel_visits=body.cancel_visits),
    )
    # The points go back now (the journey's sync of the cancelled plan does the same, once).
    await refund_cancelled(session, plan_id)
    return dataclasses.asdict(out)


# ---------------------------------------------------------------- helpers
async def refund_cancelled(session: SessionDep, plan_id: str) -> None:
    try:
        await points.refund_plan(session, plan_id)
        await session.commit()
    except IntegrityError:  # the journey's sync refunded it a moment ago
        await session.rollback()


async def _row(session: SessionDep, plan_id: str, user: StaffUser) -> TreatmentPlan:
    row = await session.get(TreatmentPlan, plan_id)
    if row is None or not access.in_scope(user, row.clinic_id):
        raise access.not_found("treatment plan", plan_id)
    return row


async def _view(temporal: Client, row: TreatmentPlan) -> PlanSnapshot:
    return await temporal.get_workflow_handle_for(TreatmentPlanJourney.run, row.workflow_id).query(
        TreatmentPlanJourney.state
    )


async def _child_stages(temporal: Client, view: PlanSnapshot) -> dict[str, str]:
    """Live stages of the plan's running child journeys (their own `state` query)."""

    async def one(appointment_id: str, wf_id: str) -> tuple[str, str | None]:
        try:
            v = await asyncio.wait_for(
                temporal.get_workflow_handle(wf_id).query(APPOINTMENT_STATE_QUERY), CHILD_QUERY_TIMEOUT.total_seconds()
            )
        except (RPCError, WorkflowQueryRejectedError, TimeoutError):
            return appointment_id, None
        return appointment_id, v.get("stage") if isinstance(v, dict) else None

    pairs = await asyncio.gather(*[one(a.appointment_id, a.workflow_id) for a in view.appointments if a.running])
    return {k: v for k, v in pairs if v}
