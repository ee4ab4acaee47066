"""Per-journey costs of the worker path, counted rather than timed (issue 14): SQL statements,
write transactions (commits) and the worker's CPU per journey, for the booking notice, the
day-before ask and a patient's reply. Counts do not depend on how loaded the box is, so they
show whether a change made the worker do less, where the bench's ratios are noisy.

    .venv/bin/python -m bench.counters --n 50

One process: a Temporal dev server, a fresh SQLite database, the real worker (worker.build_worker)
in this process with SQLAlchemy's engine events counting. Each phase starts with the journeys
already waiting (started before the worker runs, or due at one instant), then counts from there
until the worker is quiet: the booking notices (context, row, notice; each visit's row booked
first, as the API does), the asks (the send and its sync), the replies (the API's inbound
routing, the signal, the journey's sync), the last also timing reply -> `confirmed` visible
through a query.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import cProfile
import io
import pstats
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, func
from sqlmodel import col, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from bench import trips
from bench.gctime import GcTimer
from bench.sdk import start_appointment
from contracts.appointment import AppointmentSnapshot, appointment_workflow_id
from contracts.policy import JourneyPolicy
from core import gc_policy
from core.db import make_engine, migrate, session_factory
from core.logging import configure_logging
from core.settings import PROJECT_ROOT, Settings
from core.temporal import connect, exit_without_teardown, start_dev_server
from models.appointment import Appointment
from models.core import Channel, Clinic, Doctor, MessageLog, Patient


def phase(what: str) -> None:
    """A phase's start and end on stderr as they happen (the report comes at the end), so a
    profiler can be attached to one phase: `py-spy record --pid ...` between the two lines."""
    print(f"phase: {what}", file=sys.stderr, flush=True)


class Meter:
    """SQL statements (by verb) and commits on one engine, and this process's CPU time."""

    def __init__(self, engine: Any) -> None:
        self.verbs: Counter[str] = Counter()
        self.commits = 0
        self.cpu0 = time.process_time()
        self.gc = GcTimer()
        self.trace = False
        trips.install()
        self.trips0 = trips.made()
        event.listen(engine.sync_engine, "before_cursor_execute", self._stmt)
        event.listen(engine.sync_engine, "commit", self._commit)

    def _stmt(self, _conn: Any, _cur: Any, statement: str, *_: Any) -> None:
        self.verbs[statement.lstrip().split(None, 1)[0].upper()] += 1
        if self.trace:
            print("   SQL", " ".join(statement.split())[:150])

    def _commit(self, _conn: Any) -> None:
        self.commits += 1
        if self.trace:
            print("   COMMIT")

    def reset(self) -> None:
        self.verbs.clear()
        self.commits = 0
        self.trips0 = trips.made()
        self.cpu0 = time.process_time()
        self.gc.on, self.gc.seconds = True, 0.0
        self.gc.collections.clear()

    def report(self, what: str, n: int) -> str:
        cpu = (time.process_time() - self.cpu0) * 1000
        stmts = sum(self.verbs.values())
        writes = sum(v for k, v in self.verbs.items() if k in ("INSERT", "UPDATE", "DELETE"))
        return (
            f"{what:<34} per journey: {stmts / n:5.1f} statements ({writes / n:4.1f} writes), "
            f"{self.commits / n:4.1f} commits, {(trips.made() - self.trips0) / n:4.1f} trips to the SQLite"
            f" driver's thread, {cpu / n:6.1f} ms CPU (GC {self.gc.seconds * 1000 / n:4.2f})"
            f"   [{dict(self.verbs)}; collections by generation {dict(sorted(self.gc.collections.items()))}]"
        )

    def quiet_since(self) -> tuple[int, int]:
        return sum(self.verbs.values()), self.commits


async def until_quiet(meter: Meter, quiet_for: float = 1.5, timeout: float = 300) -> None:
    await until_still(meter.quiet_since, quiet_for, timeout)


async def until_still(read: Callable[[], object], quiet_for: float, timeout: float) -> None:
    """Until `read()` has not changed for `quiet_for` seconds (the worker has gone quiet)."""
    deadline = time.monotonic() + timeout
    last, since = read(), time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        now = read()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_for:
            return
    raise RuntimeError("the worker never went quiet")


async def count_sent(sessions: Any, clinic_id: str, kind: str) -> int:
    async with sessions() as s:
        q = select(func.count()).where(
            MessageLog.clinic_id == clinic_id,
            MessageLog.kind == kind,
            col(MessageLog.status).in_(("sent", "unconfirmed")),
        )
        return int((await s.exec(q)).one())


