from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from core.health import missing

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    """200 when the database, Temporal and a worker on our task queue are all there;
    503 naming what is missing."""
    state = request.app.state
    problems = await missing(state.settings, state.engine, state.temporal)
    if problems:
        return JSONResponse(status_code=503, content={"status": "unavailable", "missing": problems})
    return JSONResponse(content={"status": "ok", "database": "ok", "temporal": "ok", "worker": "ok"})
