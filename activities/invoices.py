"""The invoice registry row, kept in step with the workflow.

`sync_invoice` is an upsert ordered by the snapshot's `version`: a retried, replayed or
late-arriving older snapshot changes nothing, so the registry never goes backwards.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from temporalio import activity

from contracts.invoice import InvoiceActivityStubs, InvoiceSnapshot
from core.deps import Deps
from core.logging import get_logger
from models.invoice import Invoice

log = get_logger("activities.invoices")


class InvoiceActivities(InvoiceActivityStubs):
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    @activity.defn(name="sync_invoice")
    async def sync_invoice(self, snap: InvoiceSnapshot) -> int:
        """Returns the version the registry holds afterwards."""
        for _ in range(2):  # a concurrent insert of the same id: the second pass updates it
            async with self.deps.sessions() as s:
                row = await s.get(Invoice, snap.id)
                if row is not None and row.version >= snap.version:
                    return row.version
                columns = snap.columns()
                columns["updated_at"] = snap.updated_at or datetime.now(UTC)
                if row is None:
                    row = Invoice(**columns, created_at=snap.submitted_at or datetime.now(UTC))
                else:
                    for name, value in columns.items():
                        setattr(row, name, value)
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
