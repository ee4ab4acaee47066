"""What one booking costs the API process, measured so that load on the box does not move it.

`bookings` in `python -m bench` is a throughput figure, and on a shared 2-core machine it swings
with whatever else runs. This one books N appointments one after the other, in process, through
the real ASGI app (`api.main.create_app`, httpx's ASGITransport: middleware, auth, validation,
the handler and the response, all of it) against a real Temporal dev server, and prints per
booking:

  * CPU ms (time.process_time: this process's every thread, the SQLite driver's and the
    Temporal client's included), and how much of it the kernel spent (os.times: the system
    calls, the database's fsyncs among them),
  * SQL statements and commits (SQLAlchemy engine events), and on SQLite the trips to the
    driver's thread (each a hand-off and a wake-up of the event loop: core.sqlite_gate),

beside the SDK's `start_workflow` of the same journey input in the same run (CPU ms per start)
and the driver's own share (the same client against an ASGI app that only answers 201).
No worker runs: a start only records the workflow; the journey's own work is not the API's.

Usage: .venv/bin/python -m bench.booking_cost [--n 300] [--role front_desk|operator|admin]
         [--keys] [--statements] [--clients C] [--cprofile FILE] [--database-url URL]
         [--loop uvloop|asyncio]
  --keys: an Idempotency-Key on every booking; --statements: the SQL per booking by kind;
  --clients C: C bookings in flight (wall ms is then 1/throughput; CPU stays per booking).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import event

import api.repair
from api.main import create_app
from bench import trips
from bench.__main__ import free_port, wait_port
from bench.gctime import GcTimer
from bench.sdk import start_appointment
from contracts.policy import JourneyPolicy
from core.db import make_engine, migrate, session_factory
from core.logging import configure_logging
from core.security import create_token, hash_password
from core.settings import Settings
from core.temporal import dev_server_command, exit_without_teardown
from models.core import Channel, Clinic, Doctor, Patient, Role, StaffUser


@dataclass
class Cost:
    cpu_ms: float
    sys_ms: float
    wall_ms: float
    statements: float
    commits: float
    gc_ms: float
    gcs: dict[int, int]
    trips: float = 0.0

    def line(self, what: str) -> str:
        return (
            f"{what:<30} {self.cpu_ms:6.2f} ms CPU ({self.sys_ms:5.2f} in the kernel)  {self.wall_ms:6.2f} ms wall"
            f"  {self.statements:4.1f} SQL  {self.commits:3.1f} commits"
            + (f"  {self.trips:4.1f} trips" if self.trips else "")
            + f"  (GC {self.gc_ms:.2f} ms; collections by generation {self.gcs})"
        )


class SqlCounter:
    """Statements (by their first words) and commits on one engine while `on`, and the trips
    every SQLite connection of the process makes to its driver's thread."""

    def __init__(self, engine: Any) -> None:
        self.on = False
        self.statements = 0
        self.commits = 0
        self.kinds: collections.Counter[str] = collections.Counter()
        event.listen(engine.sync_engine, "before_cursor_execute", self._stmt)
        event.listen(engine.sync_engine, "commit", self._commit)
        trips.install()
        self._trips0 = trips.made()

    def _stmt(self, _conn: Any, _cur: Any, statement: str, *_a: Any) -> None:
        if self.on:
            self.statements += 1
            words = statement.split()
            head = " ".join(words[:4]) if words[:1] != ["SELECT"] else "SELECT ... " + _from(words)
            self.kinds[head] += 1

    def _commit(self, _conn: Any) -> None:
        if self.on:
            self.commits += 1

    def reset(self) -> None:
        self.statements = self.commits = 0
        self._trips0 = trips.made()
        self.kinds.clear()

    @property
    def trips(self) -> int:
        return trips.made() - self._trips0


def _from(words: list[str]) -> str:
    try:
        i = words.index("FROM")
    except ValueError:
        return "(no FROM)"
    return "FROM " + " ".join(words[i + 1 : i + 2])


GC = GcTimer()


CLIENTS = 1  # --clients: bookings in flight at once (1: serial, the load-insensitive figure)


async def measure(n: int, fn: Any, counter: SqlCounter | None) -> Cost:
    if counter:
        counter.reset()
        counter.on = True
    GC.on, GC.seconds = True, 0.0
    GC.collections.clear()
    c0, k0, w0 = time.process_time(), os.times().system, time.perf_counter()
    if CLIENTS == 1:
        for i in range(n):
            await fn(i)
    else:
        queue = iter(range(n))

        async def client() -> None:
            for i in queue:
                await fn(i)

        await asyncio.gather(*(client() for _ in range(CLIENTS)))
    c1, k1, w1 = time.process_time(), os.times().system, time.perf_counter()
    GC.on = False
    if counter:
        counter.on = False
    return Cost(
        (c1 - c0) * 1000 / n,
        (k1 - k0) * 1000 / n,
        (w1 - w0) * 1000 / n,
        counter.statements / n if counter else 0.0,
        counter.commits / n if counter else 0.0,
        GC.seconds * 1000 / n,
        dict(GC.collections),
        counter.trips / n if counter else 0.0,
    )


