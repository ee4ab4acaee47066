"""What one journey kept in the worker's sticky cache costs its memory, by workflow runner.

A journey waiting for its next timer stays in the worker's memory (the sticky cache) until it
is evicted; an evicted journey is rebuilt from its whole history when its next task comes. The
10k burst in `python -m bench` is lost there: with more journeys waiting than the cache holds,
nearly every ask rebuilds one. This measures the cache's price per journey, so it can be cut.

Each side runs in its own process (so memory one side freed does not hide the other's growth),
on one Temporal dev server, with a worker in that process whose cache holds every journey:

  * `bare`: the bench's bare floor (a sleep, one activity), the SDK's default runner;
  * `ours`: the appointment journey with the worker's runner (`core.temporal.workflow_runner`,
    unsandboxed unless WORKFLOW_SANDBOX), its activities replaced by name with instant fakes (no
    database, no provider): only the journey's own memory is measured. Each journey sends its
    booking notice and then waits for its day-before ask, weeks away: the shape of the 10k
    burst's journeys before their instant;
  * `ours-sandboxed`: the same in Temporal's workflow sandbox (`workflow_runner(sandbox=True)`).

It prints per cached journey: RSS over the process's before (growth / N), and with `--trace`
the Python heap's growth (tracemalloc) by file, the largest first.

Usage: .venv/bin/python -m bench.cache_cost [--n 1000] [--trace] [--sides bare,ours,ours-sandboxed]
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import cProfile
import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker, WorkflowRunner

from bench.__main__ import PROJECT_ROOT, bounded
from bench.bare import BareInput, BareWorkflow, bench_tick
from bench.counters import until_still
from contracts.appointment import (
    APPOINTMENT_STATE_QUERY,
    AppointmentContext,
    AppointmentInput,
    AppointmentSend,
    appointment_workflow_id,
)
from contracts.common import CancelTasks, OutboundMessage, SendResult, TaskRef, TaskRequest, VoiceCall
from contracts.policy import JourneyPolicy
from core.temporal import exit_without_teardown, start_dev_server, workflow_runner

SIDES = ("bare", "ours", "ours-sandboxed")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Fakes:
    """The appointment journey's activities, answering at once; `calls` counts them."""

    def __init__(self) -> None:
        self.calls = 0
        self.keys: set[str] = set()  # sends by idempotency key, as the outbox dedupes them

    def activities(self) -> list[Any]:
        @activity.defn(name="load_appointment_context")
        async def load_context(req: Any) -> AppointmentContext:
            self.calls += 1
            return AppointmentContext(clinic_name="Clinic", doctor_name="Dr", link="http://x/a")

        @activity.defn(name="sync_appointment")
        async def sync(snap: Any) -> None:
            self.calls += 1

        @activity.defn(name="send_patient_message")
        async def send(msg: OutboundMessage) -> SendResult:
            self.calls += 1
            self.keys.add(msg.idempotency_key)
            return SendResult(status="sent", channel="sms", provider_message_id=uuid.uuid4().hex)

        @activity.defn(name="send_appointment_message")
        async def send_with_row(req: AppointmentSend) -> SendResult:
            return await send(req.message)  # no row: the journey writes it (sync_appointment)

        @activity.defn(name="place_voice_call")
        async def call(c: VoiceCall) -> SendResult:
            self.calls += 1
            return SendResult(status="sent", channel="voice")

        @activity.defn(name="create_operator_task")
        async def task(t: TaskRequest) -> TaskRef:
            self.calls += 1
            return TaskRef(task_id=uuid.uuid4().hex, created=True)

        @activity.defn(name="cancel_operator_tasks")
        async def cancel(c: CancelTasks) -> int:
            self.calls += 1
            return 0

        return [load_context, sync, send, send_with_row, call, task, cancel]


