"""Workflow registry: every journey module adds its workflow class to WORKFLOWS.

Workflow modules are pure and deterministic: no sqlmodel, httpx or structlog imports.
"""

from __future__ import annotations

WORKFLOWS: list[type] = []