async def wait_sent(sessions: Any, clinic_id: str, kind: str, n: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while (got := await count_sent(sessions, clinic_id, kind)) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {got}/{n} {kind} sent")
        await asyncio.sleep(0.5)


async def events(client: Client, aid: str) -> str:
    """How many history events a journey has, and how many of them are workflow tasks."""
    kinds: Counter[str] = Counter()
    async for e in client.get_workflow_handle(appointment_workflow_id(aid)).fetch_history_events():
        kinds[EventType.Name(e.event_type)] += 1
    wft = kinds["EVENT_TYPE_WORKFLOW_TASK_COMPLETED"]
    return f"{sum(kinds.values())} ({wft} workflow tasks completed)"


def profiled(prof: cProfile.Profile | None, what: str, top: int = 40) -> None:
    """Print the phase's profile: the event loop's thread (workflow activations, activities,
    SQLAlchemy), not the SDK core's threads or SQLite's own."""
    if prof is None:
        return
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    print(f"--- cProfile of {what} ---\n{out.getvalue()}")


def booked_row(clinic_id: str, doctor_id: str, patient_id: str, starts_at: datetime) -> Appointment:
    """A 30-minute check-up's row as `core.booking` writes it for an API booking whose journey
    started (these visits share a doctor and a time: the harness skips the slot check)."""
    row = Appointment(
        clinic_id=clinic_id,
        doctor_id=doctor_id,
        patient_id=patient_id,
        service="Check-up",
        starts_at=starts_at,
        ends_at=starts_at + timedelta(minutes=30),
        duration_minutes=30,
        workflow_id="",
        journey_started=True,
    )
    row.workflow_id = appointment_workflow_id(row.id)
    row.history = [{"at": datetime.now(UTC).isoformat(), "event": "booked", "stage": "booked"}]
    return row


async def main(n: int, trace: bool, profile: str | None = None) -> None:
    from conversations.inbound import Inbound, route_inbound
    from worker import build_worker, make_deps

    configure_logging("WARNING", json_output=True)
    # Byte-compiled, as the image and the bench's worker run it (PYTHONDONTWRITEBYTECODE may be
    # set here): the sandbox would otherwise compile the journey's source for every instance.
    compileall.compile_dir(PROJECT_ROOT / "workflows", quiet=1)
    env = await start_dev_server()
    data = Path(tempfile.mkdtemp(prefix="journeys-counters-"))
    try:
        settings = Settings(
            DATA_DIR=data,
            TEMPORAL_ADDRESS=env.client.service_client.config.target_host,
            TEMPORAL_TASK_QUEUE=f"counters-{uuid.uuid4().hex[:6]}",
            LOG_LEVEL="WARNING",
        )
        migrate(settings.database_url)
        client = await connect(settings)
        deps = make_deps(settings)
        tq = settings.temporal_task_queue
        async with deps.sessions() as s:
            clinic = Clinic(name="Counters", address="Kyiv", phone="+380441234567", timezone="Europe/Kyiv")
            s.add(clinic)
            await s.flush()
            doctor = Doctor(clinic_id=clinic.id, full_name="Dr Count", specialty="x")
            patients = [
                Patient(
                    full_name=f"Count Patient {i}",
                    phone=f"+38067{i:07d}",
                    preferred_channel=Channel.sms,
                    clinic_id=clinic.id,
                )
                for i in range(n)
            ]
            s.add(doctor)
            s.add_all(patients)
            await s.commit()
        cid, did, pids = clinic.id, doctor.id, [p.id for p in patients]
        meter = Meter(deps.engine)
        poll_engine = make_engine(settings.database_url)  # the harness's own reads are not counted
        polls = session_factory(poll_engine)
        meter.trace = trace
        lead = timedelta(hours=24)
        policy = JourneyPolicy(
            quiet_hours=None, reminder_lead=lead.total_seconds(), reask_interval=6 * 3600, voice_call_after=6 * 3600
        )
        # The asks fall due once the notices are all out (measured apart).
        due = datetime.now(UTC) + timedelta(seconds=20 + n * 0.3)
        # Each visit's row as an API booking commits it before starting the journey (stage
        # booked, history [booked]), so the notices are measured on production's shape.
        booked = [booked_row(cid, did, pid, due + lead) for pid in pids]
        async with deps.sessions() as s:
            s.add_all(booked)
            await s.commit()
        aids = await asyncio.gather(
            *(
                start_appointment(
                    client,
                    tq,
                    clinic_id=cid,
                    doctor_id=did,
                    patient_id=pids[i],
                    starts_at=due + lead,
                    policy=policy,
                    booked_at=datetime.now(UTC),
                    appointment_id=booked[i].id,
                )
                for i in range(n)
            )
        )
        lines = []
        worker = build_worker(client, deps, tq)
        gc_policy.tune(settings.worker_gc_threshold)  # as worker.run does: once built, before it polls
        async with worker:
            meter.reset()
            phase("notices start")
            prof = cProfile.Profile() if profile == "notice" else None
            if prof:
                prof.enable()
            await wait_sent(polls, cid, "booking_notice", n)
            await until_quiet(meter)
            lines.append(meter.report("booking notice (context+row+send)", n))
            phase("notices end")
            profiled(prof, "the booking notices")
            lines.append(f"  history events of a journey after its notice: {await events(client, aids[0])}")
            wait = (due - datetime.now(UTC)).total_seconds()
            if wait < 2:
                lines.append(f"  (the asks fell due {-wait:.1f} s before the notices were quiet: counts mix)")
            await asyncio.sleep(max(0.0, wait - 1))
            meter.reset()
            phase("asks start")
            prof = cProfile.Profile() if profile == "ask" else None
            if prof:
                prof.enable()
            await wait_sent(polls, cid, "reminder", n)
            async with polls() as s:
                q = select(MessageLog.updated_at).where(MessageLog.clinic_id == cid, MessageLog.kind == "reminder")
                late = sorted((t.replace(tzinfo=UTC) - due).total_seconds() for t in (await s.exec(q)).all() if t)
            await until_quiet(meter)
            lines.append(meter.report("day-before ask (send+sync)", n))
            phase("asks end")
            profiled(prof, "the asks")
            lines.append(
                f"  asks due at one instant: p99 {late[int(0.99 * (len(late) - 1))]:.2f} s late,"
                f" drain {n / max(1e-3, late[-1] - min(0.0, late[0])):.1f} sends/s"
            )
            lines.append(f"  history events of a journey after its ask: {await events(client, aids[0])}")

            meter.reset()
            phase("replies start")
            prof = cProfile.Profile() if profile == "reply" else None
            visible: list[float] = []
            routed: list[float] = []
            for aid, pid in zip(aids, pids, strict=True):
                t0 = time.perf_counter()
                msg = Inbound(
                    channel=Channel.sms,
                    source="sandbox",
                    kind="text",
                    dedup_key=f"c-{uuid.uuid4().hex}",
                    patient_id=pid,
                    text="так",
                    received_at=datetime.now(UTC),
                )
                if prof:  # the routing only (and whatever the worker runs meanwhile in this thread)
                    prof.enable()
                await route_inbound(deps.sessions, client, msg)
                if prof:
                    prof.disable()
                routed.append((time.perf_counter() - t0) * 1000)
                h = client.get_workflow_handle(appointment_workflow_id(aid))
                while True:
                    view: AppointmentSnapshot = await h.query("state", result_type=AppointmentSnapshot)
                    if view.stage == "confirmed":
                        break
                    await asyncio.sleep(0.002)
                visible.append((time.perf_counter() - t0) * 1000)
            await until_quiet(meter)
            lines.append(meter.report("reply (routing+signal+sync)", n))
            phase("replies end")
            profiled(prof, "the replies' inbound routing")
            lines.append(
                f"  reply -> confirmed in a query, in process: p50 {statistics.median(visible):.1f} ms,"
                f" p90 {sorted(visible)[int(0.9 * (len(visible) - 1))]:.1f} ms"
                f" (of which inbound routing with its signal p50 {statistics.median(routed):.1f} ms)"
            )
        print("\n".join(lines))
        await deps.http.aclose()
        await deps.engine.dispose()
        await poll_engine.dispose()
    finally:
        await env.shutdown()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=50, help="journeys")
    p.add_argument("--trace", action="store_true", help="print every statement and commit (use with --n 1)")
    p.add_argument(
        "--cprofile",
        choices=("notice", "ask", "reply"),
        help="profile one phase in process (cProfile: its own overhead inflates the CPU figures)",
    )
    a = p.parse_args()
    asyncio.run(main(a.n, a.trace, a.cprofile))
    exit_without_teardown(0)  # the Temporal client's threads may outlive the loop
