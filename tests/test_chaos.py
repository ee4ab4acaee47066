"""The small chaos run in `make test` (tests/chaos.py; `make chaos` runs a large one): about
30 journeys while the worker, the API and the Temporal dev server are killed with SIGKILL and
restarted (Temporal on the same database file). The goal: nothing lost, nothing sent twice,
no deadline or no-show skipped or later than the longest outage allows; the test says which
of these it asserts today."""

from __future__ import annotations

from pathlib import Path

from tests.chaos import run


async def test_small_chaos_run_sends_nothing_twice_and_nothing_late(tmp_path: Path) -> None:
    """What holds today, asserted: the kills happen, no provider receives a message twice and
    nothing is later than the outage allows. Not yet asserted (issue 16 stays open for it):
    lost and skipped journeys. After a dev-server kill a booking notice can wait ~40 s for its
    activity, and asks wait for the notice, so a few silent journeys reach the deadline unasked;
    the counts are printed on every run."""
    counts = await run(journeys=30, kills=4, seed=16, workdir=tmp_path)
    print(counts.line())
    assert sum(counts.kills.values()) >= 3 and all(counts.kills.values()), counts.kills
    assert counts.duplicated == 0, counts.problems
    assert counts.late == 0, counts.problems
