"""Staff login, shared by POST /v1/auth/token and the codec's browser login.

Throttled per username and per client address: `LOGIN_MAX_FAILURES` failures within
`LOGIN_WINDOW` answer 429 with `Retry-After` (seconds until the oldest failure leaves the
window) without checking the password, so a flood costs no hashing. The window slides: a real
user is never locked out for longer than it. argon2 runs in a worker thread, never on the
event loop, so logins cannot slow every other request down.
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime

from fastapi import HTTPException, Request, status
from sqlalchemy import delete, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core import security
from core.logging import get_logger
from core.settings import Settings
from models.core import LoginFailure, StaffUser

log = get_logger("api.login")


def _keys(request: Request, username: str) -> list[str]:
    address = request.client.host if request.client else "unknown"
    return [f"user:{username.strip().lower()[:150]}", f"addr:{address}"]


async def _retry_after(session: AsyncSession, settings: Settings, keys: list[str], now: datetime) -> int | None:
    since = now - settings.login_window
    for key in keys:
        q = (
            select(LoginFailure.at)
            .where(LoginFailure.key == key, col(LoginFailure.at) > since)
            .order_by(col(LoginFailure.at).desc())
            .offset(settings.login_max_failures - 1)
            .limit(1)
        )
        # The failure that brought the count to the limit: once it leaves the window, one
        # more attempt is allowed.
        boundary = (await session.exec(q)).first()
        if boundary is not None:
            return max(1, math.ceil((boundary + settings.login_window - now).total_seconds()))
    return None


async def authenticate(
    request: Request, session: AsyncSession, settings: Settings, username: str, password: str
) -> StaffUser:
    """The active user with this password, or 401 (wrong) / 429 (throttled)."""
    now = datetime.now(UTC)
    keys = _keys(request, username)
    wait = await _retry_after(session, settings, keys, now)
    if wait is not None:
        log.warning("login throttled", retry_after=wait)
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many failed logins; try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    user = (await session.exec(select(StaffUser).where(StaffUser.username == username))).first()
    ok = await asyncio.to_thread(security.verify_password, password, user.password_hash if user else None)
    if not ok or user is None or not user.active:
        session.add_all([LoginFailure(key=k, at=now) for k in keys])
        # Keep the table small: failures older than the window no longer count.
        await session.exec(delete(LoginFailure).where(col(LoginFailure.at) < now - settings.login_window))  # type: ignore[call-overload]
        await session.commit()
        log.info("login failed")
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "wrong username or password", headers={"WWW-Authenticate": "Bearer"}
        )
    # A successful login clears the username's count (not the address's: one valid account
    # must not reset a guessing run against the others).
    await session.exec(delete(LoginFailure).where(col(LoginFailure.key) == keys[0]))  # type: ignore[call-overload]
    await session.commit()
    return user


async def failures(session: AsyncSession, key: str) -> int:  # for tests and ops
    return (await session.exec(select(func.count()).where(LoginFailure.key == key))).one()
