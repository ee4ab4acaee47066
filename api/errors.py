"""Error mapping: Temporal and DB errors -> HTTP, by type (never by message text)."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.deps import RETRY_AFTER
from core.logging import get_logger

log = get_logger("api.errors")


def field_error(e: ValidationError, prefix: tuple[str, ...] = ("body",)) -> HTTPException:
    return HTTPException(
        422,
        detail=[{"loc": [*prefix, *err["loc"]], "msg": err["msg"], "type": err["type"]} for err in e.errors()],
    )


def invalid_field(name: str, msg: str, where: str = "body") -> HTTPException:
    """422 naming the field (dotted for nested: "appointment.starts_at") in the body, or in
    the query with where="query", shaped like FastAPI's own validation errors so clients
    handle both alike."""
    return HTTPException(422, detail=[{"loc": [where, *name.split(".")], "msg": msg, "type": "value_error"}])


def check_choice(name: str, value: str | None, allowed: Iterable[str]) -> None:
    """A query filter that must be one of a known set: 422 naming it and the choices."""
    choices = list(allowed)
    if value is not None and value not in choices:
        raise invalid_field(name, f"unknown {name} {value!r}; one of {', '.join(choices)}", where="query")


def rejection(err: WorkflowUpdateFailedError) -> HTTPException:
    """An update validator or handler raised ApplicationError: its `type` picks the status
    (Conflict -> 409, Invalid -> 422, NotFound -> 404, Forbidden -> 403), its message is shown,
    and its first detail (if a dict) is merged into the body for clients."""
    cause: BaseException | None = err.cause
    while cause is not None and not isinstance(cause, ApplicationError):
        cause = cause.__cause__  # what TemporalError.cause returns
    if isinstance(cause, ApplicationError):
        code = {"Conflict": 409, "Invalid": 422, "NotFound": 404, "Forbidden": 403}.get(cause.type or "", 409)
        extra = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
        return HTTPException(code, detail={"message": cause.message, **extra})
    return HTTPException(409, detail={"message": "the journey refused this request"})


def install(app: FastAPI) -> None:
    from conversations.inbound import InProgress, TemporalNotConnected

    @app.exception_handler(InProgress)
    @app.exception_handler(TemporalNotConnected)
    async def _retry_later(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            status_code=503,
            content={"detail": "this message is being processed or cannot be yet; retry shortly"},
            headers={"Retry-After": RETRY_AFTER},
        )

    @app.exception_handler(IntegrityError)
    async def _integrity(_: Request, exc: IntegrityError) -> JSONResponse:
        return JSONResponse(status_code=409, content={"detail": "conflicts with existing data"})

    @app.exception_handler(WorkflowUpdateFailedError)
    async def _update_failed(_: Request, exc: WorkflowUpdateFailedError) -> JSONResponse:
        http = rejection(exc)
        return JSONResponse(status_code=http.status_code, content={"detail": http.detail})

    @app.exception_handler(RPCError)
    async def _rpc(_: Request, exc: RPCError) -> JSONResponse:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return JSONResponse(status_code=404, content={"detail": "journey not found"})
        # A query while no worker polls the journey's queue: the server says so with
        # FAILED_PRECONDITION ("no poller seen ... worker may be down"); that is our outage,
        # not the client's mistake.
        no_worker = exc.status == RPCStatusCode.FAILED_PRECONDITION and "poller" in exc.message
        if no_worker or exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
            return JSONResponse(
                status_code=503,
                content={"detail": "Temporal is unavailable; retry shortly"},
                headers={"Retry-After": RETRY_AFTER},
            )
        if exc.status == RPCStatusCode.RESOURCE_EXHAUSTED:
            return JSONResponse(
                status_code=429,
                content={"detail": "too many requests in flight for this journey; retry shortly"},
                headers={"Retry-After": RETRY_AFTER},
            )
        # Temporal's own messages name workflow ids and reasons, never patient data.
        log.warning("temporal rpc error", status=exc.status.name, temporal_message=exc.message[:300])
        return JSONResponse(status_code=502, content={"detail": "Temporal error"})
