"""Request context, request log and HTTP metrics as one pure ASGI middleware, and GET /metrics.

Pure ASGI rather than Starlette's BaseHTTPMiddleware: no extra task and memory stream per
request, and the response body streams straight through.

Who may read /metrics: it carries counts by route template, status, channel and kind only,
never an id, name, phone number or raw path (core.metrics). It is open by default, as
Prometheus scrapes expect; set METRICS_TOKEN to require `Authorization: Bearer <token>` when
the API port is reachable from outside (the compose stack does).
"""

from __future__ import annotations

import hmac
import time
import uuid
from datetime import datetime

import structlog
from fastapi import APIRouter, HTTPException, Request, Response
from sqlalchemy import func
from sqlmodel import col, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core import metrics
from core.logging import get_logger
from models.core import OperatorTask, TaskState

log = get_logger("api")


class RequestContext:
    """x-request-id in and out, one `request` log line and the HTTP metrics per request.

    The route template, not the raw path, is logged and counted: paths may carry a secret
    (/codec/k/{secret}) or ids, query strings names or numbers. Unmatched paths are
    `<unmatched>`. Latency is measured until the response starts; the line is logged before
    the response's last byte is sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = ""
        for k, v in scope.get("headers", ()):
            if k == b"x-request-id":
                rid = v.decode("latin-1")[:128]
                break
        rid = rid or uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=rid)
        start = time.perf_counter()
        status = 500
        elapsed: float | None = None
        done = False

        def finish() -> None:
            # Before the last byte goes out: whoever reads the response can read its log line.
            nonlocal done
            if done:
                return
            done = True
            took = elapsed if elapsed is not None else time.perf_counter() - start
            route = getattr(scope.get("route"), "path", None) or metrics.UNMATCHED
            method = scope.get("method", "GET")
            metrics.observe_request(method, route, status, took)
            log.info("request", method=method, path=route, status=status, ms=round(took * 1000, 1))

        async def send_wrapper(message: Message) -> None:
            nonlocal status, elapsed
            if message["type"] == "http.response.start":
                status = message["status"]
                elapsed = time.perf_counter() - start
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid.encode("latin-1")))
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                finish()
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            finish()


router = APIRouter(tags=["ops"])


async def _refresh_task_queue(request: Request) -> None:
    q = (
        select(OperatorTask.kind, func.count(), func.min(OperatorTask.created_at))
        .where(col(OperatorTask.state).in_((TaskState.requested, TaskState.in_progress)))
        .group_by(OperatorTask.kind)
    )
    async with request.app.state.sessions() as s:
        rows: list[tuple[str, int, datetime | None]] = [tuple(r) for r in (await s.exec(q)).all()]  # type: ignore[misc]
    metrics.TASK_QUEUE.update(rows)


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request) -> Response:
    token = request.app.state.settings.metrics_token
    if token:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise HTTPException(401, "metrics need Authorization: Bearer <METRICS_TOKEN>")
    try:
        await _refresh_task_queue(request)
    except Exception as e:  # noqa: BLE001  the database being down must not hide the other metrics
        log.warning("metrics: operator queue not read", error=type(e).__name__)
        metrics.TASK_QUEUE.update([])
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
