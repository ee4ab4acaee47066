"""The small chaos run in `make test` (tests/chaos.py; `make chaos` runs a large one): 30
journeys while the worker, the API and the Temporal dev server are killed with SIGKILL and
restarted (Temporal on the same database file). Nothing lost, nothing sent twice, no ask,
deadline or no-show skipped, none later than the longest outage allows (issue 16)."""

from __future__ import annotations

from pathlib import Path

from tests.chaos import run


async def test_small_chaos_run_loses_nothing_sends_nothing_twice_skips_nothing(tmp_path: Path) -> None:
    counts = await run(journeys=30, kills=4, seed=16, workdir=tmp_path)
    print(counts.line())
    for line in counts.timeline:
        print("  ", line)
    assert sum(counts.kills.values()) >= 3 and all(counts.kills.values()), counts.kills
    assert counts.lost == 0, counts.problems
    assert counts.duplicated == 0, counts.problems
    assert counts.skipped == 0, counts.problems
    assert counts.late == 0, counts.problems
