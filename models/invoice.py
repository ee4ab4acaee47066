"""Supplier invoice approval (SPEC §5): the registry tables and the API schemas. The
journey's contract (states, who acts, the snapshot) is contracts/invoice.py."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic import Field as PField
from sqlalchemy import JSON, Column, Numeric, UniqueConstraint
from sqlmodel import Field, SQLModel

from contracts.invoice import STEP_OWNER, InvoiceState, parse_amount
from models.core import TZ, EnumField, new_id, utcnow


# ------------------------------------------------------------------ tables
class Supplier(SQLModel, table=True):
    """A counterparty the accountant pays."""

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    name: str = Field(max_length=200, index=True)
    tax_id: str | None = Field(default=None, max_length=32, unique=True)
    created_at: datetime = TZ(nullable=False, default=utcnow)


class PayerEntity(SQLModel, table=True):
    """One of the network's own legal entities that pays an approved invoice."""

    __tablename__ = "payer_entity"
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    name: str = Field(max_length=200, index=True)
    tax_id: str | None = Field(default=None, max_length=32, unique=True)
    created_at: datetime = TZ(nullable=False, default=utcnow)


class Invoice(SQLModel, table=True):
    """The registry row, kept in sync by the workflow (an idempotent, version-ordered upsert)."""

    id: str = Field(primary_key=True, max_length=32)
    workflow_id: str = Field(max_length=255)
    state: InvoiceState = EnumField(InvoiceState, index=True)
    version: int = Field(default=0)
    initiator_id: str = Field(index=True, max_length=32)
    category: str = Field(index=True, max_length=100)
    expense_type: str = Field(index=True, max_length=100)
    amount: Decimal = Field(sa_column=Column(Numeric(14, 2), nullable=False, index=True))
    currency: str = Field(max_length=3)
    invoice_file_id: str = Field(max_length=32)
    comment: str | None = Field(default=None, max_length=2000)
    payer_entity_id: str | None = Field(default=None, index=True, max_length=32)
    supplier_id: str | None = Field(default=None, index=True, max_length=32)
    paid_on: date | None = Field(default=None, index=True)
    closing_file_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    actions: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = TZ(nullable=False, default=utcnow)
    updated_at: datetime | None = TZ(nullable=True)


class EmailLog(SQLModel, table=True):
    """Every e-mail the service sends, keyed by its idempotency key: a retried activity finds
    the `sent` row and sends nothing."""

    __tablename__ = "email_log"
    __table_args__ = (UniqueConstraint("idempotency_key", name="uq_email_log_idempotency_key"),)
    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    idempotency_key: str = Field(max_length=255)
    workflow_id: str | None = Field(default=None, max_length=255)
    subject: str = Field(max_length=300)
    recipients: int = Field(default=0)
    status: str = Field(default="sending", max_length=32)  # sending, sent, failed, no_smtp
    error: str | None = Field(default=None, max_length=1000)
    created_at: datetime = TZ(nullable=False, default=utcnow)
    sent_at: datetime | None = TZ(nullable=True)


# ------------------------------------------------------------------ API schemas
class _Named(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = PField(min_length=1, max_length=200)
    tax_id: str | None = PField(None, max_length=32)


class SupplierCreate(_Named):
    pass


class PayerEntityCreate(_Named):
    pass


class PartyPublic(BaseModel):
    id: str
    name: str
    tax_id: str | None
    created_at: datetime


_TEXT = PField(min_length=1, max_length=100)


class InvoiceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    category: str = _TEXT
    expense_type: str = _TEXT
    amount: str = PField(description='decimal string, e.g. "1250.50"')
    currency: str = PField("UAH", pattern=r"^[A-Z]{3}$")
    invoice_file_id: str = PField(min_length=1, max_length=32)
    comment: str | None = PField(None, max_length=2000)

    @field_validator("amount", mode="before")
    @classmethod
    def _amount(cls, v: Any) -> str:
        return str(parse_amount(v))

    @field_validator("category", "expense_type")
    @classmethod
    def _strip(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v.strip()


class ApproveIn(BaseModel):
    payer_entity_id: str | None = None
    comment: str | None = PField(None, max_length=2000)


class CommentIn(BaseModel):
    comment: str | None = PField(None, max_length=2000)


class ResubmitIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    category: str | None = PField(None, min_length=1, max_length=100)
    expense_type: str | None = PField(None, min_length=1, max_length=100)
    amount: str | None = None
    currency: str | None = PField(None, pattern=r"^[A-Z]{3}$")
    invoice_file_id: str | None = PField(None, max_length=32)
    comment: str | None = PField(None, max_length=2000)

    @field_validator("amount", mode="before")
    @classmethod
    def _amount(cls, v: Any) -> str | None:
        return None if v is None else str(parse_amount(v))


class PayIn(BaseModel):
    supplier_id: str | None = None
    paid_on: date | None = None
    comment: str | None = PField(None, max_length=2000)


class ClosingDocumentsIn(BaseModel):
    file_ids: list[str] = PField(default_factory=list, max_length=50)
    comment: str | None = PField(None, max_length=2000)


class InvoicePublic(BaseModel):
    """Built with `model_validate(x, from_attributes=True)` from the registry row or from the
    journey's `InvoiceSnapshot` alike."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    state: str
    category: str
    expense_type: str
    amount: str
    currency: str
    invoice_file_id: str
    comment: str | None
    initiator_id: str
    payer_entity_id: str | None
    supplier_id: str | None
    paid_on: date | None
    closing_file_ids: list[str]
    workflow_id: str
    next_step_owner: str | None = None
    actions: list[dict[str, Any]]
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @field_validator("state", mode="before")
    @classmethod
    def _state(cls, v: Any) -> str:
        return str(v.value if isinstance(v, InvoiceState) else v)

    @field_validator("amount", mode="before")
    @classmethod
    def _amount(cls, v: Any) -> str:
        return str(Decimal(v).quantize(Decimal("0.01")))

    @field_validator("actions", mode="before")
    @classmethod
    def _actions(cls, v: Any) -> list[dict[str, Any]]:
        return [asdict(a) if is_dataclass(a) and not isinstance(a, type) else dict(a) for a in v]

    def model_post_init(self, __context: Any) -> None:
        self.next_step_owner = STEP_OWNER.get(self.state)


class InvoicePage(BaseModel):
    items: list[InvoicePublic]
    total: int
    limit: int
    offset: int
    total_amount: str  # of the whole filtered set (mixed currencies are summed as they are)
