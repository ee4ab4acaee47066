"""Every reply reaches the question it answers (issue 10), on the real dev server through the
sandbox provider (the same routing code real webhooks use): the lab-results "YES" that used
to confirm an unrelated visit, two visits asked the same day, a guardian with two children, a
survey and an ask open at once, and the plan's lab question deferred out of quiet hours."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import col, select
from temporalio.client import Client

from core.deps import Deps
from core.settings import Settings
from models.conversation import OpenQuestion
from models.core import MessageLog, Role
from tests.support.api import Api
from tests.support.appointments import book, make_clinic, phone, state, tasks
from tests.support.live import eventually
from tests.test_treatment_plans import _save_history as save_history

# Asked at once (start - reminder_lead is already past), no re-asks or robot calls to muddy
# which question is the most recent one.
ASK_NOW = {"reminder_lead": 3600, "reask_count": 0, "voice_call_attempts": 0, "confirm_deadline": 5}


async def sandbox_reply(api: Api, patient_id: str, **kw: Any) -> dict[str, Any]:
    r = await api.as_(Role.operator).post("/v1/sandbox/reply", json={"patient_id": patient_id, **kw})
    assert r.status_code == 200, r.text
    return r.json()


async def questions(deps: Deps, subject_id: str) -> list[OpenQuestion]:
    async with deps.sessions() as s:
        q = select(OpenQuestion).where(OpenQuestion.subject_id == subject_id).order_by(col(OpenQuestion.asked_at))
        return list((await s.exec(q)).all())


async def asked(deps: Deps, subject_id: str, kind: str) -> OpenQuestion:
    async def one() -> OpenQuestion:
        found = [q for q in await questions(deps, subject_id) if q.kind == kind]
        assert found, f"no {kind} question yet for {subject_id}"
        return found[-1]

    return await eventually(one, timeout=60)


async def plan_view(api: Api, plan_id: str) -> dict[str, Any]:
    r = await api.as_(Role.operator).get(f"/v1/treatment-plans/{plan_id}")
    assert r.status_code == 200, r.text
    return r.json()


async def new_plan(api: Api, clinic: dict[str, Any], patient_id: str) -> dict[str, Any]:
    r = await api.as_(Role.doctor).post(
        "/v1/treatment-plans",
        json={
            "patient_id": patient_id,
            "clinic_id": clinic["id"],
            "direction": "therapy",
            "items": [{"service": "Filling", "tooth": 26, "unit_price": "1800.00"}],
        },
    )
    assert r.status_code == 201, r.text
    return r.json()


async def to_lab_tests(api: Api, plan_id: str) -> dict[str, Any]:
    r = await api.as_(Role.doctor).post(f"/v1/treatment-plans/{plan_id}/advance", json={"to_stage": "lab_tests"})
    assert r.status_code == 200, r.text
    return r.json()


async def test_lab_results_yes_answers_the_plan_not_an_unasked_visit(
    api: Api, deps: Deps, worker: None, client: Client, settings: Settings
) -> None:
    """The issue's case: the plan asks about lab results, the patient answers "YES". The
    answer reaches the plan; the visit two days later (never asked) stays unconfirmed. A
    second "YES" to the answered question goes to a person, with that question as context."""
    clinic = await make_clinic(api, lab_results_after=1)
    visit = await book(api, clinic, in_seconds=2 * 86400)  # asked only a day before: not now
    plan = await new_plan(api, clinic, clinic["patient_id"])
    await to_lab_tests(api, plan["id"])
    question = await asked(deps, plan["id"], "lab_results")
    assert question.subject_type == "treatment_plan" and question.answers == ["yes_no"]

    r = await sandbox_reply(api, clinic["patient_id"], text="YES")
    assert r["outcome"] == "signalled", r
    assert (r["subject_type"], r["subject_id"], r["question_id"]) == ("treatment_plan", plan["id"], question.id)

    async def plan_heard() -> dict[str, Any]:
        v = await plan_view(api, plan["id"])
        assert "lab_results_ready" in [h["action"] for h in v["history"]], v["history"]
        return v

    await eventually(plan_heard)

    async def callback_task() -> list[dict[str, Any]]:
        # The plan's history shows the answer (a query) before its activity has written the task.
        open_ = await tasks(api, plan["id"])
        assert [t["kind"] for t in open_] == ["plan_callback"], open_
        return open_

    book_next = await eventually(callback_task)
    assert "ready" in book_next[0]["title"]
    v = await state(api, visit["id"])
    assert v["stage"] == "booked" and v["asks_sent"] == 0
    assert "patient_confirmed" not in [h["event"] for h in v["history"]]
    assert (await questions(deps, plan["id"]))[-1].state == "answered"

    again = await sandbox_reply(api, clinic["patient_id"], text="yes")
    assert again["outcome"] == "unread" and again["question_id"] == question.id, again
    task = (await api.as_(Role.operator).get(f"/v1/tasks/{again['task_id']}")).json()
    assert task["kind"] == "unread_message" and task["subject_id"] == plan["id"]
    assert task["details"]["question"]["state"] == "answered" and task["details"]["text"] == "yes"
    v = await state(api, visit["id"])
    assert v["stage"] == "booked", "a reply to an answered question never re-triggers anything"
    history = [h["action"] for h in (await plan_view(api, plan["id"]))["history"]]
    assert history.count("lab_results_ready") == 1
    # Kept for the replay test (tests/test_treatment_plans.py): the answered lab question.
    await save_history(
        client, settings, (await plan_view(api, plan["id"]))["workflow_id"], "treatment_plan_lab_answered.json"
    )


async def test_two_visits_asked_the_same_day(api: Api, deps: Deps, worker: None) -> None:
    """Both visits ask. A free "так" answers the most recent ask; a button names its visit;
    a third answer finds no open question and goes to a person."""
    clinic = await make_clinic(api, **ASK_NOW)
    morning = await book(api, clinic, in_seconds=600, minutes=5, service="Hygiene")
    evening = await book(api, clinic, in_seconds=1200, minutes=5, service="Filling")
    q_morning = await asked(deps, morning["id"], "confirmation")
    q_evening = await asked(deps, evening["id"], "confirmation")
    latest, other = (morning, evening) if q_morning.asked_at > q_evening.asked_at else (evening, morning)

    r = await sandbox_reply(api, clinic["patient_id"], text="так")
    assert r["outcome"] == "signalled" and r["subject_id"] == latest["id"], r

    async def confirmed(appointment_id: str) -> None:
        assert (await state(api, appointment_id))["stage"] == "confirmed"

    await eventually(lambda: confirmed(latest["id"]))
    assert (await state(api, other["id"]))["stage"] == "booked"

    r = await sandbox_reply(api, clinic["patient_id"], button_id=f"confirm:{other['id']}")
    assert r["outcome"] == "signalled" and r["subject_id"] == other["id"], r
    await eventually(lambda: confirmed(other["id"]))

    # Both answered: "ні" re-triggers neither; a person reads it with the latest question.
    r = await sandbox_reply(api, clinic["patient_id"], text="ні")
    assert r["outcome"] == "unread" and r["question_id"] is not None, r
    for a in (morning, evening):
        assert (await state(api, a["id"]))["stage"] == "confirmed"


async def _person(api: Api, clinic: dict[str, Any], name: str, **kw: Any) -> str:
    r = await api.as_(Role.front_desk).post(
        "/v1/patients", json={"full_name": name, "clinic_id": clinic["id"], "preferred_channel": "sms", **kw}
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def test_guardian_with_two_children(api: Api, deps: Deps, worker: None) -> None:
    """Both children's asks go to the guardian; the guardian's answers reach each child's
    question: the button names one child's visit, the free "так" answers the other."""
    clinic = await make_clinic(api, **ASK_NOW)
    mum = await _person(api, clinic, "Oksana Mum", phone=phone())
    anna = await _person(api, clinic, "Anna Child", guardian_id=mum)
    ivan = await _person(api, clinic, "Ivan Child", guardian_id=mum)
    a = await book(api, {**clinic, "patient_id": anna}, in_seconds=600, minutes=5)
    i = await book(api, {**clinic, "patient_id": ivan}, in_seconds=1200, minutes=5)
    qa = await asked(deps, a["id"], "confirmation")
    qi = await asked(deps, i["id"], "confirmation")
    assert (qa.patient_id, qa.recipient_id) == (anna, mum) and (qi.patient_id, qi.recipient_id) == (ivan, mum)

    r = await sandbox_reply(api, mum, button_id=f"confirm:{a['id']}")
    assert r["outcome"] == "signalled" and r["subject_id"] == a["id"], r
    r = await sandbox_reply(api, mum, text="Так, буду")
    assert r["outcome"] == "signalled" and r["subject_id"] == i["id"], r

    async def both() -> None:
        assert (await state(api, a["id"]))["stage"] == "confirmed"
        assert (await state(api, i["id"]))["stage"] == "confirmed"

    await eventually(both)
    # The child's conversation shows the guardian's answer about that child.
    thread = (await api.as_(Role.front_desk).get(f"/v1/patients/{ivan}/conversation")).json()["items"]
    answers = [m for m in thread if m["direction"] == "in"]
    assert [m["text"] for m in answers] == ["Так, буду"] and answers[0]["to_guardian"] is True
    assert answers[0]["question"]["id"] == qi.id and answers[0]["subject"] == {"type": "appointment", "id": i["id"]}


