"""Who a journey talks to: an opted-out patient gets nothing (the journey still protects the
visit through operator tasks), a child's messages go to the guardian, whose answer counts."""

from __future__ import annotations

from core.deps import Deps
from models.core import Role
from tests.support.api import Api
from tests.support.appointments import at, book, make_clinic, phone, reply, sent, state, tasks
from tests.support.live import eventually


async def test_opted_out_patient_gets_nothing_and_an_operator_takes_over(api: Api, deps: Deps) -> None:
    clinic = await make_clinic(api)
    assert await reply(api, clinic, "STOP")  # carrier opt-out word, through the sandbox
    p = (await api.as_(Role.front_desk).get(f"/v1/patients/{clinic['patient_id']}")).json()
    assert p["opted_out"] is True
    appt = await book(api, clinic, in_seconds=9)

    async def handed_to_operator() -> None:
        view = await state(api, appt["id"])
        assert view["stage"] == "needs_clarification", view
        assert "unconfirmed" in [t["kind"] for t in await tasks(api, appt["id"])]

    await eventually(handed_to_operator, timeout=30)
    out = await sent(deps, appt["id"])
    assert out, "the journey tried to reach the patient"
    assert {m.status for m in out} == {"opted_out"}, [(m.kind, m.status) for m in out]
    listed = (await api.as_(Role.operator).get("/v1/sandbox/messages", params={"subject_id": appt["id"]})).json()
    assert [m for m in listed if m.get("status") == "sent"] == []

    # START opts back in; the next journey reaches the patient again.
    await reply(api, clinic, "START")
    appt2 = await book(api, clinic, in_seconds=7200)  # clear of the first visit

    async def noticed() -> None:
        assert "sent" in {m.status for m in await sent(deps, appt2["id"])}

    await eventually(noticed)


async def test_childs_messages_reach_the_guardian_whose_answer_counts(api: Api, deps: Deps) -> None:
    clinic = await make_clinic(api)
    desk = api.as_(Role.front_desk)
    guardian = (
        await desk.post(
            "/v1/patients", json={"full_name": "Iryna Kovalenko", "phone": phone(), "preferred_channel": "sms"}
        )
    ).json()
    child = (
        await desk.post(
            "/v1/patients",
            json={
                "full_name": "Marko Kovalenko",
                "birth_date": "2017-03-02",
                "preferred_channel": "sms",
                "guardian_id": guardian["id"],
                "clinic_id": clinic["id"],
            },
        )
    ).json()
    assert child["phone"] is None
    r = await desk.post(
        "/v1/appointments",
        json={
            "patient_id": child["id"],
            "clinic_id": clinic["id"],
            "doctor_id": clinic["doctor_id"],
            "starts_at": at(60),
            "duration_minutes": 30,
            "service": "Check-up",
        },
    )
    assert r.status_code == 201, r.text
    appt = r.json()

    async def asked_guardian() -> None:
        out = [m for m in await sent(deps, appt["id"]) if m.status == "sent"]
        assert {m.kind for m in out} >= {"booking_notice", "reminder"}
        assert {(m.patient_id, m.recipient_id) for m in out} == {(child["id"], guardian["id"])}

    await eventually(asked_guardian)
    # The guardian answers from their own number: the child's visit is confirmed.
    await reply(api, {**clinic, "patient_id": guardian["id"]}, "Так, буду")

    async def confirmed() -> None:
        assert (await state(api, appt["id"]))["stage"] == "confirmed"

    await eventually(confirmed)
