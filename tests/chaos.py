"""The chaos run (issue 16): real processes - the Temporal dev server on a database file, the
worker and the API - are killed with SIGKILL at random moments and started again (Temporal on
the same file), while appointment journeys run on a compressed policy through the fake
providers, which record every message. Then it counts and checks:

- lost: a journey not at its expected final stage (silent patient -> no_show, a patient who
  confirmed -> finished), or a booking row without a journey;
- duplicated: a provider received more messages for a patient than the journeys sent;
- late: a deadline or no-show later than its due time by more than the longest outage
  (plus a margin for a loaded machine);
- skipped: a silent journey without its deadline or no-show, or never asked (no ask reached
  the provider; an ask that expired unsent does not count).

Time is compressed, and the compression keeps the one ratio that decides whether a rule can be
kept at all: a window against an outage. In a clinic the ask window (reminder -> deadline) is
hours or days and an outage (a process killed -> it serves again, then catches up) is seconds;
the rule "every ask, deadline and no-show happens before it stops making sense, late by at most
the outage" is only meaningful while a window is longer than an outage plus the catch-up. On
this kind of box a measured outage is 2-20 s (worker 8-20 s) and the catch-up after it another
10-20 s, so POLICY keeps the ask window at 40 s (reminder 60 s before the visit, deadline 20 s
before it, re-asks every 10 s) and bookings are paced (BOOKINGS_PER_S) instead of all at once,
so that the load alone - a run with --kills 0 - gives all zeros. The checks are not relaxed: a
window shorter than one outage would measure the harness, not the system.

`tests/test_chaos.py` runs a small one in `make test`; `make chaos` a large one:
    .venv/bin/python -m tests.chaos --journeys 300 --kills 16
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlmodel import col, select

from core.db import make_engine, migrate, session_factory
from core.settings import Settings
from core.temporal import dev_server_command
from models.appointment import Appointment
from models.core import Clinic, Doctor, MessageLog, Patient, Role, StaffUser
from tests.support.fake_providers import FakeProviders
from tests.support.live import free_port, serve
from tests.support.procs import Proc, process_env, wait_http

REMINDER_LEAD = 60  # seconds before the visit
POLICY = {  # seconds: a journey runs its whole life in about two minutes (see the docstring)
    "reminder_lead": REMINDER_LEAD,
    "reask_interval": 10,
    "reask_count": 2,
    "voice_call_attempts": 1,
    "confirm_deadline": 20,  # ask window 40 s: longer than an outage (<= 20 s) plus its catch-up
    "no_show_grace": 10,
    "feedback_delay": 2,
    "survey_timeout": 10,
    "quiet_hours": None,
}
# Booking -> visit: the notice goes out, then the first ask comes 20 s later.
LEAD = REMINDER_LEAD + 20
BOOKINGS_PER_S = 2.5  # the desk's pace
SLACK = 15.0  # seconds on top of the longest outage: a loaded 2-core machine runs late too


@dataclass
class Counts:
    journeys: int = 0
    kills: dict[str, int] = field(default_factory=lambda: {"worker": 0, "api": 0, "temporal": 0})
    lost: int = 0
    duplicated: int = 0
    late: int = 0
    skipped: int = 0
    refused_503: int = 0
    longest_outage: float = 0.0
    problems: list[str] = field(default_factory=list)
    timeline: list[str] = field(default_factory=list)  # each kill: when (UTC), what, how long down

    def line(self) -> str:
        k = sum(self.kills.values())
        return (
            f"chaos: journeys={self.journeys} kills={k} ({', '.join(f'{n} {v}' for n, v in self.kills.items())}) "
            f"lost={self.lost} duplicated={self.duplicated} late={self.late} skipped={self.skipped} "
            f"refused_503={self.refused_503} longest_outage={self.longest_outage:.1f}s"
        )


class Temporal:
    """The dev server as its own process on a database file, restartable on the same file."""

    def __init__(self, db: Path, port: int, log: Path) -> None:
        self.db, self.port, self.log = db, port, log
        self.p: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.p = subprocess.Popen(
            dev_server_command(self.port, self.db),
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        if self.p is not None and self.p.poll() is None:
            self.p.kill()
            self.p.wait(timeout=10)

    def stop(self) -> None:
        if self.p is not None and self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


async def _wait_port(port: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.2)
    raise TimeoutError(f"port {port} did not open")


async def run(journeys: int, kills: int, seed: int, workdir: Path) -> Counts:
    rnd = random.Random(seed)
    counts = Counts(journeys=journeys)
    fake = FakeProviders()
    fake_port, api_port, t_port = free_port(), free_port(), free_port()
    async with serve(fake.app, fake_port) as fake_url:
        fake.url = fake_url
        settings = Settings(
            DATA_DIR=str(workdir),
            DATABASE_URL=f"sqlite:///{workdir / 'journeys.db'}",
            TEMPORAL_ADDRESS=f"127.0.0.1:{t_port}",
            TEMPORAL_TASK_QUEUE="chaos",
            API_HOST="127.0.0.1",
            API_PORT=api_port,
            PUBLIC_BASE_URL=f"http://127.0.0.1:{api_port}",
            JWT_SECRET=secrets.token_urlsafe(32),
            PAYLOAD_ENCRYPTION_KEYS=f"chaos-1:{base64.b64encode(os.urandom(32)).decode()}",
            CODEC_SECRET="chaos",
            WORKER_METRICS_PORT=0,
            **{k.upper(): v for k, v in fake.settings_update().items()},
        )
        fake.webhook_base = f"http://127.0.0.1:{api_port}"
        migrate(settings.database_url)
        engine = make_engine(settings.database_url)
        sessions = session_factory(engine)
        env = process_env(settings, LOG_LEVEL="WARNING")
        temporal = Temporal(workdir / "temporal.db", t_port, workdir / "temporal.log")
        worker = Proc("worker", env, workdir / "worker.log")
        api = Proc("api", env, workdir / "api.log")
        temporal.start()
        await _wait_port(t_port)
        worker.start()
        api.start()
        base = f"http://127.0.0.1:{api_port}"
        await wait_http(f"{base}/health", timeout=120)
        try:
            await _drive(rnd, counts, journeys, kills, settings, sessions, fake, temporal, worker, api, base)
        finally:
            for p in (api, worker):
                p.stop()
            temporal.stop()
            await engine.dispose()
            await fake.http.aclose()
    return counts


async def _seed(sessions: Any, n: int) -> tuple[Clinic, list[Doctor], list[Patient], StaffUser]:
    from core.security import hash_password
    from models.core import PolicyIn

    async with sessions() as s:
        clinic = Clinic(
            name="Chaos Dental",
            address="1 Khreshchatyk St, Kyiv",
            phone="+380441234567",
            timezone="Europe/Kyiv",
            policy=PolicyIn.model_validate(POLICY).to_json(),
        )
        s.add(clinic)
        await s.flush()
        doctors = [Doctor(clinic_id=clinic.id, full_name=f"Dr {i}", specialty="therapy") for i in range(n)]
        patients = [
            Patient(
                full_name=f"Patient {i}",
                phone=f"+38067{1000000 + i:07d}",
                preferred_channel="sms",
                clinic_id=clinic.id,
            )
            for i in range(n)
        ]
        desk = StaffUser(
            username=f"desk-{uuid.uuid4().hex[:6]}",
            email=f"desk-{uuid.uuid4().hex[:6]}@clinic.test",
            password_hash=hash_password("chaos-pass-12345"),
            role=Role.admin,
        )
        s.add_all([*doctors, *patients, desk])
        await s.commit()
        return clinic, doctors, patients, desk


async def _drive(
    rnd: random.Random,
    counts: Counts,
    n: int,
    kills: int,
    settings: Settings,
    sessions: Any,
    fake: FakeProviders,
    temporal: Temporal,
    worker: Proc,
    api: Proc,
    base: str,
) -> None:
    clinic, doctors, patients, desk = await _seed(sessions, n)
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        r = await http.post("/v1/auth/token", data={"username": desk.username, "password": "chaos-pass-12345"})
        r.raise_for_status()
        auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
        t0 = datetime.now(UTC)
        # Bookings paced over a window, each visit LEAD after its booking is made (a booking
        # retried through an outage keeps its lead time; `plan` holds the time actually booked);
        # every other patient confirms when asked.
        spread = max(20.0, n / BOOKINGS_PER_S)
        offsets = sorted(rnd.uniform(0, spread) for _ in range(n))
        plan = [(t0 + timedelta(seconds=LEAD + offsets[i]), i % 2 == 0) for i in range(n)]
        booked: dict[int, str] = {}
        confirms = {i for i, (_, yes) in enumerate(plan) if yes}
        run_until = t0 + timedelta(seconds=spread + LEAD + 30)
        outages: list[float] = []

        tried: set[int] = set()

        async def book_all() -> None:
            pending = list(range(n))
            while pending:
                i = pending.pop(0)
                if i not in tried:
                    tried.add(i)
                    wait = (t0 + timedelta(seconds=offsets[i]) - datetime.now(UTC)).total_seconds()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    plan[i] = (datetime.now(UTC) + timedelta(seconds=LEAD), plan[i][1])
                start, _ = plan[i]
                body = {
                    "patient_id": patients[i].id,
                    "clinic_id": clinic.id,
                    "doctor_id": doctors[i].id,
                    "starts_at": start.isoformat(),
                    "duration_minutes": 5,
                    "service": "Check-up",
                }
                try:
                    r = await http.post(
                        "/v1/appointments", json=body, headers={**auth, "Idempotency-Key": f"chaos-{i}"}
                    )
                except httpx.TransportError:
                    pending.insert(0, i)  # the API is down: the desk tries this one again
                    await asyncio.sleep(0.5)
                    continue
                if r.status_code == 503:
                    counts.refused_503 += 1
                    pending.insert(0, i)
                    await asyncio.sleep(0.5)
                    continue
                if r.status_code == 201:
                    booked[i] = r.json()["id"]
                else:
                    counts.problems.append(f"booking {i}: {r.status_code} {r.text[:200]}")

        async def answer() -> None:
            """Patients who confirm answer their first ask by SMS (through the API's webhook)."""
            answered: set[int] = set()
            phones = {patients[i].phone: i for i in confirms}
            while datetime.now(UTC) < run_until:
                for rec in fake.delivered("twilio", "Messages"):
                    to = (rec.form or {}).get("To")
                    i = phones.get(to or "")
                    if i is None or i in answered:
                        continue
                    try:
                        r = await fake.twilio_sms(to or "", "Так, буду")
                        if r.status_code < 300:
                            answered.add(i)
                    except httpx.TransportError:
                        pass
                await asyncio.sleep(0.5)

        async def chaos() -> None:
            targets = ["worker", "api", "temporal"]
            for k in range(kills):
                # Kills land over the journeys' lives (bookings, then their ask windows).
                await asyncio.sleep(rnd.uniform(3, max(4.0, (spread + LEAD) / max(1, kills) / 2)))
                if datetime.now(UTC) > run_until:
                    break
                what = targets[k % 3] if k < 3 else rnd.choice(targets)
                down = rnd.uniform(1, 4)
                began = time.monotonic()
                killed_at = datetime.now(UTC)
                if what == "worker":
                    worker.kill()
                    await asyncio.sleep(down)
                    worker.start()
                elif what == "api":
                    api.kill()
                    await asyncio.sleep(down)
                    api.start()
                else:
                    temporal.kill()
                    await asyncio.sleep(down)
                    temporal.start()
                    await _wait_port(temporal.port)
                # The outage lasts until the part serves again (a restarted process on a loaded
                # box takes seconds to import and connect; a worker's pollers find a restarted
                # server after their backoff), and the next kill comes at a random moment after
                # that: a kill while the last one is still being recovered from is one long
                # outage, not two short ones.
                await _serving(what, settings, worker, base)
                counts.kills[what] += 1
                outages.append(time.monotonic() - began)
                counts.timeline.append(
                    f"{killed_at:%H:%M:%S.%f}"[:-3] + f" kill {what}, serving again after {outages[-1]:.1f}s"
                )

        await asyncio.gather(book_all(), answer(), chaos())
        counts.longest_outage = max(outages, default=0.0)
        # Let every journey reach its end.
        await _settle(sessions, booked, confirms, timeout=120 + n * 0.5)
    await _check(counts, sessions, fake, plan, booked, confirms)


async def _serving(what: str, settings: Settings, worker: Proc, base: str, timeout: float = 120) -> None:
    """Until the killed part serves again: the API answers; the (re)started worker process
    polls the (re)started server for workflow and activity tasks (Temporal lists its pollers,
    named pid@host)."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    from core.temporal import connect

    if what == "api":
        await wait_http(f"{base}/health", timeout=timeout)
        return
    assert worker.p is not None
    me = f"{worker.p.pid}@"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client = await connect(settings)
            polling = []
            for kind in (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY):
                r = await client.workflow_service.describe_task_queue(
                    DescribeTaskQueueRequest(
                        namespace=settings.temporal_namespace,
                        task_queue=TaskQueue(name=settings.temporal_task_queue),
                        task_queue_type=kind,
                    )
                )
                polling.append(any(p.identity.startswith(me) for p in r.pollers))
            if all(polling):
                return
        except Exception:  # noqa: BLE001  (the server is still starting)
            pass
        await asyncio.sleep(0.5)
    raise TimeoutError(f"{what} did not serve again within {timeout}s")


async def _settle(sessions: Any, booked: dict[int, str], confirms: set[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with sessions() as s:
            rows = (await s.exec(select(Appointment).where(col(Appointment.id).in_(list(booked.values()))))).all()
        done = {r.id for r in rows if r.stage in ("no_show", "finished", "cancelled", "confirmed")}
        if len(done) == len(booked):
            return
        await asyncio.sleep(2)


async def _check(
    counts: Counts,
    sessions: Any,
    fake: FakeProviders,
    plan: list[tuple[datetime, bool]],
    booked: dict[int, str],
    confirms: set[int],
) -> None:
    p = POLICY
    allowance = timedelta(seconds=counts.longest_outage + SLACK)
    async with sessions() as s:
        rows = {r.id: r for r in (await s.exec(select(Appointment))).all()}
        sent = (await s.exec(select(MessageLog).where(MessageLog.direction == "out"))).all()
        patients = {pt.id: pt for pt in (await s.exec(select(Patient))).all()}
    counts.lost += counts.journeys - len(booked)
    for i, aid in booked.items():
        row = rows.get(aid)
        start = plan[i][0]
        if row is None or not row.journey_started:
            counts.lost += 1
            counts.problems.append(f"{aid}: no row or no journey")
            continue
        events = {h["event"]: datetime.fromisoformat(h["at"]) for h in row.history}
        # A patient who confirmed is confirmed (still before the end of a 5-minute visit) or
        # finished; a silent one, or one whose ask never came, ends as a no-show.
        expected = ("confirmed", "finished") if "patient_confirmed" in events else ("no_show",)
        if row.stage not in expected:
            counts.lost += 1
            counts.problems.append(f"{aid}: stage {row.stage}, expected {'/'.join(expected)}")
        if row.stage == "no_show" and "patient_confirmed" not in events:
            due = {
                "deadline_unconfirmed": start - timedelta(seconds=p["confirm_deadline"]),
                "no_show": start + timedelta(seconds=p["no_show_grace"]),
            }
            for ev, at in due.items():
                if ev not in events:
                    counts.skipped += 1
                    counts.problems.append(f"{aid}: no {ev}")
                elif events[ev] - at > allowance:
                    counts.late += 1
                    counts.problems.append(f"{aid}: {ev} {(events[ev] - at).total_seconds():.1f}s late")
            # Asked = an ask reached the provider (an ask that expired unsent does not count).
            asked = [e for e in events if e in ("ask_sent", "reask_sent") or e.startswith("ask_resent_")]
            if not asked:
                counts.skipped += 1
                counts.problems.append(f"{aid}: never asked: {[(h['at'][11:19], h['event']) for h in row.history]}")
    # Duplicates: what the provider accepted per phone beyond what the journeys sent.
    logged: dict[str, int] = {}
    for m in sent:
        # Each row is one idempotency key, sent at most once; `sending` is an attempt that died
        # (or was given up) mid provider call: it may have arrived, once.
        if m.status in ("sent", "delivered", "read", "unconfirmed", "sending") and m.channel.value == "sms":
            pt = patients.get(m.recipient_id or m.patient_id or "")
            if pt and pt.phone:
                logged[pt.phone] = logged.get(pt.phone, 0) + 1
    received: dict[str, int] = {}
    for rec in fake.delivered("twilio", "Messages"):
        to = (rec.form or {}).get("To", "")
        received[to] = received.get(to, 0) + 1
    for phone_, got in received.items():
        if got > logged.get(phone_, 0):
            counts.duplicated += got - logged.get(phone_, 0)
            counts.problems.append(f"{phone_}: provider got {got}, journeys sent {logged.get(phone_, 0)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--journeys", type=int, default=300)
    ap.add_argument("--kills", type=int, default=16)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--keep", type=Path, help="keep the processes' logs and databases in this directory")
    a = ap.parse_args()
    if a.keep is not None:
        a.keep.mkdir(parents=True, exist_ok=True)
        counts = asyncio.run(run(a.journeys, a.kills, a.seed, a.keep))
        (a.keep / "problems.txt").write_text("\n".join(counts.problems) + "\n")
    else:
        with tempfile.TemporaryDirectory(prefix="chaos-") as d:
            counts = asyncio.run(run(a.journeys, a.kills, a.seed, Path(d)))
    print(f"seed={a.seed}")
    for line in counts.timeline:
        print("  ", line)
    print(counts.line())
    for p in counts.problems[:40]:
        print("  ", p)
    ok = counts.lost == 0 and counts.duplicated == 0 and counts.skipped == 0 and counts.late == 0
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
