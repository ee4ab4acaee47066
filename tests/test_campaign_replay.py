"""Replay saved campaign histories (a daily run, and journeys that ended accepted, no_answer
after one re-ask, and booked) with the current workflow code: a change that would break
running campaign journeys fails here. Recorded with the replay fixture key (see
tests/test_appointment_replay.py); to record again after an intended, patched change (keep
the old files too):
    REGENERATE_HISTORIES=1 scripts/test.sh tests/test_campaign_replay.py -k record
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contracts.campaigns import PATIENT_BOOKED_SIGNAL, RunInput, RunResult, journey_workflow_id, question_kind
from contracts.common import PATIENT_REPLY_SIGNAL, PatientReply
from core.deps import Deps
from core.settings import Settings
from tests.support.api import Api
from tests.support.live import eventually
from tests.support.replay import HISTORIES, recording_worker, replay_saved
from tests.test_campaigns import _clinic, _patient, _sends, _set, _visit
from workflows.campaign import CampaignJourney, CampaignRun


async def test_saved_campaign_histories_replay_with_current_code() -> None:
    await replay_saved("campaign_*.json", [CampaignRun, CampaignJourney], at_least=4)


@pytest.mark.skipif(not os.environ.get("REGENERATE_HISTORIES"), reason="records histories")
async def test_record_campaign_histories(api: Api, settings: Settings, deps: Deps) -> None:
    async with recording_worker(settings, deps, [CampaignRun, CampaignJourney]) as (client, tq):
        clinic = await _clinic(api)
        yes, silent, books = [
            await _patient(api, clinic, n) for n in ("Олена Петренко", "Ірина Коваль", "Марко Бондар")
        ]
        for p in (yes, silent, books):
            await _visit(deps, clinic, p, datetime.now(UTC) - timedelta(days=166))
        await _set(api, clinic, "recall", enabled=True, reask_after="PT4S", answer_window="PT4S")
        run_id = f"campaign-recall-{clinic['id']}-replay"
        result = await client.execute_workflow(
            CampaignRun.run, RunInput(clinic_id=clinic["id"], kind="recall"), id=run_id, task_queue=tq
        )
        assert isinstance(result, RunResult) and result.started == 3
        sends = await _sends(deps, clinic, "recall")
        handles = {p: client.get_workflow_handle(journey_workflow_id("recall", sends[p].id)) for p in sends}

        async def asked(p: str) -> None:
            view: Any = await handles[p].query("state")
            assert view["asks"] >= 1, view

        for p in (yes, books):
            await eventually(lambda p=p: asked(p), timeout=30)
        await handles[yes].signal(
            PATIENT_REPLY_SIGNAL,
            PatientReply(source="sandbox", kind="text", text="да", question_kind=question_kind("recall")),
        )
        await handles[books].signal(PATIENT_BOOKED_SIGNAL)
        outcomes = {p: await h.result() for p, h in handles.items()}
        assert outcomes == {yes: "accepted", silent: "no_answer", books: "booked"}, outcomes
        (HISTORIES / "campaign_run.json").write_text(
            (await client.get_workflow_handle(run_id).fetch_history()).to_json()
        )
        for p, name in ((yes, "accepted"), (silent, "no_answer_after_reask"), (books, "booked")):
            history = await handles[p].fetch_history()
            (HISTORIES / f"campaign_journey_{name}.json").write_text(history.to_json())
