"""On the 1st of each month (network timezone) last month's management pack — one workbook,
a sheet per management report (core/reports.py) — goes to the directors by e-mail: the
whole network's to the network's directors, a clinic's own to the directors of that clinic. Run by the
Temporal Schedule `monthly-management-pack` (`journeys schedules` creates or updates it)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from contracts.common import Attachment, EmailActivityStubs, EmailRequest
    from contracts.invoice import local_date
    from contracts.management_pack import (
        MANAGEMENT_PACK_WORKFLOW,
        ManagementPackActivityStubs,
        ManagementPackFile,
        ManagementPackInput,
        ManagementPackResult,
    )
    from workflows.monthly_report import previous_month

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
BUILD_TIMEOUT = timedelta(minutes=10)
EMAIL_TIMEOUT = timedelta(seconds=60)
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(minutes=5),
    maximum_attempts=50,
    non_retryable_error_types=["AttachmentMissing"],
)


@workflow.defn(name=MANAGEMENT_PACK_WORKFLOW)
class MonthlyManagementPack:
    @workflow.run
    async def run(self, inp: ManagementPackInput) -> ManagementPackResult:
        # "Last month" on the network's calendar when this run was scheduled (replay-stable).
        month = inp.month or previous_month(local_date(workflow.now(), inp.timezone))
        who = await workflow.execute_activity_method(
            ManagementPackActivityStubs.management_pack_recipients,
            inp,
            start_to_close_timeout=EMAIL_TIMEOUT,
            retry_policy=RETRY,
        )
        result = ManagementPackResult(month=month)
        # The network's pack to the network's directors; each clinic's own pack to the
        # directors tied to that clinic (branch staff see only their clinic).
        targets: list[tuple[str | None, list[str]]] = [(None, who.network)]
        targets += [(cid, ids) for cid, ids in sorted(who.clinics.items())]
        for clinic_id, user_ids in targets:
            pack = await workflow.execute_activity_method(
                ManagementPackActivityStubs.build_management_pack,
                ManagementPackInput(timezone=inp.timezone, month=month, clinic_id=clinic_id),
                start_to_close_timeout=BUILD_TIMEOUT,
                retry_policy=RETRY,
            )
            await self._send(month, pack, user_ids)
            result.packs.append(pack)
        workflow.logger.info("monthly management pack sent", extra={"month": month, "packs": len(result.packs)})
        return result

    async def _send(self, month: str, pack: ManagementPackFile, user_ids: list[str]) -> None:
        wid = workflow.info().workflow_id
        lines = "".join(f"{k}: {v}\n" for k, v in pack.headline.items())
        scope = pack.clinic_name or "the whole network"
        await workflow.execute_activity_method(
            EmailActivityStubs.send_email,
            EmailRequest(
                idempotency_key=f"{wid}/{month}/pack-email/{pack.clinic_id or 'network'}",
                to_user_ids=list(user_ids),
                workflow_id=wid,
                subject=f"Management pack, {month}" + (f", {pack.clinic_name}" if pack.clinic_name else ""),
                body=(
                    f"Attached: the management reports for {month}, one sheet each "
                    f"({pack.sheets} sheets), for {scope}.\n\n{lines}"
                ),
                attachments=[Attachment(filename=pack.filename, path=pack.path, content_type=XLSX_TYPE)],
            ),
            start_to_close_timeout=EMAIL_TIMEOUT,
            retry_policy=RETRY,
        )
