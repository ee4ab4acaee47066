"""Scale bench (issue 14): our journeys beside the bare Temporal floor, measured in the same run.

One run on this machine: a real Temporal dev server (the binary `make install` builds), a
migrated database (SQLite by default), our worker as its own process (as in production), a
bare worker (bench/bare.py: one workflow, one no-op activity, SDK defaults) as another, and
the API served by uvicorn with several processes. Every figure is printed beside its baseline,
the ratio and the issue's goal:

  bookings      C clients for D seconds: POST /v1/appointments (API processes) vs the SDK's
                start_workflow of the same journey                           goal >= 0.9x
                (--booking-rounds R, default 3: R rounds, the side that goes first
                alternating; the median of the rounds' ratios, and each round)
                + where the cores went: CPU ms per booking of the dev server, the worker,
                the API processes and the bench's own client, on each side, and the rate
                that total allows on this many cores
  notices       N journeys started at once (an MIS import's shape) until every booking
                notice is sent vs N bare workflows until every activity ran  goal <= 1.25x
                + the worker's sticky-cache misses and forced evictions per journey meanwhile
  burst         N day-before asks due at one instant: p99 lateness and drain vs N bare
                workflows sleeping until one instant, then one activity      goal <= 1.2x / >= 0.9x
                (--burst-rounds R: R bursts per side, alternating; the medians, and each round)
                + our worker's sticky-cache misses and forced evictions per ask, each round
  reply         patient reply (sandbox webhook path) -> `confirmed` visible through the API
                vs a bare signal + query                                      goal <= 1.2x
  memory        worker RSS per open journey vs the bare worker per open bare workflow; the
                dev server's RSS and the database size per 1,000 journeys; 100k open
                journeys must keep the worker under 1 GiB (printed as a projection
                unless --large measured it)

Usage: make bench   (.venv/bin/python -m bench --n 300; --large: 10k journeys, 100k open)
Timings on a shared machine vary run to run: compare ratios from the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func
from sqlmodel import col, select
from temporalio.client import Client

from bench.bare import BARE_WORKFLOW, BareInput
from bench.sdk import start_appointment
from contracts.appointment import APPOINTMENT_WORKFLOW
from contracts.policy import JourneyPolicy
from core.db import make_engine, migrate, session_factory
from core.logging import configure_logging
from core.settings import PROJECT_ROOT, Settings
from core.temporal import connect, dev_server_command, exit_without_teardown
from models.core import Channel, MessageLog, Patient, Role

GiB = 1024**3


# ------------------------------------------------------------------------------ processes
T0 = time.monotonic()


def progress(msg: str) -> None:
    print(f"[{time.monotonic() - T0:7.1f} s] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss(pid: int) -> int:
    """Resident memory of a process and its live descendants (bytes), from /proc."""
    total = 0
    for p in _family(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def _family(pid: int) -> list[int]:
    """A process and its descendants (uvicorn's worker processes, the SDK's helpers)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            todo += [int(c) for t in Path(f"/proc/{p}/task").iterdir() for c in (t / "children").read_text().split()]
        except OSError:
            pass
    return out


