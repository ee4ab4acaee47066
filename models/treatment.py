"""Treatment plans: tables (the database mirror the list endpoint reads), API schemas and
pricing. The workflow is the live truth; `sync_treatment_plan` keeps the rows in step.

Money is exact: `Decimal`, every amount rounded ROUND_HALF_UP to kopecks (0.01).
Bonus points: 1 point = 1 currency unit; points may not exceed the discounted total.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic import Field as PField
from sqlalchemy import Column, Numeric
from sqlmodel import Field, SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from contracts.treatment_directions import DIRECTIONS
from contracts.treatment_plan import PlanSnapshot
from models.core import TZ, new_id, utcnow

KOPECK = Decimal("0.01")
HUNDRED = Decimal(100)
MONEY = Numeric(12, 2)

# FDI two-digit notation: permanent teeth 11-18 ... 41-48, primary teeth 51-55 ... 81-85.
FDI_TEETH = frozenset(
    [q * 10 + t for q in (1, 2, 3, 4) for t in range(1, 9)] + [q * 10 + t for q in (5, 6, 7, 8) for t in range(1, 6)]
)


def money(v: Decimal | int | str) -> Decimal:
    return Decimal(v).quantize(KOPECK, rounding=ROUND_HALF_UP)


# ----------------------------------------------------------------------------- pricing
@dataclass(frozen=True)
class PricedLine:
    service: str
    tooth: int | None
    unit_price: Decimal
    quantity: int
    line_total: Decimal


@dataclass(frozen=True)
class PlanPrice:
    lines: tuple[PricedLine, ...]
    subtotal: Decimal
    discount_percent: Decimal
    discount_amount: Decimal
    discounted: Decimal
    bonus_points: int
    total: Decimal


class PricingError(ValueError):
    def __init__(self, field: str, msg: str) -> None:
        super().__init__(msg)
        self.field = field


def price_plan(items: list[PlanItemIn], discount_percent: Decimal = Decimal(0), bonus_points: int = 0) -> PlanPrice:
    """subtotal = Σ round(unit_price × quantity); discount = round(subtotal × pct / 100);
    total = subtotal − discount − bonus points."""
    lines = tuple(
        PricedLine(i.service, i.tooth, money(i.unit_price), i.quantity, money(money(i.unit_price) * i.quantity))
        for i in items
    )
    subtotal = money(sum((ln.line_total for ln in lines), Decimal(0)))
    discount = money(subtotal * Decimal(discount_percent) / HUNDRED)
    discounted = subtotal - discount
    if bonus_points > discounted:
        raise PricingError(
            "bonus_points",
            f"bonus_points ({bonus_points}) exceed the discounted "
            f"total ({discounted}); at most {int(discounted)} points can be spent",
        )
    return PlanPrice(
        lines, subtotal, money(discount_percent), discount, discounted, bonus_points, money(discounted - bonus_points)
    )


# ----------------------------------------------------------------------------- API schemas
class PlanItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service: str = PField(min_length=1, max_length=200)
    tooth: int | None = PField(None, description="FDI tooth number: 11-48 or 51-85")
    unit_price: Decimal = PField(ge=0, max_digits=12, decimal_places=2)
    quantity: int = PField(1, ge=1, le=1000)

    @field_validator("tooth")
    @classmethod
    def _fdi(cls, v: int | None) -> int | None:
        if v is not None and v not in FDI_TEETH:
            raise ValueError(
                "tooth must be an FDI number: 11-18, 21-28, 31-38, 41-48 "
                "(permanent) or 51-55, 61-65, 71-75, 81-85 (primary)"
            )
        return v


class PlanCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    patient_id: str = PField(min_length=1, max_length=32)
    clinic_id: str = PField(min_length=1, max_length=32)
    direction: str
    items: list[PlanItemIn] = PField(min_length=1, max_length=200)
    discount_percent: Decimal = PField(Decimal(0), ge=0, le=100, max_digits=5, decimal_places=2)
    bonus_points: int = PField(0, ge=0)

    @field_validator("direction")
    @classmethod
    def _direction(cls, v: str) -> str:
        if v not in DIRECTIONS:
            raise ValueError(f"unknown direction {v!r}; one of: {', '.join(DIRECTIONS)}")
        return v


class AppointmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    doctor_id: str = PField(min_length=1, max_length=32)
    starts_at: datetime
    duration_minutes: int = PField(ge=5, le=600)
    service: str | None = PField(None, max_length=200)

    @field_validator("starts_at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("starts_at needs a timezone offset, e.g. 2026-05-01T10:00:00+03:00")
        return v


class AdvanceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to_stage: str = PField(min_length=1, max_length=64)
    appointment: AppointmentIn | None = None
    callback_on: date | None = None
    note: str | None = PField(None, max_length=1000)


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = PField(min_length=1, max_length=500)
    # True: booked visits of the plan that have not happened are cancelled too (no more
    # reminders). False: they stay booked (e.g. the patient moves to another plan).
    cancel_visits: bool = True


# ----------------------------------------------------------------------------- tables
class TreatmentPlan(SQLModel, table=True):
    __tablename__ = "treatment_plan"
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    clinic_id: str = Field(foreign_key="clinic.id", index=True, max_length=32)
    patient_id: str = Field(foreign_key="patient.id", index=True, max_length=32)
    direction: str = Field(index=True, max_length=32)
    stage: str = Field(index=True, max_length=64)
    status: str = Field(default="active", index=True, max_length=16)  # active/completed/cancelled
    next_due_at: datetime | None = TZ(nullable=True, index=True)
    workflow_id: str = Field(max_length=255)
    subtotal: Decimal = Field(sa_column=Column(MONEY, nullable=False))
    discount_percent: Decimal = Field(sa_column=Column(Numeric(5, 2), nullable=False))
    discount_amount: Decimal = Field(sa_column=Column(MONEY, nullable=False))
    bonus_points: int = Field(default=0)
    total: Decimal = Field(sa_column=Column(MONEY, nullable=False))
    # Monotonic version of the workflow's state: an older snapshot never overwrites a newer one.
    sync_version: int = Field(default=0)
    created_at: datetime = TZ(nullable=False, default=utcnow)
    updated_at: datetime | None = TZ(nullable=True)


class TreatmentPlanItem(SQLModel, table=True):
    __tablename__ = "treatment_plan_item"
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    plan_id: str = Field(foreign_key="treatment_plan.id", index=True, max_length=32)
    position: int
    service: str = Field(max_length=200)
    tooth: int | None = None
    unit_price: Decimal = Field(sa_column=Column(MONEY, nullable=False))
    quantity: int
    line_total: Decimal = Field(sa_column=Column(MONEY, nullable=False))


class PlanRow(BaseModel):
    """One line of the operators' list."""

    id: str
    clinic_id: str
    patient_id: str
    direction: str
    stage: str
    status: str
    next_due_at: datetime | None
    total: Decimal
    workflow_id: str
    updated_at: datetime | None


