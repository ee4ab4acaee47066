"""Small dataclasses that cross the workflow/activity boundary and are shared by journeys.
Versionable: add fields with defaults, never rename. No SQLModel here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass
class TaskRequest:
    """Raise an operator task. `dedup_key` (workflow id + version + step) makes it idempotent."""

    dedup_key: str
    kind: str
    title: str
    assigned_role: str = "operator"
    clinic_id: str | None = None
    patient_id: str | None = None
    subject_type: str | None = None
    subject_id: str | None = None
    workflow_id: str | None = None
    due_at: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskRef:
    task_id: str
    created: bool  # False when the dedup key already existed


@dataclass
class CancelTasks:
    """Close open tasks of a subject (e.g. the appointment got confirmed by phone)."""

    subject_id: str
    kinds: list[str] = field(default_factory=list)  # empty: every open task of the subject
    reason: str = ""