async def test_survey_and_ask_open_at_once(api: Api, deps: Deps, worker: None) -> None:
    """A finished visit waits for its NPS score while the next visit waits for a yes: a score
    answers the survey, a yes answers the ask, whichever came last."""
    clinic = await make_clinic(api, **ASK_NOW, feedback_delay=0.5)
    done = await book(api, clinic, in_seconds=600, minutes=5, service="Check-up")
    desk = api.as_(Role.front_desk)
    for step in ("confirm", "check-in", "finish"):
        r = await desk.post(f"/v1/appointments/{done['id']}/{step}")
        assert r.status_code == 200, r.text
    survey = await asked(deps, done["id"], "survey")
    nxt = await book(api, clinic, in_seconds=1800, minutes=5, service="Filling")
    ask = await asked(deps, nxt["id"], "confirmation")
    assert ask.asked_at > survey.asked_at  # the ask is the most recent question

    r = await sandbox_reply(api, clinic["patient_id"], text="9")
    assert r["outcome"] == "signalled" and r["subject_id"] == done["id"] and r["question_id"] == survey.id, r
    r = await sandbox_reply(api, clinic["patient_id"], text="так")
    assert r["outcome"] == "signalled" and r["subject_id"] == nxt["id"] and r["question_id"] == ask.id, r

    async def answered() -> None:
        assert (await state(api, done["id"]))["nps"] == 9
        assert (await state(api, nxt["id"]))["stage"] == "confirmed"

    await eventually(answered)


