"""FastAPI dependencies: settings, DB session, Temporal client, current user and roles."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Annotated

import jwt
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy import bindparam
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from core.security import decode_token
from core.settings import Settings
from models.core import StaffUser

oauth2 = OAuth2PasswordBearer(tokenUrl="/v1/auth/token", auto_error=False)


# A JSON \\u escape of a UTF-16 surrogate that is not one half of a pair: valid JSON, but no
# character, so it cannot be stored or sent (the database's UTF-8 encoder refuses it).
_LONE_SURROGATE = re.compile(
    rb"(?<!\\)(?:\\\\)*\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})(?<!\\)(?:\\\\)*\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


async def no_lone_surrogates(request: Request) -> None:
    """App-wide: a JSON body with a lone surrogate is a client's mistake (422), caught before
    any handler writes anything."""
    if "json" not in request.headers.get("content-type", ""):
        return
    if _LONE_SURROGATE.search(await request.body()):
        raise HTTPException(
            422,
            detail=[{"loc": ["body"], "msg": "text contains a lone UTF-16 surrogate", "type": "value_error"}],
        )


# Dependencies that do no I/O are `async def` all the same: FastAPI runs a plain `def` one in
# its thread pool, a thread hop per request for a dictionary lookup.
async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessions() as session:
        yield session


MAX_OFFSET = 1_000_000  # paging deeper than this is a client bug (and must stay a 4xx)
RETRY_AFTER = "5"  # seconds, for 503s while Temporal is unreachable


async def get_temporal(request: Request) -> Client:
    """The process's Temporal client; 503 + Retry-After while it is not connected yet (the
    API keeps connecting in the background and recovers by itself)."""
    client = request.app.state.temporal
    if client is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "Temporal is unavailable; retry shortly",
            headers={"Retry-After": RETRY_AFTER},
        )
    return client


async def get_temporal_if_connected(request: Request) -> Client | None:
    """For reads that can answer from the database while Temporal is away."""
    return request.app.state.temporal


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
MaybeTemporalDep = Annotated[Client | None, Depends(get_temporal_if_connected)]

_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


async def current_user(
    session: SessionDep, settings: SettingsDep, token: Annotated[str | None, Depends(oauth2)]
) -> StaffUser:
    if not token:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "not authenticated: send a bearer token from POST /v1/auth/token",
            headers=_UNAUTHORIZED,
        )
    return await staff_from_token(session, settings, token)


_USER = select(StaffUser).where(col(StaffUser.id) == bindparam("id"))  # built once: read on every request


async def staff_from_token(session: AsyncSession, settings: Settings, token: str) -> StaffUser:
    """The active staff user a token names, or 401. A deactivated user's tokens, and tokens
    issued before `tokens_valid_after`, stop working at once (the row is read every time)."""
    try:
        claims = decode_token(settings.jwt_secret, token)
    except jwt.ExpiredSignatureError:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "token expired; log in again", headers=_UNAUTHORIZED
        ) from None
    except jwt.PyJWTError:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid token", headers=_UNAUTHORIZED) from None
    user = (await session.exec(_USER, params={"id": str(claims["sub"])})).first()
    revoked = (
        user is not None
        and user.tokens_valid_after is not None
        and float(claims.get("iat", 0)) < user.tokens_valid_after.timestamp()
    )
    if user is None or not user.active or revoked:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "user not found or disabled", headers=_UNAUTHORIZED)
    return user


CurrentUser = Annotated[StaffUser, Depends(current_user)]

# Who may do what (roles and branch scoping) lives in api/policy.py: `policy.may(resource, action)`.
