"""Contract of the monthly management pack (issue 13): names and payloads shared by the
workflow, its activity and `journeys schedules`. Payloads carry no patient data: the
workbook stays on disk under DATA_DIR and only its path travels through history."""

from __future__ import annotations

from dataclasses import dataclass, field

from temporalio import activity

MANAGEMENT_PACK_WORKFLOW = "MonthlyManagementPack"
MANAGEMENT_PACK_SCHEDULE_ID = "monthly-management-pack"
BUILD_MANAGEMENT_PACK_ACTIVITY = "build_management_pack"
PACK_RECIPIENTS_ACTIVITY = "management_pack_recipients"
MANAGEMENT_PACK_RECIPIENT_ROLE = "director"


@dataclass
class ManagementPackInput:
    timezone: str = "Europe/Kyiv"
    month: str | None = None  # YYYY-MM; None: the month before the run's own date
    clinic_id: str | None = None  # None: the whole network; else one clinic's pack


@dataclass
class PackRecipients:
    """Directors by reach (staff ids only): network directors get the network's pack; a
    director tied to a clinic gets that clinic's pack and never another's."""

    network: list[str] = field(default_factory=list)
    clinics: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class ManagementPackFile:
    month: str
    path: str
    filename: str
    sheets: int
    headline: dict[str, str] = field(default_factory=dict)  # figures for the e-mail body (no patient data)
    clinic_id: str | None = None
    clinic_name: str | None = None


@dataclass
class ManagementPackResult:
    month: str
    packs: list[ManagementPackFile] = field(default_factory=list)


class ManagementPackActivityStubs:
    @activity.defn(name=BUILD_MANAGEMENT_PACK_ACTIVITY)
    async def build_management_pack(self, inp: ManagementPackInput) -> ManagementPackFile:
        raise NotImplementedError

    @activity.defn(name=PACK_RECIPIENTS_ACTIVITY)
    async def management_pack_recipients(self, inp: ManagementPackInput) -> PackRecipients:
        raise NotImplementedError
