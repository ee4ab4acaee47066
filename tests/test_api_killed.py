"""The API *process* is killed (SIGKILL) in the middle of concurrent bookings. Whatever it had
committed gets its journey: no `booked` row is left holding a doctor's slot with nothing
behind it (issue 16, item 4)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from sqlmodel import select
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from core.deps import Deps
from core.settings import Settings
from models.appointment import Appointment
from models.core import Role
from tests.support.api import Api
from tests.support.appointments import at, make_clinic
from tests.support.live import eventually, free_port
from tests.support.procs import Proc, SlowProxy, process_env, wait_http


async def _orphans(client: Client, rows: list[Appointment]) -> list[str]:
    out = []
    for row in rows:
        try:
            await client.get_workflow_handle(row.workflow_id).describe()
        except RPCError as e:
            if e.status != RPCStatusCode.NOT_FOUND:
                raise
            out.append(row.id)
    return out


async def test_api_killed_during_bookings_leaves_no_row_without_a_journey(
    api: Api, settings: Settings, deps: Deps, client: Client, tmp_path: Path
) -> None:
    clinic = await make_clinic(api, reminder_lead=3600)
    port = free_port()
    # The API talks to Temporal through a slow proxy: every start takes ~0.3 s after the row's
    # commit, so the kill below finds bookings in that window (it does not rely on luck).
    async with SlowProxy(settings.temporal_address, delay=0.3) as proxy:
        env = process_env(settings, API_PORT=str(port), TEMPORAL_ADDRESS=proxy.address)
        proc = Proc("api", env, tmp_path / "api.log")
        await _kill_mid_booking(api, clinic, proc, port, deps, client)


async def _kill_mid_booking(api: Api, clinic: dict, proc: Proc, port: int, deps: Deps, client: Client) -> None:
    proc.start()
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_http(f"{base}/health")
        headers = api.headers(Role.front_desk)
        done = 0

        async def one(http: httpx.AsyncClient, i: int) -> int | None:
            nonlocal done
            try:
                r = await http.post(
                    "/v1/appointments",
                    headers=headers,
                    json={
                        "patient_id": clinic["patient_id"],
                        "clinic_id": clinic["id"],
                        "doctor_id": clinic["doctor_id"],
                        "starts_at": at(3 * 3600 + i * 3600),  # one slot each: all could be booked
                        "duration_minutes": 30,
                        "service": "Check-up",
                    },
                )
                done += 1
                return r.status_code
            except httpx.TransportError:
                return None

        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            calls = asyncio.gather(*[one(http, i) for i in range(60)])

            async def some_answered() -> None:
                assert done >= 8

            await eventually(some_answered, timeout=120, interval=0.01)
            proc.kill()  # mid-request: most bookings are somewhere between row and journey
            codes = await calls
        assert None in codes, "the kill landed after every booking finished"
        assert all(c in (201, None) for c in codes), codes

        async with deps.sessions() as s:
            rows = list((await s.exec(select(Appointment).where(Appointment.doctor_id == clinic["doctor_id"]))).all())
        assert len(rows) >= codes.count(201)
        left = await _orphans(client, rows)
        print(f"killed after {codes.count(201)} answers; {len(rows)} rows committed, {len(left)} without a journey")

        proc.start()  # the API comes back (as a supervisor restarts it)
        await wait_http(f"{base}/health")

        async def repaired() -> None:
            assert await _orphans(client, rows) == []

        await eventually(repaired, timeout=90, interval=1)
    finally:
        proc.stop()
