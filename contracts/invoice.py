"""The supplier-invoice approval journey's contract (SPEC §5): names, states and who acts on
them, input, commands and THE snapshot (amounts as strings, durations as seconds).

`InvoiceSnapshot` is the one record of an invoice: the `state` query answer, every update's
result and the workflow's result, the `sync_invoice` input (`columns()` is what the registry
row stores) and, via `InvoicePublic.model_validate(..., from_attributes=True)`, the API's
answer. Pure: no I/O library is imported. Add fields with defaults; never rename.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from temporalio import activity

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
STEP_OWNER: Mapping[str, str] = MappingProxyType(
    {
        InvoiceState.submitted: "deputy_director",
        InvoiceState.returned_for_rework: "initiator",
        InvoiceState.approved: "accountant",
        InvoiceState.paid: "initiator",
        InvoiceState.awaiting_closing_documents: "initiator",
        InvoiceState.documents_submitted: "accountant",
    }
)

# action -> (states it fits, state it leads to, who may do it)
ACTIONS: Mapping[str, tuple[tuple[str, ...], str, str]] = MappingProxyType(
    {
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
        "return_documents": (
            (InvoiceState.documents_submitted,),
            InvoiceState.awaiting_closing_documents,
            "accountant",
        ),
    }
)


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

    @classmethod
    def submitted(cls, inp: InvoiceInput, workflow_id: str, at: datetime) -> InvoiceSnapshot:
        """The invoice as it stands once submitted: the journey's first state (version 1)."""
        return cls(
            id=inp.invoice_id,
            workflow_id=workflow_id,
            state=InvoiceState.submitted,
            version=1,
            initiator_id=inp.initiator_id,
            category=inp.category,
            expense_type=inp.expense_type,
            amount=inp.amount,
            currency=inp.currency,
            invoice_file_id=inp.invoice_file_id,
            comment=inp.comment,
            actions=[
                InvoiceAction(
                    action="submit",
                    actor_id=inp.initiator_id,
                    actor_role=inp.initiator_role,
                    at=at,
                    from_state="",
                    to_state=InvoiceState.submitted,
                    comment=inp.comment,
                )
            ],
            submitted_at=at,
            updated_at=at,
        )

    @property
    def created_at(self) -> datetime | None:
        return self.submitted_at

    def columns(self) -> dict[str, Any]:
        """What the registry row stores (typed as its columns: Decimal, date, JSON actions)."""
        return {
            "id": self.id,
            "workflow_id": self.workflow_id,
            "state": InvoiceState(self.state),
            "version": self.version,
            "initiator_id": self.initiator_id,
            "category": self.category,
            "expense_type": self.expense_type,
            "amount": Decimal(self.amount),
            "currency": self.currency,
            "invoice_file_id": self.invoice_file_id,
            "comment": self.comment,
            "payer_entity_id": self.payer_entity_id,
            "supplier_id": self.supplier_id,
            "paid_on": date.fromisoformat(self.paid_on) if self.paid_on else None,
            "closing_file_ids": list(self.closing_file_ids),
            "actions": [action_json(a) for a in self.actions],
            "updated_at": self.updated_at,
        }


def action_json(a: InvoiceAction | dict[str, Any]) -> dict[str, Any]:
    """An action as the registry row keeps it (JSON-ready: `at` as ISO text)."""
    d = asdict(a) if not isinstance(a, dict) else dict(a)
    if isinstance(d.get("at"), datetime):
        d["at"] = d["at"].isoformat()
    return d


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


class InvoiceActivityStubs:
    """The invoice journey's own activity (implemented by activities.invoices)."""

    @activity.defn(name="sync_invoice")
    async def sync_invoice(self, snap: InvoiceSnapshot) -> int:
        raise NotImplementedError


class ExpenseReportActivityStubs:
    @activity.defn(name="build_expense_report")
    async def build_expense_report(self, inp: MonthlyReportInput) -> ReportFile:
        raise NotImplementedError
