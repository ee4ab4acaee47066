"""One settings object for every process (API, worker, CLI, tests).

The environment names are a contract with ops scripts and tests; keep them exactly.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    data_dir: Path = Field(default=PROJECT_ROOT / ".data", alias="DATA_DIR")
    database_url: str = Field(default="", alias="DATABASE_URL")

    temporal_address: str = Field(default="127.0.0.1:7233", alias="TEMPORAL_ADDRESS")
    temporal_namespace: str = Field(default="default", alias="TEMPORAL_NAMESPACE")
    temporal_task_queue: str = Field(default="journeys", alias="TEMPORAL_TASK_QUEUE")
    temporal_tls: bool = Field(default=False, alias="TEMPORAL_TLS")
    temporal_api_key: str = Field(default="", alias="TEMPORAL_API_KEY")
    temporal_ui_port: int = Field(default=8233, ge=1, le=65535, alias="TEMPORAL_UI_PORT")
    temporal_ui_url: str = Field(default="", alias="TEMPORAL_UI_URL")  # default: 127.0.0.1 on the UI port

    api_host: str = Field(default="127.0.0.1", alias="API_HOST")
    api_port: int = Field(default=8000, alias="API_PORT")
    # API processes serving API_PORT (uvicorn workers); each has its own DB pool and Temporal client.
    api_workers: int = Field(default=1, ge=1, le=64, alias="API_WORKERS")
    public_base_url: str = Field(default="", alias="PUBLIC_BASE_URL")
    # Comma-separated in the environment (NoDecode: not parsed as JSON first). Unset: the local
    # Temporal UI's origins on TEMPORAL_UI_PORT (its codec calls come from there).
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list, alias="CORS_ORIGINS")

    jwt_secret: str = Field(default="", alias="JWT_SECRET")
    jwt_ttl_seconds: int = Field(default=8 * 3600, alias="JWT_TTL_SECONDS")
    # Login throttle: this many failed logins per username, and per client address, within
    # the window -> 429 with Retry-After until the oldest of them leaves the window.
    login_max_failures: int = Field(default=10, ge=1, le=1000, alias="LOGIN_MAX_FAILURES")
    login_window: timedelta = Field(default=timedelta(minutes=15), alias="LOGIN_WINDOW")
    # key id -> base64 (urlsafe or standard) 128/192/256-bit AES key; the first one encrypts.
    payload_encryption_keys: str = Field(default="", alias="PAYLOAD_ENCRYPTION_KEYS")
    # Lets the Temporal UI call /codec/* without a staff JWT (sent as the X-Codec-Secret header
    # or "Authorization: Bearer <secret>"). Unset: a random one is kept in DATA_DIR/codec-secret.
    codec_secret: str = Field(default="", alias="CODEC_SECRET")
    # Signs the patient's page links (/p/<token>). Unset: a random one is kept in
    # DATA_DIR/link-secret. Changing it invalidates every link already sent.
    link_secret: str = Field(default="", alias="LINK_SECRET")

    log_level: str = Field(default="INFO", alias="LOG_LEVEL")
    log_json: bool = Field(default=True, alias="LOG_JSON")

    # Outbound providers (empty credentials -> built-in sandbox provider).
    whatsapp_api_url: str = Field(default="https://graph.facebook.com/v21.0", alias="WHATSAPP_API_URL")
    whatsapp_phone_number_id: str = Field(default="", alias="WHATSAPP_PHONE_NUMBER_ID")
    whatsapp_access_token: str = Field(default="", alias="WHATSAPP_ACCESS_TOKEN")
    whatsapp_app_secret: str = Field(default="", alias="WHATSAPP_APP_SECRET")
    whatsapp_verify_token: str = Field(default="", alias="WHATSAPP_VERIFY_TOKEN")
    telegram_api_url: str = Field(default="https://api.telegram.org", alias="TELEGRAM_API_URL")
    telegram_bot_token: str = Field(default="", alias="TELEGRAM_BOT_TOKEN")
    telegram_webhook_secret: str = Field(default="", alias="TELEGRAM_WEBHOOK_SECRET")
    twilio_api_url: str = Field(default="https://api.twilio.com", alias="TWILIO_API_URL")
    twilio_account_sid: str = Field(default="", alias="TWILIO_ACCOUNT_SID")
    twilio_auth_token: str = Field(default="", alias="TWILIO_AUTH_TOKEN")
    twilio_from_number: str = Field(default="", alias="TWILIO_FROM_NUMBER")

    # Sends per second per sender, per worker process (providers answer 429 past their limit;
    # providers.pacing spaces sends and honours Retry-After). Cloud API: 80/s per number;
    # Telegram: ~30/s per bot; Twilio: your account's MPS (1 for a single US long code) and CPS.
    whatsapp_send_rate: float = Field(default=80, ge=0, le=1000, alias="WHATSAPP_SEND_RATE")
    telegram_send_rate: float = Field(default=30, ge=0, le=1000, alias="TELEGRAM_SEND_RATE")
    twilio_send_rate: float = Field(default=10, ge=0, le=1000, alias="TWILIO_SEND_RATE")
    twilio_call_rate: float = Field(default=1, ge=0, le=100, alias="TWILIO_CALL_RATE")

    smtp_host: str = Field(default="", alias="SMTP_HOST")
    smtp_port: int = Field(default=25, alias="SMTP_PORT")
    smtp_from: str = Field(default="journeys@localhost", alias="SMTP_FROM")
    smtp_username: str = Field(default="", alias="SMTP_USERNAME")
    smtp_password: str = Field(default="", alias="SMTP_PASSWORD")
    smtp_starttls: bool = Field(default=False, alias="SMTP_STARTTLS")

    network_timezone: str = Field(default="Europe/Kyiv", alias="NETWORK_TIMEZONE")
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, alias="MAX_UPLOAD_BYTES")
    # The clinics' MIS drop folders: IMPORT_DIR/<clinic code>/ (default DATA_DIR/imports).
    import_dir: Path | None = Field(default=None, alias="IMPORT_DIR")

    # Supplier invoices (SPEC §5): a step waiting this long reminds its owner, then escalates
    # to the director. ISO-8601 (`P2D`, `PT4H`) or seconds.
    invoice_remind_after: timedelta = Field(default=timedelta(days=2), alias="INVOICE_REMIND_AFTER")
    invoice_escalate_after: timedelta = Field(default=timedelta(days=5), alias="INVOICE_ESCALATE_AFTER")

    # Metrics and traces (issue 14). The API serves GET /metrics on its own port; METRICS_TOKEN,
    # when set, must come as `Authorization: Bearer <token>`. The worker serves its metrics
    # (ours + the Temporal SDK's) on WORKER_METRICS_HOST:WORKER_METRICS_PORT (0 = off).
    metrics_token: str = Field(default="", alias="METRICS_TOKEN")
    worker_metrics_host: str = Field(default="127.0.0.1", alias="WORKER_METRICS_HOST")
    worker_metrics_port: int = Field(default=9464, ge=0, le=65535, alias="WORKER_METRICS_PORT")
    # Journeys kept in the worker's memory between tasks (sticky cache). Size it to the journeys
    # in flight at once (each costs ~0.25 MB of RSS): a journey evicted is rebuilt from history.
    worker_max_cached_workflows: int = Field(default=2000, ge=0, le=100_000, alias="WORKER_MAX_CACHED_WORKFLOWS")
    # Run the journeys inside Temporal's Python workflow sandbox (core.temporal.workflow_runner).
    # Off by default: a journey built in the sandbox costs twice the CPU to rebuild from its
    # history and more memory to keep; determinism is checked before the code runs instead
    # (tests/test_layering.py, the replay tests under both runners). On while writing workflow
    # code, to have a forbidden call fail at once.
    workflow_sandbox: bool = Field(default=False, alias="WORKFLOW_SANDBOX")
    # Which queues this worker process serves: `all` (the journeys' queue and the MIS imports'
    # queue beside it), or only `journeys` / only `imports` (run one process of each so a big
    # import gets its own CPU instead of sharing one with the journeys it starts).
    worker_queues: Literal["all", "journeys", "imports"] = Field(default="all", alias="WORKER_QUEUES")
    # Activities, and the journeys' own DB steps (local activities: context load, row sync), one
    # worker runs at once: the SDK's defaults. Most of a send's time is waiting (the provider,
    # the database), so a burst of asks due together drains faster with more in flight; on
    # SQLite the writers among them take turns on the process's write gate (core.sqlite_gate)
    # rather than sleeping in SQLite's busy handler, which is what kept these at 8 before.
    worker_max_concurrent_activities: int = Field(default=100, ge=1, le=1000, alias="WORKER_MAX_CONCURRENT_ACTIVITIES")
    worker_max_concurrent_local_activities: int = Field(
        default=100, ge=1, le=1000, alias="WORKER_MAX_CONCURRENT_LOCAL_ACTIVITIES"
    )
    # The worker's garbage collector (core/gc_policy.py): start-up objects frozen and a young
    # collection every this many net allocations (Python's default is 700); 0 = Python's defaults.
    worker_gc_threshold: int = Field(default=10_000, ge=0, le=1_000_000, alias="WORKER_GC_THRESHOLD")
    # OpenTelemetry tracing: off unless the standard endpoint variable is set (OTLP over HTTP,
    # e.g. http://otel-collector:4318; spans go to <endpoint>/v1/traces).
    otel_exporter_otlp_endpoint: str = Field(default="", alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    otel_service_name: str = Field(default="", alias="OTEL_SERVICE_NAME")
    # /health: a worker counts as alive while a poller of our task queue was seen this recently.
    # Needs the server's long polls shorter than this (core.temporal.DEV_SERVER_ARGS, and
    # deploy/temporal/dynamicconfig.yaml for the compose stack: 10 s).
    health_poller_window: float = Field(default=20.0, gt=0, le=600, alias="HEALTH_POLLER_WINDOW")

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, v: object) -> object:
        if isinstance(v, str) and not v.strip().startswith("["):
            return [o.strip() for o in v.split(",") if o.strip()]
        return v

    @field_validator("invoice_remind_after", "invoice_escalate_after", "login_window", mode="before")
    @classmethod
    def _seconds(cls, v: object) -> object:
        # Env values arrive as strings: "90" or "1.5" mean seconds, anything else is ISO-8601.
        if isinstance(v, str):
            try:
                return timedelta(seconds=float(v))
            except ValueError:
                return v
        return v

    @field_validator("temporal_address")
    @classmethod
    def _check_address(cls, v: str) -> str:
        if ":" not in v:
            raise ValueError("TEMPORAL_ADDRESS must be host:port, e.g. 127.0.0.1:7233")
        return v

    @model_validator(mode="after")
    def _defaults_from_data_dir(self) -> Settings:
        self.data_dir = Path(self.data_dir).resolve()
        self.import_dir = Path(self.import_dir).resolve() if self.import_dir else self.data_dir / "imports"
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'journeys.db'}"
        if not self.cors_origins:
            self.cors_origins = [
                f"http://127.0.0.1:{self.temporal_ui_port}",
                f"http://localhost:{self.temporal_ui_port}",
            ]
        if not self.temporal_ui_url:
            self.temporal_ui_url = f"http://127.0.0.1:{self.temporal_ui_port}"
        if not self.public_base_url:
            self.public_base_url = f"http://{self.api_host}:{self.api_port}"
        if not self.jwt_secret:
            self.jwt_secret = _local_secret(self.data_dir, "jwt-secret", lambda: secrets.token_urlsafe(48))
        if not self.payload_encryption_keys:
            self.payload_encryption_keys = _local_secret(
                self.data_dir,
                "payload-keys.json",
                lambda: json.dumps({"local-1": base64.b64encode(secrets.token_bytes(32)).decode()}),
            )
        if not self.codec_secret:
            self.codec_secret = _local_secret(self.data_dir, "codec-secret", lambda: secrets.token_urlsafe(32))
        if not self.link_secret:
            self.link_secret = _local_secret(self.data_dir, "link-secret", lambda: secrets.token_urlsafe(32))
        # Parse eagerly so a malformed value fails at start-up, not at the first payload.
        self.encryption_keys()
        return self

    def encryption_keys(self) -> list[tuple[str, bytes]]:
        """Ordered (key id, key bytes); the first encrypts, all decrypt."""
        raw = self.payload_encryption_keys.strip()
        pairs: list[tuple[str, str]]
        if raw.startswith("{"):
            pairs = list(json.loads(raw).items())
        else:
            pairs = []
            for part in raw.split(","):
                if not part.strip():
                    continue
                kid, sep, val = part.partition(":")
                if not sep:
                    raise ValueError("PAYLOAD_ENCRYPTION_KEYS entries look like key_id:base64key")
                pairs.append((kid.strip(), val.strip()))
        if not pairs:
            raise ValueError("PAYLOAD_ENCRYPTION_KEYS holds no key")
        out = []
        for kid, val in pairs:
            key = _b64(val)
            if len(key) not in (16, 24, 32):
                raise ValueError(f"PAYLOAD_ENCRYPTION_KEYS[{kid}] must decode to 16, 24 or 32 bytes")
            out.append((kid, key))
        return out

    @property
    def sandbox_providers(self) -> bool:
        """No provider credentials at all -> messages go to the built-in sandbox."""
        return not (self.whatsapp_access_token or self.telegram_bot_token or self.twilio_auth_token)


def _b64(val: str) -> bytes:
    padded = val + "=" * (-len(val) % 4)
    try:
        return base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_"))
    except Exception as e:  # noqa: BLE001
        raise ValueError("encryption key is not valid base64") from e


def _local_secret(data_dir: Path, name: str, make) -> str:  # type: ignore[no-untyped-def]
    """A secret generated once per local data folder, so a dev run needs no configuration
    and survives restarts. Production sets the environment variable instead."""
    path = data_dir / name
    if path.exists():
        if path.stat().st_mode & 0o077:  # left readable by an older version: owner only
            path.chmod(0o600)
        return path.read_text().strip()
    value = make()
    write_private(path, value)
    return value


def write_private(path: Path, text: str) -> None:
    """Create `path` readable by its owner only (0600, in a 0700 folder if it makes one) and
    write `text`; never a moment where others could read it."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


@lru_cache
def get_settings() -> Settings:
    return Settings()
