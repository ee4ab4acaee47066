"""The bare Temporal floor the bench compares our journeys with: one workflow that optionally
sleeps until an instant, runs one no-op activity and returns the time it ran; optionally it
then waits for a `poke` signal (answered by the `poked` query). Its worker runs as its own
process, with the SDK's default tuning: `python -m bench.bare <address> <task queue>`."""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.worker import Worker

BARE_WORKFLOW = "BenchBare"


@dataclass
class BareInput:
    wake_at: float | None = None  # epoch seconds; None = run the activity at once
    wait_for_poke: bool = False


@activity.defn(name="bench_tick")
async def bench_tick() -> float:
    return time.time()


@workflow.defn(name=BARE_WORKFLOW)
class BareWorkflow:
    def __init__(self) -> None:
        self.poked = False

    @workflow.run
    async def run(self, inp: BareInput) -> float:
        if inp.wake_at is not None:
            delay = inp.wake_at - workflow.now().timestamp()
            if delay > 0:
                await workflow.sleep(delay)
        # 10 s, not 60: in 3 of 7 runs of 300, one result came ~60 s after the others (62-65 s
        # against ~23 s), the shape of an attempt lost on its way to the worker and retried only
        # when this timeout ran out. A no-op needs milliseconds; the floor must not wait a minute.
        ran = await workflow.execute_activity(bench_tick, start_to_close_timeout=timedelta(seconds=10))
        if inp.wait_for_poke:
            await workflow.wait_condition(lambda: self.poked)
        return ran

    @workflow.signal(name="poke")
    def poke(self) -> None:
        self.poked = True

    @workflow.query(name="poked")
    def is_poked(self) -> bool:
        return self.poked


async def main(task_queue: str) -> None:
    from core.settings import Settings
    from core.temporal import connect

    client = await connect(Settings())
    async with Worker(client, task_queue=task_queue, workflows=[BareWorkflow], activities=[bench_tick]):
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
