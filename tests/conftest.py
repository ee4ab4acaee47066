"""Shared fixtures. Everything is real: the Temporal dev server we build into .tools/bin,
SQLite files and (for data-layer tests) the throwaway PostgreSQL from scripts/pg-test.sh.

Session-wide: one Temporal dev server, one migrated SQLite database, one worker on a
session task queue, one live API on a free loopback port, one staff user per role.
Tests isolate themselves by creating their own clinics/patients (ids are random).
"""

from __future__ import annotations

import base64
import os
import secrets
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from core.db import migrate
from core.deps import Deps
from core.settings import Settings
from core.temporal import TEMPORAL_BIN, connect, start_dev_server
from models.core import Role
from tests.support.api import Api
from tests.support.live import free_port, running_worker, serve

ROLE_PASSWORD = "pw-{role}-12345"


def pytest_configure(config: pytest.Config) -> None:
    if not TEMPORAL_BIN.exists():
        raise pytest.UsageError(f"{TEMPORAL_BIN} is missing: run `make test` (or `make install`)")


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await start_dev_server()
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def api_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def settings(temporal_env: WorkflowEnvironment, data_dir: Path, api_port: int) -> Settings:
    target = temporal_env.client.service_client.config.target_host
    s = Settings(
        DATA_DIR=str(data_dir),
        DATABASE_URL=f"sqlite:///{data_dir / 'journeys.db'}",
        TEMPORAL_ADDRESS=target,
        TEMPORAL_TASK_QUEUE=f"journeys-test-{uuid.uuid4().hex[:8]}",
        API_HOST="127.0.0.1",
        API_PORT=api_port,
        JWT_SECRET=secrets.token_urlsafe(32),
        PAYLOAD_ENCRYPTION_KEYS=f"test-2:{base64.b64encode(os.urandom(32)).decode()},"
        f"test-1:{base64.b64encode(os.urandom(32)).decode()}",
        CODEC_SECRET="codec-test-secret",
        LOG_JSON=True,
    )
    migrate(s.database_url)
    return s


@pytest.fixture(scope="session")
async def client(settings: Settings) -> Client:
    return await connect(settings)


@pytest.fixture(scope="session")
async def deps(settings: Settings) -> AsyncIterator[Deps]:
    from worker import make_deps

    d = make_deps(settings)
    yield d
    await d.http.aclose()
    await d.engine.dispose()


@pytest.fixture(scope="session")
async def worker(client: Client, deps: Deps, settings: Settings) -> AsyncIterator[None]:
    """The session worker on settings.temporal_task_queue (what the API starts journeys on)."""
    async with running_worker(client, deps, settings.temporal_task_queue):
        yield


@pytest.fixture(scope="session")
async def users(settings: Settings) -> dict[Role, str]:
    """One staff user per role; returns role -> username."""
    from cli import _create_user

    names = {}
    for role in Role:
        name = f"{role.value}-{uuid.uuid4().hex[:6]}"
        await _create_user(
            settings.database_url, name, ROLE_PASSWORD.format(role=role.value), role, f"{name}@clinic.test", None, False
        )
        names[role] = name
    return names


@pytest.fixture(scope="session")
async def api_url(settings: Settings, worker: None, users: dict[Role, str]) -> AsyncIterator[str]:
    from api.main import create_app

    async with serve(create_app(settings), settings.api_port) as url:
        yield url


@pytest.fixture(scope="session")
async def tokens(api_url: str, users: dict[Role, str]) -> dict[Role, str]:
    out = {}
    async with httpx.AsyncClient(base_url=api_url) as c:
        for role, name in users.items():
            r = await c.post(
                "/v1/auth/token", data={"username": name, "password": ROLE_PASSWORD.format(role=role.value)}
            )
            r.raise_for_status()
            out[role] = r.json()["access_token"]
    return out


@pytest.fixture(scope="session")
async def api(api_url: str, tokens: dict[Role, str]) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as http:
        yield Api(http, tokens)


@pytest.fixture
async def clinic(api: Api) -> dict:
    """A clinic with a compressed policy (seconds instead of hours) for journey tests."""
    r = await api.as_(Role.admin).post(
        "/v1/clinics",
        json={
            "name": f"Test clinic {uuid.uuid4().hex[:4]}",
            "address": "1 Khreshchatyk St, Kyiv",
            "phone": "+380441234567",
            "timezone": "Europe/Kyiv",
            "review_url": "https://reviews.example/clinic",
            "policy": {"quiet_hours": None},
        },
    )
    assert r.status_code == 201, r.text
    return r.json()
