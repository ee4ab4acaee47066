"""What must be up for the service to be healthy: the database, Temporal, and a worker
polling our task queue. Used by GET /health and `journeys health` (container healthchecks)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from core.settings import Settings


async def database_problem(engine: AsyncEngine) -> str | None:
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return None
    except Exception as e:  # noqa: BLE001
        return f"database unreachable ({type(e).__name__})"


async def temporal_problems(settings: Settings, client: Client | None) -> list[str]:
    if client is None:
        return [f"temporal not connected ({settings.temporal_address})", "worker unknown"]
    try:
        responses = await asyncio.gather(
            *[
                client.workflow_service.describe_task_queue(
                    DescribeTaskQueueRequest(
                        namespace=settings.temporal_namespace,
                        task_queue=TaskQueue(name=settings.temporal_task_queue),
                        task_queue_type=kind,
                    ),
                    timeout=timedelta(seconds=3),
                )
                for kind in (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
            ]
        )
    except Exception as e:  # noqa: BLE001
        return [f"temporal unreachable at {settings.temporal_address} ({type(e).__name__})", "worker unknown"]
    # A live worker renews its long polls every few seconds (the server's long-poll interval,
    # 10 s with our dynamic config); a dead one's last access only ages.
    now = datetime.now(UTC)
    window = timedelta(seconds=settings.health_poller_window)
    fresh = [p for resp in responses for p in resp.pollers if now - p.last_access_time.ToDatetime(tzinfo=UTC) < window]
    if not fresh:
        return [f"no worker polling task queue {settings.temporal_task_queue!r}"]
    return []


async def missing(settings: Settings, engine: AsyncEngine, client: Client | None) -> list[str]:
    db, temporal = await asyncio.gather(database_problem(engine), temporal_problems(settings, client))
    return [m for m in [db, *temporal] if m]
