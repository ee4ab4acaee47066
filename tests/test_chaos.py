"""The small chaos run in `make test` (tests/chaos.py; `make chaos` runs a large one): about
30 journeys while the worker, the API and the Temporal dev server are killed with SIGKILL and
restarted (Temporal on the same database file). Nothing lost, nothing sent twice, no deadline
or no-show skipped or later than the longest outage allows."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chaos import run


@pytest.mark.xfail(
    reason="issue 16 still open: after a dev-server kill a booking notice can wait ~40 s for its "
    "activity, and asks wait for the notice, so some silent journeys are never asked (skipped); "
    "see /work/notes/issue-16.md",
    strict=False,
)
async def test_small_chaos_run_loses_nothing(tmp_path: Path) -> None:
    counts = await run(journeys=30, kills=4, seed=16, workdir=tmp_path)
    print(counts.line())
    assert sum(counts.kills.values()) >= 3 and all(counts.kills.values()), counts.kills
    assert counts.lost == 0, counts.problems
    assert counts.duplicated == 0, counts.problems
    assert counts.skipped == 0, counts.problems
    assert counts.late == 0, counts.problems
