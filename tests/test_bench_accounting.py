"""Issue 14: the bench's own machinery. Its per-process accounting (CPU and memory) counts a
process's descendants, as `journeys api` with API_WORKERS > 1 runs its requests in child
processes; its waits for N workflows' results stay under the server's cap on long polls."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.__main__ import _family, cpu_seconds, own_cpu_seconds, rss


def burning(done: Path) -> str:
    """Python source that burns 0.4 s of its own CPU, creates `done`, and sleeps."""
    return (
        "import pathlib, time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass\n"
        f"pathlib.Path({str(done)!r}).touch()\ntime.sleep(60)\n"
    )


def spawning(code: str) -> str:
    """Python source that starts `code` in a child process and sleeps."""
    return f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, '-c', {code!r}])\ntime.sleep(60)\n"


def test_cpu_and_memory_count_the_grandchildren(tmp_path: Path) -> None:
    # parent (sleeps) -> child (sleeps) -> grandchild (burns 0.4 s of CPU, then sleeps)
    done = tmp_path / "burnt"
    parent = subprocess.Popen([sys.executable, "-c", spawning(spawning(burning(done)))])
    # /proc counts utime and stime in whole clock ticks, each rounded down
    rounding = 2 / os.sysconf("SC_CLK_TCK")
    try:
        deadline = time.monotonic() + 30
        while len(_family(parent.pid)) < 3 or not done.exists():
            assert parent.poll() is None
            assert time.monotonic() < deadline, f"family {_family(parent.pid)}, CPU {cpu_seconds(parent.pid)}"
            time.sleep(0.1)
        family = _family(parent.pid)
        assert family[0] == parent.pid and len(family) == 3
        child_alone = own_cpu_seconds(family[1])
        assert child_alone < 0.4 <= cpu_seconds(family[2]) + rounding
        # the child's figure holds its child's burn, and the parent's holds both
        assert cpu_seconds(family[1]) >= 0.4 - rounding + child_alone
        assert cpu_seconds(family[0]) >= cpu_seconds(family[1])
        assert _family(family[2]) == [family[2]]
        assert rss(family[0]) > rss(family[1]) > rss(family[2]) > 0
    finally:
        for p in reversed(_family(parent.pid)):
            try:
                os.kill(p, 9)
            except ProcessLookupError:
                pass
        parent.wait()


def test_a_gone_process_counts_nothing() -> None:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    assert cpu_seconds(p.pid) == 0 and rss(p.pid) == 0


def test_result_waits_are_bounded_and_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """At N=10,000 the bench waited for every bare workflow's result at once and the dev server
    refused the polls past its per-namespace cap ("namespace concurrent poller limit exceeded")."""
    import bench.__main__ as bench

    monkeypatch.setattr(bench, "RESULT_WAITS", 7)
    in_flight = most = 0

    class Handle:
        def __init__(self, i: int) -> None:
            self.i = i

        async def result(self) -> int:
            nonlocal in_flight, most
            in_flight += 1
            most = max(most, in_flight)
            await asyncio.sleep(0.001 * (self.i % 3))
            in_flight -= 1
            return self.i

    got = asyncio.run(bench.results([Handle(i) for i in range(100)]))
    assert got == list(range(100))
    assert most == 7


def test_a_metric_sums_its_label_sets_and_nothing_else() -> None:
    import httpx

    from bench.__main__ import metric

    text = "\n".join(
        [
            "# HELP temporal_sticky_cache_miss Workflow tasks that found no cached instance",
            "# TYPE temporal_sticky_cache_miss counter",
            'temporal_sticky_cache_miss_total{namespace="default",task_queue="a"} 3',
            'temporal_sticky_cache_miss_total{namespace="default",task_queue="b"} 4',
            "temporal_sticky_cache_missing_total 100",
            "temporal_sticky_cache_size 5",
        ]
    )

    async def read(name: str) -> float:
        transport = httpx.MockTransport(lambda _request: httpx.Response(200, text=text))
        async with httpx.AsyncClient(transport=transport) as http:
            return await metric(http, "http://worker/metrics", name)

    assert asyncio.run(read("temporal_sticky_cache_miss")) == 7
    assert asyncio.run(read("temporal_sticky_cache_size")) == 5
    assert asyncio.run(read("temporal_sticky_cache_total_forced_eviction")) == 0


def test_the_servers_work_is_counted_by_operation_and_per_booking() -> None:
    import httpx

    from bench.__main__ import per_each, server_ops

    def page(starts: int, writes: int) -> str:
        return "\n".join(
            [
                "# TYPE service_requests counter",
                f'service_requests{{ns="default",operation="StartWorkflowExecution",service_name="frontend"}} {starts}',
                f'service_requests{{ns="default",operation="StartWorkflowExecution",service_name="history"}} {starts}',
                f'persistence_requests{{ns="default",operation="UpdateWorkflowExecution",service_name="x"}} {writes}',
                'persistence_requests_total_bogus{operation="UpdateWorkflowExecution"} 999',
                'service_latency_count{operation="StartWorkflowExecution"} 999',
            ]
        )

    async def read(text: str) -> object:
        transport = httpx.MockTransport(lambda _request: httpx.Response(200, text=text))
        async with httpx.AsyncClient(transport=transport) as http:
            return await server_ops(http, "http://server/metrics")

    before, after = asyncio.run(read(page(10, 30))), asyncio.run(read(page(30, 90)))
    assert before == {"api StartWorkflowExecution": 20, "db UpdateWorkflowExecution": 30}
    assert per_each(after, before, 20) == {"api StartWorkflowExecution": 2.0, "db UpdateWorkflowExecution": 3.0}
    assert asyncio.run(read("")) == {}


def test_cache_cost_measures_each_runner_on_journeys_that_sent_their_notice_once() -> None:
    """`python -m bench.cache_cost` (a cached journey's memory and a rebuild's CPU, by runner)
    runs end to end at a small size: every side reports, and each journey of ours sent exactly
    one booking notice (the fakes count sends by idempotency key) before it was measured."""
    from bench.__main__ import PROJECT_ROOT

    done = subprocess.run(
        [sys.executable, "-m", "bench.cache_cost", "--n", "8", "--sides", "bare,ours,ours-sandboxed"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    sides = [line.split()[0] for line in lines if "RSS +" in line]
    assert sides == ["bare", "ours", "ours-sandboxed"], done.stdout
    assert sum("16 notices" in line for line in lines) == 2, done.stdout  # 8 warm-up journeys + 8
    assert sum("rebuilt from history" in line for line in lines) == 3, done.stdout


async def test_trips_to_the_sqlite_thread_are_counted_one_per_hand_off(tmp_path: Path) -> None:
    """bench.trips, as booking_cost and counters read it: a statement is one trip, a commit
    of a write one more, and the no-op commit of a read none (core.sqlite_gate)."""
    from sqlalchemy import text

    from bench import trips
    from core.db import make_engine

    trips.install()
    trips.install()  # a second install must not count twice
    engine = make_engine(f"sqlite:///{tmp_path / 't.db'}")
    try:
        async with engine.begin() as c:
            await c.execute(text("CREATE TABLE t (n INTEGER)"))
        before = trips.made()
        async with engine.begin() as c:
            await c.execute(text("INSERT INTO t (n) VALUES (1)"))
        assert trips.made() - before == 2  # the statement, its commit
        before = trips.made()
        async with engine.begin() as c:
            assert (await c.execute(text("SELECT n FROM t"))).scalar_one() == 1
        assert trips.made() - before == 1  # the statement; nothing open to commit
    finally:
        await engine.dispose()