def heap_by_file(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, n: int, top: int) -> list[str]:
    stats = after.compare_to(before, "filename")
    root = str(PROJECT_ROOT) + os.sep
    out = []
    for s in stats[:top]:
        name = s.traceback[0].filename.replace(root, "")
        for marker in ("site-packages" + os.sep, "lib" + os.sep + "python3"):
            if marker in name:
                name = name.split(marker, 1)[1]
        out.append(f"    {s.size_diff / n / 1024:7.1f} KiB  {name}")
    return out


async def settled(client: Client, ids: list[str], fakes: Fakes) -> None:
    """Until every started workflow has completed its first workflow task (its instance built,
    in the cache and waiting) and the fakes have stood still for 3 s (our journeys' notices sent).
    The bare floor calls no fake before its sleep, so the first condition is its only signal."""

    async def unbuilt(some: list[str]) -> list[str]:
        described = await bounded(len(some), 50, lambda i: client.get_workflow_handle(some[i]).describe())
        # started, task scheduled, task started, task completed: the first task is done
        return [w for w, d in zip(some, described, strict=True) if d.history_length < 4]

    deadline = time.monotonic() + 900
    waiting = list(ids)
    while waiting:
        waiting = await unbuilt(waiting)
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(waiting)} workflows never completed their first task")
        if waiting:
            await asyncio.sleep(0.5)
    await until_still(lambda: fakes.calls, quiet_for=3.0, timeout=900)


async def side(name: str, address: str, n: int, trace: bool, top: int, profile: str | None) -> dict[str, Any]:
    client = await Client.connect(address)
    tq = f"cache-{name}-{uuid.uuid4().hex[:6]}"
    fakes = Fakes()
    if name == "bare":
        workflows: list[Any] = [BareWorkflow]
        activities: list[Any] = [bench_tick]
        runner: WorkflowRunner | None = None
    else:
        workflows, activities = [_journey()], fakes.activities()
        runner = workflow_runner(sandbox=name == "ours-sandboxed")
    kw: dict[str, Any] = {"workflow_runner": runner} if runner else {}
    far = datetime.now(UTC) + timedelta(days=30)
    rebuilds = min(n, 200)
    policy = JourneyPolicy(quiet_hours=None)

    ids: list[str] = []

    async def start(i: int) -> None:
        if name == "bare":
            wid = f"bare-{tq}-{i}"
            await client.start_workflow(BareWorkflow.run, BareInput(wake_at=far.timestamp() + i), id=wid, task_queue=tq)
            ids.append(wid)
            return
        aid = uuid.uuid4().hex
        inp = AppointmentInput(
            appointment_id=aid,
            clinic_id="c1",
            patient_id=f"p{i}",
            doctor_id="d1",
            starts_at=far + timedelta(minutes=30 * i),
            duration_minutes=30,
            service="Consultation",
            timezone="Europe/Kyiv",
            policy=policy,
            booked_at=datetime.now(UTC),
        )
        await client.start_workflow("AppointmentJourney", inp, id=appointment_workflow_id(aid), task_queue=tq)
        ids.append(appointment_workflow_id(aid))

    query = "poked" if name == "bare" else APPOINTMENT_STATE_QUERY

    async def queries(some: list[str]) -> tuple[float, float]:
        """CPU ms and wall ms per query, one after the other."""
        c0, t0 = time.process_time(), time.monotonic()
        for wid in some:
            await client.get_workflow_handle(wid).query(query)
        return (time.process_time() - c0) * 1000 / len(some), (time.monotonic() - t0) * 1000 / len(some)

    async with Worker(
        client,
        task_queue=tq,
        workflows=workflows,
        activities=activities,
        max_cached_workflows=n + 100,
        **kw,
    ):
        warm = min(20, n)  # the first instances load modules the rest share: not per journey
        await bounded(warm, 20, start)
        await settled(client, ids, fakes)
        gc.collect()
        if trace:
            tracemalloc.start(1)
            snap0 = tracemalloc.take_snapshot()
        r0 = rss()
        t0 = time.monotonic()
        await bounded(n, 50, lambda i: start(warm + i))
        await settled(client, ids, fakes)
        took = time.monotonic() - t0
        gc.collect()
        r1 = rss()
        out: dict[str, Any] = {"side": name, "n": n, "rss_per": (r1 - r0) / n, "seconds": took}
        if name != "bare":
            out["notices"] = len(fakes.keys)
        if trace:
            snap1 = tracemalloc.take_snapshot()
            cur = sum(s.size_diff for s in snap1.compare_to(snap0, "filename"))
            out["heap_per"] = cur / n
            out["by_file"] = heap_by_file(snap0, snap1, n, top)
            tracemalloc.stop()
        out["query_cached"] = await queries(ids[warm : warm + rebuilds])
    # A worker whose cache holds two journeys: each query rebuilds its journey from its history
    # (a new instance, the history replayed), as an ask does in a burst larger than the cache.
    async with Worker(client, task_queue=tq, workflows=workflows, activities=activities, max_cached_workflows=2, **kw):
        await queries(ids[:warm])  # the first queries may wait for the old worker's sticky queue
        prof = cProfile.Profile() if profile else None
        if prof:
            prof.enable()
        out["query_rebuilt"] = await queries(ids[warm : warm + rebuilds])
        if prof and profile:
            prof.disable()
            prof.dump_stats(f"{profile}.{name}")
    return out


