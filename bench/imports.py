"""The daily MIS import at scale: a visits file of N rows (default 10,000) into one clinic
of the network, beside the raw Temporal SDK starting the same number of appointment
journeys on the same server, in one run; then the same file again (which must change
nothing). Printed, never asserted (goals: import <= 1.5x the SDK, re-import <= 0.2x the
first import).

Both sides run with the worker as its own process (as in production), which also runs the
journeys they start; between phases the bench waits until the worker has sent every
booking notice of the previous phase, so each phase starts on a quiet worker.

Usage: make bench-imports   (or .venv/bin/python -m bench.imports --rows 2000 [--database-url ...]
       [--journeys paused]: the journeys' worker paused while both sides are timed)
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func
from sqlmodel import col, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

from activities.imports import IN_FLIGHT
from bench.__main__ import env_for
from bench.sdk import start_appointment
from contracts.appointment import APPOINTMENT_WORKFLOW
from core import imports
from core import search_attributes as sa
from core.db import make_engine, migrate, session_factory
from core.logging import configure_logging
from core.settings import PROJECT_ROOT, Settings
from core.temporal import connect, exit_without_teardown, start_dev_server
from models.core import Clinic, Doctor, MessageLog, Patient, policy_from_json
from models.imports import ImportKind, ImportRun

DOCTORS = 50
SLOTS_PER_DAY = 24  # 30-minute visits, 08:00-20:00
# SDK starts in flight at once: IN_FLIGHT, what an import worker process allows (activities.imports).


def visits_csv(rows: int, tz: ZoneInfo) -> bytes:
    first_day = (datetime.now(tz) + timedelta(days=1)).date()
    lines = ["ID визита;№ карты;ФИО;Телефон;Дата;Время;Врач;Услуга"]
    for i in range(rows):
        doctor, rest = i % DOCTORS, i // DOCTORS
        day, slot = first_day + timedelta(days=rest // SLOTS_PER_DAY), rest % SLOTS_PER_DAY
        hh, mm = 8 + slot // 2, 30 * (slot % 2)
        lines.append(
            f"V{i:06d};P{i:06d};Пациент Тестовый {i};+38067{1000000 + i:07d};{day:%d.%m.%Y};{hh:02d}:{mm:02d};"
            f"Врач Номер {doctor};Осмотр"
        )
    return ("\n".join(lines) + "\n").encode("utf-8")


async def phases(handle: WorkflowHandle) -> str:
    """Where the import's wall time went, from its history: each activity kind's span
    (first scheduled to last completed) and how many ran."""
    spans: dict[str, list[float]] = {}
    names: dict[int, str] = {}
    t0: float | None = None
    async for e in handle.fetch_history_events():
        at = e.event_time.ToDatetime().timestamp()
        t0 = at if t0 is None else t0
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            name = e.activity_task_scheduled_event_attributes.activity_type.name
            names[e.event_id] = name
            spans.setdefault(name, [at, at, 0])
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            span = spans[names[e.activity_task_completed_event_attributes.scheduled_event_id]]
            span[1], span[2] = at, span[2] + 1
    assert t0 is not None
    return ", ".join(
        f"{name} {a - t0:.1f}-{b - t0:.1f} s (x{int(n)})"
        for name, (a, b, n) in sorted(spans.items(), key=lambda i: i[1][0])
    )


async def main(rows: int, database_url: str | None, journeys: str = "running") -> None:
    env = await start_dev_server()
    data = Path(tempfile.mkdtemp(prefix="journeys-bench-imports-"))
    settings = Settings(
        DATA_DIR=data,
        TEMPORAL_ADDRESS=env.client.service_client.config.target_host,
        TEMPORAL_TASK_QUEUE="bench-imports",
        LOG_LEVEL="WARNING",
    )
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    configure_logging("WARNING", json_output=True)
    migrate(settings.database_url)
    engine = make_engine(settings.database_url)
    sessions = session_factory(engine)
    client = await connect(settings)
    # Two worker processes, as production runs a big import: one for the journeys' queue and
    # one for the imports' queue (WORKER_QUEUES), so the import gets its own CPU instead of
    # sharing one process with the thousand journeys it starts.
    worker = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "worker.py")],
        env=env_for(settings, WORKER_QUEUES="journeys", WORKER_METRICS_PORT="0"),
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
    )
    import_worker = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "worker.py")],
        env=env_for(settings, WORKER_QUEUES="imports", WORKER_METRICS_PORT="0"),
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
    )
    try:
        async with sessions() as s:
            clinic = Clinic(
                name=f"Bench {uuid.uuid4().hex[:4]}",
                address="Kyiv",
                phone="+380441234567",
                timezone="Europe/Kyiv",
                policy={"quiet_hours": None},
            )
            s.add(clinic)
            await s.flush()
            doctors = [
                Doctor(clinic_id=clinic.id, full_name=f"Врач Номер {d}", specialty="therapy") for d in range(DOCTORS)
            ]
            # One patient per journey, as the import's visits have (a journey's sync reads its
            # patient's visits: one patient for all would make the baseline's journeys heavier).
            patients = [
                Patient(full_name=f"SDK Patient {i}", phone=f"+38050{1000000 + i:07d}", clinic_id=clinic.id)
                for i in range(rows)
            ]
            s.add_all([*doctors, *patients])
            await s.commit()
        content = visits_csv(rows, ZoneInfo(clinic.timezone))

        async def notices() -> int:
            async with sessions() as s:
                q = select(func.count()).select_from(MessageLog).where(MessageLog.kind == "booking_notice")
                return int((await s.exec(q)).one())

        async def quiet(expected: int) -> None:
            if journeys == "paused":  # nothing runs the journeys: no backlog to wait for
                return
            """Wait until the worker sent every booking notice started so far (at most 15 min,
            or 0.2 s a row for a big file: 2 cores send about 10 a second under load); says
            so when it gave up, as the next phase then shares the worker with the last's."""
            deadline = time.monotonic() + max(900.0, 0.2 * rows)
            while (sent := await notices()) < expected and time.monotonic() < deadline:
                await asyncio.sleep(1)
            if sent < expected:
                print(f"  (worker not quiet: {expected - sent} booking notices still to send)", flush=True)

        # -- baseline: the raw SDK starts N appointment journeys, IN_FLIGHT at a time
        base = datetime.now(UTC) + timedelta(days=60)
        limit = asyncio.Semaphore(IN_FLIGHT)

        async def sdk_start(i: int) -> None:
            async with limit:
                await start_appointment(
                    client,
                    settings.temporal_task_queue,
                    clinic_id=clinic.id,
                    doctor_id=doctors[i % DOCTORS].id,
                    patient_id=patients[i].id,
                    starts_at=base + timedelta(minutes=30 * i),
                    # The clinic's own policy, as the import's journeys get it (with the
                    # default quiet hours an evening run would send no notice until morning).
                    policy=policy_from_json(clinic.policy),
                    service="Осмотр",
                    timezone=clinic.timezone,
                )

        async def journeys_started() -> int:
            q = f"WorkflowType='{APPOINTMENT_WORKFLOW}' AND {sa.CLINIC_ID.name}='{clinic.id}'"
            return (await client.count_workflows(q)).count

        db = settings.database_url.split(":", 1)[0]
        print(
            f"\nMIS import bench: {rows} visit rows, one clinic, {DOCTORS} doctors, {db}, one run, "
            f"journeys' worker {journeys}",
            flush=True,
        )
        if journeys == "paused":
            # Both sides then measure starting the journeys alone, on the same server, with no
            # journey running beside them (a big file's notices would otherwise be a backlog
            # that the next phase shares: at 10k rows, a half-hour wait per phase).
            worker.send_signal(signal.SIGSTOP)
        t0 = time.perf_counter()
        await asyncio.gather(*(sdk_start(i) for i in range(rows)))
        sdk_s = time.perf_counter() - t0
        print(f"raw SDK: start {rows} AppointmentJourney ({IN_FLIGHT} in flight)  {sdk_s:8.1f} s", flush=True)
        await quiet(rows)

        async def run_import(name: str) -> tuple[float, dict[str, int]]:
            t0 = time.perf_counter()
            async with sessions() as s:
                c = await s.get(Clinic, clinic.id)
                assert c is not None
                run, _ = await imports.register(
                    s, clinic=c, kind=ImportKind.visits, file_name=name, content=content, source="cli"
                )
                await imports.start(client, settings.temporal_task_queue, run)
            handle = client.get_workflow_handle(run.workflow_id)
            await handle.result()
            took = time.perf_counter() - t0
            print(f"  {name}: {await phases(handle)}", flush=True)
            async with sessions() as s:
                fresh = await s.get(ImportRun, run.id)
                assert fresh is not None
                st = await imports.status(s, fresh, with_errors=False)
            return took, st.counts

        first_s, first = await run_import("visits.csv")
        print(
            f"import (file -> rows -> patients, visits, journeys)      {first_s:8.1f} s   "
            f"{first_s / sdk_s:5.2f}x the SDK (goal <= 1.5x)   {first}",
            flush=True,
        )
        await quiet(2 * rows)
        sent_before = await notices()
        started_before = await journeys_started()
        again_s, again = await run_import("visits-again.csv")
        await asyncio.sleep(2)
        sent_after = await notices()
        started_after = await journeys_started()
        async with sessions() as s:
            q = select(func.count()).select_from(Patient).where(col(Patient.clinic_id) == clinic.id)
            n_patients = int((await s.exec(q)).one())

        print(
            f"re-import of the same file                              {again_s:8.1f} s   "
            f"{again_s / first_s:5.2f}x the first (goal <= 0.2x)   {again}"
        )
        print(
            f"re-import started {started_after - started_before} journeys and sent {sent_after - sent_before}"
            f" messages; {n_patients - rows} patients for {rows} rows; {started_after} journeys in all"
        )
    finally:
        for w in (worker, import_worker):
            w.terminate()
            w.send_signal(signal.SIGCONT)  # a paused worker handles its SIGTERM once continued
        for w in (worker, import_worker):
            w.wait(timeout=30)
        await engine.dispose()
        await env.shutdown()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=10_000, help="visit rows in the file")
    p.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    p.add_argument(
        "--journeys",
        choices=("running", "paused"),
        default="running",
        help="the journeys' worker runs the started journeys (default, as in production), or is paused "
        "while both sides are timed, so they measure the starts alone with no backlog between phases",
    )
    args = p.parse_args()
    asyncio.run(main(args.rows, args.database_url, args.journeys))
    exit_without_teardown(0)  # the Temporal client's threads may outlive the loop
