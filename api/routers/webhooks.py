"""Provider webhooks, in the providers' own formats.

Every POST checks the provider's signature on the RAW body before parsing anything
(missing -> 401, wrong -> 403; an unconfigured secret rejects everything). Then each message
goes through conversations.inbound.route_inbound (dedup, opt-out, routing, signal) and we answer at
once: 2xx means "handled, stop retrying"; 503 means "try again later" (Temporal or the
database was unreachable - the dedup row lets the retry finish the job).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape, quoteattr

import httpx
from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlmodel import select

from conversations.inbound import Inbound, Routed, record_status, route_inbound
from core import metrics
from core.logging import get_logger
from core.security import same_secret
from core.settings import Settings
from models.core import Channel, MessageLog, normalize_phone, utcnow
from providers.telegram import TelegramClient
from providers.twilio import twilio_signature

log = get_logger("api.webhooks")
router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

VOICE_LANGUAGE = "uk-UA"
VOICE_LANGUAGES = {"uk": "uk-UA", "ru": "ru-RU", "en": "en-GB"}
TWIML = "text/xml"
# Twilio call outcomes that mean "the patient did not answer the robot".
CALL_NOT_ANSWERED = ("busy", "no-answer", "failed", "canceled")


def _refused(provider: str, status: int, detail: str) -> HTTPException:
    """A webhook without a valid signature / secret: counted, then refused."""
    metrics.webhook_signature_failed(provider)
    return HTTPException(status, detail)


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _unavailable(e: Exception) -> JSONResponse:
    log.warning("webhook not processed; provider will retry", error=type(e).__name__)
    return JSONResponse(status_code=503, content={"detail": "temporarily unavailable"})


async def _route(request: Request, msg: Inbound) -> Routed:
    return await route_inbound(request.app.state.sessions, request.app.state.temporal, msg)


def _http(request: Request) -> httpx.AsyncClient:
    """The API's one outbound client (answerCallbackQuery), made on first use."""
    app = request.app
    if getattr(app.state, "http", None) is None:
        app.state.http = httpx.AsyncClient(timeout=httpx.Timeout(5.0, connect=3.0))

        async def _close(a: Any) -> None:
            await a.state.http.aclose()
            a.state.http = None

        app.state.shutdown_hooks.append(_close)
    return app.state.http