async def test_plan_lab_question_waits_out_quiet_hours(
    api: Api, deps: Deps, worker: None, client: Client, settings: Settings
) -> None:
    """The lab-results question falls due inside the clinic's quiet hours: it goes out when
    they end (the same rule as every automated send), not at once."""
    tz = ZoneInfo("Europe/Kyiv")
    now = datetime.now(tz)
    end = (now + timedelta(seconds=20)).replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = now - timedelta(hours=1)
    clinic = await make_clinic(
        api, lab_results_after=1, quiet_hours={"start": start.strftime("%H:%M"), "end": end.strftime("%H:%M")}
    )
    plan = await new_plan(api, clinic, clinic["patient_id"])
    moved = await to_lab_tests(api, plan["id"])
    assert datetime.fromisoformat(moved["next_due_at"]) == end.astimezone(UTC)

    async def lab_messages() -> list[MessageLog]:
        async with deps.sessions() as s:
            q = select(MessageLog).where(MessageLog.subject_id == plan["id"], MessageLog.direction == "out")
            return list((await s.exec(q)).all())

    async def sent_after_quiet_hours() -> MessageLog:
        rows = await lab_messages()
        assert rows, "not asked yet"
        return rows[0]

    row = await eventually(sent_after_quiet_hours, timeout=150, interval=1)
    assert row.kind == "lab_results_ask" and row.created_at >= end.astimezone(UTC)
    assert len(await lab_messages()) == 1
    await save_history(
        client, settings, (await plan_view(api, plan["id"]))["workflow_id"], "treatment_plan_lab_quiet_hours.json"
    )