def own_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds one process has used, its children left out, from /proc
    (in whole clock ticks, utime and stime each rounded down); 0 for a process that is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (stat's 14, 15)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process and its live descendants have used, from /proc."""
    return sum(own_cpu_seconds(p) for p in _family(pid))


def env_for(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for name, field in Settings.model_fields.items():
        value = getattr(settings, name)
        if field.alias and value not in (None, ""):
            env[field.alias] = ",".join(value) if isinstance(value, list) else str(value)
    env.update(extra)
    return env


@dataclass
class Stack:
    settings: Settings
    server: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes]
    bare: subprocess.Popen[bytes]
    api: subprocess.Popen[bytes]
    api_url: str
    worker_metrics: str
    client: Client
    data: Path
    server_metrics: str = ""

    def stop(self) -> None:
        for p in (self.api, self.worker, self.bare, self.server):
            if p.poll() is None:
                p.terminate()
        for p in (self.api, self.worker, self.bare, self.server):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


async def wait_port(port: int, what: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{what} did not open port {port}")


async def start_stack(database_url: str | None, api_procs: int) -> Stack:
    data = Path(tempfile.mkdtemp(prefix="journeys-bench-"))
    tport, aport, mport, sport = free_port(), free_port(), free_port(), free_port()
    server = subprocess.Popen(
        dev_server_command(tport, data / "temporal.db", "--metrics-port", str(sport)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    await wait_port(tport, "temporal dev server", server)
    settings = Settings(
        DATA_DIR=data,
        TEMPORAL_ADDRESS=f"127.0.0.1:{tport}",
        TEMPORAL_TASK_QUEUE="bench",
        API_PORT=aport,
        LOG_LEVEL="WARNING",
    )
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    migrate(settings.database_url)
    from cli import _create_user

    await _create_user(settings.database_url, "bench", "bench-password", Role.admin, None, None, False)
    client = await connect(settings)
    worker = subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "worker.py")],
        env=env_for(settings, WORKER_METRICS_PORT=str(mport)),
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    bare = subprocess.Popen(
        [sys.executable, "-m", "bench.bare", "bench-bare"],
        env=env_for(settings),
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    api = subprocess.Popen(  # `journeys api`, as production runs it, with API_WORKERS processes
        [sys.executable, "-c", "from api.main import main; main()"],
        env=env_for(settings, API_WORKERS=str(api_procs)),
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    await wait_port(aport, "API", api)
    await wait_port(mport, "worker metrics", worker)
    return Stack(
        settings,
        server,
        worker,
        bare,
        api,
        f"http://127.0.0.1:{aport}",
        f"http://127.0.0.1:{mport}/metrics",
        client,
        data,
        f"http://127.0.0.1:{sport}/metrics",
    )


# ------------------------------------------------------------------------------ helpers
def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


async def bounded(n: int, concurrency: int, fn: Callable[[int], Awaitable[Any]]) -> list[Any]:
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> Any:
        async with sem:
            return await fn(i)

    return await asyncio.gather(*(one(i) for i in range(n)))


# Long polls the bench keeps open on the dev server at once while it waits for bare workflows'
# results. The server caps a namespace's concurrent long polls and answers the rest "namespace
# concurrent poller limit exceeded": a 10,000-workflow figure (N=10,000) waited for all at once.
RESULT_WAITS = 500


async def results(handles: list[Any]) -> list[Any]:
    """Every workflow's result, at most RESULT_WAITS waits in flight; in the handles' order."""
    return await bounded(len(handles), RESULT_WAITS, lambda i: handles[i].result())


def samples(text: str) -> Iterator[tuple[str, str, float]]:
    """The samples of a Prometheus text page: (metric name, its labels as written, value)."""
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        name, _, labels = head.partition("{")
        yield name, labels.removesuffix("}"), float(value)


async def metric(http: httpx.AsyncClient, url: str, name: str) -> float:
    """The sum of a Prometheus metric's samples (every label set; `name` or `name_total`) at `url`."""
    try:
        text = (await http.get(url)).text
    except httpx.HTTPError:
        return float("nan")
    return sum(v for n, _, v in samples(text) if n in (name, name + "_total"))


async def server_ops(http: httpx.AsyncClient, url: str) -> collections.Counter[str]:
    """The dev server's requests so far by kind: its API calls (`service_requests`, the
    frontend's and the history service's) and its persistence operations (each a read or a
    write of its database), as "api Op" / "db Op" -> count."""
    out: collections.Counter[str] = collections.Counter()
    if not url:
        return out
    try:
        text = (await http.get(url)).text
    except httpx.HTTPError:
        return out
    kinds = {"service_requests": "api", "persistence_requests": "db"}
    for name, labels, value in samples(text):
        if name not in kinds:
            continue
        op = next((kv.split("=", 1)[1].strip('"') for kv in labels.split(",") if kv.startswith("operation=")), "?")
        out[f"{kinds[name]} {op}"] += int(value)  # counters: whole requests
    return out


def per_each(after: collections.Counter[str], before: collections.Counter[str], n: int) -> dict[str, float]:
    return {k: (after[k] - before[k]) / max(n, 1) for k in after if after[k] > before[k]}


async def sticky_cache(http: httpx.AsyncClient, url: str) -> float:
    return await metric(http, url, "temporal_sticky_cache_size")


class Bench:
    def __init__(self, stack: Stack, http: httpx.AsyncClient, n: int, open_target: int) -> None:
        self.s = stack
        self.http = http
        self.n = n
        self.open_target = open_target
        self.engine = make_engine(stack.settings.database_url)
        self.sessions = session_factory(self.engine)
        self.rows: list[tuple[str, str, str, float | None, str, bool | None]] = []
        self.notes: list[str] = []
        self.worker_idle = 0
        self.server_idle = 0
        self.db_idle = 0
        self.burst_aids: list[str] = []
        self.burst_pids: list[str] = []
        self.burst_cache: list[tuple[float, float]] = []  # per round: misses, forced evictions per ask

    def add(
        self, what: str, ours: str, base: str, ratio: float | None, goal: str, ok: bool | None, first: bool = False
    ) -> None:
        self.rows.insert(0 if first else len(self.rows), (what, ours, base, ratio, goal, ok))

    async def cache_counts(self, since: tuple[float, float] = (0.0, 0.0)) -> tuple[float, float]:
        """Our worker's sticky-cache misses (a journey rebuilt from its history) and forced
        evictions so far, or since `since` (an earlier reading)."""
        url = self.s.worker_metrics
        return (
            await metric(self.http, url, "temporal_sticky_cache_miss") - since[0],
            await metric(self.http, url, "temporal_sticky_cache_total_forced_eviction") - since[1],
        )

    async def clinic(self, name: str) -> tuple[str, str]:
        r = await self.http.post(
            "/v1/clinics",
            json={
                "name": name,
                "address": "Kyiv",
                "phone": "+380441234567",
                "timezone": "Europe/Kyiv",
                "policy": {"quiet_hours": None},
            },
        )
        r.raise_for_status()
        cid = r.json()["id"]
        d = await self.http.post("/v1/doctors", json={"clinic_id": cid, "full_name": "Dr Bench", "specialty": "x"})
        d.raise_for_status()
        return cid, d.json()["id"]

    async def doctors(self, clinic_id: str, k: int) -> list[str]:
        out = []
        for i in range(k):
            d = await self.http.post(
                "/v1/doctors", json={"clinic_id": clinic_id, "full_name": f"Dr Bench {i}", "specialty": "x"}
            )
            d.raise_for_status()
            out.append(d.json()["id"])
        return out

    async def patients(self, clinic_id: str, k: int) -> list[str]:
        """Bulk-inserted (the bench measures journeys, not patient registration)."""
        rows = [
            Patient(
                full_name=f"Bench Patient {i}",
                phone=f"+38067{(i * 7919) % 10_000_000:07d}",
                preferred_channel=Channel.sms,
                clinic_id=clinic_id,
            )
            for i in range(k)
        ]
        ids = [p.id for p in rows]
        async with self.sessions() as s:
            for i in range(0, len(rows), 1000):
                s.add_all(rows[i : i + 1000])
                await s.commit()
        return ids

    async def start_journey(
        self, clinic_id: str, doctor_id: str, patient_id: str, starts_at: datetime, policy: JourneyPolicy
    ) -> str:
        return await start_appointment(
            self.s.client,
            self.s.settings.temporal_task_queue,
            clinic_id=clinic_id,
            doctor_id=doctor_id,
            patient_id=patient_id,
            starts_at=starts_at,
            policy=policy,
            booked_at=datetime.now(UTC),
        )

    async def start_bare(self, inp: BareInput) -> Any:
        return await self.s.client.start_workflow(
            BARE_WORKFLOW, inp, id=f"bare-{uuid.uuid4().hex}", task_queue="bench-bare"
        )

    async def sent(self, clinic_id: str, kind: str) -> tuple[int, datetime | None, list[datetime]]:
        async with self.sessions() as s:
            q = select(MessageLog.updated_at).where(
                MessageLog.clinic_id == clinic_id,
                MessageLog.kind == kind,
                MessageLog.direction == "out",
                col(MessageLog.status).in_(("sent", "unconfirmed")),
            )
            times = [t for t in (await s.exec(q)).all() if t is not None]
        times = [t if t.tzinfo else t.replace(tzinfo=UTC) for t in times]
        return len(times), (max(times) if times else None), times

    async def wait_sent(self, clinic_id: str, kind: str, n: int, timeout: float) -> list[datetime]:
        deadline = time.monotonic() + timeout
        while True:
            count, _, times = await self.sent(clinic_id, kind)
            if count >= n:
                return times
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {count}/{n} {kind} sent after {timeout:.0f} s")
            await asyncio.sleep(0.5)

    # -------------------------------------------------------------------------- figures
    async def bookings(self, clients: int, seconds: float, api_procs: int, rounds: int = 1) -> None:
        cid, _ = await self.clinic("Bench bookings")
        docs = await self.doctors(cid, clients)
        # One patient per booking, as at a clinic's desk (one patient with every booking would
        # make each booking recompute that patient's first-visit flags over all the others).
        pids = await self.patients(cid, 4000)
        base = datetime.now(UTC) + timedelta(days=60)
        policy = JourneyPolicy(quiet_hours=None)

        procs = ("server", "worker", "API")
        # Per side (0: SDK, 1: API), summed over the rounds: bookings, CPU seconds by process,
        # and the dev server's requests by kind.
        done_by: list[int] = [0, 0]
        cpu_by: list[collections.Counter[str]] = [collections.Counter(), collections.Counter()]
        ops_by: list[collections.Counter[str]] = [collections.Counter(), collections.Counter()]
        slots = [0] * clients  # each client's next slot, kept across rounds (never the same one twice)

        async def run(side: int, fn: Callable[[int, int], Awaitable[None]]) -> float:
            stop = time.monotonic() + seconds
            done = 0
            c0 = self.cpu(*procs)
            o0 = await server_ops(self.http, self.s.server_metrics)

            async def client(c: int) -> None:
                nonlocal done
                while time.monotonic() < stop:
                    k = slots[c]
                    slots[c] += 1
                    await fn(c, k)
                    done += 1

            t0 = time.monotonic()
            await asyncio.gather(*(client(c) for c in range(clients)))
            rate = done / (time.monotonic() - t0)
            done_by[side] += done
            cpu_by[side].update({k: v - c0[k] for k, v in self.cpu(*procs).items()})
            ops_by[side].update(per_each(await server_ops(self.http, self.s.server_metrics), o0, 1))
            await self.settle()
            return rate

        async def sdk(c: int, k: int) -> None:
            await self.start_journey(
                cid, docs[c], pids[(c * 97 + k) % len(pids)], base + timedelta(days=c, minutes=30 * k), policy
            )

        async def api(c: int, k: int) -> None:
            r = await self.http.post(
                "/v1/appointments",
                json={
                    "patient_id": pids[(c * 97 + k + 2000) % len(pids)],
                    "clinic_id": cid,
                    "doctor_id": docs[c],
                    "duration_minutes": 30,
                    "service": "Check-up",
                    "starts_at": (base + timedelta(days=100 + c, minutes=30 * k)).isoformat(),
                },
            )
            r.raise_for_status()

        # Rounds alternate which side goes first (SDK, API; API, SDK; ...), so a drift of the
        # box or of the growing server state (every booking leaves an open journey) favours
        # neither side; the figure is the median of the rounds' ratios.
        pairs: list[tuple[float, float]] = []  # per round: SDK rate, API rate
        for r in range(rounds):
            if r % 2 == 0:
                sdk_rate = await run(0, sdk)
                api_rate = await run(1, api)
            else:
                api_rate = await run(1, api)
                sdk_rate = await run(0, sdk)
            pairs.append((sdk_rate, api_rate))
        ratio = statistics.median(a / s for s, a in pairs)
        self.add(
            f"bookings/s, {clients} clients x {seconds:.0f} s" + (f", median of {rounds}" if rounds > 1 else ""),
            f"API {statistics.median(a for _, a in pairs):.1f}/s ({api_procs} procs)",
            f"SDK start {statistics.median(s for s, _ in pairs):.1f}/s",
            ratio,
            ">= 0.9x",
            ratio >= 0.9,
            first=True,  # measured last (see main), printed first
        )
        notes: list[str] = []
        if rounds > 1:
            notes.append(
                "bookings, each round (API / SDK per s, ratio): "
                + "; ".join(f"{a:.1f} / {s:.1f}, {a / s:.2f}x" for s, a in pairs)
            )
        # Where the two cores went while each side ran (the journeys' own first steps, run by the
        # worker meanwhile, count on both sides): CPU ms per booking, and the rate that total allows.
        (n_sdk, c_sdk), (n_api, c_api) = zip(done_by, cpu_by, strict=True)
        cores = os.cpu_count() or 1
        each = ", ".join(f"{k} {c_api[k] * 1000 / n_api:.1f} / {c_sdk[k] * 1000 / n_sdk:.1f}" for k in c_api)
        all_api, all_sdk = sum(c_api.values()) * 1000 / n_api, sum(c_sdk.values()) * 1000 / n_sdk
        notes.append(
            f"bookings, CPU ms per booking, API side / SDK side: {each}; all {all_api:.1f} / {all_sdk:.1f}"
            f" -> {cores} cores allow {cores * 1000 / all_api:.0f} / {cores * 1000 / all_sdk:.0f} per s"
        )
        # What the server did per booking on each side (its API calls and its database's reads
        # and writes): the kinds the two sides differ in by 0.05 or more.
        o_api, o_sdk = (per_each(ops_by[side], collections.Counter(), done_by[side]) for side in (1, 0))
        totals = {
            kind: (
                sum(v for k, v in o_api.items() if k.startswith(kind)),
                sum(v for k, v in o_sdk.items() if k.startswith(kind)),
            )
            for kind in ("api ", "db ")
        }
        differ = sorted(
            (k for k in set(o_api) | set(o_sdk) if abs(o_api.get(k, 0) - o_sdk.get(k, 0)) >= 0.05),
            key=lambda k: -abs(o_api.get(k, 0) - o_sdk.get(k, 0)),
        )
        if totals["api "] != (0, 0):
            notes.append(
                "bookings, the dev server's work per booking, API side / SDK side: "
                f"API calls {totals['api '][0]:.1f} / {totals['api '][1]:.1f}, "
                f"database operations {totals['db '][0]:.1f} / {totals['db '][1]:.1f}; differing: "
                + ", ".join(f"{k} {o_api.get(k, 0):.2f} / {o_sdk.get(k, 0):.2f}" for k in differ[:12])
            )
        self.notes[0:0] = notes

    def cpu(self, *names: str) -> dict[str, float]:
        """CPU seconds so far of the named stack processes (each with its children), and the
        bench's own."""
        s = self.s
        pids = {"server": s.server.pid, "worker": s.worker.pid, "API": s.api.pid, "bare worker": s.bare.pid}
        return {name: cpu_seconds(pids[name]) for name in names} | {"bench client": time.process_time()}

    async def settle(self, quiet_for: float = 2.0, timeout: float = 600) -> None:
        """Wait until the worker has no backlog (its sticky cache stops changing and the
        message log stops growing), so one figure's spill-over does not load the next."""
        deadline = time.monotonic() + timeout
        last: tuple[Any, ...] = ()
        still_since = time.monotonic()
        while time.monotonic() < deadline:
            async with self.sessions() as s:
                n = (await s.exec(select(func.count()).select_from(MessageLog))).one()
            now = (n, await sticky_cache(self.http, self.s.worker_metrics))
            if now != last:
                last, still_since = now, time.monotonic()
            elif time.monotonic() - still_since >= quiet_for:
                return
            await asyncio.sleep(0.5)

    async def notices(self) -> tuple[float, float]:
        n = self.n
        cid, did = await self.clinic("Bench notices")
        pids = await self.patients(cid, n)  # an MIS import's shape: one patient per visit
        policy = JourneyPolicy(quiet_hours=None)
        far = datetime.now(UTC) + timedelta(days=30)
        cache0 = await self.cache_counts()
        procs = ("server", "worker", "bare worker")
        c0 = self.cpu(*procs)
        t0 = datetime.now(UTC)
        await bounded(n, 50, lambda i: self.start_journey(cid, did, pids[i], far + timedelta(minutes=30 * i), policy))
        start_rate = n / (datetime.now(UTC) - t0).total_seconds()
        times = await self.wait_sent(cid, "booking_notice", n, timeout=max(600, n * 2))
        ours = (max(times) - t0).total_seconds()
        c1 = self.cpu(*procs)
        misses, evictions = await self.cache_counts(since=cache0)
        cached = await sticky_cache(self.http, self.s.worker_metrics)
        per_cached = (rss(self.s.worker.pid) - self.worker_idle) / max(cached, 1)
        self.notes.append(
            f"notices: per journey until its notice, {misses / n:.2f} sticky-cache misses (a journey rebuilt"
            f" from its history) and {evictions / n:.2f} forced evictions;"
            f" cache {self.s.settings.worker_max_cached_workflows}, {cached:.0f} cached then"
            f" ({'sandboxed' if self.s.settings.workflow_sandbox else 'unsandboxed'}: WORKFLOW_SANDBOX),"
            f" worker RSS over idle {per_cached / 1024:.0f} KiB per cached journey"
        )
        await self.settle()

        c2 = self.cpu(*procs)
        t1 = time.time()
        handles = await bounded(n, 50, lambda i: self.start_bare(BareInput()))
        ran = await results(handles)
        bare = max(ran) - t1
        c3 = self.cpu(*procs)
        # Where the cores went on each side: from its first start to its last notice (ours) or
        # its last result (bare).
        each = ", ".join(f"{k} {(c1[k] - c0[k]) * 1000 / n:.1f} / {(c3[k] - c2[k]) * 1000 / n:.1f}" for k in c0)
        self.notes.append(f"notices, CPU ms per journey, ours / bare: {each}")
        # The figure is each side's last: a straggler (a task lost and retried) shows here.
        mine = [(t - t0).total_seconds() for t in times]
        theirs = [r - t1 for r in ran]
        self.notes.append(
            "notices, seconds from the first start, p50 / p99 / last: ours "
            + " / ".join(f"{pct(mine, q):.1f}" for q in (0.5, 0.99))
            + f" / {ours:.1f}; bare "
            + " / ".join(f"{pct(theirs, q):.1f}" for q in (0.5, 0.99))
            + f" / {bare:.1f}"
        )
        ratio = ours / bare
        self.add(
            f"{n} journeys started -> booking notice sent",
            f"{ours:.1f} s ({n / ours:.1f}/s)",
            f"bare 1 activity {bare:.1f} s",
            ratio,
            "<= 1.25x",
            ratio <= 1.25,
        )
        await self.settle()
        return start_rate, ours / n

    async def burst(self, start_rate: float, per_notice: float, rounds: int = 1) -> list[str]:
        """`rounds` bursts of ours, each followed by one of the bare floor's; the rows give the
        medians (the bare floor's drain moves run to run on a shared box), the notes each round.
        Memory is read in the first round, with its journeys (and sleepers) open and waiting."""
        n = self.n
        ours: list[tuple[float, float]] = []
        bare: list[tuple[float, float]] = []
        mem: dict[str, float] = {}
        for r in range(rounds):
            ours.append(await self._burst_ours(r, start_rate, per_notice, mem))
            bare.append(await self._burst_bare(start_rate, mem))
        open_ours, mem_ours, cache, server_mem = int(mem["open"]), mem["worker"], mem["cache"], mem["server"]
        per_bare = (mem["bare"] - mem["bare idle"]) / n
        ours_p99, ours_drain = (statistics.median(x[i] for x in ours) for i in (0, 1))
        bare_p99, bare_drain = (statistics.median(x[i] for x in bare) for i in (0, 1))
        each = "median of " if rounds > 1 else ""
        self.add(
            f"burst of {n} asks due at one instant: p99 late",
            f"{each}{ours_p99:.2f} s",
            f"bare sleep+activity {each}{bare_p99:.2f} s",
            ours_p99 / max(bare_p99, 1e-3),
            "<= 1.2x",
            ours_p99 <= 1.2 * bare_p99,
        )
        self.add(
            "  ... drain",
            f"{each}{ours_drain:.1f} sends/s",
            f"bare {each}{bare_drain:.1f}/s",
            ours_drain / bare_drain,
            ">= 0.9x",
            ours_drain >= 0.9 * bare_drain,
        )
        if rounds > 1:
            self.notes.append(
                "burst rounds (ours p99 / drain : bare p99 / drain): "
                + "; ".join(
                    f"{o[0]:.2f} s / {o[1]:.1f} : {b[0]:.2f} s / {b[1]:.1f}" for o, b in zip(ours, bare, strict=True)
                )
            )
        self.notes.append(
            "burst, per ask of ours from its instant until every ask was sent: sticky-cache misses / forced"
            " evictions "
            + "; ".join(f"{m:.2f} / {e:.2f}" for m, e in self.burst_cache)
            + f" (cache {self.s.settings.worker_max_cached_workflows})"
        )
        # Memory: ours with every journey so far open; bare with its n sleepers open.
        per_ours = (mem_ours - self.worker_idle) / max(open_ours, 1)
        measurable = per_bare >= 1024  # a few KiB of growth over a few workflows is noise
        self.add(
            "worker memory per open journey",
            f"{per_ours / 1024:.0f} KiB ({open_ours} open)",
            f"bare {per_bare / 1024:.0f} KiB ({n} open)",
            per_ours / per_bare if measurable else None,
            "100k open < 1 GiB",
            None,
        )
        cached_bytes = per_ours * max(open_ours, 1) / max(cache, 1) if cache == cache and cache else per_ours
        projected = self.worker_idle + min(100_000, self.s.settings.worker_max_cached_workflows) * cached_bytes
        if open_ours < 100_000:
            self.add(
                "  ... worker RSS at 100k open (projected)",
                f"{projected / GiB:.2f} GiB",
                f"cache {self.s.settings.worker_max_cached_workflows}, {cached_bytes / 1024:.0f} KiB/cached",
                None,
                "< 1 GiB",
                projected < GiB,
            )
        else:
            self.add("  ... worker RSS at 100k open", f"{mem_ours / GiB:.2f} GiB", "", None, "< 1 GiB", mem_ours < GiB)
        db = self.db_bytes() - self.db_idle
        k = 1000 / max(open_ours, 1) / 2**20
        return [
            f"worker RSS {mem_ours / 2**20:.0f} MiB with {open_ours} journeys open (sticky cache {cache:.0f});"
            f" dev server RSS {server_mem / 2**20:.0f} MiB, +{(server_mem - self.server_idle) * k:.1f} MiB"
            f" per 1,000 journeys" + (f"; database +{db * k:.2f} MiB per 1,000 journeys" if db > 0 else "")
        ]

    async def _burst_ours(
        self, r: int, start_rate: float, per_notice: float, mem: dict[str, float]
    ) -> tuple[float, float]:
        """One burst of our day-before asks: (p99 late, drain per s)."""
        n = self.n
        lead = timedelta(hours=24)
        policy = JourneyPolicy(
            quiet_hours=None, reminder_lead=lead.total_seconds(), reask_interval=6 * 3600, voice_call_after=6 * 3600
        )
        cid, did = await self.clinic(f"Bench burst {r + 1}")
        pids = await self.patients(cid, n)
        # The instant falls once every journey has started and sent its booking notice.
        setup = n / max(start_rate, 1) + n * per_notice
        due = datetime.now(UTC) + timedelta(seconds=15 + 1.5 * setup)
        aids = await bounded(n, 50, lambda i: self.start_journey(cid, did, pids[i], due + lead, policy))
        await self.wait_sent(cid, "booking_notice", n, timeout=max(600, n * 2))
        if not mem:
            mem["open"] = await self.open_journeys()
            mem["worker"] = rss(self.s.worker.pid)
            mem["cache"] = await sticky_cache(self.http, self.s.worker_metrics)
            mem["server"] = rss(self.s.server.pid)
            self.burst_aids, self.burst_pids = aids, pids
        wait = (due - datetime.now(UTC)).total_seconds()
        if wait < 1:
            self.notes.append(f"burst: the asks' instant passed {-wait:.1f} s before setup ended (slow box)")
        cache0 = await self.cache_counts()
        times = await self.wait_sent(cid, "reminder", n, timeout=max(600, n * 2))
        misses, evictions = await self.cache_counts(since=cache0)
        self.burst_cache.append((misses / n, evictions / n))
        late = [(t - due).total_seconds() for t in times]
        await self.settle()
        return pct(late, 0.99), n / max(1e-3, max(late) - min(0.0, min(late)))

    async def _burst_bare(self, start_rate: float, mem: dict[str, float]) -> tuple[float, float]:
        """One burst of the bare floor: n sleepers due at one instant, then one activity each."""
        n = self.n
        due = time.time() + 15 + 1.5 * n / max(start_rate, 1)
        idle = rss(self.s.bare.pid)
        handles = await bounded(n, 50, lambda i: self.start_bare(BareInput(wake_at=due)))
        # Measured once the sleepers are built and waiting (as ours are, after their notices).
        await asyncio.sleep(max(0.0, due - 2 - time.time()))
        if "bare" not in mem:
            mem["bare idle"], mem["bare"] = idle, rss(self.s.bare.pid)
        ran = await results(handles)
        late = [x - due for x in ran]
        await self.settle()
        return pct(late, 0.99), n / max(1e-3, max(late) - min(0.0, min(late)))

    def db_bytes(self) -> int:
        url = self.s.settings.database_url
        if url.startswith("sqlite"):
            path = Path(url.split(":///", 1)[1])
            return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.exists())
        return 0

    async def open_journeys(self) -> int:
        r = await self.s.client.count_workflows(f"WorkflowType='{APPOINTMENT_WORKFLOW}' AND ExecutionStatus='Running'")
        return r.count

    async def fill_open(self) -> None:
        """--large: top the open journeys up to open_target (memory at 100k open)."""
        have = await self.open_journeys()
        if have >= self.open_target:
            return
        cid, did = await self.clinic("Bench open journeys")
        pids = await self.patients(cid, self.open_target - have)
        far = datetime.now(UTC) + timedelta(days=200)
        policy = JourneyPolicy(quiet_hours=None)
        await bounded(
            self.open_target - have,
            50,
            lambda i: self.start_journey(cid, did, pids[i], far + timedelta(minutes=30 * i), policy),
        )
        await self.settle(quiet_for=5)

    async def reply(self, samples: int, gap: float = 0.5) -> None:
        ours: list[float] = []
        posts: list[float] = []  # of which the reply's own request (routing, its row, the signal)
        polls: list[int] = []  # GETs until `confirmed` showed
        bare: list[float] = []
        n = min(samples, len(self.burst_aids))
        handles = await bounded(n, 10, lambda i: self.start_bare(BareInput(wait_for_poke=True)))
        await asyncio.sleep(1)

        async def one_of_ours(i: int) -> None:
            aid, pid = self.burst_aids[i], self.burst_pids[i]
            t0 = time.perf_counter()
            r = await self.http.post("/v1/sandbox/reply", json={"patient_id": pid, "text": "так"})
            r.raise_for_status()
            posts.append((time.perf_counter() - t0) * 1000)
            polls.append(0)
            while True:
                polls[-1] += 1
                g = await self.http.get(f"/v1/appointments/{aid}")
                if g.json().get("stage") == "confirmed":
                    break
                if time.perf_counter() - t0 > 60:
                    raise RuntimeError(f"reply to {aid} not visible after 60 s")
                await asyncio.sleep(0.005)
            ours.append((time.perf_counter() - t0) * 1000)

        async def one_bare(i: int) -> None:
            h = handles[i]
            t0 = time.perf_counter()
            await h.signal("poke")
            while not await h.query("poked"):
                await asyncio.sleep(0.005)
            bare.append((time.perf_counter() - t0) * 1000)

        # The samples alternate (ours, bare; bare, ours; ...), so a slow moment of the box lands
        # on both sides alike, and each side's sample follows the other's as often as not.
        for i in range(n):
            for f in (one_of_ours, one_bare) if i % 2 == 0 else (one_bare, one_of_ours):
                await f(i)
                # Apart, so neither side's sample meets the other's after-work (our journey's row
                # sync after a reply takes tens of milliseconds).
                await asyncio.sleep(gap)
        o, b = statistics.median(ours), statistics.median(bare)
        self.notes.append(
            f"reply: p50 {o:.1f} ms, of which the reply's request {statistics.median(posts):.1f} ms;"
            f" {statistics.mean(polls):.1f} GETs until `confirmed` showed"
        )
        self.add(
            "reply -> `confirmed` visible, p50",
            f"{o:.1f} ms",
            f"signal + query {b:.1f} ms",
            o / b,
            "<= 1.2x",
            o <= 1.2 * b,
        )


def table(b: Bench, header: str) -> str:
    w = [max(len(r[0]) for r in b.rows), max(len(r[1]) for r in b.rows), max(len(r[2]) for r in b.rows)]
    lines = [header, f"{'figure':<{w[0]}}  {'ours':<{w[1]}}  {'baseline (same run)':<{w[2]}}  ratio   goal"]
    for what, ours, base, ratio, goal, ok in b.rows:
        mark = {True: "met", False: "NOT met", None: ""}[ok]
        r = f"{ratio:5.2f}x" if ratio is not None else "      "
        lines.append(f"{what:<{w[0]}}  {ours:<{w[1]}}  {base:<{w[2]}}  {r}  {goal} {mark}".rstrip())
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    configure_logging("WARNING", json_output=True)
    n = args.n or (10_000 if args.large else 300)
    open_target = 100_000 if args.large else 0
    progress("starting the dev server, worker, bare worker and API")
    stack = await start_stack(args.database_url, args.api_procs)
    try:
        http = httpx.AsyncClient(base_url=stack.api_url, timeout=60)
        token = (await http.post("/v1/auth/token", data={"username": "bench", "password": "bench-password"})).json()
        http.headers["Authorization"] = f"Bearer {token['access_token']}"
        progress("waiting for /health")
        while (await http.get("/health")).status_code != 200:  # the worker is polling
            await asyncio.sleep(0.2)
        b = Bench(stack, http, n, open_target)
        b.worker_idle = rss(stack.worker.pid)
        b.server_idle = rss(stack.server.pid)
        b.db_idle = b.db_bytes()
        load0 = os.getloadavg()[0]
        only = set(args.only.split(",")) if args.only else {"bookings", "notices", "burst", "reply"}
        extra: list[str] = []
        start_rate, per_notice = 10.0, 1.0
        if "notices" in only:
            progress("journeys -> booking notices")
            start_rate, per_notice = await b.notices()
        if open_target:
            progress(f"topping open journeys up to {open_target}")
            await b.fill_open()
        if only & {"burst", "reply"}:
            progress("burst of asks")
            extra = await b.burst(start_rate, per_notice, args.burst_rounds)
        if "reply" in only:
            progress("reply -> visible")
            await b.reply(args.reply_samples, args.reply_gap)
        if "bookings" in only:
            # Last: its rounds leave thousands of journeys open (booked months ahead), which
            # would fill the worker's sticky cache before the figures above if they ran first.
            progress("bookings")
            await b.bookings(args.clients, args.seconds, args.api_procs, args.booking_rounds)
        load1 = os.getloadavg()[0]
        db = stack.settings.database_url.split(":", 1)[0]
        header = (
            f"patient-journeys bench, one run: N={n}, {db}, sandbox provider, {os.cpu_count()} CPUs, "
            f"load average {load0:.1f} -> {load1:.1f}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
        )
        print()
        print(table(b, header))
        for line in extra + b.notes:
            print("  " + line)
        print(
            "  provider rate limits: sends are paced per sender (WHATSAPP/TELEGRAM/TWILIO_SEND_RATE) and a 429"
            " holds the sender for its Retry-After (tests/test_provider_pacing.py); the sandbox provider used"
            " here has no limit, so the burst above measures our own floor"
        )
        await http.aclose()
        await b.engine.dispose()
    finally:
        stack.stop()


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run `finally`: stop the processes
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--large", action="store_true", help="10k journeys per figure and 100k open journeys")
    p.add_argument("--n", type=int, default=0, help="journeys per figure (default 300; --large 10,000)")
    p.add_argument("--clients", type=int, default=20, help="concurrent booking clients")
    p.add_argument("--seconds", type=float, default=10, help="booking measurement per side and round")
    p.add_argument(
        "--booking-rounds", type=int, default=3, help="booking rounds, sides alternating first; the median ratio"
    )
    p.add_argument("--api-procs", type=int, default=2, help="API processes (uvicorn --workers)")
    p.add_argument("--reply-samples", type=int, default=20)
    p.add_argument("--reply-gap", type=float, default=0.5, help="seconds between reply samples (ours, bare alternate)")
    p.add_argument(
        "--burst-rounds", type=int, default=1, help="bursts per side, alternating; the table gives the medians"
    )
    p.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    p.add_argument(
        "--only",
        default="",
        help="some figures only: bookings,notices,burst,reply (profiling). The burst plans its instant"
        " from the notices' measured rates; without notices it assumes 10 starts/s and 1 s per notice"
        " (safe on any box, but ~6 min of waiting per round at N=300): say notices,burst",
    )
    asyncio.run(main(p.parse_args()))
    exit_without_teardown(0)  # the Temporal client's threads may outlive the loop
