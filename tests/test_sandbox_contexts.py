"""The journeys' payload contexts are read without a trip into the sandbox (core/sandbox_contexts.py),
and are the very contexts the sandbox itself would have answered.

A recorded visit replayed, and a journey run live up to its booking notice, walk every payload of
every activation and completion. Each question the SDK asks is answered by our direct path, and
then asked of the sandbox as well, for comparison only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any, ClassVar

from temporalio.client import Client, WorkflowHistory
from temporalio.converter import ActivitySerializationContext, WorkflowSerializationContext
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, WorkflowInstance, WorkflowInstanceDetails

from contracts.policy import JourneyPolicy
from core.deps import Deps
from core.sandbox_contexts import DirectContexts, JourneySandbox
from core.settings import Settings
from core.temporal import workflow_runner
from tests.support.live import eventually
from tests.support.replay import HISTORIES, replay_converter
from tests.test_journey_races import Gated, journey
from worker import build_workers
from workflows.appointment import AppointmentJourney

TRIPS = ("get_serialization_context", "get_external_store_context")


class Compared(DirectContexts):
    """Answers as DirectContexts does, then asks the sandbox the same question (one counted trip)
    and keeps both answers. `_check` asserts afterwards, outside the SDK's payload walk."""

    def __init__(self, sandboxed: WorkflowInstance, seen: list[tuple[str, Any, Any, Any]], trips: list[str]) -> None:
        super().__init__(sandboxed)
        self.seen, self.trips = seen, trips

    def _both(self, what: str, ours: Callable[[Any], Any], command_info: Any) -> Any:
        answer = ours(command_info)
        theirs = getattr(self.sandboxed, what)(command_info)
        self.seen.append((what, command_info, answer, theirs))
        return answer

    def get_serialization_context(self, command_info: Any) -> Any:
        return self._both("get_serialization_context", super().get_serialization_context, command_info)

    def get_external_store_context(self, command_info: Any) -> Any:
        return self._both("get_external_store_context", super().get_external_store_context, command_info)


class Recording(JourneySandbox):
    seen: ClassVar[list[tuple[str, Any, Any, Any]]] = []
    trips: ClassVar[list[str]] = []

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        wrapped = super().create_instance(det)
        assert isinstance(wrapped, DirectContexts)
        sandboxed: Any = wrapped.sandboxed
        run_code = sandboxed._run_code

        def counted(code: str, **extra: Any) -> None:
            if any(t in code for t in TRIPS):
                self.trips.append(code)
            run_code(code, **extra)

        sandboxed._run_code = counted  # this instance only
        return Compared(sandboxed, self.seen, self.trips)


def test_the_sandboxed_runner_answers_contexts_directly() -> None:
    assert isinstance(workflow_runner(sandbox=True), JourneySandbox)


async def test_workflow_sandbox_picks_every_workers_runner(deps: Deps, client: Client) -> None:
    """WORKFLOW_SANDBOX: the journeys run unsandboxed unless it is on; then in our sandbox."""
    for on, runner in ((False, UnsandboxedWorkflowRunner), (True, JourneySandbox)):
        tq = f"runner-check-{on}"  # one worker per queue and client: a queue of its own each
        settings = deps.settings.model_copy(update={"workflow_sandbox": on, "temporal_task_queue": tq})
        workers = build_workers(client, replace(deps, settings=settings))
        assert len(workers) == 2  # the journeys' queue and the imports'
        for w in workers:
            assert type(w.config()["workflow_runner"]) is runner, (on, w.task_queue)
    assert Settings(_env_file=None).workflow_sandbox is False
    assert Settings(_env_file=None, WORKFLOW_SANDBOX="true").workflow_sandbox is True


def _check() -> list[Any]:
    """Every question answered as the sandbox answers it, without a trip into it; returns our
    serialization contexts."""
    seen = Recording.seen
    assert seen, "no payload context was asked for"
    for what, info, ours, theirs in seen:
        assert ours == theirs, (what, info, ours, theirs)
    # Every trip into the sandbox was the comparison's own, one per question.
    assert len(Recording.trips) == len(seen)
    return [ours for what, _, ours, _ in seen if what == "get_serialization_context"]


def _local(contexts: list[Any]) -> set[str]:
    return {c.activity_type for c in contexts if isinstance(c, ActivitySerializationContext) and c.is_local}


def _recording() -> Recording:
    Recording.seen.clear()
    Recording.trips.clear()
    return Recording(restrictions=workflow_runner(sandbox=True).restrictions)


async def test_a_replayed_visit_gets_the_sandboxs_own_contexts_without_entering_it() -> None:
    # A visit recorded before the journey's steps became local activities: queued activities,
    # timers, signals and updates.
    history = WorkflowHistory.from_json("contexts", (HISTORIES / "appointment_full_visit.json").read_text())
    replayer = Replayer(workflows=[AppointmentJourney], workflow_runner=_recording(), data_converter=replay_converter())
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None
    contexts = _check()
    assert any(isinstance(c, ActivitySerializationContext) and not c.is_local for c in contexts)
    assert any(isinstance(c, WorkflowSerializationContext) for c in contexts)
    assert any(what == "get_external_store_context" for what, *_ in Recording.seen)


async def test_a_live_journey_gets_the_sandboxs_own_contexts_without_entering_it(client: Client) -> None:
    # Today's journey on the session's dev server, up to its booking notice: its context, send
    # and row write are local activities run inside the workflow task. (The notice's send offers
    # the row with it, ROW_WITH_NOTICE; these fakes have no booked row, so the journey writes it.)
    fakes = Gated()
    async with journey(client, fakes, timedelta(days=30), JourneyPolicy(quiet_hours=None), _recording()):

        async def notice_written() -> None:
            assert [k for _, k in fakes.sent] == ["booking_notice"]
            assert fakes.synced and fakes.synced[-1].history[-1].event == "notice_sent"

        await eventually(notice_written, timeout=60)
    assert {"load_appointment_context", "send_appointment_message", "sync_appointment"} <= _local(_check())


class _Opaque(WorkflowInstance):
    """A workflow instance that is not the SDK's sandboxed one (say, after an SDK change)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def activate(self, act: Any) -> Any:
        raise AssertionError("not activated here")

    def get_serialization_context(self, command_info: Any) -> Any:
        self.asked.append("serialization")
        return WorkflowSerializationContext(namespace="n", workflow_id="w")

    def get_external_store_context(self, command_info: Any) -> Any:
        self.asked.append("store")
        return "store-context"

    def get_info(self) -> Any:
        return "info"


def test_an_instance_it_cannot_read_is_asked_the_usual_way() -> None:
    opaque = _Opaque()
    wrapped = DirectContexts(opaque)
    assert wrapped.direct is None
    assert wrapped.get_serialization_context(None) == WorkflowSerializationContext(namespace="n", workflow_id="w")
    assert wrapped.get_external_store_context(None) == "store-context"
    assert wrapped.get_info() == "info"
    assert opaque.asked == ["serialization", "store"]
