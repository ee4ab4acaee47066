"""Property-based requests against the live API's own OpenAPI schema (schemathesis): no
request a client can make may end in a 5xx. A small example count keeps it inside `make
test`; the seed is fixed so a failure reproduces (`SCHEMATHESIS_SEED` overrides it).

The run gets a stack of its own (database, task queue, worker, API, admin) on the session's
Temporal server. On the shared stack it could reach journeys other tests left on their own task
queues, whose workers are gone; the API then rightly answers 503 "worker may be down", which
schemathesis counts as a server error although no request was at fault."""

from __future__ import annotations

import asyncio
import os
import secrets
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from core.db import migrate
from core.settings import Settings
from models.core import Role
from tests.support.live import free_port, running_worker, serve

EXAMPLES = os.environ.get("SCHEMATHESIS_EXAMPLES", "8")
SEED = os.environ.get("SCHEMATHESIS_SEED", "16")


@pytest.fixture
async def own_api(settings: Settings, client: Client, tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """(url, admin token) of an API with its own database, task queue and worker."""
    from api.main import create_app
    from cli import _create_user
    from worker import make_deps

    data = tmp_path / "data"
    data.mkdir()
    own = Settings(
        **{
            **settings.model_dump(by_alias=True),
            "DATA_DIR": str(data),
            "DATABASE_URL": f"sqlite:///{data / 'journeys.db'}",
            "TEMPORAL_TASK_QUEUE": f"schemathesis-{uuid.uuid4().hex[:8]}",
            "API_PORT": free_port(),
        }
    )
    migrate(own.database_url)
    password = secrets.token_urlsafe(12)
    await _create_user(own.database_url, "st-admin", password, Role.admin, "st-admin@clinic.test", None, False)
    deps = make_deps(own)
    try:
        async with running_worker(client, deps, own.temporal_task_queue), serve(create_app(own), own.api_port) as url:
            async with httpx.AsyncClient(base_url=url) as c:
                r = await c.post("/v1/auth/token", data={"username": "st-admin", "password": password})
                r.raise_for_status()
            yield url, r.json()["access_token"]
    finally:
        await deps.http.aclose()
        await deps.engine.dispose()


async def test_no_request_ends_in_a_server_error(own_api: tuple[str, str], tmp_path: Path) -> None:
    api_url, token = own_api
    st = Path(sys.executable).with_name("schemathesis")
    # A live API inside this event loop: run the CLI without blocking it.
    proc = await asyncio.create_subprocess_exec(
        str(st),
        "run",
        f"{api_url}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        EXAMPLES,
        "--seed",
        SEED,
        "--phases",
        "examples,coverage,fuzzing",
        "--generation-database",
        "none",
        "--workers",
        "2",
        "--request-timeout",
        "60",
        "--no-color",
        "-H",
        f"Authorization: Bearer {token}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
    )
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    (tmp_path / "schemathesis.log").write_text(text)
    assert proc.returncode == 0, text[-20000:]
