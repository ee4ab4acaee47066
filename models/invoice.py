"""Supplier invoice approval (SPEC §5): the states and who acts on them, the dataclasses that
cross into the workflow (amounts as strings, durations as seconds), and the registry tables.

The workflow imports this module through `workflow.unsafe.imports_passed_through()` and uses
only the dataclasses and constants at the top.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, field_validator
from pydantic import Field as PField
from sqlalchemy import JSON, Column, Numeric, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.core import TZ, EnumField, new_id, utcnow

INVOICE_WORKFLOW = "InvoiceApproval"
INVOICE_STATE_QUERY = "state"
MONTHLY_REPORT_WORKFLOW = "MonthlyExpenseReport"
MONTHLY_REPORT_SCHEDULE_ID = "monthly-expense-report"


def invoice_workflow_id(invoice_id: str) -> str:
    return f"invoice-{invoice_id}"


class InvoiceState(enum.StrEnum):
    submitted = "submitted"
    returned_for_rework = "returned_for_rework"
    approved = "approved"
    rejected = "rejected"
    paid = "paid"
    awaiting_closing_documents = "awaiting_closing_documents"
    documents_submitted = "documents_submitted"
    completed = "completed"


FINAL_STATES = (InvoiceState.rejected, InvoiceState.completed)
PAID_STATES = (
    InvoiceState.paid,
    InvoiceState.awaiting_closing_documents,
    InvoiceState.documents_submitted,
    InvoiceState.completed,
)

# Whose move it is in each open state. "initiator" is a person, not a role: the staff member
# who submitted (admins may stand in for anyone).
STEP_OWNER: dict[str, str] = {
    InvoiceState.submitted: "deputy_director",
    InvoiceState.returned_for_rework: "initiator",
    InvoiceState.approved: "accountant",
    InvoiceState.paid: "initiator",
    InvoiceState.awaiting_closing_documents: "initiator",
    InvoiceState.documents_submitted: "accountant",
}

# action -> (states it fits, state it leads to, who may do it)
ACTIONS: dict[str, tuple[tuple[str, ...], str, str]] = {
    "approve": ((InvoiceState.submitted,), InvoiceState.approved, "deputy_director"),
    "reject": ((InvoiceState.submitted,), InvoiceState.rejected, "deputy_director"),
    "return": ((InvoiceState.submitted,), InvoiceState.returned_for_rework, "deputy_director"),
    "resubmit": ((InvoiceState.returned_for_rework,), InvoiceState.submitted, "initiator"),
    "pay": ((InvoiceState.approved,), InvoiceState.paid, "accountant"),
    # `paid` moves on to `awaiting_closing_documents` by itself once the e-mails are out;
    # documents that arrive in between are accepted all the same.
    "closing_documents": (
        (InvoiceState.paid, InvoiceState.awaiting_closing_documents),
        InvoiceState.documents_submitted,
        "initiator",
    ),
    "verify": ((InvoiceState.documents_submitted,), InvoiceState.completed, "accountant"),
    "return_documents": ((InvoiceState.documents_submitted,), InvoiceState.awaiting_closing_documents, "accountant"),
}


def local_date(moment: datetime, timezone: str) -> date:
    """The calendar date of `moment` in `timezone`. Lives here, outside the workflow sandbox,
    whose proxied ZoneInfo is not accepted by astimezone()."""
    return moment.astimezone(ZoneInfo(timezone)).date()


def parse_amount(v: Any) -> Decimal:
    """A positive amount with at most 2 decimals, given as a string (floats lose cents)."""
    if not isinstance(v, str):
        raise ValueError('amount must be a decimal string such as "1250.50", not a number')
    try:
        d = Decimal(v.strip())
    except InvalidOperation:
        raise ValueError(f"amount {v!r} is not a decimal number") from None
    if not d.is_finite() or d <= 0:
        raise ValueError("amount must be greater than zero")
    if d.as_tuple().exponent < -2:  # type: ignore[operator]
        raise ValueError("amount has more than 2 decimal places")
    if d >= Decimal("1e12"):
        raise ValueError("amount is too large")
    return d.quantize(Decimal("0.01"))


# ------------------------------------------------------------------ workflow dataclasses
@dataclass
class InvoicePolicy:
    """Stalled-step timings in seconds: a reminder to the step's owner after `remind_after`,
    escalation to the director after `escalate_after` (both counted from entering the step)."""

    remind_after: float = 2 * 24 * 3600.0
    escalate_after: float = 5 * 24 * 3600.0

    @classmethod
    def of(cls, remind: timedelta, escalate: timedelta) -> InvoicePolicy:
        return cls(remind.total_seconds(), escalate.total_seconds())


@dataclass
class InvoiceInput:
    invoice_id: str
    initiator_id: str
    initiator_role: str
    category: str
    expense_type: str
    amount: str  # decimal string
    currency: str
    invoice_file_id: str
    comment: str | None = None
    policy: InvoicePolicy = field(default_factory=InvoicePolicy)


@dataclass
class InvoiceCommand:
    """One person's action on an invoice; only the fields the action needs are set."""

    actor_id: str
    actor_role: str
    comment: str | None = None
    payer_entity_id: str | None = None
    supplier_id: str | None = None
    paid_on: str | None = None  # ISO date
    file_ids: list[str] = field(default_factory=list)
    changes: dict[str, str] = field(default_factory=dict)  # resubmit: field -> new value


@dataclass
class InvoiceAction:
    action: str
    actor_id: str
    actor_role: str
    at: datetime
    from_state: str
    to_state: str
    comment: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class InvoiceSnapshot:
    """The whole invoice as the workflow knows it; `version` orders DB syncs."""

    id: str
    workflow_id: str
    state: str
    version: int
    initiator_id: str
    category: str
    expense_type: str
    amount: str
    currency: str
    invoice_file_id: str
    comment: str | None = None
    payer_entity_id: str | None = None
    supplier_id: str | None = None
    paid_on: str | None = None
    closing_file_ids: list[str] = field(default_factory=list)
    actions: list[InvoiceAction] = field(default_factory=list)
    submitted_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass
class Attachment:
    filename: str
    path: str  # a file under DATA_DIR (kept out of workflow history)
    content_type: str = "application/octet-stream"


@dataclass
class EmailRequest:
    """Generic e-mail: to addresses and/or every active staff member of some roles and/or
    some staff ids. `idempotency_key` (workflow id + step) makes a retried send a no-op."""

    idempotency_key: str
    subject: str
    body: str
    to: list[str] = field(default_factory=list)
    to_roles: list[str] = field(default_factory=list)
    to_user_ids: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    workflow_id: str | None = None


@dataclass
class EmailResult:
    status: str  # sent, already_sent, no_recipients, no_smtp
    recipients: int = 0


@dataclass
class MonthlyReportInput:
    timezone: str = "Europe/Kyiv"
    month: str | None = None  # YYYY-MM; None: the month before the run's own date


@dataclass
class ReportFile:
    month: str
    path: str
    filename: str
    total: str
    payments: int


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
    next_step_owner: str | None
    actions: list[dict[str, Any]]
    created_at: datetime | None = None
    updated_at: datetime | None = None


class InvoicePage(BaseModel):
    items: list[InvoicePublic]
    total: int
    limit: int
    offset: int
    total_amount: str  # of the whole filtered set (mixed currencies are summed as they are)
