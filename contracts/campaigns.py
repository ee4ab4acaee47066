"""Campaigns (issue 12): recall invitations, bonus-point reminders and birthday greetings.

Each clinic has one Schedule per campaign kind (`campaign-<kind>-<clinic id>`), daily at the
clinic's local send time. Every run is a `CampaignRun` workflow: an activity finds the day's
audience in SQL and claims each patient's row for the period (a unique key on clinic, kind,
patient and period), then the run starts one small `CampaignJourney` per claimed row:

    invite -> wait for the answer -> (silence) re-ask once -> wait -> close
    yes -> a booking link (when the clinic has one) or an operator task "book this patient"
    no  -> done;  books anything (recall) -> stops;  other words -> a person reads them

Journey ids are `campaign-<kind>-<send id>`, where the send id is derived from (clinic, kind,
patient, period): a re-run, a retried activity or a restarted worker lands on the same id, and
Temporal refuses a second journey under it (REJECT_DUPLICATE). No patient data is in an id.

Pure dataclasses (safe inside workflows). Versionable: add fields with defaults, never rename.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from temporalio import activity

from contracts.policy import QuietHours

RECALL, BONUS, BIRTHDAY = "recall", "bonus", "birthday"
KINDS = (RECALL, BONUS, BIRTHDAY)

CAMPAIGN_RUN_WORKFLOW = "CampaignRun"
CAMPAIGN_JOURNEY_WORKFLOW = "CampaignJourney"
# Signal from the booking path: the patient booked a visit (a recall journey stops).
PATIENT_BOOKED_SIGNAL = "patient_booked"
STATE_QUERY = "state"

# Operator task raised by a "yes" when the clinic has no booking link.
BOOK_TASK_KIND = "campaign_book"
# The open question a campaign message asks (routing matches yes/no to it).
QUESTION_KIND_PREFIX = "campaign_"


def schedule_id(clinic_id: str, kind: str) -> str:
    return f"campaign-{kind}-{clinic_id}"


def run_workflow_id(clinic_id: str, kind: str) -> str:
    """The Schedule's action id (Temporal appends the run's timestamp)."""
    return f"campaign-{kind}-{clinic_id}-run"


def journey_workflow_id(kind: str, send_id: str) -> str:
    return f"campaign-{kind}-{send_id}"


def question_kind(kind: str) -> str:
    return QUESTION_KIND_PREFIX + kind


@dataclass
class RunInput:
    clinic_id: str
    kind: str


@dataclass
class JourneyPlan:
    """What one journey needs to know, fixed when the run claimed the patient."""

    send_id: str
    clinic_id: str
    kind: str
    patient_id: str
    period: str
    timezone: str = "Europe/Kyiv"
    quiet_hours: QuietHours | None = None
    reask_after: float | None = 3 * 86400.0  # seconds; None: no re-ask
    answer_window: float = 3 * 86400.0  # after the last ask, how long an answer is waited for
    has_booking_link: bool = False


@dataclass
class Audience:
    """`claim_campaign_audience` result: the claimed rows whose journeys should run."""

    journeys: list[JourneyPlan] = field(default_factory=list)
    enabled: bool = True
    found: int = 0  # eligible patients seen this run (claimed now or before)
    left_out: dict[str, int] = field(default_factory=dict)  # reason -> count (opted out, ...)


@dataclass
class RunResult:
    started: int = 0
    already_running: int = 0
    found: int = 0
    left_out: dict[str, int] = field(default_factory=dict)


@dataclass
class CampaignSend:
    """Activity `send_campaign_message`: check the patient may still get this campaign, then
    render the clinic's template for `template` and deliver it (at most once per key)."""

    send_id: str
    step: str  # invite | reask | accepted | ...
    idempotency_key: str
    workflow_id: str
    template: str  # campaign.<kind>.invite, campaign.reask, campaign.accepted_link, ...
    ask: bool = True  # carries the yes/no question and its buttons
    exclude_channels: list[str] = field(default_factory=list)  # re-sent after these failed


@dataclass
class CampaignSendResult:
    # sent | opted_out (STOP) | marketing_opt_out | booked (recall: booked since) |
    # disabled (the clinic switched the campaign off) | no_channel | failed | skipped
    status: str
    channel: str | None = None


@dataclass
class CampaignOutcome:
    """Activity `finish_campaign_send`: the row's final state (and the open question closed)."""

    send_id: str
    state: str  # accepted | declined | no_answer | booked | opted_out | not_sent | ...
    note: str = ""
    task_id: str | None = None


@dataclass
class JourneyView:
    state: str
    asks: int
    answer: str | None
    history: list[str] = field(default_factory=list)
    started_at: datetime | None = None


# ------------------------------------------------------------------ typed activity stubs
class CampaignActivityStubs:
    @activity.defn(name="claim_campaign_audience")
    async def claim_campaign_audience(self, inp: RunInput) -> Audience:
        raise NotImplementedError

    @activity.defn(name="campaign_journey_started")
    async def campaign_journey_started(self, send_id: str) -> bool:
        raise NotImplementedError

    @activity.defn(name="send_campaign_message")
    async def send_campaign_message(self, msg: CampaignSend) -> CampaignSendResult:
        raise NotImplementedError

    @activity.defn(name="finish_campaign_send")
    async def finish_campaign_send(self, outcome: CampaignOutcome) -> None:
        raise NotImplementedError
