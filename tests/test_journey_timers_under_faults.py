"""Issue 16, timers: a send never holds a timer; a message about a visit is never delivered
after it stopped making sense; the robot call is fitted before the deadline for every policy
in which the first ask fits (table-driven over policies)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from core.deps import Deps
from core.settings import Settings
from models.core import Role
from tests.support.api import Api
from tests.support.appointments import FAST, make_clinic, phone
from tests.support.fake_providers import provider_rig
from tests.support.live import eventually, running_worker
from workflows.planner import plan_contacts

H, M = timedelta(hours=1), timedelta(minutes=1)
S = datetime(2030, 5, 4, 10, 0, tzinfo=UTC)  # the visit


def simulate(
    reminder_lead: timedelta,
    reask_interval: timedelta,
    reask_count: int,
    confirm_deadline: timedelta,
    voice_call_after: timedelta | None = None,
    voice_call_attempts: int = 1,
) -> tuple[list[tuple[timedelta, str]], int]:
    """A silent patient: every contact the journey makes, as offsets from the visit."""
    deadline = S - confirm_deadline
    first = S - reminder_lead
    assert first < deadline, "the first ask must fit for this table"
    contacts, last, asks, calls, unfitted = [(first - S, "ask")], first, 1, 0, 0
    while True:
        plan, dropped = plan_contacts(
            last=last,
            deadline=deadline,
            reasks_left=reask_count - (asks - 1),
            calls_left=voice_call_attempts - calls,
            reask_interval=reask_interval,
            call_after=voice_call_after if voice_call_after is not None else reask_interval,
        )
        unfitted = max(unfitted, dropped)
        if not plan:
            return contacts, unfitted
        at, kind = plan[0]
        assert at > last and at < deadline, (at, last, deadline)
        contacts.append((at - S, kind))
        last = at
        if kind == "ask":
            asks += 1
        else:
            calls += 1


@pytest.mark.parametrize(
    ("policy", "asks", "calls", "unfitted"),
    [
        # The example: three re-asks 30 min apart, deadline 30 min -> the call used to
        # land on the deadline and vanish. Now it comes before the deadline.
        (dict(reminder_lead=3 * H, reask_interval=30 * M, reask_count=3, confirm_deadline=30 * M), 4, 1, 0),
        (
            dict(
                reminder_lead=3 * H,
                reask_interval=30 * M,
                reask_count=3,
                confirm_deadline=30 * M,
                voice_call_after=1 * H,
            ),
            4,
            1,
            0,
        ),
        # The clinic default (24 h lead, 2 h re-asks, 30 min deadline): all on the policy's gaps.
        (dict(reminder_lead=24 * H, reask_interval=2 * H, reask_count=3, confirm_deadline=30 * M), 4, 1, 0),
        # A short lead: the re-asks and the call squeezed in evenly, none dropped.
        (dict(reminder_lead=3 * H, reask_interval=1 * H, reask_count=3, confirm_deadline=30 * M), 4, 1, 0),
        # Shorter still: re-asks closer than a quarter of their gap are given up (counted), the
        # call stays.
        (dict(reminder_lead=2 * H, reask_interval=2 * H, reask_count=3, confirm_deadline=30 * M), 2, 1, 2),
        # Booked an hour ahead with 2 h re-asks: too tight for every re-ask; the call still comes
        # and what could not be fitted is counted.
        (dict(reminder_lead=1 * H, reask_interval=2 * H, reask_count=3, confirm_deadline=50 * M), 1, 1, 3),
        # Ten minutes between the first ask and the deadline: still the call.
        (dict(reminder_lead=40 * M, reask_interval=2 * H, reask_count=3, confirm_deadline=30 * M), 1, 1, 3),
        # Two robot calls, no re-asks.
        (
            dict(
                reminder_lead=4 * H, reask_interval=1 * H, reask_count=0, confirm_deadline=1 * H, voice_call_attempts=2
            ),
            1,
            2,
            0,
        ),
    ],
)
def test_voice_call_is_fitted_before_the_deadline(policy: dict[str, Any], asks: int, calls: int, unfitted: int) -> None:
    contacts, dropped = simulate(**policy)
    kinds = [k for _, k in contacts]
    assert kinds.count("ask") == asks, contacts
    assert kinds.count("call") == calls, contacts
    assert dropped == unfitted, contacts
    assert kinds[-calls:] == ["call"] * calls  # the robot call after the re-asks, before the operator
    deadline = -policy["confirm_deadline"]
    assert all(offset < deadline for offset, _ in contacts)
    gaps = [b - a for (a, _), (b, _) in zip(contacts, contacts[1:], strict=False)]
    assert all(g > timedelta(0) for g in gaps)


def test_unset_voice_call_after_follows_reask_interval() -> None:
    from contracts.policy import JourneyPolicy
    from models.core import PolicyIn

    p = PolicyIn.model_validate({"reask_interval": "PT45M"}).to_policy()
    assert p.voice_call_after is None and p.voice_call_after_td == timedelta(minutes=45)
    assert JourneyPolicy(reask_interval=60, voice_call_after=5).voice_call_after_td == timedelta(seconds=5)


# ------------------------------------------------------------------ a provider outage
async def test_provider_outage_holds_no_timer_and_nothing_goes_out_late(
    api: Api, settings: Settings, deps: Deps, client: Client
) -> None:
    """The SMS provider is down from booking until after the visit started. The deadline and
    the no-show still happen while it is down (a send no longer holds them), and when it is
    back nothing about the visit is delivered any more: every message had stopped making
    sense (the asks at the deadline, the booking notice at the start)."""
    tq = f"outage-{uuid.uuid4().hex[:8]}"
    async with provider_rig(settings, deps, client, task_queue=tq) as rig, running_worker(client, rig.deps, tq):
        http = httpx.AsyncClient(base_url=rig.api_url, timeout=30)
        policy = {**FAST, "reminder_lead": 14, "reask_interval": 3, "reask_count": 2, "confirm_deadline": 6}
        to = phone()  # the rig's own API (its provider fakes), not the session's
        clinic = await make_clinic(Api(http, api.tokens), patient={"phone": to}, **policy)
        clinic_id, doctor_id, patient_id = clinic["id"], clinic["doctor_id"], clinic["patient_id"]
        rig.fake.down.add("twilio")  # the outage starts before the booking
        start = datetime.now(UTC) + timedelta(seconds=24)
        r = await http.post(
            "/v1/appointments",
            headers=api.headers(Role.front_desk),
            json={
                "patient_id": patient_id,
                "clinic_id": clinic_id,
                "doctor_id": doctor_id,
                "starts_at": start.isoformat(),
                "duration_minutes": 30,
                "service": "Check-up",
            },
        )
        assert r.status_code == 201, r.text
        appt = r.json()
        outage_ends = start + timedelta(seconds=8)
        await asyncio.sleep((outage_ends - datetime.now(UTC)).total_seconds())
        rig.fake.down.discard("twilio")

        async def no_show() -> dict[str, Any]:
            view = (await http.get(f"/v1/appointments/{appt['id']}", headers=api.headers(Role.operator))).json()
            assert view["stage"] == "no_show", view["history"]
            return view

        view = await eventually(no_show, timeout=60)
        at = {h["event"]: datetime.fromisoformat(h["at"]) for h in view["history"]}
        # Both timers fired while the provider was still down (they used to wait for the send).
        assert at["deadline_unconfirmed"] < outage_ends, view["history"]
        assert at["no_show"] < outage_ends, view["history"]
        await asyncio.sleep(3)  # anything still retrying would reach the provider now
        late = [x for x in rig.fake.delivered("twilio") if x.form and x.form.get("To") == to]
        assert late == [], [x.form for x in late]
        await http.aclose()