async def main(args: argparse.Namespace) -> None:
    configure_logging("WARNING", False)
    data = Path(tempfile.mkdtemp(prefix="journeys-booking-cost-"))
    tport = free_port()
    server = subprocess.Popen(
        dev_server_command(tport, data / "temporal.db"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await wait_port(tport, "temporal dev server", server)
        settings = Settings(
            DATA_DIR=data, TEMPORAL_ADDRESS=f"127.0.0.1:{tport}", TEMPORAL_TASK_QUEUE="cost", LOG_LEVEL="WARNING"
        )
        if args.database_url:
            settings = settings.model_copy(update={"database_url": args.database_url})
        migrate(settings.database_url)
        await run(args, settings)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(data, ignore_errors=True)


async def run(args: argparse.Namespace, settings: Settings) -> None:
    n = args.n
    engine = make_engine(settings.database_url)
    async with session_factory(engine)() as s:
        clinic = Clinic(name="Cost clinic", address="Kyiv", phone="+380441234567", timezone="Europe/Kyiv")
        s.add(clinic)
        await s.flush()
        doctors = [Doctor(clinic_id=clinic.id, full_name=f"Dr Cost {i}", specialty="x") for i in range(4)]
        patients = [
            Patient(
                full_name=f"Cost Patient {i}",
                phone=f"+38067{(i * 7919) % 10_000_000:07d}",
                preferred_channel=Channel.sms,
                clinic_id=clinic.id,
            )
            for i in range(3 * n + 50)
        ]
        role = Role(args.role)
        user = StaffUser(
            username=f"cost-{uuid.uuid4().hex[:8]}",
            password_hash=hash_password("unused-password"),
            role=role,
            clinic_id=None if role is Role.admin else clinic.id,
        )
        s.add_all([*doctors, *patients, user])
        await s.commit()
        cid, dids, pids, uid = clinic.id, [d.id for d in doctors], [p.id for p in patients], user.id
    await engine.dispose()
    token = create_token(settings.jwt_secret, uid, role.value, 3600)

    api.repair.REPAIR_EVERY = 3600  # one repair round at start-up, none while we count
    app = create_app(settings)
    base = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=30)
    shift = 2 * n + 40  # bookings take patients of their own (the SDK's are i + n)
    async with app.router.lifespan_context(app):
        counter = SqlCounter(app.state.engine)
        client = app.state.temporal
        assert client is not None, "the API did not connect to Temporal"
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://api", headers={"Authorization": f"Bearer {token}"}
        ) as http:

            async def book(i: int) -> None:
                r = await http.post(
                    "/v1/appointments",
                    json={
                        "patient_id": pids[(i + shift) % len(pids)],
                        "clinic_id": cid,
                        "doctor_id": dids[i % len(dids)],
                        "duration_minutes": 30,
                        "service": "Check-up",
                        "starts_at": (base + timedelta(minutes=30 * i)).isoformat(),
                    },
                    headers={"Idempotency-Key": uuid.uuid4().hex} if args.keys else None,
                )
                if r.status_code != 201:
                    raise RuntimeError(f"booking {i}: {r.status_code} {r.text}")

            policy = JourneyPolicy()

            async def sdk(i: int) -> None:
                await start_appointment(
                    client,
                    settings.temporal_task_queue,
                    clinic_id=cid,
                    doctor_id=dids[i % len(dids)],
                    patient_id=pids[i + n],
                    starts_at=base + timedelta(days=400, minutes=30 * i),
                    policy=policy,
                    booked_at=datetime.now(UTC),
                )

            # Warm-up: imports, first connections, caches a real process has after its first minutes.
            warm = min(20, n)
            await measure(warm, lambda i: book(n + i), None)
            await measure(warm, lambda i: sdk(n + i), None)
            if args.cprofile:  # deterministic attribution (slower: compare shares, not ms)
                import cProfile

                prof = cProfile.Profile()
                prof.enable()
                await measure(n, book, None)
                prof.disable()
                prof.dump_stats(args.cprofile)
                base += timedelta(days=200)
                shift += n
            ours = await measure(n, book, counter)
            kinds = counter.kinds.most_common()
            theirs = await measure(n, sdk, None)

        # The driver's own share: the same client posting the same body to an ASGI app that
        # only answers 201 (what httpx + ASGITransport cost; uvicorn's share in production).
        async def bare_app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return
            while (await receive()).get("more_body"):
                pass
            await send(
                {"type": "http.response.start", "status": 201, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": b"{}"})

        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=bare_app), base_url="http://api", headers=http.headers
        ) as http:
            floor = await measure(n, book, None)

    print(f"{n} bookings, one at a time, in process ({settings.database_url.split(':', 1)[0]}, role {role.value})")
    print(ours.line("POST /v1/appointments (ASGI)"))
    print(theirs.line("SDK start_workflow"))
    print(floor.line("driver only (httpx -> bare ASGI)"))
    print(
        f"{'ratio (CPU)':<30} {ours.cpu_ms / theirs.cpu_ms:6.2f} x   (without the driver's share: "
        f"{(ours.cpu_ms - floor.cpu_ms) / theirs.cpu_ms:.2f} x)"
    )
    if args.statements:
        print("statements per booking:")
        for head, count in kinds:
            print(f"  {count / n:5.2f}  {head}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=300, help="bookings (and SDK starts) to measure")
    p.add_argument("--role", default="front_desk", choices=["front_desk", "operator", "admin"])
    p.add_argument("--keys", action="store_true", help="send an Idempotency-Key with every booking")
    p.add_argument("--statements", action="store_true", help="list the SQL statements per booking")
    p.add_argument("--clients", type=int, default=1, help="bookings in flight at once (wall ms then = 1/throughput)")
    p.add_argument("--cprofile", default="", help="also write a cProfile of N bookings to this file")
    p.add_argument("--database-url", default="", help="default: the SQLite file under a temp DATA_DIR")
    p.add_argument(
        "--loop",
        default="uvloop",
        choices=["uvloop", "asyncio"],
        help="the event loop (default uvloop: what uvicorn serves the API on when it is installed)",
    )
    parsed = p.parse_args()
    CLIENTS = parsed.clients
    if parsed.loop == "uvloop":
        import uvloop

        uvloop.install()
    asyncio.run(main(parsed))
    exit_without_teardown(0)  # the Temporal client's threads may outlive the loop
