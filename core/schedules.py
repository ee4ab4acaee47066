"""The monthly Schedules (expense report, management pack): created or brought up to date
by `journeys schedules` (idempotent). Client code, so it lives here and not beside the
workflows it starts (workflow modules import no client)."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleHandle,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleUpdate,
)

from contracts.invoice import MONTHLY_REPORT_SCHEDULE_ID, MONTHLY_REPORT_WORKFLOW, MonthlyReportInput
from contracts.management_pack import MANAGEMENT_PACK_SCHEDULE_ID, MANAGEMENT_PACK_WORKFLOW, ManagementPackInput
from core.settings import Settings


async def _ensure_monthly(
    client: Client,
    settings: Settings,
    schedule_id: str,
    workflow: str,
    arg: object,
    minute: int,
    task_queue: str | None,
) -> ScheduleHandle:
    """Run `workflow(arg)` at 07:`minute` on the 1st of every month, network time."""
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            workflow,
            arg,
            id=f"{schedule_id}-run",
            task_queue=task_queue or settings.temporal_task_queue,
            execution_timeout=timedelta(days=1),
        ),
        spec=ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(
                    day_of_month=[ScheduleRange(1)],
                    hour=[ScheduleRange(7)],
                    minute=[ScheduleRange(minute)],
                    comment=f"07:{minute:02d} on the 1st, network time",
                )
            ],
            time_zone_name=settings.network_timezone,
        ),
        # A missed run (cluster down over the 1st) still happens within 3 days.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=timedelta(days=3)),
    )
    try:
        return await client.create_schedule(schedule_id, schedule)
    except ScheduleAlreadyRunningError:
        handle = client.get_schedule_handle(schedule_id)
        await handle.update(lambda _: ScheduleUpdate(schedule=schedule))
        return handle


async def ensure_expense_report_schedule(
    client: Client, settings: Settings, task_queue: str | None = None, schedule_id: str = MONTHLY_REPORT_SCHEDULE_ID
) -> ScheduleHandle:
    """The monthly expense report (SPEC §5.7): 07:00 on the 1st."""
    arg = MonthlyReportInput(timezone=settings.network_timezone)
    return await _ensure_monthly(client, settings, schedule_id, MONTHLY_REPORT_WORKFLOW, arg, 0, task_queue)


async def ensure_management_pack_schedule(
    client: Client, settings: Settings, task_queue: str | None = None, schedule_id: str = MANAGEMENT_PACK_SCHEDULE_ID
) -> ScheduleHandle:
    """The monthly management pack: 07:30 on the 1st."""
    arg = ManagementPackInput(timezone=settings.network_timezone)
    return await _ensure_monthly(client, settings, schedule_id, MANAGEMENT_PACK_WORKFLOW, arg, 30, task_queue)


ALL = (ensure_expense_report_schedule, ensure_management_pack_schedule)
