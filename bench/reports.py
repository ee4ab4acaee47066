"""Management reports at scale: 1,000,000 appointments over 100 clinics and two years in
PostgreSQL; each report for one clinic and one month, timed (median of --repeat runs) and
printed with its headline figures, beside two baselines measured in the same run:

  floor   SELECT count(*) of that clinic's visits in that month (what any report pays to
          find its rows through the index)
  naive   the same report figures computed the obvious way: load the clinic-month's
          appointment rows through the ORM and count in Python (first-time patients, NPS
          and confirmations only need the rows; this is what the SQL aggregates replace)

and the same report for the whole network (100 clinics) for scale. The data is generated
once into the database `bench_reports_<N>` of the throwaway cluster (scripts/pg-test.sh) and
reused while its size matches; --regenerate rebuilds it.

Usage: .venv/bin/python -m bench.reports [--appointments 1000000] [--clinics 100] [--repeat 5]
       [--database-url postgresql://...]  (default: the throwaway cluster, started if needed)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import func, select
from sqlmodel import col
from sqlmodel import select as sm_select

from core.db import make_engine, migrate, session_factory
from core.report_workbook import workbook_bytes
from core.reports import REPORTS, build_report
from core.settings import PROJECT_ROOT
from models.appointment import Appointment, first_visit_flags
from models.core import DEFAULT_LEAD_SOURCES

SPECIALTIES = ["therapy", "hygiene", "implantology", "orthodontics", "surgery", "orthopedics", "pediatric"]
CHANNELS = ["whatsapp", "telegram", "sms", "voice"]
TZ = "Europe/Kyiv"
BENCH_DB = "bench_reports"
END = datetime(2026, 11, 1, tzinfo=UTC)
START = END - timedelta(days=730)
MONTH_FROM, MONTH_TO = date(2026, 10, 1), date(2026, 10, 31)


def _server_url() -> str:
    return subprocess.run(
        [str(PROJECT_ROOT / "scripts" / "pg-test.sh"), "start"], check=True, capture_output=True, text=True
    ).stdout.strip()


def _ensure_db(server: str, appointments: int, regenerate: bool) -> str:
    name = f"{BENCH_DB}_{appointments}"
    url = server.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(server, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists and regenerate:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = None
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    return url


def _copy(conn: psycopg.Connection[Any], table: str, cols: list[str], rows: Iterator[tuple[Any, ...]]) -> int:
    n = 0
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as cp:
        for r in rows:
            cp.write_row(r)
            n += 1
    return n


def generate(url: str, appointments: int, clinics: int, seed: int = 13) -> None:
    """Clinics with 6 doctors each, ~5 visits per patient over two years, stages, confirmation
    facts, NPS answers, inbound replies and operator tasks in realistic proportions."""
    rnd = random.Random(seed)
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    with psycopg.connect(url) as conn:
        conn.execute("SET synchronous_commit = off")
        clinic_ids = [uuid.uuid4().hex for _ in range(clinics)]
        _copy(
            conn,
            "clinic",
            ["id", "name", "address", "phone", "timezone", "policy", "lead_sources", "created_at"],
            (
                (cid, f"Clinic {i:03d}", "Kyiv", "+380441234567", TZ, "{}", json.dumps(DEFAULT_LEAD_SOURCES), now)
                for i, cid in enumerate(clinic_ids)
            ),
        )
        doctors = {cid: [(uuid.uuid4().hex, SPECIALTIES[k % len(SPECIALTIES)]) for k in range(6)] for cid in clinic_ids}
        _copy(
            conn,
            "doctor",
            ["id", "clinic_id", "full_name", "specialty", "created_at"],
            ((did, cid, f"Dr {did[:6]}", sp, now) for cid, ds in doctors.items() for did, sp in ds),
        )
        n_patients = max(appointments // 5, 1)
        patients = [(uuid.uuid4().hex, clinic_ids[i % clinics]) for i in range(n_patients)]
        sources = [*DEFAULT_LEAD_SOURCES, None]
        _copy(
            conn,
            "patient",
            [
                "id",
                "full_name",
                "phone",
                "preferred_channel",
                "clinic_id",
                "source",
                "opted_out",
                "loyalty_points",
                "created_at",
            ],  # fmt: skip
            (
                (pid, f"Patient {k}", f"+38067{k:07d}"[:13], "sms", cid, rnd.choice(sources), False, 0, now)
                for k, (pid, cid) in enumerate(patients)
            ),
        )
        # Visits per patient: 1..9 (mean 5), times uniform over two years.
        counts = [rnd.randint(1, 9) for _ in patients]
        scale = appointments / sum(counts)
        span = (END - START).total_seconds()
        appts: list[tuple[Any, ...]] = []
        replies: list[tuple[Any, ...]] = []
        tasks: list[tuple[Any, ...]] = []
        for (pid, cid), c in zip(patients, counts, strict=True):
            k = max(1, round(c * scale))
            times = sorted(START + timedelta(seconds=rnd.random() * span) for _ in range(k))
            visits: list[tuple[str, datetime, str, str]] = []
            for t in times:
                t = t.replace(minute=(t.minute // 15) * 15, second=0, microsecond=0)
                did, _sp = rnd.choice(doctors[cid])
                r = rnd.random()
                past = t < now
                stage = (
                    ("finished" if r < 0.8 else "no_show" if r < 0.86 else "cancelled")
                    if past
                    else ("booked" if r < 0.6 else "confirmed" if r < 0.9 else "cancelled")
                )
                visits.append((uuid.uuid4().hex, t, stage, did))
            flags = first_visit_flags((v[0], v[1], v[2]) for v in visits)
            for aid, t, stage, did in visits:
                asked = rnd.random() < 0.9
                conf = None
                confirmed_at = None
                if asked:
                    x = rnd.random()
                    conf = "confirmed" if x < 0.68 else "declined" if x < 0.74 else "no_answer"
                    if conf == "confirmed":
                        confirmed_at = t - timedelta(hours=rnd.randint(2, 30))
                        at = confirmed_at - timedelta(seconds=1)
                        ch = rnd.choice(CHANNELS)
                        replies.append((uuid.uuid4().hex, f"in:{aid}", "in", ch, "reply", "signalled", pid, cid, aid,
                                        "{}", at))  # fmt: skip
                op = conf == "no_answer" and rnd.random() < 0.7
                survey = t + timedelta(hours=2) if stage == "finished" and rnd.random() < 0.85 else None
                nps = rnd.choices(range(11), weights=[1, 1, 1, 1, 1, 2, 3, 6, 10, 14, 20])[0]
                nps_v = nps if survey is not None and rnd.random() < 0.45 else None
                appts.append((aid, cid, did, pid, "Consultation", t, t + timedelta(minutes=30), 30, stage, 1,
                               f"appointment-{aid}", rnd.randint(1, 4) if asked else 0,
                               1 if asked and rnd.random() < 0.2 else 0, nps_v, flags[aid], conf, confirmed_at, op,
                               survey, "[]", t - timedelta(days=3)))  # fmt: skip
                if nps_v is not None and nps_v <= 6:
                    closed = rnd.random() < 0.8
                    assert survey is not None
                    tasks.append((uuid.uuid4().hex, f"detractor:{aid}", "detractor_feedback",
                                  "completed" if closed else "requested", "director", cid, pid, "appointment", aid,
                                  "Negative feedback", "{}", survey + timedelta(hours=1)))  # fmt: skip
        # The live queue: a few hundred open tasks per kind across the network, up to 3 weeks old.
        for kind in ("unconfirmed", "declined", "no_show_rebook", "unread_message"):
            for _ in range(clinics * 5):
                created = now - timedelta(seconds=rnd.random() * 21 * 86400)
                tasks.append((uuid.uuid4().hex, f"{kind}:{uuid.uuid4().hex}", kind, rnd.choice(["requested",
                              "in-progress"]), "operator", rnd.choice(clinic_ids), None, None, None,
                              f"{kind} task", "{}", created))  # fmt: skip
        _copy(
            conn,
            "appointment",
            [
                "id",
                "clinic_id",
                "doctor_id",
                "patient_id",
                "service",
                "starts_at",
                "ends_at",
                "duration_minutes",
                "stage",
                "version",
                "workflow_id",
                "asks_sent",
                "voice_calls",
                "nps",
                "first_visit",
                "confirmation",
                "confirmed_at",
                "operator_confirmed",
                "survey_sent_at",
                "history",
                "created_at",
            ],  # fmt: skip
            iter(appts),
        )
        _copy(
            conn,
            "message_log",
            [
                "id",
                "idempotency_key",
                "direction",
                "channel",
                "kind",
                "status",
                "patient_id",
                "clinic_id",
                "subject_id",
                "payload",
                "created_at",
            ],  # fmt: skip
            iter(replies),
        )
        _copy(
            conn,
            "operator_task",
            [
                "id",
                "dedup_key",
                "kind",
                "state",
                "assigned_role",
                "clinic_id",
                "patient_id",
                "subject_type",
                "subject_id",
                "title",
                "details",
                "created_at",
            ],  # fmt: skip
            iter(tasks),
        )
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    print(
        f"generated {len(appts):,} appointments, {len(patients):,} patients, {len(replies):,} replies, "
        f"{len(tasks):,} tasks in {time.perf_counter() - t0:.0f} s"
    )


def _count(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM appointment").fetchone()
        return int(row[0]) if row else 0


async def _median(fn: Callable[[], Awaitable[Any]], repeat: int) -> tuple[float, Any]:
    out = None
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = await fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), out


async def run(url: str, repeat: int) -> None:
    engine = make_engine(url)
    sessions = session_factory(engine)
    async with sessions() as s:
        conn = await s.connection()
        cid = (await conn.execute(select(func.min(Appointment.clinic_id)))).scalar_one()  # type: ignore[arg-type]
    from zoneinfo import ZoneInfo

    start = datetime(2026, 10, 1, tzinfo=ZoneInfo(TZ)).astimezone(UTC)
    end = datetime(2026, 11, 1, tzinfo=ZoneInfo(TZ)).astimezone(UTC)

    async def floor() -> int:
        async with sessions() as s:
            c = await s.connection()
            a = Appointment.__table__.c  # type: ignore[attr-defined]
            q = select(func.count()).where(a.clinic_id == cid, a.starts_at >= start, a.starts_at < end)
            return int((await c.execute(q)).scalar_one())

    async def naive() -> tuple[int, int, int]:
        async with sessions() as s:
            q = sm_select(Appointment).where(
                col(Appointment.clinic_id) == cid, col(Appointment.starts_at) >= start, col(Appointment.starts_at) < end
            )
            rows = (await s.exec(q)).all()
        firsts = {a.patient_id for a in rows if a.first_visit and a.stage == "finished"}
        answers = [a.nps for a in rows if a.stage == "finished" and a.survey_sent_at and a.nps is not None]
        confirmed = sum(1 for a in rows if (a.asks_sent or a.voice_calls) and a.confirmation == "confirmed")
        return len(firsts), len(answers), confirmed

    floor_ms, visits = await _median(floor, repeat)
    naive_ms, _ = await _median(naive, repeat)
    print(f"\none clinic, one month (2026-10, {TZ}): {visits:,} visits; median of {repeat} runs")
    print(f"  baseline floor: count(*) of the clinic-month             {floor_ms:8.1f} ms")
    print(f"  baseline naive: ORM rows + Python (3 reports' counts)    {naive_ms:8.1f} ms")
    print(f"  {'report':<24}{'one clinic':>12}{'+ xlsx':>10}{'network':>12}   figures (one clinic)")
    for name in REPORTS:

        async def one(name: str = name, clinics: list[str] | None = None) -> Any:
            async with sessions() as s:
                return await build_report(
                    s, name, clinic_ids=clinics, period_from=MONTH_FROM, period_to=MONTH_TO, timezone=TZ
                )

        ms, rep = await _median(lambda: one(clinics=[cid]), repeat)
        t0 = time.perf_counter()
        workbook_bytes([rep])
        xlsx_ms = (time.perf_counter() - t0) * 1000
        net_ms, _ = await _median(lambda: one(clinics=None), max(1, repeat // 2))
        figures = ", ".join(f"{k}={v}" for k, _l, v, _t in rep.summary)
        print(f"  {name:<24}{ms:10.1f} ms{xlsx_ms:7.1f} ms{net_ms:10.1f} ms   {figures}")
    await engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--appointments", type=int, default=1_000_000)
    ap.add_argument("--clinics", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--database-url", default=None, help="an empty PostgreSQL database (default: throwaway)")
    ap.add_argument("--regenerate", action="store_true")
    args = ap.parse_args()
    pgtest = PROJECT_ROOT / ".data" / "pgtest" / "postmaster.pid"
    started_here = args.database_url is None and not pgtest.exists()
    try:
        _bench(args)
    finally:
        if started_here:  # leave no server behind that we started
            subprocess.run([str(PROJECT_ROOT / "scripts" / "pg-test.sh"), "stop"], check=False)


def _bench(args: argparse.Namespace) -> None:
    url = args.database_url or _ensure_db(_server_url(), args.appointments, args.regenerate)
    migrate(url)
    have = _count(url)
    if have == 0:
        generate(url, args.appointments, args.clinics)
    elif abs(have - args.appointments) > args.appointments * 0.05:
        raise SystemExit(f"{url} holds {have:,} appointments; pass --regenerate to rebuild it")
    else:
        print(f"reusing {have:,} appointments in {url.rsplit('@', 1)[-1]}")
    asyncio.run(run(url, args.repeat))


if __name__ == "__main__":
    main()
