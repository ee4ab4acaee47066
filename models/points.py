"""Bonus points: an append-only ledger per patient, the balance kept on the patient
(`patient.loyalty_points`, the column the MIS import already fills).

Every change of a balance goes through `apply()`: one conditional UPDATE (the balance never
goes below zero, whatever runs at the same time, on SQLite and PostgreSQL alike) and one
ledger row, in the caller's transaction. A plan's spend and its refund are at most one row
each (unique plan_id + kind), so retries and the plan journey's re-syncs change nothing twice.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict
from pydantic import Field as PField
from sqlalchemy import Index, update
from sqlmodel import Field, SQLModel, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models.core import TZ, Patient, new_id, utcnow

MAX_DELTA = 1_000_000
MANUAL, PLAN_SPEND, PLAN_REFUND, IMPORT = "manual", "plan_spend", "plan_refund", "import"


class PointsEntry(SQLModel, table=True):
    __tablename__ = "points_entry"
    __table_args__ = (
        Index("ix_points_entry_patient_at", "patient_id", "created_at"),
        Index("uq_points_entry_plan_kind", "plan_id", "kind", unique=True),
    )
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    patient_id: str = Field(foreign_key="patient.id", max_length=32)
    delta: int
    balance_after: int
    kind: str = Field(max_length=16)  # manual / plan_spend / plan_refund / import (the MIS base)
    reason: str = Field(max_length=200)
    plan_id: str | None = Field(default=None, foreign_key="treatment_plan.id", max_length=32)
    staff_user_id: str | None = Field(default=None, max_length=32)
    created_at: datetime = TZ(nullable=False, default=utcnow)


class PointsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    delta: int = PField(ge=-MAX_DELTA, le=MAX_DELTA, description="points added (>0) or taken (<0); not 0")
    reason: str = PField(min_length=1, max_length=200)


class PointsEntryOut(BaseModel):
    id: str
    delta: int
    balance_after: int
    kind: str
    reason: str
    plan_id: str | None
    staff_user_id: str | None
    created_at: datetime


class NotEnoughPoints(Exception):
    def __init__(self, balance: int, wanted: int) -> None:
        super().__init__(f"the patient has {balance} points; {wanted} cannot be taken (a balance never goes below 0)")
        self.balance, self.wanted = balance, wanted


async def balance(s: AsyncSession, patient_id: str) -> int:
    return int((await s.exec(select(Patient.loyalty_points).where(Patient.id == patient_id))).one())


async def apply(
    s: AsyncSession,
    patient_id: str,
    delta: int,
    *,
    kind: str,
    reason: str,
    plan_id: str | None = None,
    staff_user_id: str | None = None,
    entry_id: str | None = None,
) -> PointsEntry:
    """Move the balance by `delta` and write its ledger row; NotEnoughPoints if it would go
    below zero (nothing written). The caller commits."""
    res = await s.exec(  # type: ignore[call-overload]
        update(Patient)
        .where(col(Patient.id) == patient_id, col(Patient.loyalty_points) + delta >= 0)
        .values(loyalty_points=col(Patient.loyalty_points) + delta)
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:
        raise NotEnoughPoints(await balance(s, patient_id), -delta)
    after = await balance(s, patient_id)
    entry = PointsEntry(
        id=entry_id or new_id(),
        patient_id=patient_id,
        delta=delta,
        balance_after=after,
        kind=kind,
        reason=reason,
        plan_id=plan_id,
        staff_user_id=staff_user_id,
    )
    s.add(entry)
    await s.flush()
    return entry


async def plan_entry(s: AsyncSession, plan_id: str, kind: str) -> PointsEntry | None:
    q = select(PointsEntry).where(PointsEntry.plan_id == plan_id, PointsEntry.kind == kind)
    return (await s.exec(q)).first()


async def refund_plan(s: AsyncSession, plan_id: str, reason: str = "treatment plan cancelled") -> PointsEntry | None:
    """Give back what the plan spent, once: None if it spent nothing or was refunded already.
    The caller commits (a concurrent refund loses on the unique index and rolls back)."""
    spent = await plan_entry(s, plan_id, PLAN_SPEND)
    if spent is None or await plan_entry(s, plan_id, PLAN_REFUND) is not None:
        return None
    return await apply(s, spent.patient_id, -spent.delta, kind=PLAN_REFUND, reason=reason, plan_id=plan_id)


async def entries(s: AsyncSession, patient_id: str, limit: int, offset: int) -> list[PointsEntry]:
    q = (
        select(PointsEntry)
        .where(PointsEntry.patient_id == patient_id)
        .order_by(col(PointsEntry.created_at).desc(), col(PointsEntry.id).desc())
        .offset(offset)
        .limit(limit)
    )
    return list((await s.exec(q)).all())
