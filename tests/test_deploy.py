"""docker-compose.yml cannot run here (no Docker engine); this keeps it honest: the services,
healthchecks and start order, and that every setting it passes is one our code reads."""

from __future__ import annotations

import re
import subprocess
import sys
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
            assert re.search(r":v?\d+(\.\d+)+$", svc["image"]), f"{name}: pin the image version"


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
    from cli import app as cli

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

    import cli as cli_module

    src = inspect.getsource(cli_module.migrate_and_register)
    assert "_register_search_attributes" in src and "_ensure_schedules" in src


def test_ui_decodes_payloads_through_our_codec_endpoint() -> None:
    ui = SERVICES["temporal-ui"]["environment"]
    assert ui["TEMPORAL_ADDRESS"] == "temporal:7233"
    # The UI hands its settings (codec endpoint included) to anyone: no secret in it. It sends
    # the ops sign-in cookie instead.
    assert ui["TEMPORAL_CODEC_ENDPOINT"].endswith("/codec") and "SECRET" not in ui["TEMPORAL_CODEC_ENDPOINT"]
    assert ui["TEMPORAL_CODEC_INCLUDE_CREDENTIALS"] == "true"
    assert SERVICES["api"]["environment"]["CORS_ORIGINS"] == ui["TEMPORAL_CORS_ORIGINS"]


def test_only_the_api_listens_on_public_interfaces() -> None:
    for name, svc in SERVICES.items():
        for port in svc.get("ports", []):
            host = str(port).split(":")[0] if str(port).count(":") == 2 else "0.0.0.0"
            if name == "api":
                continue
            assert host == "127.0.0.1", f"{name} publishes {port} on every interface"


def test_dockerfile_builds_from_the_lock_file() -> None:
    text = (PROJECT_ROOT / "Dockerfile").read_text()
    assert "uv.lock" in text and "--frozen" in text
    for pkg in ("core", "contracts", "providers", "models", "workflows", "activities", "api", "migrations"):
        assert f"COPY {pkg} ./{pkg}" in text
    assert 'ENTRYPOINT ["journeys"]' in text and "USER journeys" in text


def test_search_attributes_are_registered_from_one_list() -> None:
    out = subprocess.run(
        [str(PROJECT_ROOT / ".venv/bin/journeys"), "search-attributes"], check=True, capture_output=True, text=True
    ).stdout
    for key in ALL:
        assert f"{key.name}=" in out
    assert "search-attributes" in Path(PROJECT_ROOT / "scripts/run.sh").read_text()