def test_reply_answer_kinds() -> None:
    from conversations.routing import reply_answers

    assert reply_answers("text", "Так, буду", None, None) == {"yes_no"}
    assert reply_answers("text", "9", None, None) == {"score"}
    assert reply_answers("text", "1", None, None) == {"yes_no", "score"}
    assert reply_answers("text", "коли прийти?", None, None) == set()
    assert reply_answers("button", None, f"nps:{uuid.uuid4().hex}:10", None) == {"score"}
    assert reply_answers("button", None, f"decline:{uuid.uuid4().hex}", None) == {"yes_no"}
    assert reply_answers("digit", None, None, "1") == {"digit"}


def test_quiet_hours_rule() -> None:
    """models.quiet_hours.next_send_time: the one rule every journey plans automated sends by."""
    from contracts.policy import QuietHours
    from models.quiet_hours import next_send_time

    kyiv = ZoneInfo("Europe/Kyiv")
    night = QuietHours(start="21:00", end="08:00")  # crosses midnight
    late = datetime(2026, 11, 26, 22, 30, tzinfo=kyiv)
    assert next_send_time(late, night, kyiv) == datetime(2026, 11, 27, 8, 0, tzinfo=kyiv)
    early = datetime(2026, 11, 27, 6, 15, tzinfo=kyiv)
    assert next_send_time(early, night, kyiv) == datetime(2026, 11, 27, 8, 0, tzinfo=kyiv)
    day = datetime(2026, 11, 27, 12, 0, tzinfo=kyiv)
    assert next_send_time(day, night, kyiv) == day and next_send_time(late, None, kyiv) == late
    # Same-day-critical: moved past `critical_by` it would be useless, so it keeps its time.
    assert next_send_time(early, night, kyiv, critical_by=datetime(2026, 11, 27, 7, 0, tzinfo=kyiv)) == early
    lunch = QuietHours(start="13:00", end="14:00")
    assert next_send_time(datetime(2026, 11, 27, 13, 20, tzinfo=kyiv), lunch, kyiv) == datetime(
        2026, 11, 27, 14, 0, tzinfo=kyiv
    )