def _timestamp(raw: Any) -> datetime:
    """A provider's epoch seconds; anything unusable (\"abc\", 1e400, year 10000) is the time we
    got it. A field that can never parse must not fail the delivery: the provider would retry
    it forever."""
    try:
        return datetime.fromtimestamp(int(raw), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return utcnow()


def _phone(raw: str | None) -> str | None:
    if not raw:
        return None
    raw = raw.removeprefix("whatsapp:")
    try:
        return normalize_phone(raw if raw.startswith("+") else f"+{raw}")
    except ValueError:
        return None


# ============================================================== WhatsApp (Meta Cloud API)
@router.get("/whatsapp", response_class=PlainTextResponse)
async def whatsapp_verify(
    request: Request,
    mode: str = Query("", alias="hub.mode"),
    token: str = Query("", alias="hub.verify_token"),
    challenge: str = Query("", alias="hub.challenge"),
) -> str:
    expected = _settings(request).whatsapp_verify_token
    if mode != "subscribe" or not same_secret(token, expected):
        raise HTTPException(403, "verification failed")
    return challenge


def _check_whatsapp(settings: Settings, raw: bytes, header: str | None) -> None:
    if not header:
        raise _refused("whatsapp", 401, "missing X-Hub-Signature-256")
    secret = settings.whatsapp_app_secret
    expected = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    if not secret or not same_secret(header, expected):
        raise _refused("whatsapp", 403, "bad X-Hub-Signature-256")


def _whatsapp_message(m: dict[str, Any]) -> Inbound:
    kind, text, button = "text", None, None
    mtype = m.get("type")
    if mtype == "text":
        text = (m.get("text") or {}).get("body")
    elif mtype == "interactive":
        inter = m.get("interactive") or {}
        reply = inter.get("button_reply") or inter.get("list_reply") or {}
        kind, button, text = "button", reply.get("id"), reply.get("title")
    elif mtype == "button":  # a quick-reply button of a template message
        b = m.get("button") or {}
        kind, button, text = "button", b.get("payload"), b.get("text")
    ts = m.get("timestamp")
    return Inbound(
        channel=Channel.whatsapp,
        source="whatsapp",
        dedup_key=f"in:whatsapp:{m['id']}",
        kind=kind if button else "text",
        phone=_phone(m.get("from")),
        text=text,
        button_id=button,
        provider_message_id=m["id"],
        reply_to=(m.get("context") or {}).get("id"),  # the patient quoted one of our messages
        received_at=_timestamp(ts) if ts else utcnow(),
        extra={"type": mtype} if mtype not in ("text", "interactive", "button") else {},
    )


@router.post("/whatsapp")
async def whatsapp_webhook(request: Request) -> Response:
    raw = await request.body()
    _check_whatsapp(_settings(request), raw, request.headers.get("x-hub-signature-256"))
    try:
        data = json.loads(raw)
    except ValueError:
        raise HTTPException(400, "body is not JSON") from None
    results: list[str] = []
    try:
        for entry in data.get("entry") or []:
            for change in entry.get("changes") or []:
                value = change.get("value") or {}
                for st in value.get("statuses") or []:
                    errors = st.get("errors") or []
                    await record_status(
                        request.app.state.sessions,
                        st["id"],
                        st.get("status", ""),
                        json.dumps(errors)[:1000] if errors else None,
                        request.app.state.temporal,
                    )
                    results.append(f"status:{st.get('status')}")
                for m in value.get("messages") or []:
                    results.append((await _route(request, _whatsapp_message(m))).outcome)
    except (KeyError, TypeError, AttributeError):
        raise HTTPException(400, "not a WhatsApp Cloud API notification") from None
    except Exception as e:  # noqa: BLE001 - DB/Temporal trouble: ask Meta to retry
        return _unavailable(e)
    return JSONResponse({"ok": True, "results": results})


# ============================================================== Telegram Bot API
@router.post("/telegram")
async def telegram_webhook(request: Request) -> Response:
    settings = _settings(request)
    header = request.headers.get("x-telegram-bot-api-secret-token")
    if not header:
        raise _refused("telegram", 401, "missing X-Telegram-Bot-Api-Secret-Token")
    secret = settings.telegram_webhook_secret
    if not same_secret(header, secret):
        raise _refused("telegram", 403, "bad X-Telegram-Bot-Api-Secret-Token")
    try:
        update = json.loads(await request.body())
        update_id = int(update["update_id"])
    except (ValueError, KeyError, TypeError, OverflowError):
        raise HTTPException(400, "not a Telegram update") from None
    key = f"in:telegram:{update_id}"
    msg: Inbound | None = None
    callback_id: str | None = None
    try:
        if cq := update.get("callback_query"):
            callback_id = str(cq["id"])
            chat = ((cq.get("message") or {}).get("chat") or {}).get("id") or cq["from"]["id"]
            msg = Inbound(
                channel=Channel.telegram,
                source="telegram",
                dedup_key=key,
                kind="button",
                telegram_chat_id=str(chat),
                button_id=cq.get("data"),
                provider_message_id=str(update_id),
            )
        elif m := (update.get("message") or update.get("edited_message")):
            msg = Inbound(
                channel=Channel.telegram,
                source="telegram",
                dedup_key=key,
                kind="text",
                telegram_chat_id=str(m["chat"]["id"]),
                text=m.get("text"),
                provider_message_id=str(update_id),
                reply_to=str(r["message_id"]) if (r := m.get("reply_to_message")) else None,
                received_at=_timestamp(m.get("date")) if m.get("date") else utcnow(),
            )
    except (KeyError, TypeError):
        raise HTTPException(400, "not a Telegram update") from None
    outcome = "ignored"
    try:
        if msg is not None:
            outcome = (await _route(request, msg)).outcome
    except Exception as e:  # noqa: BLE001
        return _unavailable(e)
    finally:
        if callback_id:  # always answer: the patient's button stops spinning
            await _answer_callback(request, settings, callback_id)
    return JSONResponse({"ok": True, "result": outcome})


async def _answer_callback(request: Request, settings: Settings, callback_id: str) -> None:
    if not settings.telegram_bot_token:
        return
    try:
        await TelegramClient(settings, _http(request)).answer_callback(callback_id)
    except Exception as e:  # noqa: BLE001 - a lost answer only leaves a spinner
        log.warning("answerCallbackQuery failed", error=type(e).__name__)


# ============================================================== Twilio (SMS + voice)
async def _twilio_params(request: Request) -> dict[str, str]:
    """Verify X-Twilio-Signature over PUBLIC_BASE_URL + path (+ query) + sorted params."""
    settings = _settings(request)
    raw = await request.body()
    header = request.headers.get("x-twilio-signature")
    if not header:
        raise _refused("twilio", 401, "missing X-Twilio-Signature")
    params = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    url = settings.public_base_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    token = settings.twilio_auth_token
    if not token or not same_secret(header, twilio_signature(token, url, params)):
        raise _refused("twilio", 403, "bad X-Twilio-Signature")
    return params


def _twiml(body: str = "") -> Response:
    return Response(f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>', media_type=TWIML)


@router.post("/twilio/sms")
async def twilio_sms(request: Request) -> Response:
    p = await _twilio_params(request)
    sid = p.get("MessageSid") or p.get("SmsSid")
    if not sid:
        raise HTTPException(400, "MessageSid is missing")
    try:
        await _route(
            request,
            Inbound(
                channel=Channel.sms,
                source="sms",
                dedup_key=f"in:sms:{sid}",
                kind="text",
                phone=_phone(p.get("From")),
                text=p.get("Body"),
                provider_message_id=sid,
            ),
        )
    except Exception as e:  # noqa: BLE001
        return _unavailable(e)
    return _twiml()  # no auto-reply; the journey answers through the activity


@router.post("/twilio/sms/status")
async def twilio_sms_status(request: Request) -> Response:
    p = await _twilio_params(request)
    sid = p.get("MessageSid") or p.get("SmsSid")
    if sid:
        try:
            await record_status(
                request.app.state.sessions,
                sid,
                p.get("MessageStatus", ""),
                p.get("ErrorCode"),
                request.app.state.temporal,
            )
        except Exception as e:  # noqa: BLE001 - DB/Temporal trouble: ask Twilio to retry
            return _unavailable(e)
    return Response(status_code=204)


async def _call_row(request: Request, log_id: str | None, call_sid: str | None) -> MessageLog | None:
    async with request.app.state.sessions() as s:
        row = await s.get(MessageLog, log_id) if log_id else None
        if row is None and call_sid:
            row = (
                await s.exec(
                    select(MessageLog).where(MessageLog.provider_message_id == call_sid, MessageLog.direction == "out")
                )
            ).first()
    if row is not None and (row.channel != Channel.voice or row.direction != "out"):
        return None
    return row


def _voice_language(row: MessageLog | None) -> str:
    """The call's language as rendered (payload.language), as Twilio <Say> names it."""
    lang = (row.payload or {}).get("language") if row is not None else None
    return VOICE_LANGUAGES.get(lang or "", VOICE_LANGUAGE)


def _gather(request: Request, prompt: str, log_id: str | None, language: str = VOICE_LANGUAGE) -> Response:
    base = _settings(request).public_base_url.rstrip("/")
    action = f"{base}/v1/webhooks/twilio/voice" + (f"?m={log_id}" if log_id else "")
    lang = quoteattr(language)
    return _twiml(
        f'<Gather numDigits="1" timeout="8" action={quoteattr(action)} method="POST">'
        f"<Say language={lang}>{escape(prompt)}</Say></Gather>"
        f"<Say language={lang}>{escape(prompt)}</Say>"
        f'<Gather numDigits="1" timeout="8" action={quoteattr(action)} method="POST"/>'
        "<Hangup/>"
    )


@router.post("/twilio/voice/twiml")
async def twilio_voice_twiml(request: Request, m: str | None = None) -> Response:
    """What our robot call says: the prompt, then gather one digit (1 confirm, 2 decline)."""
    p = await _twilio_params(request)
    row = await _call_row(request, m, p.get("CallSid"))
    if row is None:
        return _twiml("<Hangup/>")
    return _gather(request, row.body or "", row.id, _voice_language(row))


@router.post("/twilio/voice")
async def twilio_voice(request: Request, m: str | None = None) -> Response:
    """The Gather action (Digits), or a patient calling our number (no Digits yet)."""
    p = await _twilio_params(request)
    call_sid = p.get("CallSid")
    if not call_sid:
        raise HTTPException(400, "CallSid is missing")
    digits = (p.get("Digits") or "").strip()
    row = await _call_row(request, m, call_sid)
    if not digits:
        prompt = "Press 1 to confirm your visit, 2 if you cannot come."
        return _gather(request, row.body if row and row.body else prompt, row.id if row else None, _voice_language(row))
    inbound = p.get("Direction", "inbound") == "inbound" and row is None
    msg = Inbound(
        channel=Channel.voice,
        source="voice",
        dedup_key=f"in:voice:{call_sid}:digits",
        kind="digit",
        digit=digits[:1],
        provider_message_id=call_sid,
        patient_id=(row.recipient_id or row.patient_id) if row else None,
        phone=_phone(p.get("From") if inbound else p.get("To")) if row is None else None,
        appointment_hint=row.subject_id if row else None,
    )
    try:
        await _route(request, msg)
    except Exception as e:  # noqa: BLE001
        return _unavailable(e)
    lang = _voice_language(row)
    thanks = {"ru-RU": "Спасибо!", "en-GB": "Thank you!"}.get(lang, "Дякуємо!")
    return _twiml(f"<Say language={quoteattr(lang)}>{thanks}</Say><Hangup/>")


@router.post("/twilio/voice/status")
async def twilio_voice_status(request: Request, m: str | None = None) -> Response:
    p = await _twilio_params(request)
    call_sid, status = p.get("CallSid"), p.get("CallStatus", "")
    if not call_sid:
        raise HTTPException(400, "CallSid is missing")
    row = await _call_row(request, m, call_sid)
    if row is None:
        return Response(status_code=204)
    async with request.app.state.sessions() as s:
        fresh = await s.get(MessageLog, row.id)
        if fresh is not None and fresh.payload.get("call_status") != status:
            fresh.payload = {**fresh.payload, "call_status": status}
            fresh.updated_at = utcnow()
            s.add(fresh)
            await s.commit()
        answered = (
            await s.exec(select(MessageLog.id).where(MessageLog.idempotency_key == f"in:voice:{call_sid}:digits"))
        ).first()
    if status in CALL_NOT_ANSWERED or (status == "completed" and not answered):
        try:
            await _route(
                request,
                Inbound(
                    channel=Channel.voice,
                    source="voice",
                    dedup_key=f"in:voice:{call_sid}:{status}",
                    kind="call_status",
                    call_status=status,
                    provider_message_id=call_sid,
                    patient_id=row.recipient_id or row.patient_id,
                    appointment_hint=row.subject_id,
                ),
            )
        except Exception as e:  # noqa: BLE001
            return _unavailable(e)
    return Response(status_code=204)
