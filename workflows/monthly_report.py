"""On the 1st of each month (network timezone) last month's spending by category goes to the
deputy directors as an .xlsx. Run by the Temporal Schedule `monthly-expense-report`
(`journeys schedules` creates or updates it)."""

from __future__ import annotations

from datetime import date, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from contracts.common import Attachment, EmailActivityStubs, EmailRequest
    from contracts.invoice import (
        MONTHLY_REPORT_WORKFLOW,
        ExpenseReportActivityStubs,
        MonthlyReportInput,
        ReportFile,
        local_date,
    )

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
REPORT_TIMEOUT = timedelta(minutes=5)
EMAIL_TIMEOUT = timedelta(seconds=60)
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(minutes=5),
    maximum_attempts=50,
    non_retryable_error_types=["AttachmentMissing"],
)


def previous_month(today: date) -> str:
    last = today.replace(day=1) - timedelta(days=1)
    return f"{last.year:04d}-{last.month:02d}"


@workflow.defn(name=MONTHLY_REPORT_WORKFLOW)
class MonthlyExpenseReport:
    @workflow.run
    async def run(self, inp: MonthlyReportInput) -> ReportFile:
        # "Last month" is judged on the network's calendar at the moment this run was
        # scheduled (workflow.now() is the run's start, deterministic on replay).
        month = inp.month or previous_month(local_date(workflow.now(), inp.timezone))
        report = await workflow.execute_activity_method(
            ExpenseReportActivityStubs.build_expense_report,
            MonthlyReportInput(timezone=inp.timezone, month=month),
            start_to_close_timeout=REPORT_TIMEOUT,
            retry_policy=RETRY,
        )
        wid = workflow.info().workflow_id
        await workflow.execute_activity_method(
            EmailActivityStubs.send_email,
            EmailRequest(
                idempotency_key=f"{wid}/report-email",
                to_roles=["deputy_director"],
                workflow_id=wid,
                subject=f"Spending by category, {month}",
                body=(
                    f"Attached: spending by category and expense type for the payments of "
                    f"{month}.\nPayments: {report.payments}; total: {report.total}.\n"
                ),
                attachments=[Attachment(filename=report.filename, path=report.path, content_type=XLSX_TYPE)],
            ),
            start_to_close_timeout=EMAIL_TIMEOUT,
            retry_policy=RETRY,
        )
        workflow.logger.info("monthly expense report sent", extra={"month": month})
        return report
