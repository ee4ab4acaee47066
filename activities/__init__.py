"""Activity registry: every journey adds its activity objects in `build_activities`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activities.deps import Deps
from activities.messaging import MessagingActivities
from activities.tasks import TaskActivities


def build_activities(deps: Deps) -> list[Callable[..., Any]]:
    tasks = TaskActivities(deps)
    messaging = MessagingActivities(deps)
    return [
        tasks.create_operator_task,
        tasks.cancel_operator_tasks,
        messaging.send_patient_message,
        messaging.place_voice_call,
    ]