def _journey() -> Any:
    from workflows.appointment import AppointmentJourney

    return AppointmentJourney


async def main(args: argparse.Namespace) -> None:
    # Byte-compiled, as the image and the bench's worker run it (PYTHONDONTWRITEBYTECODE may be
    # set here): the sandbox would otherwise compile the journey's source for every instance.
    compileall.compile_dir(PROJECT_ROOT / "workflows", quiet=1)
    env = await start_dev_server()
    try:
        address = env.client.service_client.config.target_host
        results = []
        for name in args.sides.split(","):
            cmd = [sys.executable, "-m", "bench.cache_cost", "--side", name, "--address", address, "--n", str(args.n)]
            cmd += ["--trace"] if args.trace else []
            cmd += ["--top", str(args.top)] + (["--cprofile", args.cprofile] if args.cprofile else [])
            done = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
            if done.returncode:
                sys.stderr.write(done.stderr)
                raise SystemExit(f"side {name} failed ({done.returncode})")
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    finally:
        await env.shutdown()
    print(f"per journey kept in the sticky cache, {args.n} journeys each side:")
    for r in results:
        line = f"  {r['side']:18s} RSS +{r['rss_per'] / 1024:6.1f} KiB"
        if "heap_per" in r:
            line += f", Python heap +{r['heap_per'] / 1024:6.1f} KiB"
        line += f"  ({r['seconds']:.1f} s to build"
        line += f", {r['notices']} notices)" if "notices" in r else ")"
        print(line)
        (cc, cw), (rc, rw) = r["query_cached"], r["query_rebuilt"]
        print(
            f"  {'':18s} query: cached {cc:.2f} ms CPU ({cw:.2f} ms wall);"
            f" rebuilt from history {rc:.2f} ms CPU ({rw:.2f} ms wall)"
        )
        for f in r.get("by_file", []):
            print(f)


def cli() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1000, help="journeys per side (default 1000)")
    p.add_argument("--trace", action="store_true", help="the Python heap's growth by file (tracemalloc)")
    p.add_argument("--top", type=int, default=15, help="files shown with --trace")
    p.add_argument("--sides", default=",".join(SIDES), help=f"some of {', '.join(SIDES)}")
    p.add_argument("--cprofile", help="profile each side's rebuilds into FILE.<side> (pstats)")
    p.add_argument("--side", help=argparse.SUPPRESS)
    p.add_argument("--address", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.side:
        out = asyncio.run(side(args.side, args.address, args.n, args.trace, args.top, args.cprofile))
        print(json.dumps(out))
        exit_without_teardown(0)
    for s in args.sides.split(","):
        if s not in SIDES:
            p.error(f"unknown side {s!r}: one of {', '.join(SIDES)}")
    asyncio.run(main(args))
    exit_without_teardown(0)  # the dev server's client threads may outlive the loop


if __name__ == "__main__":
    cli()