# ------------------------------------------------------------------ metrics, dashboards, bytecode (#14)
def test_compose_scrapes_api_and_worker_with_prometheus() -> None:
    assert {"prometheus", "grafana"} <= set(SERVICES)
    prom = yaml.safe_load((PROJECT_ROOT / "deploy/prometheus/prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in prom["scrape_configs"]}
    assert jobs["api"]["static_configs"][0]["targets"] == ["api:8000"]
    assert jobs["api"]["metrics_path"] == "/metrics"
    # The API's /metrics is guarded by METRICS_TOKEN; Prometheus reads it from the file its
    # container writes at start.
    token_file = jobs["api"]["authorization"]["credentials_file"]
    assert SERVICES["api"]["environment"]["METRICS_TOKEN"].startswith("${METRICS_TOKEN:?")
    p = SERVICES["prometheus"]
    assert token_file in " ".join(p["command"]) and "$$METRICS_TOKEN" in " ".join(p["command"])
    assert p["environment"]["METRICS_TOKEN"] == SERVICES["api"]["environment"]["METRICS_TOKEN"]
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in p["volumes"] if v.startswith("./"))
    assert mounts["./deploy/prometheus/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    assert "/etc/prometheus/prometheus.yml" in " ".join(p["command"])
    # The worker serves its metrics on the port Prometheus scrapes, inside the compose network.
    w = SERVICES["worker"]["environment"]
    assert jobs["worker"]["static_configs"][0]["targets"] == [f"worker:{w['WORKER_METRICS_PORT']}"]
    assert w["WORKER_METRICS_HOST"] == "0.0.0.0"
    assert "ports" not in SERVICES["worker"]
    for name in ("prometheus", "grafana"):
        assert all(port.startswith("127.0.0.1:") for port in SERVICES[name]["ports"]), name
        assert SERVICES[name]["healthcheck"]["test"]
    assert SERVICES["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"].startswith("${GRAFANA_ADMIN_PASSWORD:?")


def test_grafana_dashboard_shows_what_ops_watch() -> None:
    import json

    from prometheus_client import REGISTRY

    import core.metrics as m

    g = SERVICES["grafana"]
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in g["volumes"] if v.startswith("./"))
    provider = yaml.safe_load((PROJECT_ROOT / "deploy/grafana/provisioning/dashboards/journeys.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == mounts["./deploy/grafana/dashboards"]
    ds = yaml.safe_load((PROJECT_ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    assert ds["datasources"][0]["url"] == "http://prometheus:9090"
    dash = json.loads((PROJECT_ROOT / "deploy/grafana/dashboards/patient-journeys.json").read_text())
    panels = [p for p in dash["panels"] if p["type"] != "row"]
    titles = " | ".join(p["title"].lower() for p in panels)
    for must in ("confirmations", "no-shows", "send failures", "task age", "worker", "sticky cache"):
        assert must in titles, must
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"], "gauge": [""]}
    ours = {metric.name + x for metric in REGISTRY.collect() for x in suffixes.get(metric.type, [""])}
    ours |= {f"{m.JOURNEYS_STARTED}_total", f"{m.JOURNEYS_ENDED}_total"}
    ours |= {"journeys_operator_tasks_open", "journeys_operator_task_oldest_age_seconds"}
    for p in panels:
        assert p["datasource"]["uid"] == ds["datasources"][0]["uid"]
        for t in p["targets"]:
            for name in re.findall(r"\b(journeys_[a-z_]+)", t["expr"]):
                assert name in ours, (p["title"], name)
            for name in re.findall(r"\b(temporal_[a-z_]+)", t["expr"]):
                assert name.removesuffix("_bucket") in SDK_METRICS, (p["title"], name)


# Names the Temporal SDK's Prometheus exporter uses (counters _total, durations in seconds).
SDK_METRICS = {
    "temporal_sticky_cache_size",
    "temporal_worker_task_slots_available",
    "temporal_workflow_task_schedule_to_start_latency",
    "temporal_activity_schedule_to_start_latency",
    "temporal_activity_execution_latency",
}


def test_image_carries_byte_compiled_code(tmp_path: Path) -> None:
    text = (PROJECT_ROOT / "Dockerfile").read_text()
    assert not re.search(r"PYTHONDONTWRITEBYTECODE\s*=\s*1", text), "the image must not forbid bytecode"
    assert "UV_COMPILE_BYTECODE=1" in text  # the dependencies
    cmd = re.search(r"python -m compileall (.*? /app)\s", text)
    assert cmd, "the project's code is byte-compiled at build time"
    assert text.index("compileall") < text.index("USER journeys"), "compiled as root: the runtime user cannot write"
    assert all(text.index(f"COPY {p} ") < text.index("compileall") for p in ("core", "workflows", "activities"))
    # The command itself: compiles the code, leaves the (already compiled) venv alone.
    app = tmp_path / "app"
    (app / "workflows").mkdir(parents=True)
    (app / "workflows" / "appointment.py").write_text("X = 1\n")
    (app / ".venv" / "lib").mkdir(parents=True)
    (app / ".venv" / "lib" / "dep.py").write_text("Y = 2\n")
    args = cmd.group(1).split()
    args = [a.strip("'") for a in args]
    assert args[-1] == "/app"
    subprocess.run([sys.executable, "-m", "compileall", *args[:-1], str(app)], check=True)
    assert list((app / "workflows" / "__pycache__").glob("appointment.*.pyc"))
    assert not (app / ".venv" / "lib" / "__pycache__").exists()


def test_dev_and_test_paths_write_bytecode() -> None:
    for script in ("scripts/test.sh", "scripts/run.sh"):
        assert "unset PYTHONDONTWRITEBYTECODE" in (PROJECT_ROOT / script).read_text(), script
    make = (PROJECT_ROOT / "Makefile").read_text()
    bench = make[make.index("\nbench:") :].split("\n\n")[0]
    assert "-u PYTHONDONTWRITEBYTECODE" in bench


def test_workflows_package_imports_no_journey() -> None:
    """The sandbox runs `workflows/__init__.py` again for every workflow instance; importing one
    journey must not import the others (the registry lives in workflows.registry)."""
    code = "import sys, workflows.appointment; print(sorted(m for m in sys.modules if m.startswith('workflows')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    loaded = set(eval(out.stdout))  # noqa: S307 (our own print of a list of strings)
    from workflows import WORKFLOWS
    from workflows.registry import WORKFLOWS as REGISTERED

    assert WORKFLOWS is REGISTERED and len(WORKFLOWS) >= 4
    others = {w.__module__ for w in WORKFLOWS} - {"workflows.appointment"}
    assert others and not (loaded & others), loaded & others
