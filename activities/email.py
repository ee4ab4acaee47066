"""Generic e-mail over SMTP (stdlib smtplib in a thread), idempotent per key.

A row in `email_log` is written under the request's unique idempotency key before the SMTP
call and marked `sent` after it: a retried or replayed activity finds `sent` and sends
nothing. (The one window left is a crash between the SMTP server's OK and our commit; that
retry resends, which is the safer side for a notification.) Without SMTP_HOST nothing is
sent and the row says `no_smtp`, so local runs need no mail server.
"""

from __future__ import annotations

import asyncio
import mimetypes
import smtplib
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import or_
from sqlmodel import col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from contracts.common import Attachment, EmailActivityStubs, EmailRequest, EmailResult
from core.db import insert_once
from core.deps import Deps
from core.logging import get_logger
from core.settings import Settings
from models.core import Role, StaffUser
from models.invoice import EmailLog

log = get_logger("activities.email")
SMTP_TIMEOUT = 20.0


def _send_blocking(settings: Settings, msg: EmailMessage, attachments: list[Attachment]) -> None:
    for a in attachments:
        path = Path(a.path)
        if not path.is_file():
            raise ApplicationError(f"attachment {a.filename} is missing", non_retryable=True, type="AttachmentMissing")
        ctype = a.content_type or mimetypes.guess_type(a.filename)[0] or "application/octet-stream"
        maintype, _, subtype = ctype.partition("/")
        msg.add_attachment(path.read_bytes(), maintype=maintype, subtype=subtype, filename=a.filename)
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password)
        smtp.send_message(msg)


class EmailActivities(EmailActivityStubs):
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def _recipients(self, req: EmailRequest) -> list[str]:
        out = list(req.to)
        if req.to_roles or req.to_user_ids:
            async with self.deps.sessions() as s:
                q = select(StaffUser).where(StaffUser.active == True)  # noqa: E712
                conds = []
                if req.to_roles:
                    conds.append(col(StaffUser.role).in_([Role(r) for r in req.to_roles]))
                if req.to_user_ids:
                    conds.append(col(StaffUser.id).in_(req.to_user_ids))

                users = (await s.exec(q.where(or_(*conds)))).all()
                out += [u.email for u in users if u.email]
        return sorted(set(out))

    async def _row(self, req: EmailRequest, recipients: int) -> EmailLog:
        row = EmailLog(
            idempotency_key=req.idempotency_key,
            workflow_id=req.workflow_id,
            subject=req.subject[:300],
            recipients=recipients,
        )
        async with self.deps.sessions() as s:
            return (await insert_once(s, row, EmailLog.idempotency_key, req.idempotency_key))[0]

    async def _mark(self, row_id: str, status: str, error: str | None = None) -> None:
        async with self.deps.sessions() as s:
            row = await s.get(EmailLog, row_id)
            assert row is not None
            row.status, row.error = status, error
            if status == "sent":
                row.sent_at = datetime.now(UTC)
            s.add(row)
            await s.commit()

    @activity.defn(name="send_email")
    async def send_email(self, req: EmailRequest) -> EmailResult:
        settings = self.deps.settings  # read per call: tests point a copy at a local server
        recipients = await self._recipients(req)
        row = await self._row(req, len(recipients))
        if row.status == "sent":
            return EmailResult(status="already_sent", recipients=row.recipients)
        if not recipients:
            await self._mark(row.id, "no_recipients")
            log.warning("e-mail has no recipients", key=req.idempotency_key, workflow_id=req.workflow_id)
            return EmailResult(status="no_recipients")
        if not settings.smtp_host:
            await self._mark(row.id, "no_smtp")
            log.info("SMTP_HOST unset: e-mail recorded, not sent", key=req.idempotency_key)
            return EmailResult(status="no_smtp", recipients=len(recipients))

        msg = EmailMessage()
        msg["From"] = settings.smtp_from
        msg["To"] = ", ".join(recipients)
        msg["Subject"] = req.subject
        msg["Message-ID"] = f"<{req.idempotency_key.replace('/', '.')}@patient-journeys>"
        msg.set_content(req.body)
        try:
            await asyncio.to_thread(_send_blocking, settings, msg, req.attachments)
        except (smtplib.SMTPException, OSError) as e:
            await self._mark(row.id, "failed", type(e).__name__)
            raise  # retried by the workflow's policy; the row stays unsent
        await self._mark(row.id, "sent")
        log.info(
            "e-mail sent",
            key=req.idempotency_key,
            workflow_id=req.workflow_id,
            recipients=len(recipients),
            attachments=len(req.attachments),
        )
        return EmailResult(status="sent", recipients=len(recipients))
