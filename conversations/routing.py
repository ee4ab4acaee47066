"""Which journey an inbound reply is for: the one routing order for real webhooks and the
sandbox (conversations.inbound.route_inbound calls `pick_target`).

1. **Named subject wins.** A button or link names its subject (`confirm:<id>`, `nps:<id>:9`),
   a robot call knows its appointment, a WhatsApp/Telegram reply quotes the message it
   answers. An open question of that subject takes the reply; if that subject's questions
   are all answered or expired, the reply goes to a person with that context.
2. **The most recent open question whose expected answers match** the reply, among the
   sender's own questions and those about their children (a guardian answers for a child):
   a yes/no word answers a confirmation or the lab-results question, a score answers a
   survey, a key press answers a robot call. A campaign's invitation (marketing) comes after
   every visit or plan question: a bare «да» never books an offer instead of confirming a visit.
3. **A reply to an answered or expired question** (no open question matches, but the latest
   matching question asked recently is closed) never re-triggers it: a person gets it, with
   the question as context.
4. **The nearest open appointment** of the sender or their children (a free-text message
   such as "I will be 10 minutes late"): its journey decides what it means.
5. Otherwise **a person** (an `unread_message` task).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from contracts.appointment import APPOINTMENT_REPLY_SIGNAL, OPEN_STAGES, appointment_workflow_id
from contracts.common import ANSWER_DIGIT, ANSWER_SCORE, ANSWER_YES_NO, parse_button_id
from contracts.replies import classify, feedback_word, parse_score
from models.appointment import Appointment
from models.conversation import OpenQuestion
from models.core import MessageLog, utcnow

if TYPE_CHECKING:
    from conversations.inbound import Inbound

# A visit that started a little while ago is still "the" appointment a reply is about.
RECENT_START = timedelta(hours=3)
# After the visit the journey still waits for the feedback survey (NPS): a reply within this
# long after a finished visit goes to that journey; a closed journey sends it to an operator.
SURVEY_HORIZON = timedelta(days=14)
# How far back an answered/expired question still explains a matching reply (step 3).
CLOSED_QUESTION_HORIZON = timedelta(days=14)

_YES_NO_BUTTONS = ("confirm", "decline")
CAMPAIGN_SUBJECT = "campaign"  # contracts.campaigns' questions (recall, bonus, birthday)
_SCORE_BUTTONS = ("nps",)


@dataclass
class Target:
    # question: an open question takes it · closed_question: a person, with that question
    # appointment: the nearest open appointment's journey · none: a person
    how: str
    question: OpenQuestion | None = None
    appointment: Appointment | None = None
    named: bool = False  # the reply named its subject (button, call, quoted message)

    @property
    def workflow_id(self) -> str | None:
        if self.how == "question" and self.question is not None:
            return self.question.workflow_id
        if self.how == "appointment" and self.appointment is not None:
            return appointment_workflow_id(self.appointment.id)
        return None

    @property
    def signal(self) -> str:
        return self.question.signal if self.how == "question" and self.question else APPOINTMENT_REPLY_SIGNAL

    @property
    def subject(self) -> tuple[str | None, str | None]:
        if self.question is not None:
            return self.question.subject_type, self.question.subject_id
        if self.appointment is not None:
            return "appointment", self.appointment.id
        return None, None

    @property
    def patient_id(self) -> str | None:
        if self.question is not None:
            return self.question.patient_id
        return self.appointment.patient_id if self.appointment is not None else None

    @property
    def clinic_id(self) -> str | None:
        if self.question is not None:
            return self.question.clinic_id
        return self.appointment.clinic_id if self.appointment is not None else None


def reply_answers(kind: str, text: str | None, button_id: str | None, digit: str | None) -> set[str]:
    """What kinds of answer this reply can be (a "1" is both a yes and a score)."""
    if kind == "digit":
        return {ANSWER_DIGIT} if digit and re.fullmatch(r"[0-9]", digit.strip()) else set()
    if kind == "button" and button_id:
        parsed = parse_button_id(button_id)
        if parsed and parsed[0] in _YES_NO_BUTTONS:
            return {ANSWER_YES_NO}
        if parsed and parsed[0] in _SCORE_BUTTONS:
            return {ANSWER_SCORE}
        return set()
    if kind != "text":
        return set()
    out = set()
    if classify(text) in ("confirm", "decline"):
        out.add(ANSWER_YES_NO)
    if parse_score(text) is not None or feedback_word(text) is not None:
        out.add(ANSWER_SCORE)  # 👍 / «дизлайк» answer a survey too
    return out


def _matches(q: OpenQuestion, answers: set[str]) -> bool:
    return bool(answers & set(q.answers))


async def _questions(
    s: AsyncSession, senders: list[str], family: list[str], subject_id: str | None = None
) -> list[OpenQuestion]:
    """Questions asked of these senders or about them and their children, newest first."""
    q = select(OpenQuestion).where(
        or_(col(OpenQuestion.recipient_id).in_(senders), col(OpenQuestion.patient_id).in_(family))
    )
    if subject_id is not None:
        q = q.where(OpenQuestion.subject_id == subject_id)
    else:  # every open one (a plan may wait weeks), closed ones only if recent
        q = q.where(or_(OpenQuestion.state == "open", col(OpenQuestion.asked_at) >= utcnow() - CLOSED_QUESTION_HORIZON))
    q = q.order_by(col(OpenQuestion.asked_at).desc()).limit(200)
    return list((await s.exec(q)).all())


async def _quoted(s: AsyncSession, senders: list[str], reply_to: str) -> OpenQuestion | None:
    """The question asked by the message a WhatsApp/Telegram reply quotes."""
    row = (
        await s.exec(
            select(MessageLog).where(
                MessageLog.provider_message_id == reply_to,
                MessageLog.direction == "out",
                col(MessageLog.recipient_id).in_(senders),
            )
        )
    ).first()
    if row is None or row.question_id is None:
        return None
    return await s.get(OpenQuestion, row.question_id)


async def nearest_appointment(s: AsyncSession, family: list[str], now: datetime) -> Appointment | None:
    q = select(Appointment).where(col(Appointment.patient_id).in_(family), col(Appointment.stage).in_(OPEN_STAGES))
    appts = list((await s.exec(q)).all())
    if not appts:
        # No visit ahead: the most recent finished visit may still be waiting for its survey.
        q = select(Appointment).where(
            col(Appointment.patient_id).in_(family),
            Appointment.stage == "finished",
            col(Appointment.ends_at) >= now - SURVEY_HORIZON,
        )
        finished = list((await s.exec(q)).all())
        return max(finished, key=lambda a: a.ends_at, default=None)
    upcoming = [a for a in appts if a.starts_at >= now - RECENT_START]
    if upcoming:
        return min(upcoming, key=lambda a: a.starts_at)
    return max(appts, key=lambda a: a.starts_at)


async def pick_target(s: AsyncSession, senders: list[str], family: list[str], msg: Inbound) -> Target:
    now = utcnow()
    answers = reply_answers(msg.kind, msg.text, msg.button_id, msg.digit)

    # 1. a reply that names its subject
    if msg.reply_to and (quoted := await _quoted(s, senders, msg.reply_to)) is not None:
        if quoted.is_open(now) and _matches(quoted, answers):
            return Target("question", question=quoted, named=True)
        if not quoted.is_open(now):
            return Target("closed_question", question=quoted, named=True)
        # an open question, but the reply is not one of its answers: fall through
    subject_id = msg.appointment_hint
    if msg.button_id and (parsed := parse_button_id(msg.button_id)):
        subject_id = parsed[1]
    if subject_id:
        asked = await _questions(s, senders, family, subject_id)
        if msg.kind != "call_status":
            for q in asked:
                if q.is_open(now) and _matches(q, answers):
                    return Target("question", question=q, named=True)
            closed = [q for q in asked if _matches(q, answers)]
            if closed:
                return Target("closed_question", question=closed[0], named=True)
        appt = await s.get(Appointment, subject_id)
        if appt is not None and appt.patient_id in family:
            # A call's status, or a button from before questions were recorded.
            return Target("appointment", appointment=appt, named=True)

    # 2. the most recent open question this reply answers; a campaign's invitation only when
    # no visit or plan question is open (a bare «да» confirms the visit, not the offer)
    if answers:
        recent = [q for q in await _questions(s, senders, family) if _matches(q, answers)]
        open_now = [q for q in recent if q.is_open(now)]
        if open_now:  # sorted() is stable: newest first within each group
            return Target("question", question=sorted(open_now, key=lambda q: q.subject_type == CAMPAIGN_SUBJECT)[0])
        # 3. only answered or expired questions match: a person, never a re-trigger
        if recent:
            return Target("closed_question", question=recent[0])

    # 4. the nearest open appointment
    appt = await nearest_appointment(s, family, now)
    if appt is not None:
        return Target("appointment", appointment=appt)
    return Target("none")
