"""Contract of the monthly management pack (issue 13): names and payloads shared by the
workflow, its activity and `journeys schedules`. Payloads carry no patient data: the
workbook stays on disk under DATA_DIR and only its path travels through history."""

from __future__ import annotations

from dataclasses import dataclass, field

MANAGEMENT_PACK_WORKFLOW = "MonthlyManagementPack"
MANAGEMENT_PACK_SCHEDULE_ID = "monthly-management-pack"
BUILD_MANAGEMENT_PACK_ACTIVITY = "build_management_pack"
MANAGEMENT_PACK_RECIPIENT_ROLES = ["director"]


@dataclass
class ManagementPackInput:
    timezone: str = "Europe/Kyiv"
    month: str | None = None  # YYYY-MM; None: the month before the run's own date


@dataclass
class ManagementPackFile:
    month: str
    path: str
    filename: str
    sheets: int
    headline: dict[str, str] = field(default_factory=dict)  # network figures for the e-mail body
