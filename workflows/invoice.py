"""Supplier invoice approval (SPEC §5), one workflow per invoice, id `invoice-<id>`.

    submitted ──approve──▶ approved ──pay──▶ paid ─(e-mails)─▶ awaiting_closing_documents
      │  ▲  └─reject──▶ rejected                                  │          ▲
    return  resubmit                                  closing_documents    return_documents
      ▼  │                                                        ▼          │
    returned_for_rework                                  documents_submitted ─┘ ──verify──▶ completed

Who acts: the deputy director decides on a submitted invoice, the accountant pays and
verifies, the initiator (the staff member who submitted) reworks and brings the closing
documents; an admin may stand in for anyone. Each action is an update whose validator
rejects a wrong state (Conflict), a wrong person (Forbidden) or a missing choice (Invalid)
before anything is written. Every step that waits on a person is watched: after
`policy.remind_after` its owner gets an operator task and an e-mail, after
`policy.escalate_after` the director does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from contracts.common import CancelTasks, EmailActivityStubs, EmailRequest, TaskActivityStubs, TaskRequest
    from contracts.invoice import (
        ACTIONS,
        FINAL_STATES,
        INVOICE_STATE_QUERY,
        INVOICE_WORKFLOW,
        STEP_OWNER,
        InvoiceAction,
        InvoiceActivityStubs,
        InvoiceCommand,
        InvoiceInput,
        InvoiceSnapshot,
        InvoiceState,
    )
    from core.search_attributes import EXPENSE_CATEGORY, INVOICE_STATE

SYNC_TIMEOUT = timedelta(seconds=30)
TASK_TIMEOUT = timedelta(seconds=30)
EMAIL_TIMEOUT = timedelta(seconds=60)
DB_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
# An SMTP outage of about an hour is ridden out; after that the e-mail is given up on and an
# admin task says so (the workflow must not stall on a notification).
EMAIL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(minutes=5),
    maximum_attempts=20,
    non_retryable_error_types=["AttachmentMissing"],
)
REMINDER_KINDS = ("invoice_reminder", "invoice_escalation")
ADMIN = "admin"
RESUBMIT_FIELDS = ("category", "expense_type", "amount", "currency", "invoice_file_id", "comment")
# Issue 15: one handler pattern across journeys (as the appointment and the treatment plan).
# Each action takes `self._lock`, re-checks the state and the actor inside it (two approvals
# sent at once: the second gets a Conflict instead of approving twice), changes the snapshot
# and syncs before it answers; the loop takes the lock for its own move. Invoices started
# before this ran their actions side by side, each sync in turn (`_sync_lock`): they keep that.
HANDLERS_UNDER_LOCK = "handlers-under-lock"


@workflow.defn(name=INVOICE_WORKFLOW)
class InvoiceApproval:
    @workflow.init
    def __init__(self, inp: InvoiceInput) -> None:
        self.inp = inp
        now = workflow.now()
        wid = workflow.info().workflow_id
        self.snap = InvoiceSnapshot.submitted(inp, wid, now)
        self._outbox: list[EmailRequest] = []  # e-mails the loop sends: an action never waits on SMTP
        self._lock = asyncio.Lock()  # one action at a time (see HANDLERS_UNDER_LOCK)
        self._sync_lock = asyncio.Lock()  # one sync at a time, for invoices from before the lock

    # ------------------------------------------------------------------ the process
    @workflow.run
    async def run(self, inp: InvoiceInput) -> InvoiceSnapshot:
        workflow.upsert_search_attributes(
            [INVOICE_STATE.value_set(self.snap.state), EXPENSE_CATEGORY.value_set(self.snap.category)]
        )
        await self._sync()
        while True:
            await self._flush_outbox()
            if self.snap.state == InvoiceState.paid:
                async with self._lock:
                    self._move("await_closing_documents", None, InvoiceState.awaiting_closing_documents)
                    await self._sync()
                continue
            if self.snap.state in FINAL_STATES:
                break
            await self._watch_step()
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.logger.info("invoice journey finished", extra={"state": self.snap.state})
        return self.snap

    async def _watch_step(self) -> None:
        """Wait for the step's owner; remind, then escalate, if they take too long."""
        version, state = self.snap.version, self.snap.state
        policy = self.inp.policy

        def moved() -> bool:
            return self.snap.version != version

        raised = False
        try:
            await workflow.wait_condition(moved, timeout=timedelta(seconds=policy.remind_after))
            return
        except TimeoutError:
            raised = True
            await self._nudge(state, version, escalate=False)
        try:
            rest = max(policy.escalate_after - policy.remind_after, 0.001)
            await workflow.wait_condition(moved, timeout=timedelta(seconds=rest))
        except TimeoutError:
            await self._nudge(state, version, escalate=True)
            await workflow.wait_condition(moved)  # the director now sees it
        if raised:
            await workflow.execute_activity_method(
                TaskActivityStubs.cancel_operator_tasks,
                CancelTasks(
                    subject_id=self.snap.id, kinds=list(REMINDER_KINDS), reason=f"invoice moved on from {state}"
                ),
                start_to_close_timeout=TASK_TIMEOUT,
                retry_policy=DB_RETRY,
            )

    async def _nudge(self, state: str, version: int, escalate: bool) -> None:
        wid = self.snap.workflow_id
        owner = STEP_OWNER[state]
        who = "the initiator" if owner == "initiator" else f"the {owner.replace('_', ' ')}"
        step = "escalate" if escalate else "remind"
        if escalate:
            role, user_ids, roles = "director", [], ["director"]
            title = f"Invoice {self.snap.id} stalled: {state}, waiting on {who}"
        elif owner == "initiator":
            role, user_ids, roles = self.inp.initiator_role, [self.snap.initiator_id], []
            title = f"Invoice {self.snap.id} waits on you: {state}"
        else:
            role, user_ids, roles = owner, [], [owner]
            title = f"Invoice {self.snap.id} waits on you: {state}"
        workflow.logger.info("invoice step overdue", extra={"state": state, "step": step})
        await workflow.execute_activity_method(
            TaskActivityStubs.create_operator_task,
            TaskRequest(
                dedup_key=f"{wid}/v{version}/{step}",
                kind="invoice_escalation" if escalate else "invoice_reminder",
                title=title,
                assigned_role=role,
                subject_type="invoice",
                subject_id=self.snap.id,
                workflow_id=wid,
                details={"state": state, "owner": owner, "user_ids": user_ids},
            ),
            start_to_close_timeout=TASK_TIMEOUT,
            retry_policy=DB_RETRY,
        )
        await self._email(
            EmailRequest(
                idempotency_key=f"{wid}/v{version}/{step}",
                subject=title,
                body=self._body(
                    f"This invoice has been waiting on {who} in state '{state}' longer than the policy allows."
                ),
                to_roles=roles,
                to_user_ids=user_ids,
                workflow_id=wid,
            )
        )

    # ------------------------------------------------------------------ actions (updates)
    def _check(self, action: str, cmd: InvoiceCommand) -> None:
        states, _, owner = ACTIONS[action]
        state = self.snap.state
        if state not in states:
            raise ApplicationError(
                f"cannot {action.replace('_', ' ')} an invoice in state '{state}'",
                {"state": state, "action": action, "allowed_in": list(states)},
                type="Conflict",
            )
        if cmd.actor_role != ADMIN:
            if owner == "initiator" and cmd.actor_id != self.snap.initiator_id:
                raise ApplicationError(
                    f"only the initiator of the invoice may {action}",
                    {"state": state, "owner": owner},
                    type="Forbidden",
                )
            if owner != "initiator" and cmd.actor_role != owner:
                raise ApplicationError(
                    f"only the {owner} may {action} an invoice", {"state": state, "owner": owner}, type="Forbidden"
                )

    @staticmethod
    def _need(ok: object, field: str, msg: str) -> None:
        if not ok:
            raise ApplicationError(msg, {"field": field}, type="Invalid")

    @asynccontextmanager
    async def _acting(self, action: str, cmd: InvoiceCommand) -> AsyncIterator[None]:
        """Every action runs inside this: under the lock, the state and the actor checked
        again (an action that ran meanwhile may have moved the invoice since the validator
        ran). Invoices from before HANDLERS_UNDER_LOCK: no lock, as they always ran."""
        if not workflow.patched(HANDLERS_UNDER_LOCK):
            yield
            return
        async with self._lock:
            self._check(action, cmd)
            yield

    @workflow.update
    async def approve(self, cmd: InvoiceCommand) -> InvoiceSnapshot:
        async with self._acting("approve", cmd):
            self.snap.payer_entity_id = cmd.payer_entity_id
            return await self._act("approve", cmd, {"payer_entity_id": cmd.payer_entity_id})

    @approve.validator
    def _v_approve(self, cmd: InvoiceCommand) -> None:
        self._check("approve", cmd)
        self._need(cmd.payer_entity_id, "payer_entity_id", "choose the paying legal entity")

    @workflow.update
    async def reject(self, cmd: InvoiceCommand) -> InvoiceSnapshot:
        async with self._acting("reject", cmd):
            return await self._act("reject", cmd)

    @reject.validator
    def _v_reject(self, cmd: InvoiceCommand) -> None:
        self._check("reject", cmd)
        self._need((cmd.comment or "").strip(), "comment", "say why the invoice is rejected")

    @workflow.update(name="return")
    async def return_for_rework(self, cmd: InvoiceCommand) -> InvoiceSnapshot:
        async with self._acting("return", cmd):
            return await self._act("return", cmd)

    @return_for_rework.validator
    def _v_return(self, cmd: InvoiceCommand) -> None:
        self._check("return", cmd)
        self._need((cmd.comment or "").strip(), "comment", "say what must be reworked")

    @workflow.update
    async def resubmit(self, cmd: InvoiceCommand) -> InvoiceSnapshot:
        async with self._acting("resubmit", cmd):
            changed = {k: v for k, v in cmd.changes.items() if getattr(self.snap, k) != v}
            for k, v in changed.items():
                setattr(self.snap, k, v)
            if "category" in changed:
                workflow.upsert_search_attributes([EXPENSE_CATEGORY.value_set(self.snap.category)])
            return await self._act("resubmit", cmd, {"changed": changed})

    @resubmit.validator
    def _v_resubmit(self, cmd: InvoiceCommand) -> None:
        self._check("resubmit", cmd)
        unknown = set(cmd.changes) - set(RESUBMIT_FIELDS)
        self._need(
            not unknown,
            sorted(unknown)[0] if unknown else "",
            f"these fields cannot be changed: {', '.join(sorted(unknown))}",
        )
        self._need(
            cmd.changes or (cmd.comment or "").strip(),
            "changes",
            "change at least one field, or say what was fixed in a comment",
        )

    @workflow.update
    async def pay(self, cmd: InvoiceCommand) -> InvoiceSnapshot:
        async with self._acting("pay", cmd):
            return await self._pay(cmd)

    async def _pay(self, cmd: InvoiceCommand) -> InvoiceSnapshot:
        self.snap.supplier_id = cmd.supplier_id
        self.snap.paid_on = cmd.paid_on or workflow.now().date().isoformat()
        self._move("pay", cmd, InvoiceState.paid, {"supplier_id": cmd.supplier_id, "paid_on": self.snap.paid_on})
        wid = self.snap.workflow_id
        self._outbox.append(
            EmailRequest(
                idempotency_key=f"{wid}/paid-notice",
                to_roles=["deputy_director"],
                workflow_id=wid,
                subject=f"Invoice {self.snap.id} paid",
                body=self._body(f"The invoice was paid on {self.snap.paid_on}."),
            )
        )
        self._outbox.append(
            EmailRequest(
                idempotency_key=f"{wid}/closing-documents-request",
                to_user_ids=[self.snap.initiator_id],
                workflow_id=wid,
                subject=f"Invoice {self.snap.id} paid: please attach the closing documents",
                body=self._body(
                    "The invoice was paid. Please attach the closing documents (acts, "
                    f"waybills, tax invoices) at POST /v1/invoices/{self.snap.id}"
                    "/closing-documents."
                ),
            )
        )
        await self._sync()
        return self.snap

    @pay.validator
    def _v_pay(self, cmd: InvoiceCommand) -> None:
        self._check("pay", cmd)
        self._need(cmd.supplier_id, "supplier_id", "choose the supplier that was paid")

    @workflow.update
    async def closing_documents(self, cmd: InvoiceCommand) -> InvoiceSnapshot:
        async with self._acting("closing_documents", cmd):
            self.snap.closing_file_ids = [
                *self.snap.closing_file_ids,
                *[f for f in cmd.file_ids if f not in self.snap.closing_file_ids],
            ]
            return await self._act("closing_documents", cmd, {"file_ids": list(cmd.file_ids)})

    @closing_documents.validator
    def _v_closing_documents(self, cmd: InvoiceCommand) -> None:
        self._check("closing_documents", cmd)
        self._need(cmd.file_ids, "file_ids", "attach at least one closing document")

    @workflow.update
    async def verify(self, cmd: InvoiceCommand) -> InvoiceSnapshot:
        async with self._acting("verify", cmd):
            return await self._act("verify", cmd)

    @verify.validator
    def _v_verify(self, cmd: InvoiceCommand) -> None:
        self._check("verify", cmd)

    @workflow.update
    async def return_documents(self, cmd: InvoiceCommand) -> InvoiceSnapshot:
        async with self._acting("return_documents", cmd):
            return await self._return_documents(cmd)

    async def _return_documents(self, cmd: InvoiceCommand) -> InvoiceSnapshot:
        self._move("return_documents", cmd, InvoiceState.awaiting_closing_documents)
        wid = self.snap.workflow_id
        self._outbox.append(
            EmailRequest(
                idempotency_key=f"{wid}/v{self.snap.version}/documents-returned",
                to_user_ids=[self.snap.initiator_id],
                workflow_id=wid,
                subject=f"Invoice {self.snap.id}: closing documents returned",
                body=self._body(f"The accountant returned the closing documents: {cmd.comment}"),
            )
        )
        await self._sync()
        return self.snap

    @return_documents.validator
    def _v_return_documents(self, cmd: InvoiceCommand) -> None:
        self._check("return_documents", cmd)
        self._need((cmd.comment or "").strip(), "comment", "say what is wrong with the documents")

    @workflow.query(name=INVOICE_STATE_QUERY)
    def state(self) -> InvoiceSnapshot:
        return self.snap

    # ------------------------------------------------------------------ helpers
    async def _act(self, action: str, cmd: InvoiceCommand, data: dict | None = None) -> InvoiceSnapshot:
        self._move(action, cmd, ACTIONS[action][1], data)
        await self._sync()
        return self.snap

    def _move(self, action: str, cmd: InvoiceCommand | None, to: str, data: dict | None = None) -> None:
        now = workflow.now()
        self.snap.actions.append(
            InvoiceAction(
                action=action,
                actor_id=cmd.actor_id if cmd else "system",
                actor_role=cmd.actor_role if cmd else "system",
                at=now,
                from_state=self.snap.state,
                to_state=to,
                comment=cmd.comment if cmd else None,
                data=data or {},
            )
        )
        self.snap.state = to
        self.snap.version += 1
        self.snap.updated_at = now
        workflow.upsert_search_attributes([INVOICE_STATE.value_set(to)])

    async def _sync(self) -> None:
        # One sync at a time, always of the newest snapshot: the registry never goes back.
        # (Under the action lock this never waits; invoices from before the lock need it.)
        async with self._sync_lock:
            await workflow.execute_activity_method(
                InvoiceActivityStubs.sync_invoice,
                self.snap,
                start_to_close_timeout=SYNC_TIMEOUT,
                retry_policy=DB_RETRY,
            )

    async def _flush_outbox(self) -> None:
        while self._outbox:
            await self._email(self._outbox.pop(0))

    async def _email(self, req: EmailRequest) -> None:
        try:
            await workflow.execute_activity_method(
                EmailActivityStubs.send_email, req, start_to_close_timeout=EMAIL_TIMEOUT, retry_policy=EMAIL_RETRY
            )
        except ActivityError as e:
            workflow.logger.warning("e-mail given up", extra={"key": req.idempotency_key})
            await workflow.execute_activity_method(
                TaskActivityStubs.create_operator_task,
                TaskRequest(
                    dedup_key=f"{req.idempotency_key}/failed",
                    kind="email_failed",
                    title=f"E-mail not delivered: {req.subject}"[:300],
                    assigned_role=ADMIN,
                    subject_type="invoice",
                    subject_id=self.snap.id,
                    workflow_id=self.snap.workflow_id,
                    details={"key": req.idempotency_key, "error": str(e.cause or e)},
                ),
                start_to_close_timeout=TASK_TIMEOUT,
                retry_policy=DB_RETRY,
            )

    def _body(self, what: str) -> str:
        s = self.snap
        return (
            f"{what}\n\nInvoice: {s.id}\nState: {s.state}\nCategory: {s.category}\n"
            f"Expense type: {s.expense_type}\nAmount: {s.amount} {s.currency}\n"
        )
