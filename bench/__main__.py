"""How much does the API add over the Temporal SDK itself?

One run, on this machine, against a real Temporal dev server (the binary `make install`
builds), a migrated database (SQLite by default), the worker as its own process (as in
production) and the API served by uvicorn on loopback. For each operation the same work is
done N times through the raw SDK and through the HTTP API, interleaved so both see the same
background load (the worker running the journeys just started), and the ratio of medians is
printed:

  start    client.start_workflow(AppointmentJourney)  vs  POST /v1/appointments
           (the API also validates, checks the doctor's slot and writes the row)
  query    handle.query("state")                       vs  GET /v1/appointments/{id}
  update   handle.execute_update("cancel")             vs  POST /v1/appointments/{id}/cancel

Usage: make bench   (or .venv/bin/python -m bench --n 50)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.testing import WorkflowEnvironment

from contracts.appointment import APPOINTMENT_WORKFLOW, AppointmentInput, CancelRequest, appointment_workflow_id
from core import search_attributes as sa
from core.db import migrate
from core.logging import configure_logging
from core.settings import PROJECT_ROOT, Settings
from core.temporal import connect
from models.core import Role

TEMPORAL_BIN = PROJECT_ROOT / ".tools" / "bin" / "temporal"


async def timed(n: int, *fns: Callable[[int], Awaitable[Any]]) -> list[list[float]]:
    """Run fns[0](i), fns[1](i), ... for i in range(n), interleaved; milliseconds per fn."""
    out: list[list[float]] = [[] for _ in fns]
    for i in range(n):
        for j, fn in enumerate(fns):
            t0 = time.perf_counter()
            await fn(i)
            out[j].append((time.perf_counter() - t0) * 1000)
    return out


def _env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        if field.alias and value not in (None, ""):
            env[field.alias] = ",".join(value) if isinstance(value, list) else str(value)
    return env


def row(name: str, sdk: list[float], api: list[float]) -> str:
    ms, ma = statistics.median(sdk), statistics.median(api)
    return f"{name:<8} sdk p50 {ms:7.1f} ms   api p50 {ma:7.1f} ms   api/sdk {ma / ms:5.2f}x"


async def main(n: int, database_url: str | None = None) -> None:
    import socket

    from api.main import create_app
    from cli import _create_user

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=str(TEMPORAL_BIN), search_attributes=sa.ALL)
    data = Path(tempfile.mkdtemp(prefix="journeys-bench-"))
    settings = Settings(
        DATA_DIR=data,
        TEMPORAL_ADDRESS=env.client.service_client.config.target_host,
        TEMPORAL_TASK_QUEUE="bench",
        API_PORT=port,
        LOG_LEVEL="WARNING",
    )
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    configure_logging("WARNING", json_output=True)
    migrate(settings.database_url)
    await _create_user(settings.database_url, "bench", "bench-password", Role.admin, None, None, False)
    client = await connect(settings)
    worker = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "worker.py")],
        env=_env(settings),
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
    )
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.05)
        http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30)
        token = (await http.post("/v1/auth/token", data={"username": "bench", "password": "bench-password"})).json()[
            "access_token"
        ]
        http.headers["Authorization"] = f"Bearer {token}"
        clinic = (
            await http.post(
                "/v1/clinics",
                json={
                    "name": "Bench",
                    "address": "Kyiv",
                    "phone": "+380441234567",
                    "timezone": "Europe/Kyiv",
                    "policy": {"quiet_hours": None},
                },
            )
        ).json()
        doctor = (
            await http.post(
                "/v1/doctors", json={"clinic_id": clinic["id"], "full_name": "Dr Bench", "specialty": "therapy"}
            )
        ).json()
        patient = (
            await http.post(
                "/v1/patients",
                json={"full_name": "Bench Patient", "phone": "+380671234567", "preferred_channel": "sms"},
            )
        ).json()
        base = datetime.now(UTC) + timedelta(days=3)

        sdk_ids: list[str] = []

        async def sdk_start(i: int) -> None:
            aid = uuid.uuid4().hex
            start = base + timedelta(hours=i)
            await client.start_workflow(
                APPOINTMENT_WORKFLOW,
                AppointmentInput(
                    appointment_id=aid,
                    clinic_id=clinic["id"],
                    patient_id=patient["id"],
                    doctor_id=doctor["id"],
                    starts_at=start,
                    duration_minutes=30,
                    service="Check-up",
                    timezone="Europe/Kyiv",
                ),
                id=appointment_workflow_id(aid),
                task_queue=settings.temporal_task_queue,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(sa.CLINIC_ID, clinic["id"]),
                        SearchAttributePair(sa.APPOINTMENT_STAGE, "booked"),
                        SearchAttributePair(sa.APPOINTMENT_START, start),
                    ]
                ),
            )
            sdk_ids.append(aid)

        api_ids: list[str] = []

        async def api_start(i: int) -> None:
            r = await http.post(
                "/v1/appointments",
                json={
                    "patient_id": patient["id"],
                    "clinic_id": clinic["id"],
                    "doctor_id": doctor["id"],
                    "duration_minutes": 30,
                    "service": "Check-up",
                    "starts_at": (base + timedelta(days=30, hours=i)).isoformat(),
                },
            )
            r.raise_for_status()
            api_ids.append(r.json()["id"])

        async def sdk_query(i: int) -> None:
            await client.get_workflow_handle(appointment_workflow_id(sdk_ids[i])).query("state")

        async def api_query(i: int) -> None:
            (await http.get(f"/v1/appointments/{api_ids[i]}")).raise_for_status()

        async def sdk_update(i: int) -> None:
            await client.get_workflow_handle(appointment_workflow_id(sdk_ids[i])).execute_update(
                "cancel", CancelRequest(reason="bench")
            )

        async def api_update(i: int) -> None:
            r = await http.post(f"/v1/appointments/{api_ids[i]}/cancel", json={"reason": "bench"})
            r.raise_for_status()

        while (await http.get("/health")).status_code != 200:  # the worker is polling
            await asyncio.sleep(0.2)
        results = []
        for name, sdk_fn, api_fn in (
            ("start", sdk_start, api_start),
            ("query", sdk_query, api_query),
            ("update", sdk_update, api_update),
        ):
            sdk_t, api_t = await timed(n, sdk_fn, api_fn)
            results.append(row(name, sdk_t, api_t))
        db = settings.database_url.split(":", 1)[0]
        print(f"\npatient-journeys bench: N={n} per operation, {db}, one run, ratios of medians")
        print("\n".join(results))
        await http.aclose()
    finally:
        server.should_exit = True
        await serving
        worker.terminate()
        worker.wait(timeout=30)
        await env.shutdown()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=30, help="operations per measurement")
    p.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = p.parse_args()
    asyncio.run(main(args.n, args.database_url))
