"""The journeys (workflows). Workflow modules are pure and deterministic: no sqlmodel, httpx
or structlog imports.

This package imports nothing: the sandbox runs this file again for every workflow instance it
builds, so it must stay empty of imports. The registry lives in `workflows.registry`
(`from workflows import WORKFLOWS` still works, lazily).
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "WORKFLOWS":
        from workflows.registry import WORKFLOWS

        return WORKFLOWS
    raise AttributeError(name)
