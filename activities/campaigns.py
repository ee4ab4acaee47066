"""Campaign activities (issue 12): claim the day's audience, send a campaign message after
checking the patient may still get it, and record how each patient's campaign ended."""

from __future__ import annotations

from datetime import UTC, datetime, time

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.messaging import DONE_SENT, MessagingActivities, heartbeating
from contracts.appointment import clinic_zone
from contracts.campaigns import (
    BIRTHDAY,
    RECALL,
    Audience,
    CampaignActivityStubs,
    CampaignOutcome,
    CampaignSend,
    CampaignSendResult,
    JourneyPlan,
    RunInput,
    journey_workflow_id,
    question_kind,
)
from contracts.common import ANSWER_YES_NO, Button, MessageFacts, Question, button_id
from conversations.questions import expire
from core import campaigns
from core.deps import Deps
from core.logging import get_logger
from core.texts.compose import compose
from core.texts.defaults import KINDS
from models.campaigns import CampaignSend as SendRow
from models.campaigns import send_id as make_send_id
from models.core import Clinic, MessageLog, Patient, policy_from_json

log = get_logger("activities.campaigns")

ASK_STEPS = ("invite", "reask")


class CampaignActivities(CampaignActivityStubs):
    def __init__(self, deps: Deps, messaging: MessagingActivities) -> None:
        self.deps = deps
        self.messaging = messaging

    @activity.defn(name="claim_campaign_audience")
    async def claim_campaign_audience(self, inp: RunInput) -> Audience:
        """Today's audience in SQL; each new (patient, period) gets its row, the key that makes
        the campaign once per period. Returns every claimed row whose journey has not run yet
        (a run that died after claiming is finished by the next one)."""
        async with self.deps.sessions() as s:
            clinic = await s.get(Clinic, inp.clinic_id)
            if clinic is None:
                raise ApplicationError(f"clinic {inp.clinic_id} not found", type="NotFound", non_retryable=True)
            st = await campaigns.settings_of(s, clinic.id, inp.kind)
            if not st.enabled:
                return Audience(enabled=False)
            today = campaigns.local_today(clinic)
            found = await campaigns.audience(s, clinic, inp.kind, st, today)
            have: set[tuple[str, str]] = set()
            ids = [m.patient_id for m in found.members]
            if ids:
                rows = await s.exec(
                    select(SendRow.patient_id, SendRow.period).where(
                        SendRow.clinic_id == clinic.id, SendRow.kind == inp.kind, col(SendRow.patient_id).in_(ids)
                    )
                )
                have = {(pid, period) for pid, period in rows.all()}
            left_out = dict(found.left_out)
            room = st.daily_limit
            for m in found.members:
                if (m.patient_id, m.period) in have:
                    left_out["already_invited"] = left_out.get("already_invited", 0) + 1
                    continue
                if room <= 0:
                    left_out["over_daily_limit"] = left_out.get("over_daily_limit", 0) + 1
                    continue
                room -= 1
                sid = make_send_id(clinic.id, inp.kind, m.patient_id, m.period)
                s.add(
                    SendRow(
                        id=sid,
                        clinic_id=clinic.id,
                        kind=inp.kind,
                        patient_id=m.patient_id,
                        period=m.period,
                        workflow_id=journey_workflow_id(inp.kind, sid),
                        facts=m.facts,
                    )
                )
            try:
                await s.commit()
            except IntegrityError:
                # A concurrent run claimed some of them first: retry and skip those.
                await s.rollback()
                raise ApplicationError("campaign rows claimed concurrently; retrying", type="Conflict") from None
            if inp.kind == BIRTHDAY:
                # A greeting claimed on an earlier day whose journey never started (its run
                # was stopped): a birthday greeting a day late is worse than none.
                start_of_day = datetime.combine(today, time(0), clinic_zone(clinic.timezone))
                stale = await s.exec(
                    select(SendRow).where(
                        SendRow.clinic_id == clinic.id,
                        SendRow.kind == BIRTHDAY,
                        SendRow.state == "claimed",
                        col(SendRow.created_at) < start_of_day,
                    )
                )
                for r in stale.all():
                    r.state, r.note, r.updated_at = "not_sent", "its day passed before it started", datetime.now(UTC)
                    s.add(r)
                await s.commit()
            claimed = (
                await s.exec(
                    select(SendRow)
                    .where(SendRow.clinic_id == clinic.id, SendRow.kind == inp.kind, SendRow.state == "claimed")
                    .order_by(col(SendRow.created_at))
                    .limit(st.daily_limit)
                )
            ).all()
            policy = policy_from_json(clinic.policy)
            plans = [
                JourneyPlan(
                    send_id=r.id,
                    clinic_id=clinic.id,
                    kind=inp.kind,
                    patient_id=r.patient_id,
                    period=r.period,
                    timezone=clinic.timezone,
                    quiet_hours=policy.quiet_hours,
                    reask_after=st.reask_after.total_seconds() if st.reask_after is not None else None,
                    answer_window=st.answer_window.total_seconds(),
                    has_booking_link=bool(st.booking_link),
                )
                for r in claimed
            ]
        log.info(
            "campaign audience claimed",
            clinic_id=inp.clinic_id,
            kind=inp.kind,
            found=len(found.members),
            journeys=len(plans),
            left_out=left_out,
        )
        return Audience(journeys=plans, found=len(found.members), left_out=left_out)

    @activity.defn(name="campaign_journey_started")
    async def campaign_journey_started(self, send_id: str) -> bool:
        async with self.deps.sessions() as s:
            row = await s.get(SendRow, send_id)
            if row is None:
                raise ApplicationError(f"campaign send {send_id} not found", type="NotFound", non_retryable=True)
            if row.state == "claimed":
                row.state, row.updated_at = "running", datetime.now(UTC)
                s.add(row)
                await s.commit()
            return True

    @activity.defn(name="send_campaign_message")
    async def send_campaign_message(self, msg: CampaignSend) -> CampaignSendResult:
        async with heartbeating():
            return await self._send(msg)

    async def _send(self, msg: CampaignSend) -> CampaignSendResult:
        async with self.deps.sessions() as s:
            row = await s.get(SendRow, msg.send_id)
            if row is None:
                raise ApplicationError(f"campaign send {msg.send_id} not found", type="NotFound", non_retryable=True)
            earlier = (
                await s.exec(select(MessageLog).where(MessageLog.idempotency_key == msg.idempotency_key))
            ).first()
            patient = await s.get(Patient, row.patient_id)
            st = await campaigns.settings_of(s, row.clinic_id, row.kind)
            if earlier is None and msg.step in ASK_STEPS:
                # Checked before every ask: the campaign may have been switched off, the patient
                # may have opted out of marketing or (recall) booked a visit meanwhile.
                if not st.enabled:
                    return CampaignSendResult("disabled")
                if patient is None or patient.marketing_opt_out:
                    return CampaignSendResult("marketing_opt_out")
                if row.kind == RECALL and await campaigns.still_booked_since(s, row):
                    return CampaignSendResult("booked")
            template = msg.template
            if patient is not None and patient.guardian_id and template + "_child" in KINDS:
                template += "_child"  # to the guardian, naming the child
            buttons: list[Button] = []
            if msg.ask:
                buttons = [
                    Button(id=button_id("confirm", row.id), title="", title_kind="button.campaign_yes"),
                    Button(id=button_id("decline", row.id), title="", title_kind="button.campaign_no"),
                ]
            try:
                composed = await compose(
                    s,
                    self.deps.settings,
                    row.clinic_id,
                    row.patient_id,
                    template,
                    MessageFacts(campaign_send_id=row.id),
                    buttons,
                )
            except LookupError as e:
                raise ApplicationError(str(e), type="NotFound", non_retryable=True) from None
        if earlier is not None and earlier.status in DONE_SENT:
            return CampaignSendResult("sent", earlier.channel.value)
        if composed is None:
            return CampaignSendResult("skipped")
        result = await self.messaging._deliver(  # the one delivery walk (opt-out, channels, once per key)
            key=msg.idempotency_key,
            patient_id=row.patient_id,
            clinic_id=row.clinic_id,
            kind=template,
            text=composed.text,
            subject_id=row.id,
            subject_type="campaign",
            workflow_id=msg.workflow_id,
            buttons=composed.buttons,
            template=composed.whatsapp_template,
            template_language=composed.whatsapp_template_language,
            language=composed.language,
            voice=False,
            exclude=list(msg.exclude_channels),
            question=Question(
                kind=question_kind(row.kind),
                subject_type="campaign",
                subject_id=row.id,
                answers=[ANSWER_YES_NO],
            )
            if msg.ask
            else None,
        )
        return CampaignSendResult(result.status, result.channel)

    @activity.defn(name="finish_campaign_send")
    async def finish_campaign_send(self, outcome: CampaignOutcome) -> None:
        async with self.deps.sessions() as s:
            row = await s.get(SendRow, outcome.send_id)
            if row is None:
                raise ApplicationError(
                    f"campaign send {outcome.send_id} not found", type="NotFound", non_retryable=True
                )
            row.state, row.note, row.updated_at = outcome.state, outcome.note or None, datetime.now(UTC)
            if outcome.task_id:
                row.task_id = outcome.task_id
            s.add(row)
            await expire(s, row.id, f"campaign closed: {outcome.state}")
            await s.commit()
        log.info("campaign journey closed", send_id=outcome.send_id, kind=row.kind, state=outcome.state)
