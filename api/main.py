"""The API process: one DB engine and one Temporal client per process, made in the lifespan."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware

from api import errors
from api.routers import ROUTERS
from core.codec import EncryptionCodec
from core.db import make_engine, session_factory
from core.logging import configure_logging, get_logger
from core.settings import Settings, get_settings
from core.temporal import connect

log = get_logger("api")


async def _connect_temporal(app: FastAPI, settings: Settings) -> None:
    """Keep trying: the API may start before Temporal; /health says so meanwhile."""
    delay = 0.5
    while app.state.temporal is None:
        try:
            app.state.temporal = await connect(settings)
            log.info("temporal connected", address=settings.temporal_address, namespace=settings.temporal_namespace)
        except Exception as e:  # noqa: BLE001
            log.warning("temporal not reachable yet", address=settings.temporal_address, error=type(e).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)


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
        try:
            app.state.temporal = await connect(settings)
        except Exception:  # noqa: BLE001
            app.state.connector = asyncio.create_task(_connect_temporal(app, settings))
        for hook in getattr(app.state, "startup_hooks", []):
            await hook(app)
        try:
            yield
        finally:
            for hook in getattr(app.state, "shutdown_hooks", []):
                await hook(app)
            await app.state.engine.dispose()

    app = FastAPI(
        title="patient-journeys",
        version="0.1.0",
        description="Appointments, treatment plans and supplier invoices as durable Temporal "
        "journeys. Log in at POST /v1/auth/token, then send `Authorization: Bearer <token>`.",
        lifespan=lifespan,
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

    @app.middleware("http")
    async def request_context(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=rid)
        start = time.perf_counter()
        response = await call_next(request)
        response.headers["x-request-id"] = rid
        # The route template, not the raw path: paths may carry a secret (/codec/k/{secret}) and
        # query strings names or numbers. Unmatched paths are logged as such.
        route = request.scope.get("route")
        log.info(
            "request",
            method=request.method,
            path=getattr(route, "path", "<unmatched>"),
            status=response.status_code,
            ms=round((time.perf_counter() - start) * 1000, 1),
        )
        return response

    errors.install(app)
    for router in ROUTERS:
        app.include_router(router)
    return app


def main() -> None:
    import uvicorn

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
