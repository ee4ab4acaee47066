"""structlog JSON logs with a redaction step.

Patient data must never reach a log line: values under personal keys are masked, and any
phone number or e-mail address left in free text is masked too. Request ids (API) and
workflow/activity ids (worker) are bound through contextvars on every line.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

REDACTED = "[redacted]"
SENSITIVE_KEYS = frozenset(
    {
        "full_name",
        "name",
        "patient_name",
        "guardian_name",
        "first_name",
        "last_name",
        "phone",
        "phone_number",
        "to",
        "from",
        "from_",
        "wa_id",
        "email",
        "address",
        "text",
        "body",
        "message",
        "comment",
        "birth_date",
        "password",
        "token",
        "access_token",
        "authorization",
        "telegram_chat_id",
        "chat_id",
        "contact",
        # free text may hold anything a person typed
        "note",
        "notes",
        "description",
        "reason",
        "outcome",
        "title",
        "caption",
        "reply",
    }
)
# Convention: the event (first argument) is a constant sentence; data goes in keys, where the
# keys above are masked and every remaining string is scrubbed of phone numbers and e-mails.
# Candidates that may be phone numbers: +380 67 123 45 67, 89161234567, (067) 123-45-67 ...
_PHONE_CANDIDATE = re.compile(r"(?<![\w.:/-])\+?\(?\d[\d\s().-]{6,}\d(?![\w])")
# ...that are not addresses, dates or times (127.0.0.1, 2026-11-23 23:04:09).
_NOT_PHONE = re.compile(r"^(\d{1,3}\.){3}\d{1,3}|^\d{4}-\d{2}-\d{2}|^\d{1,2}:\d{2}")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")


def _phone_sub(m: re.Match[str]) -> str:
    s = m.group(0)
    digits = sum(c.isdigit() for c in s)
    if 9 <= digits <= 15 and not _NOT_PHONE.match(s):
        return REDACTED
    return s


def redact_text(s: str) -> str:
    return _EMAIL.sub(REDACTED, _PHONE_CANDIDATE.sub(_phone_sub, s))


def _redact(value: Any, key: str | None = None) -> Any:
    if key is not None and key.lower() in SENSITIVE_KEYS and value not in (None, ""):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def redact_processor(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in event_dict.items():
        out[k] = v if k in ("timestamp", "level", "logger") else _redact(v, None if k == "event" else k)
    return out


class _RedactingFilter(logging.Filter):
    """Also scrub records from stdlib loggers (uvicorn, temporalio, sqlalchemy)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            try:
                record.msg = redact_text(record.getMessage())
                record.args = None
            except Exception:  # noqa: BLE001 - a bad format string must not kill logging
                pass
        return True


def temporal_context(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """Inside an activity, every line carries its workflow and activity ids."""
    from temporalio import activity

    if activity.in_activity():
        info = activity.info()
        event_dict.setdefault("workflow_id", info.workflow_id)
        event_dict.setdefault("workflow_run_id", info.workflow_run_id)
        event_dict.setdefault("activity_id", info.activity_id)
        event_dict.setdefault("activity_type", info.activity_type)
        event_dict.setdefault("attempt", info.attempt)
    return event_dict


def configure_logging(level: str = "INFO", json_output: bool = True) -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),  # workflow.logger puts workflow ids in `extra`
        temporal_context,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_processor,
    ]
    renderer: Any = structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(_RedactingFilter())
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processor=renderer))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "aiosqlite", "sqlalchemy.engine"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