async def test_routing_order_on_the_database(deps: Deps) -> None:
    """pick_target alone: an open question weeks old still takes its answer; a score whose
    survey is answered goes to a person; an expired ask does not take a yes; a named subject
    wins over a more recent question."""
    from conversations.inbound import Inbound
    from conversations.routing import pick_target
    from models.core import Channel, utcnow

    me, child = uuid.uuid4().hex, uuid.uuid4().hex
    plan, visit, other = uuid.uuid4().hex, uuid.uuid4().hex, uuid.uuid4().hex
    now = utcnow()

    def q(kind: str, subject: str, answers: list[str], ago: timedelta, **kw: Any) -> OpenQuestion:
        return OpenQuestion(
            message_key=f"test:{uuid.uuid4().hex}",
            kind=kind,
            patient_id=kw.pop("patient_id", me),
            recipient_id=me,
            subject_type="treatment_plan" if subject == plan else "appointment",
            subject_id=subject,
            workflow_id=f"wf-{subject}",
            signal="patient_reply",
            answers=answers,
            asked_at=now - ago,
            **kw,
        )

    lab = q("lab_results", plan, ["yes_no"], timedelta(days=20))
    survey = q("survey", visit, ["score"], timedelta(days=1), state="answered")
    stale = q("confirmation", other, ["yes_no"], timedelta(hours=1), open_until=now - timedelta(minutes=1))
    childs = q("confirmation", visit, ["yes_no"], timedelta(days=30), patient_id=child)
    async with deps.sessions() as s:
        s.add_all([lab, survey, stale, childs])
        await s.commit()

        def msg(**kw: Any) -> Inbound:
            return Inbound(channel=Channel.sms, source="sandbox", dedup_key=uuid.uuid4().hex, kind="text", **kw)

        t = await pick_target(s, [me], [me, child], msg(text="Так"))
        assert t.how == "question" and t.question is not None and t.question.id == lab.id  # the most recent open
        t = await pick_target(s, [me], [me, child], msg(text="10"))
        assert t.how == "closed_question" and t.question is not None and t.question.id == survey.id
        t = await pick_target(
            s, [me], [me, child], Inbound(Channel.sms, "sandbox", "k", "button", button_id=f"confirm:{visit}")
        )
        assert t.how == "question" and t.question is not None and t.question.id == childs.id and t.named
        t = await pick_target(
            s, [me], [me, child], Inbound(Channel.sms, "sandbox", "k2", "button", button_id=f"confirm:{other}")
        )
        assert t.how == "closed_question" and t.question is not None and t.question.id == stale.id
        t = await pick_target(s, [me], [me, child], msg(text="коли можна прийти?"))
        assert t.how == "none" and t.workflow_id is None


async def test_a_reply_is_routed_without_a_write_held_across_its_signal(
    api: Api, deps: Deps, worker: None, client: Client, settings: Settings
) -> None:
    """Issue 14: routing a reply set the claim's patient, and the next read flushed it: the
    write transaction (on SQLite the database's one write lock, which the worker's sends and
    row writes wait for) stayed open across the routing reads and the signal to Temporal.
    Now nothing is written between the dedup claim's commit and the signal."""
    from sqlalchemy import event

    from conversations.inbound import Inbound, route_inbound
    from core.db import make_engine, session_factory
    from models.core import Channel

    clinic = await make_clinic(api, **ASK_NOW)
    visit = await book(api, clinic, in_seconds=600, minutes=5)
    await asked(deps, visit["id"], "confirmation")
    trail: list[str] = []

    class Marking:  # the client, noting in the trail when the signal goes out
        def get_workflow_handle(self, wf_id: str) -> Any:
            handle = client.get_workflow_handle(wf_id)

            class Handle:
                async def signal(self, *a: Any) -> None:
                    trail.append("SIGNAL")
                    await handle.signal(*a)

            return Handle()

    def seen(_conn, _cur, statement, *_) -> None:  # type: ignore[no-untyped-def]
        trail.append(statement.lstrip().split(None, 1)[0].upper())

    def committed(_conn) -> None:  # type: ignore[no-untyped-def]
        trail.append("COMMIT")

    engine = make_engine(settings.database_url)  # the routing's own statements only
    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    event.listen(engine.sync_engine, "commit", committed)
    msg = Inbound(
        channel=Channel.sms,
        source="sandbox",
        kind="text",
        dedup_key=f"test-{uuid.uuid4().hex}",
        patient_id=clinic["patient_id"],
        text="так",
    )
    try:
        routed = await route_inbound(session_factory(engine), Marking(), msg)  # type: ignore[arg-type]
    finally:
        await engine.dispose()
    assert routed.outcome == "signalled" and routed.appointment_id == visit["id"], routed
    claimed = trail.index("COMMIT", trail.index("INSERT"))  # the dedup claim
    before_signal = trail[claimed + 1 : trail.index("SIGNAL")]
    assert before_signal and set(before_signal) == {"SELECT"}, trail
    assert trail[-1] == "COMMIT" and trail.count("COMMIT") == trail[: claimed + 1].count("COMMIT") + 1, trail

    async def confirmed() -> None:
        assert (await state(api, visit["id"]))["stage"] == "confirmed"

    await eventually(confirmed, timeout=60)
