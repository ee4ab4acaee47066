"""The README's first command, for real: `scripts/run.sh` (what `make run` calls) starts the
Temporal dev server with its Web UI, the worker and the API; /health answers 200; the UI is
configured with our codec endpoint and decodes payloads through it from the UI's origin; a
second start reuses the state; Ctrl-C stops everything."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx

from core.codec import data_converter
from core.settings import PROJECT_ROOT, Settings
from tests.support.live import free_port


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(PROJECT_ROOT / "scripts" / "run.sh")],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _wait_healthy(api: str, proc: subprocess.Popen[bytes], log: Path, seconds: float = 120) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                return time.monotonic() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("not healthy in time:\n" + log.read_text()[-3000:])


def _stop(proc: subprocess.Popen[bytes]) -> int:
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal
    return proc.wait(timeout=60)


def test_make_run_serves_api_ui_and_codec(tmp_path: Path) -> None:
    grpc, ui_port, api_port = free_port(), free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TEST_", "DATABASE_URL"))},
        "DATA_DIR": str(tmp_path / "data"),
        "TEMPORAL_ADDRESS": f"127.0.0.1:{grpc}",
        "TEMPORAL_UI_PORT": str(ui_port),
        "API_PORT": str(api_port),
        "API_HOST": "127.0.0.1",
        # No CORS_ORIGINS: the default follows TEMPORAL_UI_PORT, so the UI's codec calls work.
    }
    log = tmp_path / "run.log"
    api, ui = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{ui_port}"
    proc = _start(env, log)
    try:
        _wait_healthy(api, proc, log)
        assert httpx.get(f"{api}/docs").status_code == 200
        # run.sh prints the URLs once its own port check sees the API, which can be a
        # moment after /health answers us: wait for the banner, don't race it.
        deadline = time.monotonic() + 60
        while f"{api}/docs" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.3)
        out = log.read_text()
        for url in (f"{api}/docs", ui):
            assert url in out, "the URLs are printed"
        assert httpx.get(ui, timeout=10).status_code == 200

        # The UI is configured with our codec endpoint, and that endpoint decodes from the UI.
        # The UI hands its settings to anyone: they carry no secret, and the endpoint alone
        # decodes nothing; an ops sign-in (the browser's cookie) does.
        ui_settings = httpx.get(f"{ui}/api/v1/settings", timeout=10).text
        codec = json.loads(ui_settings)["Codec"]["Endpoint"]
        assert codec == f"{api}/codec"
        settings = Settings(DATA_DIR=env["DATA_DIR"])  # the keys `make run` generated
        assert settings.codec_secret not in ui_settings and "/codec/k/" not in ui_settings
        import asyncio

        [p] = asyncio.run(data_converter(settings.encryption_keys()).encode([{"full_name": "Olena"}]))
        body = {
            "payloads": [
                {
                    "metadata": {k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
                    "data": base64.b64encode(p.data).decode(),
                }
            ]
        }
        ui_call = {"Origin": ui, "X-Namespace": "default"}
        assert httpx.post(f"{codec}/decode", json=body, headers=ui_call).status_code == 401
        admin_password = (Path(env["DATA_DIR"]) / "admin-password").read_text().strip()
        login = httpx.post(f"{codec}/login", data={"username": "admin", "password": admin_password})
        assert login.status_code == 200
        r = httpx.post(f"{codec}/decode", json=body, headers=ui_call, cookies=login.cookies)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == ui
        assert r.headers["access-control-allow-credentials"] == "true"
        assert json.loads(base64.b64decode(r.json()["payloads"][0]["data"])) == {"full_name": "Olena"}
        # Patient data and secrets on disk are the owner's only.
        data = Path(env["DATA_DIR"])
        for f in ("journeys.db", "jwt-secret", "payload-keys.json", "codec-secret", "admin-password"):
            assert (data / f).stat().st_mode & 0o077 == 0, f"{f} is readable by others"
        assert data.stat().st_mode & 0o077 == 0
        assert (
            httpx.post(f"{api}/v1/auth/token", data={"username": "admin", "password": admin_password}).status_code
            == 200
        )
        assert _stop(proc) == 0
        assert (Path(env["DATA_DIR"]) / "temporal.db").exists()

        # A second start reuses what is installed and the state kept in the data folder.
        proc = _start(env, log)
        _wait_healthy(api, proc, log)
        assert (
            httpx.post(f"{api}/v1/auth/token", data={"username": "admin", "password": admin_password}).status_code
            == 200
        )
    finally:
        if proc.poll() is None:
            _stop(proc)
    import socket

    time.sleep(1)
    for port, what in ((grpc, "Temporal"), (api_port, "the API")):
        with socket.socket() as s, contextlib.suppress(OSError):
            s.settimeout(1)
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"Ctrl-C left {what} running"
