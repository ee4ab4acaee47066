"""Settings from the environment, as ops set them."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.settings import Settings


def test_environment_names_and_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k in list(os.environ):
        if k.startswith(("DATABASE_URL", "TEMPORAL_", "API_", "CORS_")):
            monkeypatch.delenv(k)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CORS_ORIGINS", "http://ui.example:8080, http://localhost:8233")
    monkeypatch.setenv("API_PORT", "9000")
    s = Settings()
    assert s.database_url == f"sqlite:///{tmp_path / 'journeys.db'}"
    assert s.temporal_address == "127.0.0.1:7233"
    assert s.temporal_namespace == "default" and s.temporal_task_queue == "journeys"
    assert s.cors_origins == ["http://ui.example:8080", "http://localhost:8233"]
    assert s.api_port == 9000 and s.public_base_url == "http://127.0.0.1:9000"
    # Local secrets are generated once into the data folder and reused.
    assert (tmp_path / "jwt-secret").exists() and Settings().jwt_secret == s.jwt_secret
    assert Settings().encryption_keys() == s.encryption_keys()


def test_encryption_keys_forms_and_errors(tmp_path: Path) -> None:
    k1, k2 = base64.b64encode(os.urandom(32)).decode(), base64.b64encode(os.urandom(16)).decode()
    s = Settings(DATA_DIR=str(tmp_path), PAYLOAD_ENCRYPTION_KEYS=f"new:{k1},old:{k2}")
    assert [kid for kid, _ in s.encryption_keys()] == ["new", "old"]
    s = Settings(DATA_DIR=str(tmp_path), PAYLOAD_ENCRYPTION_KEYS=f'{{"a": "{k2}"}}')
    assert s.encryption_keys()[0][0] == "a"
    with pytest.raises(ValidationError, match="16, 24 or 32 bytes"):
        Settings(DATA_DIR=str(tmp_path), PAYLOAD_ENCRYPTION_KEYS="x:" + base64.b64encode(b"short").decode())
    with pytest.raises(ValidationError, match="key_id:base64key"):
        Settings(DATA_DIR=str(tmp_path), PAYLOAD_ENCRYPTION_KEYS=k1)
    with pytest.raises(ValidationError, match="host:port"):
        Settings(DATA_DIR=str(tmp_path), TEMPORAL_ADDRESS="localhost")


def test_api_workers_run_several_processes_on_one_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """API_WORKERS > 1: uvicorn gets the app factory by import path (each process builds its
    own app from the environment); 1: the app object itself."""
    import uvicorn

    import api.main as api_main
    from core import settings as settings_module

    calls: list[tuple[tuple, dict]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append((a, kw)))
    monkeypatch.setattr(api_main, "configure_logging", lambda *a, **kw: None)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    for workers in ("3", "1"):
        monkeypatch.setenv("API_WORKERS", workers)
        settings_module.get_settings.cache_clear()
        api_main.main()
    settings_module.get_settings.cache_clear()
    (a3, kw3), (a1, kw1) = calls
    assert a3 == ("api.main:app_from_env",) and kw3["factory"] is True and kw3["workers"] == 3
    assert not isinstance(a1[0], str) and "workers" not in kw1
    with pytest.raises(ValidationError):
        Settings(DATA_DIR=tmp_path, API_WORKERS=0)


def test_cors_defaults_follow_the_ui_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k in list(os.environ):
        if k.startswith(("TEMPORAL_", "CORS_")):
            monkeypatch.delenv(k)
    s = Settings(DATA_DIR=str(tmp_path))
    assert s.cors_origins == ["http://127.0.0.1:8233", "http://localhost:8233"]
    monkeypatch.setenv("TEMPORAL_UI_PORT", "18233")
    s = Settings(DATA_DIR=str(tmp_path))
    assert s.cors_origins == ["http://127.0.0.1:18233", "http://localhost:18233"]
    assert s.temporal_ui_url == "http://127.0.0.1:18233"
    monkeypatch.setenv("CORS_ORIGINS", "https://ui.clinic.example")
    assert Settings(DATA_DIR=str(tmp_path)).cors_origins == ["https://ui.clinic.example"]


def test_patient_data_and_secrets_are_the_owners_only(tmp_path: Path) -> None:
    from core.db import migrate

    data = tmp_path / "data"
    s = Settings(DATA_DIR=str(data))
    migrate(s.database_url)
    for name in ("journeys.db", "jwt-secret", "payload-keys.json", "codec-secret"):
        mode = (data / name).stat().st_mode & 0o777
        assert mode == 0o600, f"{name} is {oct(mode)}"
    assert data.stat().st_mode & 0o077 == 0
    # A database file an older version left readable is tightened on the next start.
    (data / "journeys.db").chmod(0o644)
    migrate(s.database_url)
    assert (data / "journeys.db").stat().st_mode & 0o777 == 0o600
