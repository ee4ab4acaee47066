"""The daily MIS import (SPEC §6): one workflow per file, visible in the Temporal UI.

`MisImport` reads and checks the file into per-row records once, then applies them in
batches, a bounded number at a time, phase after phase (patients before the children who
name them as guardian; cancellations of visits missing from an authoritative file last).
Each batch is an activity that heartbeats per row: if the worker dies, the batch is retried
elsewhere and skips the rows already done. `MisDropFolder` is what the clinic's daily
Schedule starts: it picks up the clinic's drop folder and starts one `MisImport` per new
file."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from contracts.mis_import import (
        DROP_FOLDER_WORKFLOW,
        IMPORT_WORKFLOW,
        BatchRef,
        DropResult,
        DropScan,
        ImportActivityStubs,
        ImportInput,
    )

PREPARE_TIMEOUT = timedelta(minutes=15)
BATCH_TIMEOUT = timedelta(minutes=30)
HEARTBEAT = timedelta(seconds=20)  # a dead worker's batch moves on after this
FINISH_TIMEOUT = timedelta(seconds=60)
SCAN_TIMEOUT = timedelta(minutes=15)
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))


@workflow.defn(name=IMPORT_WORKFLOW)
class MisImport:
    def __init__(self) -> None:
        self.batches_total = 0
        self.batches_done = 0

    @workflow.run
    async def run(self, inp: ImportInput) -> str:
        plan = await workflow.execute_activity_method(
            ImportActivityStubs.prepare_import,
            inp,
            start_to_close_timeout=PREPARE_TIMEOUT,
            heartbeat_timeout=HEARTBEAT * 3,
            retry_policy=RETRY,
        )
        if not plan.failed:
            self.batches_total = sum(len(p) for p in plan.phases)
            limit = asyncio.Semaphore(max(1, min(inp.concurrency, 16)))
            for batches in plan.phases:
                await asyncio.gather(*(self._apply(inp.import_id, b, limit) for b in batches))
        return await workflow.execute_activity_method(
            ImportActivityStubs.finish_import, inp.import_id, start_to_close_timeout=FINISH_TIMEOUT, retry_policy=RETRY
        )

    async def _apply(self, import_id: str, batch: int, limit: asyncio.Semaphore) -> None:
        async with limit:
            await workflow.execute_activity_method(
                ImportActivityStubs.apply_import_batch,
                BatchRef(import_id, batch),
                start_to_close_timeout=BATCH_TIMEOUT,
                heartbeat_timeout=HEARTBEAT,
                retry_policy=RETRY,
            )
        self.batches_done += 1

    @workflow.query(name="progress")
    def progress(self) -> list[int]:
        return [self.batches_done, self.batches_total]


@workflow.defn(name=DROP_FOLDER_WORKFLOW)
class MisDropFolder:
    @workflow.run
    async def run(self, scan: DropScan) -> DropResult:
        return await workflow.execute_activity_method(
            ImportActivityStubs.scan_drop_folder,
            scan,
            start_to_close_timeout=SCAN_TIMEOUT,
            heartbeat_timeout=HEARTBEAT * 3,
            retry_policy=RETRY,
        )
