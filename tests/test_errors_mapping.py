"""How the API answers Temporal errors it cannot avoid: an outage on our side (no worker
polling the journey's queue, server unavailable) is a 503 with Retry-After, never a 502."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from temporalio.service import RPCError, RPCStatusCode

from api import errors


def _app(exc: Exception) -> FastAPI:
    app = FastAPI()
    errors.install(app)

    @app.get("/boom")
    async def boom() -> None:
        raise exc

    return app


async def _get(exc: Exception) -> httpx.Response:
    transport = httpx.ASGITransport(app=_app(exc))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        return await c.get("/boom")


async def test_query_while_no_worker_polls_is_503_with_retry_after() -> None:
    r = await _get(
        RPCError("no poller seen for task queue recently, worker may be down", RPCStatusCode.FAILED_PRECONDITION, b"")
    )
    assert r.status_code == 503 and r.headers.get("Retry-After"), (r.status_code, r.text)


async def test_other_temporal_errors_stay_502() -> None:
    r = await _get(RPCError("something else", RPCStatusCode.INTERNAL, b""))
    assert r.status_code == 502 and r.json() == {"detail": "Temporal error"}
