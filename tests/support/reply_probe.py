"""A stand-in for the appointment journey in webhook tests: records `patient_reply`
signals and answers them on the `replies` query. Runs until terminated."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from contracts.appointment import APPOINTMENT_REPLY_SIGNAL
    from contracts.common import PatientReply


@workflow.defn(name="ReplyProbe")
class ReplyProbe:
    def __init__(self) -> None:
        self.replies: list[PatientReply] = []

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.signal(name=APPOINTMENT_REPLY_SIGNAL)
    def patient_reply(self, reply: PatientReply) -> None:
        self.replies.append(reply)

    @workflow.query(name="replies")
    def get_replies(self) -> list[PatientReply]:
        return self.replies
