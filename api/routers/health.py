from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

router = APIRouter(tags=["health"])
POLLER_FRESH = timedelta(minutes=2)


async def _db(request: Request) -> str | None:
    try:
        async with request.app.state.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return None
    except Exception as e:  # noqa: BLE001
        return f"database unreachable ({type(e).__name__})"


async def _temporal(request: Request) -> list[str]:
    settings = request.app.state.settings
    client = request.app.state.temporal
    if client is None:
        return ["temporal not connected", "worker unknown"]
    try:
        responses = await asyncio.gather(*[
            client.workflow_service.describe_task_queue(
                DescribeTaskQueueRequest(
                    namespace=settings.temporal_namespace,
                    task_queue=TaskQueue(name=settings.temporal_task_queue),
                    task_queue_type=kind,
                ),
                timeout=timedelta(seconds=3),
            )
            for kind in (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
                         TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
        ])
    except Exception as e:  # noqa: BLE001
        return [f"temporal unreachable at {settings.temporal_address} ({type(e).__name__})",
                "worker unknown"]
    now = datetime.now(UTC)
    fresh = [p for resp in responses for p in resp.pollers
             if now - p.last_access_time.ToDatetime(tzinfo=UTC) < POLLER_FRESH]
    if not fresh:
        return [f"no worker polling task queue {settings.temporal_task_queue!r}"]
    return []


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    db, temporal = await asyncio.gather(_db(request), _temporal(request))
    missing = [m for m in [db, *temporal] if m]
    if missing:
        return JSONResponse(status_code=503, content={"status": "unavailable", "missing": missing})
    return JSONResponse(content={"status": "ok", "database": "ok", "temporal": "ok", "worker": "ok"})
