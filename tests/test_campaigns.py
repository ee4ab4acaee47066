"""Campaigns (issue 12) on the real dev server: recall, bonus and birthday audiences and who is
left out (STOP, marketing opt-out, booked since, already invited), once per period however
often the Schedule runs, a recall stopped by a booking, the answers (yes -> a task to book or
the booking link, no -> done, silence -> one re-ask -> closed), quiet hours, the settings API."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from contracts.campaigns import CAMPAIGN_RUN_WORKFLOW, RunInput, RunResult, schedule_id
from core.deps import Deps
from core.settings import Settings
from models.appointment import Appointment
from models.campaigns import CampaignSend
from models.core import OperatorTask, Patient, Role
from tests.support.api import Api
from tests.support.appointments import add_patient
from tests.support.live import eventually

KYIV = ZoneInfo("Europe/Kyiv")
FAST = {"reask_after": "PT3S", "answer_window": "PT3S"}  # a campaign's days in seconds


# ---------------------------------------------------------------- helpers
async def _clinic(api: Api, **policy: Any) -> dict[str, Any]:
    r = await api.as_(Role.admin).post(
        "/v1/clinics",
        json={
            "name": f"Campaign clinic {uuid.uuid4().hex[:4]}",
            "address": "1 Khoryva St, Kyiv",
            "phone": "+380441234567",
            "timezone": "Europe/Kyiv",
            "policy": {"quiet_hours": None, **policy},
        },
    )
    assert r.status_code == 201, r.text
    clinic = r.json()
    r = await api.as_(Role.admin).post(
        "/v1/doctors", json={"clinic_id": clinic["id"], "full_name": "Dr Koval", "specialty": "therapy"}
    )
    assert r.status_code == 201, r.text
    clinic["doctor_id"] = r.json()["id"]
    return clinic


async def _patient(api: Api, clinic: dict[str, Any], name: str, **kw: Any) -> str:
    return await add_patient(api, clinic, name, channel="whatsapp", **kw)


async def _visit(deps: Deps, clinic: dict[str, Any], patient: str, at: datetime, stage: str = "finished") -> None:
    """A visit row as the journeys leave it (the past cannot be booked through the API)."""
    async with deps.sessions() as s:
        s.add(
            Appointment(
                clinic_id=clinic["id"],
                doctor_id=clinic["doctor_id"],
                patient_id=patient,
                service="Гигиена",
                starts_at=at,
                ends_at=at + timedelta(minutes=30),
                duration_minutes=30,
                stage=stage,
                workflow_id=f"appointment-{uuid.uuid4().hex}",
            )
        )
        await s.commit()


async def _set(api: Api, clinic: dict[str, Any], kind: str, **settings: Any) -> dict[str, Any]:
    r = await api.as_(Role.director).put(f"/v1/clinics/{clinic['id']}/campaigns/{kind}", json=settings)
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _run(client: Client, settings: Settings, clinic: dict[str, Any], kind: str) -> RunResult:
    """One run of the campaign, as its Schedule starts it."""
    return await client.execute_workflow(
        CAMPAIGN_RUN_WORKFLOW,
        RunInput(clinic_id=clinic["id"], kind=kind),
        id=f"campaign-{kind}-{clinic['id']}-test-{uuid.uuid4().hex[:6]}",
        task_queue=settings.temporal_task_queue,
        result_type=RunResult,
    )


async def _sends(deps: Deps, clinic: dict[str, Any], kind: str) -> dict[str, CampaignSend]:
    async with deps.sessions() as s:
        rows = (
            await s.exec(select(CampaignSend).where(CampaignSend.clinic_id == clinic["id"], CampaignSend.kind == kind))
        ).all()
    return {r.patient_id: r for r in rows}


async def _state(deps: Deps, clinic: dict[str, Any], kind: str, patient: str, state: str, timeout: float = 60) -> None:
    async def ok() -> None:
        rows = await _sends(deps, clinic, kind)
        assert patient in rows and rows[patient].state == state, rows.get(patient)

    await eventually(ok, timeout=timeout)


async def _out(api: Api, patient: str) -> list[dict[str, Any]]:
    r = await api.as_(Role.operator).get("/v1/sandbox/messages", params={"patient_id": patient, "direction": "out"})
    assert r.status_code == 200, r.text
    return [m for m in r.json() if m["patient_id"] == patient or m["recipient_id"] == patient]


async def _say(api: Api, patient: str, text: str) -> dict[str, Any]:
    r = await api.as_(Role.operator).post("/v1/sandbox/reply", json={"patient_id": patient, "text": text})
    assert r.status_code == 200, r.text
    return dict(r.json())


def _months_ago(days: int) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


# ---------------------------------------------------------------- recall
async def test_recall_audience_invitation_and_yes_becomes_a_task(
    api: Api, deps: Deps, client: Client, settings: Settings
) -> None:
    clinic = await _clinic(api)
    other = await _clinic(api)
    invited = await _patient(api, clinic, "Петренко Олена Іванівна")
    opted_out_marketing = await _patient(api, clinic, "Марія Коваль")
    stopped = await _patient(api, clinic, "Ірина Шевченко")
    booked = await _patient(api, clinic, "Андрій Бондар")
    too_recent = await _patient(api, clinic, "Олег Мельник")
    elsewhere = await _patient(api, other, "Тарас Ткаченко")
    mis_only = await _patient(api, clinic, "Наталія Кравченко")
    r = await api.as_(Role.admin).post(
        "/v1/patients",
        json={"full_name": "Кравченко Софія Олегівна", "guardian_id": mis_only, "clinic_id": clinic["id"]},
    )
    assert r.status_code == 201, r.text
    child = r.json()["id"]
    for p in (invited, opted_out_marketing, stopped, booked, child):
        await _visit(deps, clinic, p, _months_ago(167))
    await _visit(deps, clinic, invited, _months_ago(400))  # an older visit: the last one counts
    await _visit(deps, clinic, booked, datetime.now(UTC) + timedelta(days=3), stage="booked")
    await _visit(deps, clinic, too_recent, _months_ago(90))
    await _visit(deps, other, elsewhere, _months_ago(167))
    async with deps.sessions() as s:  # the MIS base says when this one last came
        p = await s.get(Patient, mis_only)
        assert p is not None
        p.last_visit_on = (datetime.now(KYIV) - timedelta(days=160)).date()
        s.add(p)
        await s.commit()
    r = await api.as_(Role.front_desk).put(f"/v1/patients/{opted_out_marketing}/marketing", json={"opt_out": True})
    assert r.status_code == 200 and r.json()["marketing_opt_out"] is True, r.text
    assert (await _say(api, stopped, "STOP"))["outcome"] == "opted_out"

    await _set(api, clinic, "recall", enabled=True, offer="Гигиена −20 % до конца месяца.", **FAST)
    result = await _run(client, settings, clinic, "recall")
    assert result.started == 3 and result.found == 3, result
    assert result.left_out == {"marketing_opt_out": 1, "opted_out": 1, "booked_since": 1}, result
    sends = await _sends(deps, clinic, "recall")
    assert set(sends) == {invited, mis_only, child}
    assert all(s.workflow_id == f"campaign-recall-{s.id}" for s in sends.values())
    assert all(invited not in s.workflow_id for s in sends.values()), "no patient id in a workflow id"

    async def invitation() -> dict[str, Any]:
        msgs = [m for m in await _out(api, invited) if m["kind"] == "campaign.recall.invite"]
        assert len(msgs) == 1, msgs
        return msgs[0]

    msg = await eventually(invitation, timeout=60)

    async def to_the_guardian() -> None:  # the child's recall goes to the mother, naming the child
        msgs = [m for m in await _out(api, mis_only) if m["patient_id"] == child]
        assert [m["kind"] for m in msgs] == ["campaign.recall.invite_child"], msgs
        assert "Кравченко Софія Олегівна" in msgs[0]["text"], msgs[0]["text"]

    await eventually(to_the_guardian, timeout=60)
    visit_day = _months_ago(167).astimezone(KYIV)
    assert "Олена" in msg["text"] and "Гигиена −20 %" in msg["text"], msg["text"]
    assert str(visit_day.day) in msg["text"], msg["text"]  # the date of that last visit
    assert [b["title"] for b in msg["buttons"]] == ["Да, записаться", "Нет, спасибо"]

    reply = await _say(api, invited, "да")
    assert reply["outcome"] == "signalled" and reply["subject_type"] == "campaign", reply
    await _state(deps, clinic, "recall", invited, "accepted")
    async with deps.sessions() as s:
        tasks = (
            await s.exec(
                select(OperatorTask).where(OperatorTask.patient_id == invited, OperatorTask.kind == "campaign_book")
            )
        ).all()
    assert len(tasks) == 1 and tasks[0].clinic_id == clinic["id"], tasks
    r = await api.as_(Role.operator).get("/v1/tasks", params={"kind": "campaign_book", "clinic_id": clinic["id"]})
    assert r.status_code == 200 and [t["patient_id"] for t in r.json()] == [invited], r.text

    async def told() -> None:
        assert any(m["kind"] == "campaign.accepted_call" for m in await _out(api, invited))

    await eventually(told, timeout=30)
    # The operator books the patient: the task is done by the booking itself.
    r = await api.as_(Role.operator).post(
        "/v1/appointments",
        json={
            "patient_id": invited,
            "clinic_id": clinic["id"],
            "doctor_id": clinic["doctor_id"],
            "starts_at": (datetime.now(UTC) + timedelta(days=5)).isoformat(),
            "duration_minutes": 30,
            "service": "Гигиена",
        },
    )
    assert r.status_code == 201, r.text
    async with deps.sessions() as s:
        task = await s.get(OperatorTask, tasks[0].id)
    assert task is not None and task.state == "completed" and task.outcome == "the patient booked a visit", task
    r = await api.as_(Role.director).get(f"/v1/clinics/{clinic['id']}/campaigns/recall/summary")
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["invited"] == 3 and got["by_state"]["accepted"] == 1, got  # the others still wait
    assert got["booked_within_30_days"] == 1 and got["conversion"] == 0.333, got
    # Nobody left out got anything.
    for p in (opted_out_marketing, stopped, booked, too_recent):
        assert not [m for m in await _out(api, p) if m["kind"].startswith("campaign")], p


async def test_schedule_twice_invites_each_patient_once_per_period(
    api: Api, deps: Deps, client: Client, settings: Settings
) -> None:
    clinic = await _clinic(api)
    patient = await _patient(api, clinic, "Петренко Олена")
    await _visit(deps, clinic, patient, _months_ago(170))
    out = await _set(api, clinic, "recall", enabled=True, reask_after="PT60S", answer_window="PT60S")
    sid = out["schedule_id"]
    assert sid == schedule_id(clinic["id"], "recall")
    desc = await client.get_schedule_handle(sid).describe()
    assert desc.schedule.spec.time_zone_name == "Europe/Kyiv"

    handle = client.get_schedule_handle(sid)

    async def runs(n: int) -> list[RunResult]:
        found = [
            w
            async for w in client.list_workflows(
                f"WorkflowType='{CAMPAIGN_RUN_WORKFLOW}' AND ClinicId='{clinic['id']}'"
            )
        ]
        assert len(found) == n and all(w.status == WorkflowExecutionStatus.COMPLETED for w in found), found
        return [await client.get_workflow_handle(w.id, run_id=w.run_id, result_type=RunResult).result() for w in found]

    await handle.trigger()
    first = await eventually(lambda: runs(1), timeout=60)
    await _state(deps, clinic, "recall", patient, "running")
    await handle.trigger()
    both = await eventually(lambda: runs(2), timeout=60)
    second = next(r for r in both if r != first[0])
    assert first[0].started == 1, first
    assert second.started == 0 and second.left_out.get("already_invited") == 1, second
    # Two more runs at the same moment (a manual run racing the schedule): still nobody new.
    racing = await asyncio.gather(*(_run(client, settings, clinic, "recall") for _ in range(2)))
    assert sum(r.started for r in racing) == 0, racing

    # The director's "run now": the same run, nobody new either.
    r = await api.as_(Role.director).post(f"/v1/clinics/{clinic['id']}/campaigns/recall/run")
    assert r.status_code == 202, r.text
    now = await client.get_workflow_handle(r.json()["workflow_id"], result_type=RunResult).result()
    assert now.started == 0 and now.left_out.get("already_invited") == 1, now

    sends = await _sends(deps, clinic, "recall")
    assert list(sends) == [patient]
    invites = [m for m in await _out(api, patient) if m["kind"] == "campaign.recall.invite"]
    assert len(invites) == 1, invites

    # Switched off: the Schedule is gone, and it cannot be run by hand.
    await _set(api, clinic, "recall", enabled=False)
    with pytest.raises(RPCError):
        await client.get_schedule_handle(sid).describe()
    r = await api.as_(Role.director).post(f"/v1/clinics/{clinic['id']}/campaigns/recall/run")
    assert r.status_code == 409, r.text


async def test_recall_stops_when_the_patient_books(api: Api, deps: Deps, client: Client, settings: Settings) -> None:
    clinic = await _clinic(api)
    by_api = await _patient(api, clinic, "Олена Петренко")
    by_import = await _patient(api, clinic, "Марко Петренко")
    for p in (by_api, by_import):
        await _visit(deps, clinic, p, _months_ago(165))
    await _set(api, clinic, "recall", enabled=True, reask_after="PT8S", answer_window="PT60S")
    assert (await _run(client, settings, clinic, "recall")).started == 2

    async def invited() -> None:
        for p in (by_api, by_import):
            assert [m for m in await _out(api, p) if m["kind"] == "campaign.recall.invite"], p

    await eventually(invited, timeout=60)
    # One books at the desk (the booking path signals the journey) ...
    r = await api.as_(Role.front_desk).post(
        "/v1/appointments",
        json={
            "patient_id": by_api,
            "clinic_id": clinic["id"],
            "doctor_id": clinic["doctor_id"],
            "starts_at": (datetime.now(UTC) + timedelta(days=2)).isoformat(),
            "duration_minutes": 30,
            "service": "Гигиена",
        },
    )
    assert r.status_code == 201, r.text
    await _state(deps, clinic, "recall", by_api, "booked", timeout=30)
    # ... the other's visit arrives without a signal (e.g. the MIS file): the check before the
    # re-ask finds it.
    await _visit(deps, clinic, by_import, datetime.now(UTC) + timedelta(days=4), stage="booked")
    await _state(deps, clinic, "recall", by_import, "booked", timeout=60)
    for p in (by_api, by_import):
        kinds = [m["kind"] for m in await _out(api, p) if m["kind"].startswith("campaign")]
        assert kinds == ["campaign.recall.invite"], (p, kinds)  # no re-ask


# ---------------------------------------------------------------- bonus
async def test_bonus_audience_reask_once_and_no(api: Api, deps: Deps, client: Client, settings: Settings) -> None:
    clinic = await _clinic(api)
    rich = await _patient(api, clinic, "Олена Петренко")
    silent = await _patient(api, clinic, "Ірина Коваль")
    poor = await _patient(api, clinic, "Андрій Бондар")
    no_ads = await _patient(api, clinic, "Марія Шевченко", marketing_opt_out=True)
    for p, pts in ((rich, 2300), (silent, 5000), (poor, 1000), (no_ads, 3000)):
        r = await api.as_(Role.front_desk).post(f"/v1/patients/{p}/points", json={"delta": pts, "reason": "visits"})
        assert r.status_code == 201, r.text
    got = await _set(api, clinic, "bonus", enabled=True, **FAST)
    assert got["settings"]["threshold"] == 2250
    result = await _run(client, settings, clinic, "bonus")
    assert result.started == 2 and result.left_out == {"marketing_opt_out": 1}, result

    async def invited() -> dict[str, Any]:
        msgs = [m for m in await _out(api, rich) if m["kind"] == "campaign.bonus.invite"]
        assert msgs
        return msgs[0]

    msg = await eventually(invited, timeout=60)
    assert "2300" in msg["text"], msg["text"]
    assert (await _say(api, rich, "нет"))["outcome"] == "signalled"
    await _state(deps, clinic, "bonus", rich, "declined")
    await _state(deps, clinic, "bonus", silent, "no_answer", timeout=90)
    kinds = [m["kind"] for m in await _out(api, silent) if m["kind"].startswith("campaign")]
    assert kinds == ["campaign.bonus.invite", "campaign.reask"], kinds  # one re-ask, then closed
    # A re-run the same day: the same crossing, the same period -> nobody.
    again = await _run(client, settings, clinic, "bonus")
    assert again.started == 0 and again.left_out.get("already_invited") == 2, again


# ---------------------------------------------------------------- birthday
async def test_birthday_greeting_today_once_a_year_with_booking_link(
    api: Api, deps: Deps, client: Client, settings: Settings
) -> None:
    clinic = await _clinic(api)
    today = datetime.now(KYIV).date()
    born = date(1992, today.month, today.day)  # a leap year: every calendar day exists in it
    tomorrow = today + timedelta(days=1)
    hero = await _patient(api, clinic, "Олена Петренко", birth_date=born.isoformat(), language="uk")
    not_today = await _patient(
        api, clinic, "Ірина Коваль", birth_date=date(1992, tomorrow.month, tomorrow.day).isoformat()
    )
    stopped = await _patient(api, clinic, "Марія Шевченко", birth_date=born.isoformat())
    parent = await _patient(
        api, clinic, "Коваль Ганна Петрівна", birth_date=date(1968, tomorrow.month, tomorrow.day).isoformat()
    )
    r = await api.as_(Role.admin).post(
        "/v1/patients",
        json={"full_name": "Коваль Марко Андрійович", "guardian_id": parent, "clinic_id": clinic["id"],
              "birth_date": date(2016, born.month, born.day).isoformat(), "language": "uk"},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    child = r.json()["id"]
    assert (await _say(api, stopped, "STOP"))["outcome"] == "opted_out"
    await _set(api, clinic, "birthday", enabled=True, offer="−10 % на гігієну цього місяця.",
               booking_link="https://clinic.example/book", answer_window="PT30S")  # fmt: skip
    async with deps.sessions() as s:  # claimed yesterday by a run that was stopped before starting it
        s.add(
            CampaignSend(
                id=uuid.uuid4().hex,
                clinic_id=clinic["id"],
                kind="birthday",
                patient_id=not_today,
                period="stale",
                workflow_id="campaign-birthday-stale",
                created_at=datetime.now(UTC) - timedelta(days=1),
            )
        )
        await s.commit()
    result = await _run(client, settings, clinic, "birthday")
    assert result.started == 2 and result.left_out == {"opted_out": 1}, result
    assert (await _sends(deps, clinic, "birthday"))[not_today].state == "not_sent"  # a day late: never
    sends = await _sends(deps, clinic, "birthday")
    assert set(sends) == {hero, child, not_today} and sends[hero].period == str(today.year)

    async def to_the_parent() -> None:  # a child's greeting goes to the guardian, naming the child
        msgs = [m for m in await _out(api, parent) if m["kind"].startswith("campaign")]
        assert [m["kind"] for m in msgs] == ["campaign.birthday.invite_child"], msgs
        assert "Ганна" in msgs[0]["text"] and "Коваль Марко Андрійович" in msgs[0]["text"], msgs[0]["text"]

    await eventually(to_the_parent, timeout=60)

    async def greeted() -> dict[str, Any]:
        msgs = [m for m in await _out(api, hero) if m["kind"] == "campaign.birthday.invite"]
        assert msgs
        return msgs[0]

    msg = await eventually(greeted, timeout=60)
    assert "днем народження" in msg["text"] and "−10 %" in msg["text"], msg["text"]  # the patient's language
    await _say(api, hero, "так")
    await _state(deps, clinic, "birthday", hero, "accepted")

    async def link() -> None:
        msgs = [m for m in await _out(api, hero) if m["kind"] == "campaign.accepted_link"]
        assert msgs and "https://clinic.example/book" in msgs[0]["text"], msgs

    await eventually(link, timeout=30)
    async with deps.sessions() as s:  # a link, not a task
        assert not (await s.exec(select(OperatorTask).where(OperatorTask.patient_id == hero))).all()
    assert (await _run(client, settings, clinic, "birthday")).started == 0
    assert not [m for m in await _out(api, not_today) if m["kind"].startswith("campaign")]


# ---------------------------------------------------------------- quiet hours
async def test_invitation_waits_out_quiet_hours(api: Api, deps: Deps, client: Client, settings: Settings) -> None:
    now = datetime.now(KYIV)
    start, end = (now - timedelta(hours=1)).strftime("%H:%M"), (now + timedelta(hours=2)).strftime("%H:%M")
    clinic = await _clinic(api, quiet_hours={"start": start, "end": end})
    patient = await _patient(api, clinic, "Олена Петренко")
    await _visit(deps, clinic, patient, _months_ago(166))
    await _set(api, clinic, "recall", enabled=True)
    assert (await _run(client, settings, clinic, "recall")).started == 1
    sends = await _sends(deps, clinic, "recall")
    handle = client.get_workflow_handle(sends[patient].workflow_id)

    async def deferred() -> None:
        view = await handle.query("state")
        assert "invite deferred: quiet hours" in view["history"], view

    await eventually(deferred, timeout=60)
    assert not [m for m in await _out(api, patient) if m["kind"].startswith("campaign")]
    await handle.terminate("test over")


# ---------------------------------------------------------------- settings API
async def test_campaign_settings_are_validated_and_scoped(api: Api) -> None:
    clinic = await _clinic(api)
    base = f"/v1/clinics/{clinic['id']}/campaigns"
    r = await api.as_(Role.operator).get(f"{base}/bonus")
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["settings"]["enabled"] is False and got["settings"]["threshold"] == 2250
    assert got["schedule_id"] == f"campaign-bonus-{clinic['id']}"
    r = await api.as_(Role.operator).get(base)
    assert [c["kind"] for c in r.json()] == ["recall", "bonus", "birthday"]
    recall = (await api.as_(Role.operator).get(f"{base}/recall")).json()["settings"]
    assert (recall["min_months"], recall["max_months"], recall["reask_after"]) == (5, 6, "P3D")

    bad = [
        ("recall", {"send_at": "25:00"}, "send_at"),
        ("recall", {"threshold": 100}, "threshold"),  # a bonus setting
        ("recall", {"min_months": 6, "max_months": 6}, "max_months"),
        ("recall", {"reask_after": "P45D"}, "reask_after"),
        ("bonus", {"threshold": 0}, "threshold"),
        ("bonus", {"repeat_days": 400}, "repeat_days"),
        ("birthday", {"answer_window": -5}, "answer_window"),
        ("birthday", {"booking_link": "javascript:alert(1)"}, "booking_link"),
        ("birthday", {"daily_limit": 0}, "daily_limit"),
    ]
    for kind, body, field in bad:
        r = await api.as_(Role.director).put(f"{base}/{kind}", json=body)
        assert r.status_code == 422, (body, r.text)
        assert field in str(r.json()["detail"]), (body, r.text)
    r = await api.as_(Role.director).put(f"{base}/anniversary", json={})
    assert r.status_code == 422, r.text
    r = await api.as_(Role.operator).put(f"{base}/recall", json={"enabled": True})
    assert r.status_code == 403, r.text
    # Nothing was saved by the refused requests.
    assert (await api.as_(Role.operator).get(f"{base}/recall")).json()["updated_at"] is None
    # A partial PUT keeps what it does not name.
    await _set(api, clinic, "bonus", offer="Оплатите баллами до 50 %", threshold=3000)
    got = await _set(api, clinic, "bonus", send_at="09:30")
    assert (got["settings"]["offer"], got["settings"]["threshold"], got["settings"]["send_at"]) == (
        "Оплатите баллами до 50 %",
        3000,
        "09:30",
    )
    r = await api.as_(Role.operator).get(f"/v1/clinics/{'0' * 32}/campaigns/recall")
    assert r.status_code == 404
    for q in ({"to": "0001-01-05"}, {"from": "9999-12-31"}, {"from": "2026-02-01", "to": "2026-01-01"}):
        r = await api.as_(Role.operator).get(f"{base}/recall/summary", params=q)
        assert r.status_code == 422, (q, r.text)


# ---------------------------------------------------------------- replies: the visit first
async def test_bare_yes_confirms_the_visit_before_a_later_invitation(
    api: Api, deps: Deps, client: Client, settings: Settings
) -> None:
    """The patient was asked to confirm tomorrow's visit, then got the bonus invitation: a
    bare «да» confirms the visit (the marketing question never takes it); the next «да»
    answers the invitation; its button always names the invitation."""
    clinic = await _clinic(api)
    patient = await _patient(api, clinic, "Олена Петренко")
    r = await api.as_(Role.front_desk).post(f"/v1/patients/{patient}/points", json={"delta": 2500, "reason": "x"})
    assert r.status_code == 201, r.text
    r = await api.as_(Role.front_desk).post(
        "/v1/appointments",
        json={
            "patient_id": patient,
            "clinic_id": clinic["id"],
            "doctor_id": clinic["doctor_id"],
            "starts_at": (datetime.now(UTC) + timedelta(hours=3)).isoformat(),
            "duration_minutes": 30,
            "service": "Гигиена",
        },
    )
    assert r.status_code == 201, r.text
    visit = r.json()["id"]

    async def asked() -> None:  # booked within the reminder lead: asked at once
        assert [m for m in await _out(api, patient) if m["kind"] == "reminder"]

    await eventually(asked, timeout=60)
    await _set(api, clinic, "bonus", enabled=True, reask_after=None, answer_window="PT120S")
    assert (await _run(client, settings, clinic, "bonus")).started == 1

    async def invited() -> None:
        assert [m for m in await _out(api, patient) if m["kind"] == "campaign.bonus.invite"]

    await eventually(invited, timeout=60)
    first = await _say(api, patient, "да")
    assert (first["subject_type"], first["subject_id"]) == ("appointment", visit), first

    async def confirmed() -> None:
        r = await api.as_(Role.operator).get(f"/v1/appointments/{visit}")
        assert r.json()["stage"] == "confirmed", r.json()["stage"]

    await eventually(confirmed, timeout=30)
    second = await _say(api, patient, "да")
    assert second["subject_type"] == "campaign", second
    await _state(deps, clinic, "bonus", patient, "accepted")


async def test_journeys_schedules_keeps_every_switched_on_campaign(
    api: Api, deps: Deps, client: Client, settings: Settings
) -> None:
    """`journeys schedules` (core.campaigns.ensure_all_schedules) recreates a campaign's
    Schedule that went missing, at the clinic's time."""
    from core import campaigns

    clinic = await _clinic(api)
    await _set(api, clinic, "bonus", enabled=True, send_at="09:15")
    sid = schedule_id(clinic["id"], "bonus")
    await client.get_schedule_handle(sid).delete()
    async with deps.sessions() as s:
        assert await campaigns.ensure_all_schedules(client, settings.temporal_task_queue, s) >= 1
    desc = await client.get_schedule_handle(sid).describe()
    cal = desc.schedule.spec.calendars[0]
    assert (cal.hour[0].start, cal.minute[0].start) == (9, 15), cal
    await _set(api, clinic, "bonus", enabled=False)
