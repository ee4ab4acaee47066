"""Saved workflow histories (tests/histories/*.json): replay them with the current workflow
code, and a worker to record new ones with. Recorded with a fixed test-only key, so they
decrypt in any session; record again only after an intended, `workflow.patched`-guarded
change, and keep the old files too."""

from __future__ import annotations

import base64
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from temporalio.client import Client, WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.worker import Replayer, Worker

from activities import build_activities
from core.codec import data_converter
from core.deps import Deps
from core.settings import Settings
from core.temporal import workflow_runner

HISTORIES = Path(__file__).resolve().parent.parent / "histories"
# Test-only key: these histories hold only test data. Never use it anywhere else.
REPLAY_KEY = ("replay-fixture", base64.b64decode("cmVwbGF5LWZpeHR1cmUta2V5LW5vdC1hLXNlY3JldC0="))


def replay_converter() -> DataConverter:
    return data_converter([REPLAY_KEY])


async def replay_saved(pattern: str, workflows: Sequence[type], at_least: int = 1) -> None:
    """Replay every saved history matching `pattern`; a non-determinism error fails the test.
    Each replays with the workers' runner (unsandboxed, the default) and in Temporal's sandbox
    (WORKFLOW_SANDBOX), whose restrictions then fail any clock, randomness or I/O the code
    reaches on that history's path."""
    files = sorted(HISTORIES.glob(pattern))
    assert len(files) >= at_least, f"expected {at_least}+ histories {pattern} in {HISTORIES}"
    for sandbox in (False, True):
        replayer = Replayer(
            workflows=list(workflows), workflow_runner=workflow_runner(sandbox), data_converter=replay_converter()
        )
        for f in files:
            history = WorkflowHistory.from_json(f.stem, f.read_text())
            result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
            assert result.replay_failure is None, f"{f.name} ({'sandboxed' if sandbox else 'unsandboxed'})"


@contextlib.asynccontextmanager
async def recording_worker(
    settings: Settings, deps: Deps, workflows: Sequence[type]
) -> AsyncIterator[tuple[Client, str]]:
    """(client, task queue) of a worker whose histories are encrypted with the replay key."""
    client = await Client.connect(
        settings.temporal_address, namespace=settings.temporal_namespace, data_converter=replay_converter()
    )
    tq = f"replay-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client,
        task_queue=tq,
        workflows=list(workflows),
        workflow_runner=workflow_runner(),
        activities=build_activities(deps),
    ):
        HISTORIES.mkdir(exist_ok=True)
        yield client, tq
