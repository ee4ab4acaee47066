"""docker-compose.yml cannot run here (no Docker engine); this keeps it honest: the services,
healthchecks and start order, and that every setting it passes is one our code reads."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from core.search_attributes import ALL
from core.settings import PROJECT_ROOT, Settings

COMPOSE = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_stack_has_the_production_services() -> None:
    assert {"postgresql", "temporal", "temporal-ui", "migrate", "api", "worker"} <= set(SERVICES)
    for name, svc in SERVICES.items():
        if "image" in svc and "build" not in svc:
            assert re.search(r":\d+(\.\d+)+$", svc["image"]), f"{name}: pin the image version"


def test_healthchecks_and_start_order() -> None:
    for name in ("postgresql", "temporal", "temporal-ui", "api", "worker"):
        assert SERVICES[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    dep = lambda s: SERVICES[s]["depends_on"]  # noqa: E731
    assert dep("temporal")["postgresql"]["condition"] == "service_healthy"
    assert dep("migrate")["postgresql"]["condition"] == "service_healthy"
    assert dep("migrate")["temporal"]["condition"] == "service_healthy"
    assert dep("api")["migrate"]["condition"] == "service_completed_successfully"
    assert dep("worker")["migrate"]["condition"] == "service_completed_successfully"
    assert SERVICES["temporal"]["environment"]["DB"].startswith("postgres")
    assert SERVICES["temporal"]["environment"]["POSTGRES_SEEDS"] == "postgresql"


def test_app_services_use_our_settings_and_cli() -> None:
    aliases = {f.alias for f in Settings.model_fields.values()}
    from core.cli import app as cli

    commands = {c.name or c.callback.__name__ for c in cli.registered_commands}
    for name in ("api", "worker", "migrate"):
        svc = SERVICES[name]
        assert svc["build"] == "."
        assert svc["command"][0] in commands, f"{name}: unknown command {svc['command']}"
        env = svc["environment"]
        assert set(env) <= aliases, f"{name}: settings our code never reads: {set(env) - aliases}"
        assert env["DATABASE_URL"].startswith("postgresql://")
        assert env["TEMPORAL_ADDRESS"] == "temporal:7233"
        assert "PAYLOAD_ENCRYPTION_KEYS" in env and "JWT_SECRET" in env
    assert SERVICES["api"]["environment"]["API_HOST"] == "0.0.0.0"
    assert "8000:8000" in SERVICES["api"]["ports"]
    assert SERVICES["worker"]["healthcheck"]["test"][1:] == ["journeys", "health"]
    assert "health" in commands and "migrate-and-register" in commands
    assert SERVICES["migrate"]["command"] == ["migrate-and-register"]
    import inspect

    from core import cli as cli_module

    src = inspect.getsource(cli_module.migrate_and_register)
    assert "_register_search_attributes" in src and "_ensure_schedules" in src


def test_ui_decodes_payloads_through_our_codec_endpoint() -> None:
    ui = SERVICES["temporal-ui"]["environment"]
    assert ui["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert "/codec/k/${CODEC_SECRET" in ui["TEMPORAL_CODEC_ENDPOINT"]
    assert SERVICES["api"]["environment"]["CORS_ORIGINS"] == ui["TEMPORAL_CORS_ORIGINS"]


def test_dockerfile_builds_from_the_lock_file() -> None:
    text = (PROJECT_ROOT / "Dockerfile").read_text()
    assert "uv.lock" in text and "--frozen" in text
    for pkg in ("core", "contracts", "models", "workflows", "activities", "api", "migrations"):
        assert f"COPY {pkg} ./{pkg}" in text
    assert 'ENTRYPOINT ["journeys"]' in text and "USER journeys" in text


def test_search_attributes_are_registered_from_one_list() -> None:
    out = subprocess.run(
        [str(PROJECT_ROOT / ".venv/bin/journeys"), "search-attributes"], check=True, capture_output=True, text=True
    ).stdout
    for key in ALL:
        assert f"{key.name}=" in out
    assert "search-attributes" in Path(PROJECT_ROOT / "scripts/run.sh").read_text()
