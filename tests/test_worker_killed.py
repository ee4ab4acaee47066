"""Durability: the worker *process* is killed (SIGKILL) while a message is in flight at the
provider. A new worker process picks the journey up: nothing is sent twice, no timer is
skipped, and the patient's answer still lands."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client

from core.deps import Deps
from core.settings import PROJECT_ROOT, Settings
from models.core import Role
from tests.support.api import Api
from tests.support.appointments import FAST, at, phone
from tests.support.fake_providers import provider_rig
from tests.support.live import eventually
from tests.support.procs import process_env


def _worker_env(settings: Settings, task_queue: str) -> dict[str, str]:
    """The worker process is configured by environment, as in production."""
    return process_env(settings, TEMPORAL_TASK_QUEUE=task_queue)


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "worker.py")],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def test_worker_killed_mid_send_resumes_without_duplicates(
    api: Api, settings: Settings, deps: Deps, client: Client, tmp_path: Path
) -> None:
    tq = f"killed-{uuid.uuid4().hex[:8]}"
    async with provider_rig(settings, deps, client, task_queue=tq) as rig:
        env = _worker_env(rig.settings, tq)
        log = tmp_path / "worker.log"
        worker = _start_worker(env, log)
        try:
            rig_api = httpx.AsyncClient(base_url=rig.api_url, timeout=30)
            admin = {**api.headers(Role.admin)}
            # A clinic whose day-before ask falls a few seconds after booking.
            r = await rig_api.post(
                "/v1/clinics",
                headers=admin,
                json={
                    "name": "Smile Obolon",
                    "address": "5 Obolonska St, Kyiv",
                    "phone": "+380441234567",
                    "timezone": "Europe/Kyiv",
                    "policy": {**FAST, "reminder_lead": 60},
                },
            )
            assert r.status_code == 201, r.text
            clinic = r.json()
            r = await rig_api.post(
                "/v1/doctors",
                headers=admin,
                json={"clinic_id": clinic["id"], "full_name": "Dr Bondar", "specialty": "therapy"},
            )
            doctor = r.json()
            patient_phone = phone()
            r = await rig_api.post(
                "/v1/patients",
                headers=admin,
                json={
                    "full_name": "Taras Melnyk",
                    "phone": patient_phone,
                    "preferred_channel": "sms",
                    "clinic_id": clinic["id"],
                },
            )
            patient = r.json()

            # The SMS provider holds the booking notice long enough to kill the worker mid-call.
            rig.fake.delay["twilio"] = 60
            r = await rig_api.post(
                "/v1/appointments",
                headers=api.headers(Role.front_desk),
                json={
                    "patient_id": patient["id"],
                    "clinic_id": clinic["id"],
                    "doctor_id": doctor["id"],
                    "starts_at": at(70),
                    "duration_minutes": 30,
                    "service": "Check-up",
                },
            )
            assert r.status_code == 201, r.text
            appt = r.json()

            def sms() -> list[Any]:
                return [x for x in rig.fake.sent("twilio", "Messages") if x.form and x.form.get("To") == patient_phone]

            async def notice_at_provider() -> None:
                assert len(sms()) == 1

            await eventually(notice_at_provider, timeout=60)

            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=10)
            rig.fake.delay.pop("twilio")
            worker = _start_worker(env, log)

            # The journey goes on under the new worker: the day-before ask goes out...
            async def asked() -> None:
                view = (await rig_api.get(f"/v1/appointments/{appt['id']}", headers=api.headers(Role.operator))).json()
                assert view["asks_sent"] >= 1, view

            await eventually(asked, timeout=90)
            # ...and the patient's SMS answer confirms it.
            await rig.fake.twilio_sms(patient_phone, "Да, буду")

            async def confirmed() -> None:
                view = (await rig_api.get(f"/v1/appointments/{appt['id']}", headers=api.headers(Role.operator))).json()
                assert view["stage"] == "confirmed", view

            await eventually(confirmed, timeout=30)

            bodies = [x.form["Body"] for x in sms()]  # type: ignore[index]
            # Exactly one booking notice reached the provider despite the kill and the retry.
            notices = [b for b in bodies if b == bodies[0]]
            assert len(notices) == 1, bodies
            assert len(bodies) == len(set(bodies)), f"a message went out twice: {bodies}"
            await rig_api.aclose()
        finally:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                try:
                    worker.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    worker.kill()
            await asyncio.sleep(0)
