"""Replay saved appointment-journey histories with the current workflow code: a change that
would break running journeys (non-determinism) fails here, before it ships.

`appointment_before_texts_no_memo_thumbs_up.json` was recorded with the code from before
patient texts became templates (#9): a service with no memo and a 👍 answered to the survey,
so it fails without the `care-memo-from-catalogue` and `survey-like-dislike` patches.

Histories are recorded with a fixed test-only key, so they decrypt in any session. To record
them again (after an intended, `workflow.patched`-guarded change, keep the old files too):
    REGENERATE_HISTORIES=1 .venv/bin/pytest tests/test_appointment_replay.py -k record
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from contracts.appointment import (
    APPOINTMENT_REPLY_SIGNAL,
    AppointmentInput,
    AppointmentOutcome,
    RescheduleRequest,
    StaffAction,
    appointment_workflow_id,
)
from contracts.common import PatientReply
from contracts.policy import JourneyPolicy
from core.deps import Deps
from core.settings import Settings
from tests.support.api import Api
from tests.support.appointments import make_clinic
from tests.support.live import eventually
from tests.support.replay import HISTORIES, recording_worker, replay_saved
from workflows.appointment import AppointmentJourney


async def test_saved_histories_replay_with_current_code() -> None:
    await replay_saved("appointment_*.json", [AppointmentJourney])


@pytest.mark.skipif(not os.environ.get("REGENERATE_HISTORIES"), reason="records histories")
async def test_record_histories(api: Api, settings: Settings, deps: Deps) -> None:
    async with recording_worker(settings, deps, [AppointmentJourney]) as (client, tq):
        for name, scenario in (("full_visit", _full_visit), ("no_show", _no_show)):
            clinic = await make_clinic(api, reask_interval=0.5, confirm_deadline=3, no_show_grace=0.5)
            aid = uuid.uuid4().hex
            policy = JourneyPolicy(
                reminder_lead=300,
                reask_interval=0.5,
                reask_count=3,
                voice_call_after=0.5,
                confirm_deadline=3,
                no_show_grace=0.5,
                feedback_delay=0.5,
                survey_timeout=30,
                quiet_hours=None,
            )
            inp = AppointmentInput(
                appointment_id=aid,
                clinic_id=clinic["id"],
                patient_id=clinic["patient_id"],
                doctor_id=clinic["doctor_id"],
                starts_at=datetime.now(UTC) + timedelta(seconds=8 if name == "no_show" else 60),
                duration_minutes=30,
                service="Implant placement",
                timezone="Europe/Kyiv",
                policy=policy,
            )
            handle = await client.start_workflow(
                AppointmentJourney.run, inp, id=appointment_workflow_id(aid), task_queue=tq
            )
            await scenario(handle)
            await handle.result()
            history = await handle.fetch_history()
            (HISTORIES / f"appointment_{name}.json").write_text(history.to_json())


async def _full_visit(handle) -> None:  # type: ignore[no-untyped-def]
    async def two_asks() -> None:
        assert (await handle.query(AppointmentJourney.view)).asks_sent >= 2

    await eventually(two_asks)
    await handle.signal(APPOINTMENT_REPLY_SIGNAL, PatientReply(source="sandbox", kind="text", text="когда?"))
    await handle.execute_update(
        AppointmentJourney.reschedule, RescheduleRequest(starts_at=datetime.now(UTC) + timedelta(seconds=90))
    )
    await eventually(lambda: _asks(handle, 1))
    await handle.signal(APPOINTMENT_REPLY_SIGNAL, PatientReply(source="sandbox", kind="text", text="да"))
    await handle.execute_update(AppointmentJourney.check_in, StaffAction())
    await handle.execute_update(AppointmentJourney.finish, StaffAction())

    async def surveyed() -> None:
        assert "survey_sent" in [h.event for h in (await handle.query(AppointmentJourney.view)).history]

    await eventually(surveyed)
    await handle.signal(APPOINTMENT_REPLY_SIGNAL, PatientReply(source="sandbox", kind="text", text="9"))
    out: AppointmentOutcome = await handle.result()
    assert out.nps == 9


async def _no_show(handle) -> None:  # type: ignore[no-untyped-def]
    out: AppointmentOutcome = await handle.result()
    assert out.stage == "no_show"


async def _asks(handle, n: int) -> None:  # type: ignore[no-untyped-def]
    assert (await handle.query(AppointmentJourney.view)).asks_sent >= n
