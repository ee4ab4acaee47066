"""Issue 14: payloads decode to our contracts' dataclasses exactly as the SDK's default converter
decodes them, with each dataclass's field types resolved once (core/converter.py) instead of
on every decode."""

from __future__ import annotations

import dataclasses
import os
import typing
from datetime import UTC, datetime
from typing import Any

import pytest
from temporalio.converter import DataConverter

from contracts.appointment import AppointmentContext, AppointmentInput, HistoryEntry, JourneyState
from contracts.common import Button, MessageFacts, OutboundMessage, Question, SendResult
from contracts.policy import JourneyPolicy
from core import converter
from core.codec import data_converter

NOW = datetime(2030, 5, 4, 10, 0, tzinfo=UTC)

VALUES: list[Any] = [
    OutboundMessage(
        idempotency_key="appointment-x:v1:ask",
        patient_id="p",
        clinic_id="c",
        kind="reminder",
        buttons=[Button(id="confirm:x", title=""), Button(id="decline:x", title="Ні", title_kind="button.decline")],
        question=Question(kind="confirmation", subject_type="appointment", subject_id="x", answers=["yes"]),
        exclude_channels=["whatsapp"],
        render=True,
        facts=MessageFacts(appointment_id="x", starts_at=NOW, duration_minutes=30, version=2),
        not_after=NOW,
    ),
    AppointmentInput(
        appointment_id="x",
        clinic_id="c",
        patient_id="p",
        doctor_id="d",
        starts_at=NOW,
        duration_minutes=45,
        service="Check-up",
        timezone="Europe/Kyiv",
        policy=JourneyPolicy(reminder_lead=3600, quiet_hours=None),
        carried=JourneyState(
            stage="confirmed",
            starts_at=NOW,
            seen_message_ids=["m1"],
            history=[HistoryEntry(at=NOW, event="booked", stage="booked")],
            context=AppointmentContext(clinic_name="Smile", review_url=None),
        ),
    ),
    SendResult("sent", "sms", "SM123"),
]


def _both() -> tuple[DataConverter, DataConverter]:
    ours = data_converter([("k", os.urandom(32))])
    return ours, DataConverter.default


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_decodes_as_the_sdk_does(value: Any) -> None:
    ours, sdk = _both()
    payloads = sdk.payload_converter.to_payloads([value])
    mine = ours.payload_converter.from_payloads(payloads, [type(value)])[0]
    assert mine == sdk.payload_converter.from_payloads(payloads, [type(value)])[0] == value


def test_a_dataclass_field_types_are_resolved_once(monkeypatch: pytest.MonkeyPatch) -> None:
    ours, _ = _both()
    payloads = ours.payload_converter.to_payloads([VALUES[0]])
    converter._FIELDS.clear()
    calls: list[object] = []
    real = typing.get_type_hints

    def counting(obj: Any, *a: Any, **kw: Any) -> Any:
        calls.append(obj)
        return real(obj, *a, **kw)

    monkeypatch.setattr(typing, "get_type_hints", counting)
    for _ in range(3):
        ours.payload_converter.from_payloads(payloads, [OutboundMessage])
    # OutboundMessage, Button, Question, MessageFacts: once each, not once per decode.
    assert sorted(c.__name__ for c in calls if isinstance(c, type)) == [  # type: ignore[attr-defined]
        "Button",
        "MessageFacts",
        "OutboundMessage",
        "Question",
    ]


def test_bad_input_fails_as_in_the_sdk() -> None:
    ours, sdk = _both()
    missing = sdk.payload_converter.to_payloads([{"kind": "x"}])  # no key, patient, clinic
    wrong = sdk.payload_converter.to_payloads([{**dataclasses.asdict(VALUES[2]), "status": {"a": 1}}])
    for payloads, typ in ((missing, OutboundMessage), (wrong, SendResult)):
        for conv in (ours, sdk):
            with pytest.raises(Exception) as e:
                conv.payload_converter.from_payloads(payloads, [typ])
            assert isinstance(e.value, TypeError | ValueError | RuntimeError), e.value