async def upsert_plan(s: AsyncSession, snap: PlanSnapshot) -> bool:
    """Insert the plan (with its items) or move it forward; an older snapshot never
    overwrites a newer one. Returns whether anything changed. The caller commits."""
    row = await s.get(TreatmentPlan, snap.plan_id)
    now = datetime.now(UTC)
    if row is None:
        p = snap.pricing
        s.add(
            TreatmentPlan(
                id=snap.plan_id,
                clinic_id=snap.clinic_id,
                patient_id=snap.patient_id,
                direction=snap.direction,
                stage=snap.stage,
                status=snap.status,
                next_due_at=snap.next_due_at,
                workflow_id=snap.workflow_id,
                subtotal=Decimal(p.subtotal),
                discount_percent=Decimal(p.discount_percent),
                discount_amount=Decimal(p.discount_amount),
                bonus_points=p.bonus_points,
                total=Decimal(p.total),
                sync_version=snap.version,
                updated_at=now,
            )
        )
        await s.flush()  # the plan row before its items (foreign key)
        for n, it in enumerate(snap.items):
            s.add(
                TreatmentPlanItem(
                    id=f"{snap.plan_id[:28]}{n:04d}",
                    plan_id=snap.plan_id,
                    position=n,
                    service=it.service,
                    tooth=it.tooth,
                    unit_price=Decimal(it.unit_price),
                    quantity=it.quantity,
                    line_total=Decimal(it.line_total),
                )
            )
        return True
    if row.sync_version >= snap.version:
        return False
    row.stage, row.status, row.next_due_at = snap.stage, snap.status, snap.next_due_at
    row.sync_version, row.updated_at = snap.version, now
    s.add(row)
    return True
