"""Replay saved slot-offer histories (a freed slot booked by the first of two simultaneous
"yes" answers with a later "yes" told it is taken; a list exhausted by a "no") with the
current workflow code: a change that would break running offers fails here. Recorded with
the replay fixture key (tests/support/replay.py); to record again after an
intended, patched change (keep the old files too):
    REGENERATE_HISTORIES=1 scripts/test.sh tests/test_slot_offer_replay.py -k record
"""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from contracts.common import PATIENT_REPLY_SIGNAL, PatientReply
from contracts.waitlist import SlotOfferInput, SlotOfferSnapshot, WavePolicy, slot_offer_workflow_id
from core.deps import Deps
from core.settings import Settings
from models.waitlist import SlotOffer
from tests.support.api import Api
from tests.support.appointments import make_clinic
from tests.support.live import eventually
from tests.support.replay import HISTORIES, recording_worker, replay_saved
from tests.test_waitlist import _patient, _waitlist
from workflows.registry import WORKFLOWS
from workflows.slot_offer import SlotOfferJourney


async def test_saved_slot_offer_histories_replay_with_current_code() -> None:
    await replay_saved("slot_offer_*.json", [SlotOfferJourney], at_least=2)


def _yes(patient_id: str, text: str = "да") -> PatientReply:
    return PatientReply(
        source="sandbox",
        kind="text",
        text=text,
        provider_message_id=f"rec-{uuid.uuid4().hex[:12]}",
        question_kind="slot_offer",
        patient_id=patient_id,
    )


@pytest.mark.skipif(not os.environ.get("REGENERATE_HISTORIES"), reason="records histories")
async def test_record_slot_offer_histories(api: Api, settings: Settings, deps: Deps) -> None:
    async with recording_worker(settings, deps, WORKFLOWS) as (client, tq):
        clinic = await make_clinic(api)
        patients = [await _patient(api, clinic, f"Replay {n}") for n in ("Anna", "Borys", "Vira")]
        for p in patients:
            await _waitlist(api, clinic, p)

        async def offer(starts_in: float, policy: WavePolicy) -> tuple[str, SlotOfferInput]:
            row = SlotOffer(
                freed_key=f"replay-{uuid.uuid4().hex}",
                clinic_id=clinic["id"],
                doctor_id=clinic["doctor_id"],
                starts_at=datetime.now(UTC) + timedelta(seconds=starts_in),
                duration_minutes=30,
                freed_by=uuid.uuid4().hex,
                reason="cancelled",
                workflow_id="",
                journey_started=True,
            )
            row.workflow_id = slot_offer_workflow_id(row.id)
            async with deps.sessions() as s:
                s.add(row)
                await s.commit()
            return row.workflow_id, SlotOfferInput(row.id, clinic["id"], clinic["doctor_id"], row.starts_at, 30, policy)

        async def asked(handle: object, n: int) -> None:
            view = await handle.query(SlotOfferJourney.view)  # type: ignore[attr-defined]
            assert len(view.offered) == n, view

        # Booked: two answer yes at once, the first wins; a later yes hears it is taken.
        wid, inp = await offer(90, WavePolicy(wave_size=3, wave_interval=600, stop_before=60))
        handle = await client.start_workflow(SlotOfferJourney.run, inp, id=wid, task_queue=tq)
        await eventually(lambda: asked(handle, 3), timeout=30)
        await asyncio.gather(
            handle.signal(PATIENT_REPLY_SIGNAL, _yes(patients[0])),
            handle.signal(PATIENT_REPLY_SIGNAL, _yes(patients[1], "так")),
        )

        async def booked() -> None:
            view = await handle.query(SlotOfferJourney.view)
            assert view.state == "booked" and len(view.told_taken) == 1, view

        await eventually(booked, timeout=30)
        await handle.signal(PATIENT_REPLY_SIGNAL, _yes(patients[2]))
        result = await handle.result()
        assert isinstance(result, SlotOfferSnapshot) and result.state == "booked" and len(result.told_taken) == 2
        (HISTORIES / "slot_offer_booked.json").write_text((await handle.fetch_history()).to_json())

        # Exhausted: a wave of one at a time; everyone says no in turn.
        wid, inp = await offer(600, WavePolicy(wave_size=1, wave_interval=600, stop_before=60))
        handle = await client.start_workflow(SlotOfferJourney.run, inp, id=wid, task_queue=tq)
        for k in (1, 2):  # the two still on the list (the winner left it)
            await eventually(lambda k=k: asked(handle, k), timeout=30)
            view = await handle.query(SlotOfferJourney.view)
            await handle.signal(PATIENT_REPLY_SIGNAL, _yes(view.offered[-1], "нет"))
        done = await handle.result()
        assert done.state == "exhausted" and done.waves == 2, done
        (HISTORIES / "slot_offer_exhausted.json").write_text((await handle.fetch_history()).to_json())
