"""The API process: one DB engine and one Temporal client per process, made in the lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api import errors, observability
from api.deps import no_lone_surrogates
from api.observability import RequestContext
from api.repair import repair_loop
from api.routers import ROUTERS
from core.booking import StartedMarks
from core.codec import EncryptionCodec
from core.db import make_engine, session_factory
from core.logging import configure_logging, get_logger
from core.settings import Settings, get_settings
from core.telemetry import flush_tracing
from core.temporal import connect

log = get_logger("api")


CONNECT_WAIT = 3.0  # seconds the API waits for Temporal at startup before serving without it


async def _connect_temporal(app: FastAPI, settings: Settings) -> None:
    """Keep trying: the API may start before Temporal. Meanwhile journey calls answer 503
    with Retry-After (api.deps.get_temporal) and /health names what is missing."""
    delay = 0.5
    while app.state.temporal is None:
        try:
            app.state.temporal = await asyncio.wait_for(connect(settings, service="api"), timeout=10)
            log.info("temporal connected", address=settings.temporal_address, namespace=settings.temporal_namespace)
        except Exception as e:  # noqa: BLE001
            log.warning("temporal not reachable yet", address=settings.temporal_address, error=type(e).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.engine = make_engine(settings.database_url)
        app.state.sessions = session_factory(app.state.engine)
        app.state.codec = EncryptionCodec(settings.encryption_keys())
        app.state.temporal = None
        app.state.http = None
        connector = asyncio.create_task(_connect_temporal(app, settings))
        await asyncio.wait([connector], timeout=CONNECT_WAIT)
        repairer = asyncio.create_task(repair_loop(app.state))
        app.state.started_marks = StartedMarks(app.state.sessions)
        marker = asyncio.create_task(app.state.started_marks.run())
        for hook in getattr(app.state, "startup_hooks", []):
            await hook(app)
        try:
            yield
        finally:
            for task in (connector, repairer, marker):
                task.cancel()
            await asyncio.gather(connector, repairer, marker, return_exceptions=True)
            try:
                await app.state.started_marks.flush()
            except Exception as e:  # noqa: BLE001 - api.repair starts (and marks) what is left
                log.warning("journey_started marks not written at shutdown", error=type(e).__name__)
            for hook in getattr(app.state, "shutdown_hooks", []):
                await hook(app)
            await app.state.engine.dispose()
            flush_tracing()

    app = FastAPI(
        title="patient-journeys",
        version="0.1.0",
        description="Appointments, treatment plans and supplier invoices as durable Temporal "
        "journeys. Log in at POST /v1/auth/token, then send `Authorization: Bearer <token>`.",
        lifespan=lifespan,
        dependencies=[Depends(no_lone_surrogates)],
    )
    app.state.startup_hooks = []
    app.state.shutdown_hooks = []
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_credentials=True,
        allow_methods=["*"],
        allow_headers=["*"],
    )

    # Outermost: request id, request log line and HTTP metrics (pure ASGI, see api.observability).
    app.add_middleware(RequestContext)

    errors.install(app)
    for router in ROUTERS:
        app.include_router(router)
    app.include_router(observability.router)  # GET /metrics
    return app


def app_from_env() -> FastAPI:
    """The app factory each API process runs when API_WORKERS > 1 (settings from the environment)."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    return create_app(settings)


def main() -> None:
    import uvicorn

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    common = {"host": settings.api_host, "port": settings.api_port, "log_config": None, "access_log": False}
    if settings.api_workers > 1:  # several processes on one port (bookings scale with them)
        uvicorn.run("api.main:app_from_env", factory=True, workers=settings.api_workers, **common)  # type: ignore[arg-type]
    else:
        uvicorn.run(create_app(settings), **common)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
