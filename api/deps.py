"""FastAPI dependencies: settings, DB session, Temporal client, current user and roles."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated

import jwt
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from core.security import decode_token
from core.settings import Settings
from models.core import Role, StaffUser

oauth2 = OAuth2PasswordBearer(tokenUrl="/v1/auth/token", auto_error=False)


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessions() as session:
        yield session


def get_temporal(request: Request) -> Client:
    return request.app.state.temporal


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
TemporalDep = Annotated[Client, Depends(get_temporal)]

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
    try:
        claims = decode_token(settings.jwt_secret, token)
    except jwt.ExpiredSignatureError:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "token expired; log in again", headers=_UNAUTHORIZED
        ) from None
    except jwt.PyJWTError:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid token", headers=_UNAUTHORIZED) from None
    user = await session.get(StaffUser, claims["sub"])
    if user is None or not user.active:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "user not found or disabled", headers=_UNAUTHORIZED)
    return user


CurrentUser = Annotated[StaffUser, Depends(current_user)]

ALL_STAFF = tuple(Role)


def require_roles(*roles: Role) -> Callable[[StaffUser], Awaitable[StaffUser]]:
    """Dependency: the user must hold one of `roles`; `admin` may do everything.

    Routers declare role aliases as `X = Annotated[StaffUser, Depends(require_roles(...))]`
    (a literal alias, so type checkers see `StaffUser`)."""
    allowed = set(roles) | {Role.admin}

    async def _check(user: CurrentUser) -> StaffUser:
        if user.role not in allowed:
            names = ", ".join(sorted(r.value for r in allowed))
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"role {user.role.value!r} may not do this; allowed: {names}"
            )
        return user

    return _check
