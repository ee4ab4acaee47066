"""Supplier invoices (SPEC §5): suppliers, payer entities, the invoice workflow's actions and
the registry. Every action is a Temporal update on `invoice-<id>`: the role is checked here
(403), the state and the person by the workflow's validators (409 naming the state / 403),
a missing choice by either (422)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, cast

from fastapi import APIRouter, HTTPException, Query, status
from sqlalchemy import func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError
from temporalio.workflow import UpdateMethodMultiParam

from api import policy
from api.deps import MAX_OFFSET, SessionDep, SettingsDep, TemporalDep
from contracts.invoice import (
    FINAL_STATES,
    InvoiceCommand,
    InvoiceInput,
    InvoicePolicy,
    InvoiceSnapshot,
    InvoiceState,
    invoice_workflow_id,
)
from core.search_attributes import EXPENSE_CATEGORY, INVOICE_STATE
from models.core import StaffUser
from models.files import StoredFile
from models.invoice import (
    ApproveIn,
    ClosingDocumentsIn,
    CommentIn,
    Invoice,
    InvoiceCreate,
    InvoicePage,
    InvoicePublic,
    PartyPublic,
    PayerEntity,
    PayerEntityCreate,
    PayIn,
    ResubmitIn,
    Supplier,
    SupplierCreate,
)
from workflows.invoice import InvoiceApproval

router = APIRouter(prefix="/v1", tags=["invoices"])
# Each action is the journey's update of that name (typed: no names, no result types).
_Action = UpdateMethodMultiParam[[InvoiceApproval, InvoiceCommand], InvoiceSnapshot]
ACTION_UPDATES: dict[str, _Action] = {
    "approve": InvoiceApproval.approve,
    "reject": InvoiceApproval.reject,
    # `return` is a keyword, so this update is named in its decorator, which the SDK types as
    # answering the coroutine itself: the cast restores what the journey really answers.
    "return": cast(_Action, InvoiceApproval.return_for_rework),
    "resubmit": InvoiceApproval.resubmit,
    "pay": InvoiceApproval.pay,
    "closing_documents": InvoiceApproval.closing_documents,
    "verify": InvoiceApproval.verify,
    "return_documents": InvoiceApproval.return_documents,
}
Staff = Annotated[StaffUser, policy.may("invoices", "submit")]
Finance = Annotated[StaffUser, policy.may("invoices", "counterparties")]
Deputy = Annotated[StaffUser, policy.may("invoices", "approve")]
Accountant = Annotated[StaffUser, policy.may("invoices", "pay")]


def _reads_all(user: StaffUser) -> bool:
    return policy.can(user, "invoices", "read-all")


# ---------------------------------------------------------------- counterparties
@router.post("/suppliers", response_model=PartyPublic, status_code=status.HTTP_201_CREATED)
async def create_supplier(body: SupplierCreate, session: SessionDep, _: Finance) -> Supplier:
    row = Supplier(**body.model_dump())
    session.add(row)
    await session.commit()
    return row


@router.get("/suppliers", response_model=list[PartyPublic])
async def list_suppliers(session: SessionDep, _: Staff) -> list[Supplier]:
    return list((await session.exec(select(Supplier).order_by(Supplier.name))).all())


@router.post("/payer-entities", response_model=PartyPublic, status_code=status.HTTP_201_CREATED)
async def create_payer(body: PayerEntityCreate, session: SessionDep, _: Finance) -> PayerEntity:
    row = PayerEntity(**body.model_dump())
    session.add(row)
    await session.commit()
    return row


@router.get("/payer-entities", response_model=list[PartyPublic])
async def list_payers(session: SessionDep, _: Staff) -> list[PayerEntity]:
    return list((await session.exec(select(PayerEntity).order_by(PayerEntity.name))).all())


# ---------------------------------------------------------------- submit
@router.post("/invoices", response_model=InvoicePublic, status_code=status.HTTP_201_CREATED)
async def submit_invoice(
    body: InvoiceCreate, session: SessionDep, settings: SettingsDep, temporal: TemporalDep, user: Staff
) -> InvoicePublic:
    await _files_exist(session, [body.invoice_file_id], "invoice_file_id", user)
    inp = InvoiceInput(
        invoice_id=_new_id(),
        initiator_id=user.id,
        initiator_role=user.role.value,
        category=body.category,
        expense_type=body.expense_type,
        amount=body.amount,
        currency=body.currency,
        invoice_file_id=body.invoice_file_id,
        comment=body.comment,
        policy=InvoicePolicy.of(settings.invoice_remind_after, settings.invoice_escalate_after),
    )
    wid = invoice_workflow_id(inp.invoice_id)
    # The registry row before the journey runs: its first snapshot at version 0, without the
    # submit action (the journey's first sync records it, version 1).
    first = InvoiceSnapshot.submitted(inp, wid, datetime.now(UTC)).columns()
    row = Invoice(**{**first, "version": 0, "actions": [], "updated_at": None})
    session.add(row)
    await session.commit()
    try:
        handle = await temporal.start_workflow(
            InvoiceApproval.run,
            inp,
            id=wid,
            task_queue=settings.temporal_task_queue,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(INVOICE_STATE, InvoiceState.submitted.value),
                    SearchAttributePair(EXPENSE_CATEGORY, inp.category),
                ]
            ),
        )
    except BaseException:
        await session.delete(row)  # nothing half-written: no row without its journey
        await session.commit()
        raise
    snap = await handle.query(InvoiceApproval.state)
    return _out(snap)


def _new_id() -> str:
    from models.core import new_id

    return new_id()


# ---------------------------------------------------------------- read
@router.get("/invoices", response_model=InvoicePage)
async def registry(
    session: SessionDep,
    user: Staff,
    paid_from: date | None = None,
    paid_to: date | None = None,
    expense_type: str | None = None,
    category: str | None = None,
    supplier_id: str | None = None,
    amount_min: Decimal | None = None,
    amount_max: Decimal | None = None,
    payer_entity_id: str | None = None,
    initiator: str | None = Query(None, description="staff id or username"),
    state: InvoiceState | None = None,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
) -> InvoicePage:
    """Every invoice, paid or not; filter by supplier_id for a counterparty's history.
    Staff outside finance see only the invoices they submitted."""
    conds: list[Any] = []
    if paid_from:
        conds.append(col(Invoice.paid_on) >= paid_from)
    if paid_to:
        conds.append(col(Invoice.paid_on) <= paid_to)
    for column, value in (
        (Invoice.expense_type, expense_type),
        (Invoice.category, category),
        (Invoice.supplier_id, supplier_id),
        (Invoice.payer_entity_id, payer_entity_id),
        (Invoice.state, state),
    ):
        if value is not None:
            conds.append(column == value)
    if amount_min is not None:
        conds.append(col(Invoice.amount) >= amount_min)
    if amount_max is not None:
        conds.append(col(Invoice.amount) <= amount_max)
    if initiator:
        ids = select(StaffUser.id).where(or_(col(StaffUser.id) == initiator, col(StaffUser.username) == initiator))
        conds.append(col(Invoice.initiator_id).in_(ids))
    if not _reads_all(user):
        conds.append(Invoice.initiator_id == user.id)
    total, amount = (
        await session.exec(select(func.count(), func.coalesce(func.sum(Invoice.amount), 0)).where(*conds))
    ).one()
    q = select(Invoice).where(*conds).order_by(col(Invoice.created_at).desc(), Invoice.id).offset(offset).limit(limit)
    rows = (await session.exec(q)).all()
    return InvoicePage(
        items=[_out(r) for r in rows],
        total=total,
        limit=limit,
        offset=offset,
        total_amount=str(Decimal(str(amount)).quantize(Decimal("0.01"))),
    )


@router.get("/invoices/{invoice_id}", response_model=InvoicePublic)
async def get_invoice(invoice_id: str, session: SessionDep, temporal: TemporalDep, user: Staff) -> InvoicePublic:
    row = await _load(session, invoice_id, user)
    try:  # the journey itself is the truth; the row may trail it by a moment
        snap = await temporal.get_workflow_handle_for(InvoiceApproval.run, row.workflow_id).query(InvoiceApproval.state)
    except RPCError:
        return _out(row)
    out = _out(snap)
    out.created_at = row.created_at
    return out


# ---------------------------------------------------------------- actions
@router.post("/invoices/{invoice_id}/approve", response_model=InvoicePublic)
async def approve(
    invoice_id: str, body: ApproveIn, session: SessionDep, temporal: TemporalDep, user: Deputy
) -> InvoicePublic:
    if body.payer_entity_id and await session.get(PayerEntity, body.payer_entity_id) is None:
        raise _invalid("payer_entity_id", f"payer entity {body.payer_entity_id!r} does not exist")
    return await _act(
        session, temporal, user, invoice_id, "approve", payer_entity_id=body.payer_entity_id, comment=body.comment
    )


@router.post("/invoices/{invoice_id}/reject", response_model=InvoicePublic)
async def reject(
    invoice_id: str, body: CommentIn, session: SessionDep, temporal: TemporalDep, user: Deputy
) -> InvoicePublic:
    return await _act(session, temporal, user, invoice_id, "reject", comment=body.comment)


@router.post("/invoices/{invoice_id}/return", response_model=InvoicePublic)
async def return_for_rework(
    invoice_id: str, body: CommentIn, session: SessionDep, temporal: TemporalDep, user: Deputy
) -> InvoicePublic:
    return await _act(session, temporal, user, invoice_id, "return", comment=body.comment)


@router.post("/invoices/{invoice_id}/resubmit", response_model=InvoicePublic)
async def resubmit(
    invoice_id: str, body: ResubmitIn, session: SessionDep, temporal: TemporalDep, user: Staff
) -> InvoicePublic:
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    if "invoice_file_id" in changes:
        await _files_exist(session, [changes["invoice_file_id"]], "invoice_file_id", user)
    # The comment goes with the action; a new comment also replaces the invoice's comment.
    return await _act(session, temporal, user, invoice_id, "resubmit", comment=body.comment, changes=changes)


@router.post("/invoices/{invoice_id}/pay", response_model=InvoicePublic)
async def pay(
    invoice_id: str, body: PayIn, session: SessionDep, temporal: TemporalDep, user: Accountant
) -> InvoicePublic:
    if body.supplier_id and await session.get(Supplier, body.supplier_id) is None:
        raise _invalid("supplier_id", f"supplier {body.supplier_id!r} does not exist")
    if body.paid_on and body.paid_on > date.today():
        raise _invalid("paid_on", "paid_on is in the future")
    return await _act(
        session,
        temporal,
        user,
        invoice_id,
        "pay",
        supplier_id=body.supplier_id,
        paid_on=body.paid_on.isoformat() if body.paid_on else None,
        comment=body.comment,
    )


@router.post("/invoices/{invoice_id}/closing-documents", response_model=InvoicePublic)
async def closing_documents(
    invoice_id: str, body: ClosingDocumentsIn, session: SessionDep, temporal: TemporalDep, user: Staff
) -> InvoicePublic:
    await _files_exist(session, body.file_ids, "file_ids", user)
    return await _act(
        session,
        temporal,
        user,
        invoice_id,
        "closing_documents",
        file_ids=list(dict.fromkeys(body.file_ids)),
        comment=body.comment,
    )


@router.post("/invoices/{invoice_id}/verify", response_model=InvoicePublic)
async def verify(
    invoice_id: str, session: SessionDep, temporal: TemporalDep, user: Accountant, body: CommentIn | None = None
) -> InvoicePublic:
    return await _act(session, temporal, user, invoice_id, "verify", comment=body.comment if body else None)


@router.post("/invoices/{invoice_id}/return-documents", response_model=InvoicePublic)
async def return_documents(
    invoice_id: str, body: CommentIn, session: SessionDep, temporal: TemporalDep, user: Accountant
) -> InvoicePublic:
    return await _act(session, temporal, user, invoice_id, "return_documents", comment=body.comment)


# ---------------------------------------------------------------- helpers
async def _act(
    session: AsyncSession, temporal: Any, user: StaffUser, invoice_id: str, action: str, **fields: Any
) -> InvoicePublic:
    row = await session.get(Invoice, invoice_id)
    if row is None:
        raise HTTPException(404, f"invoice {invoice_id} not found")
    if row.state in FINAL_STATES:  # the journey has ended: nothing to send it
        raise HTTPException(
            409, detail={"message": f"invoice is {row.state.value}; no further steps", "state": row.state.value}
        )
    cmd = InvoiceCommand(actor_id=user.id, actor_role=user.role.value, **fields)
    handle = temporal.get_workflow_handle_for(InvoiceApproval.run, row.workflow_id)
    snap = await handle.execute_update(ACTION_UPDATES[action], cmd)
    return _out(snap)


async def _load(session: AsyncSession, invoice_id: str, user: StaffUser) -> Invoice:
    row = await session.get(Invoice, invoice_id)
    if row is None:
        raise HTTPException(404, f"invoice {invoice_id} not found")
    if not _reads_all(user) and row.initiator_id != user.id:
        raise HTTPException(403, "only the initiator and finance roles may see this invoice")
    return row


async def _files_exist(session: AsyncSession, ids: list[str], field: str, user: StaffUser) -> None:
    if not ids:
        return
    found = (await session.exec(select(StoredFile).where(col(StoredFile.id).in_(ids)))).all()
    missing = set(ids) - {f.id for f in found}
    if missing:
        raise _invalid(field, f"no uploaded file {sorted(missing)[0]!r}; upload it at POST /v1/files first")
    if not policy.can(user, "files", "read-all") and any(f.uploaded_by != user.id for f in found):
        raise _invalid(field, "attach files you uploaded yourself")


def _invalid(field: str, msg: str) -> HTTPException:
    return HTTPException(422, detail=[{"loc": ["body", field], "msg": msg, "type": "value_error"}])


def _out(source: Invoice | InvoiceSnapshot) -> InvoicePublic:
    return InvoicePublic.model_validate(source, from_attributes=True)
