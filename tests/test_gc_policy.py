"""The worker's garbage-collector policy (core/gc_policy.py, WORKER_GC_THRESHOLD): start-up
objects frozen out of every collection, young collections every 10k allocations, not 700."""

from __future__ import annotations

import asyncio
import gc
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import gc_policy
from core.settings import Settings
from tests.support.procs import Proc, process_env


@pytest.fixture
def restored_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


def _young_collections() -> int:
    return int(gc.get_stats()[0]["collections"])


def test_tune_freezes_what_is_alive_and_collects_the_young_every_threshold(restored_gc: None) -> None:
    before = gc.get_threshold()
    did = gc_policy.tune(10_000)
    assert gc.get_threshold() == (10_000, before[1], before[2])
    assert did == {"gc_threshold0": 10_000, "gc_frozen": gc.get_freeze_count()}
    assert gc.get_freeze_count() > 10_000  # the interpreter, pytest, our modules: out of every walk
    # 5,000 new containers kept alive: no young collection now (Python's 700 would run ~7).
    young = _young_collections()
    kept = [[i] for i in range(5_000)]
    assert _young_collections() == young, "a young collection ran within 10k allocations"
    assert len(kept) == 5_000


def test_python_default_collects_the_young_every_700(restored_gc: None) -> None:
    """The contrast the policy changes (and proof the probe above can fail)."""
    gc.set_threshold(700, 10, 10)
    gc.collect()
    young = _young_collections()
    kept = [[i] for i in range(5_000)]
    assert _young_collections() - young >= 5
    assert len(kept) == 5_000


def test_zero_leaves_python_defaults(restored_gc: None) -> None:
    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    assert gc_policy.tune(0) == {"gc_threshold0": before[0], "gc_frozen": frozen}
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == frozen


async def test_the_worker_process_applies_it_once_built(settings: Settings, tmp_path: Path) -> None:
    """`python worker.py` as production runs it: its start-up line says what it applied."""
    assert Settings.model_fields["worker_gc_threshold"].default == 10_000
    env = process_env(
        settings,
        TEMPORAL_TASK_QUEUE=f"gc-{uuid.uuid4().hex[:8]}",
        WORKER_METRICS_PORT="0",
        LOG_LEVEL="INFO",
        LOG_JSON="true",
    )
    log = tmp_path / "worker.log"
    worker = Proc("worker", env, log)
    worker.start()
    try:
        started: dict[str, object] | None = None
        for _ in range(600):
            for line in log.read_text(errors="replace").splitlines():
                if '"worker started"' in line:
                    started = json.loads(line)
            if started is not None or not worker.alive:
                break
            await asyncio.sleep(0.1)
        assert started is not None, log.read_text(errors="replace")[-2000:]
        assert started["gc_threshold0"] == settings.worker_gc_threshold
        assert isinstance(started["gc_frozen"], int) and started["gc_frozen"] > 10_000
    finally:
        worker.stop()
