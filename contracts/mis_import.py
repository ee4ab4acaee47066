"""The MIS import's contract: workflow names, ids and the dataclasses that cross between
the import workflows, their activities and the API. Pure (no SQLModel): safe inside
workflows. Versionable: add fields with defaults, never rename."""

from __future__ import annotations

from dataclasses import dataclass, field

from temporalio import activity

IMPORT_WORKFLOW = "MisImport"
DROP_FOLDER_WORKFLOW = "MisDropFolder"


def import_workflow_id(import_id: str) -> str:
    return f"mis-import-{import_id}"


def drop_schedule_id(clinic_id: str) -> str:
    return f"mis-drop-{clinic_id}"


@dataclass
class ImportInput:
    import_id: str
    batch_size: int = 200
    concurrency: int = 4


@dataclass
class ImportPlan:
    """`prepare_import` result: batches to apply, in phases (a phase after the previous)."""

    total_rows: int
    phases: list[list[int]] = field(default_factory=list)
    failed: bool = False


@dataclass
class BatchRef:
    import_id: str
    batch: int


@dataclass
class DropScan:
    clinic_id: str


@dataclass
class DropResult:
    import_ids: list[str] = field(default_factory=list)
    skipped: int = 0  # files seen before (same content): moved aside, not imported again


class ImportActivityStubs:
    """The MIS import's activities (implemented by activities.imports)."""

    @activity.defn(name="prepare_import")
    async def prepare_import(self, inp: ImportInput) -> ImportPlan:
        raise NotImplementedError

    @activity.defn(name="apply_import_batch")
    async def apply_import_batch(self, ref: BatchRef) -> int:
        raise NotImplementedError

    @activity.defn(name="finish_import")
    async def finish_import(self, import_id: str) -> str:
        raise NotImplementedError

    @activity.defn(name="scan_drop_folder")
    async def scan_drop_folder(self, scan: DropScan) -> DropResult:
        raise NotImplementedError
