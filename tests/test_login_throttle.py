"""Logins are throttled per username and per client address (429 + Retry-After), nobody is
locked out for longer than the window, and argon2 never runs on the event loop.

These tests run their own API on their own database: a throttled 127.0.0.1 must not lock the
session's other tests out."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import update

from api import login as login_module
from cli import _create_user
from core.db import make_engine, migrate, session_factory
from core.settings import Settings
from models.core import LoginFailure, Role
from tests.support.live import free_port, serve

LIMIT = 4


@pytest.fixture
async def throttled(settings: Settings, tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    from api.main import create_app

    s = settings.model_copy(
        update={
            "database_url": f"sqlite:///{tmp_path / 'throttle.db'}",
            "login_max_failures": LIMIT,
            "login_window": timedelta(minutes=15),
        }
    )
    migrate(s.database_url)
    for name in ("admin", "olga"):
        await _create_user(s.database_url, name, f"{name}-password", Role.admin, None, None, False)
    async with serve(create_app(s), free_port()) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        yield http, s


async def _age_failures(s: Settings, by: timedelta) -> None:
    """Move every recorded failure back in time, as if `by` had passed."""
    engine = make_engine(s.database_url)
    async with session_factory(engine)() as db:
        rows = (await db.exec(LoginFailure.__table__.select())).all()  # type: ignore[attr-defined]
        for r in rows:
            await db.exec(update(LoginFailure).where(LoginFailure.id == r.id).values(at=r.at - by))  # type: ignore[call-overload]
        await db.commit()
    await engine.dispose()


async def _login(http: httpx.AsyncClient, user: str, password: str) -> httpx.Response:
    return await http.post("/v1/auth/token", data={"username": user, "password": password})


async def test_wrong_passwords_are_throttled_per_username_then_released(throttled) -> None:  # type: ignore[no-untyped-def]
    http, s = throttled
    for _ in range(LIMIT):
        assert (await _login(http, "admin", "guess")).status_code == 401
    r = await _login(http, "admin", "guess")
    assert r.status_code == 429, r.text
    wait = int(r.headers["Retry-After"])
    assert 0 < wait <= 15 * 60
    # Even the right password waits: the guesser must not learn it is right.
    assert (await _login(http, "admin", "admin-password")).status_code == 429
    # Not forever: once the failures leave the window the real user gets in.
    await _age_failures(s, timedelta(seconds=wait))
    assert (await _login(http, "admin", "admin-password")).status_code == 200
    # A success clears the username's count.
    assert (await _login(http, "admin", "guess")).status_code == 401


async def test_one_address_guessing_many_usernames_is_throttled(throttled) -> None:  # type: ignore[no-untyped-def]
    http, s = throttled
    for _ in range(LIMIT):
        assert (await _login(http, f"nobody-{uuid.uuid4().hex[:6]}", "guess")).status_code == 401
    r = await _login(http, "olga", "olga-password")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    await _age_failures(s, timedelta(minutes=15, seconds=1))
    assert (await _login(http, "olga", "olga-password")).status_code == 200


async def test_password_hashing_runs_off_the_event_loop(throttled, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    http, _ = throttled
    on_loop: list[bool] = []
    real = login_module.security.verify_password

    def spy(password: str, hashed: str | None) -> bool:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        return real(password, hashed)

    monkeypatch.setattr(login_module.security, "verify_password", spy)
    assert (await _login(http, "olga", "olga-password")).status_code == 200
    assert (await _login(http, "olga", "wrong")).status_code == 401
    assert on_loop == [False, False]
