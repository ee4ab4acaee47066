"""The invoice registry row, kept in step with the workflow.

`sync_invoice` is an upsert ordered by the snapshot's `version`: a retried, replayed or
late-arriving older snapshot changes nothing, so the registry never goes backwards.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.exc import IntegrityError
from temporalio import activity

from activities.deps import Deps
from core.logging import get_logger
from models.invoice import Invoice, InvoiceAction, InvoiceSnapshot, InvoiceState

log = get_logger("activities.invoices")


def _action_json(a: InvoiceAction | dict[str, Any]) -> dict[str, Any]:
    d = asdict(a) if not isinstance(a, dict) else dict(a)
    if isinstance(d.get("at"), datetime):
        d["at"] = d["at"].isoformat()
    return d


class InvoiceActivities:
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def _apply(self, row: Invoice, snap: InvoiceSnapshot) -> None:
        row.workflow_id = snap.workflow_id
        row.state = InvoiceState(snap.state)
        row.version = snap.version
        row.initiator_id = snap.initiator_id
        row.category = snap.category
        row.expense_type = snap.expense_type
        row.amount = Decimal(snap.amount)
        row.currency = snap.currency
        row.invoice_file_id = snap.invoice_file_id
        row.comment = snap.comment
        row.payer_entity_id = snap.payer_entity_id
        row.supplier_id = snap.supplier_id
        row.paid_on = date.fromisoformat(snap.paid_on) if snap.paid_on else None
        row.closing_file_ids = list(snap.closing_file_ids)
        row.actions = [_action_json(a) for a in snap.actions]
        row.updated_at = snap.updated_at or datetime.now(UTC)

    @activity.defn(name="sync_invoice")
    async def sync_invoice(self, snap: InvoiceSnapshot) -> int:
        """Returns the version the registry holds afterwards."""
        for _ in range(2):  # a concurrent insert of the same id: the second pass updates it
            async with self.deps.sessions() as s:
                row = await s.get(Invoice, snap.id)
                if row is not None and row.version >= snap.version:
                    return row.version
                if row is None:
                    row = Invoice(
                        id=snap.id,
                        created_at=snap.submitted_at or datetime.now(UTC),
                        workflow_id=snap.workflow_id,
                        state=InvoiceState(snap.state),
                        initiator_id=snap.initiator_id,
                        category=snap.category,
                        expense_type=snap.expense_type,
                        amount=Decimal(snap.amount),
                        currency=snap.currency,
                        invoice_file_id=snap.invoice_file_id,
                    )
                self._apply(row, snap)
                s.add(row)
                try:
                    await s.commit()
                except IntegrityError:
                    await s.rollback()
                    continue
                log.info(
                    "invoice synced",
                    invoice_id=snap.id,
                    state=snap.state,
                    version=snap.version,
                    workflow_id=snap.workflow_id,
                )
                return snap.version
        raise RuntimeError("invoice row kept changing under us; retrying")
