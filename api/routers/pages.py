"""The patient's pages, opened from the signed link every appointment message carries:

    GET  /p/{token}              the visit: doctor, time, address + map, phone, status,
                                 Confirm / I can't come, add to calendar, the care memo
    POST /p/{token}/confirm      the same effect as replying «да»: through the one inbound path
    POST /p/{token}/decline      the same as «не смогу»
    GET  /p/{token}/visit.ics    the visit as a calendar event
    GET  /p/{token}/feedback     the feedback form (0-10, administrator and doctor 👍/👎, comment)
    POST /p/{token}/feedback     reaches the journey like a survey reply; a comment or a 👎
                                 also becomes a `patient_feedback` task for the director

Server-rendered HTML (Jinja2), mobile-first, no JavaScript. A tampered link is 404 and an
expired one 410, each a plain page that says so (core/links.py signs and expires them).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlmodel import col, select

from contracts.appointment import clinic_zone
from contracts.common import MessageFacts, button_id
from conversations.inbound import Inbound, raise_task, route_inbound
from core.links import BadLink, expires_at, read_token
from core.logging import get_logger
from core.texts import LANGUAGES
from core.texts.compose import CARE_MEMO_BEFORE, compose, language_for, map_link
from core.texts.formatting import fmt_date, fmt_time, fmt_weekday
from models.appointment import Appointment
from models.core import Channel, Clinic, Doctor, MessageLog, Patient, policy_from_json

log = get_logger("api.pages")
router = APIRouter(prefix="/p", tags=["patient pages"], include_in_schema=False)
_env = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent.parent / "pages"),
    autoescape=select_autoescape(["html"]),
)
_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Robots-Tag": "noindex"}
BEFORE_VISIT = ("booked", "confirmed", "needs_clarification")

T: dict[str, dict[str, str]] = {
    "ru": {
        "your_visit": "Ваш визит",
        "when": "Когда",
        "service": "Услуга",
        "doctor": "Врач",
        "clinic": "Клиника",
        "address": "Адрес",
        "map": "на карте",
        "phone": "Телефон",
        "status": "Статус",
        "confirm": "Подтверждаю",
        "decline": "Не смогу прийти",
        "add_to_calendar": "Добавить в календарь",
        "memo": "Памятка",
        "confirmed_done": "Спасибо! Визит подтверждён.",
        "declined_done": "Спасибо, что предупредили. Администратор свяжется с вами, чтобы подобрать другое время.",
        "not_reached": "Не получилось передать ответ. Пожалуйста, позвоните в клинику: {phone}.",
        "feedback_title": "Как прошёл визит?",
        "nps_question": "Насколько вероятно, что вы порекомендуете нас друзьям? (0 — точно нет, 10 — обязательно)",
        "admin_rating": "Администратор",
        "doctor_rating": "Врач",
        "like": "понравилось",
        "dislike": "не понравилось",
        "comment": "Что нам стоит знать?",
        "send": "Отправить",
        "score_missing": "Выберите оценку от 0 до 10.",
        "feedback_done": "Спасибо за отзыв! Директор клиники читает каждый ответ.",
        "expired": "Срок действия ссылки истёк. Пожалуйста, позвоните в клинику: {phone}.",
        "booked": "ожидает подтверждения",
        "confirmed": "подтверждён",
        "needs_clarification": "администратор уточнит",
        "checked_in": "вы в клинике",
        "finished": "визит завершён",
        "no_show": "визит пропущен",
        "cancelled": "визит отменён",
    },
    "uk": {
        "your_visit": "Ваш візит",
        "when": "Коли",
        "service": "Послуга",
        "doctor": "Лікар",
        "clinic": "Клініка",
        "address": "Адреса",
        "map": "на мапі",
        "phone": "Телефон",
        "status": "Статус",
        "confirm": "Підтверджую",
        "decline": "Не зможу прийти",
        "add_to_calendar": "Додати в календар",
        "memo": "Пам'ятка",
        "confirmed_done": "Дякуємо! Візит підтверджено.",
        "declined_done": "Дякуємо, що попередили. Адміністратор зв'яжеться з вами, щоб підібрати інший час.",
        "not_reached": "Не вдалося передати відповідь. Будь ласка, зателефонуйте до клініки: {phone}.",
        "feedback_title": "Як пройшов візит?",
        "nps_question": "Наскільки ймовірно, що ви порекомендуєте нас друзям? (0 — точно ні, 10 — неодмінно)",
        "admin_rating": "Адміністратор",
        "doctor_rating": "Лікар",
        "like": "сподобалось",
        "dislike": "не сподобалось",
        "comment": "Що нам варто знати?",
        "send": "Надіслати",
        "score_missing": "Оберіть оцінку від 0 до 10.",
        "feedback_done": "Дякуємо за відгук! Директор клініки читає кожну відповідь.",
        "expired": "Термін дії посилання минув. Будь ласка, зателефонуйте до клініки: {phone}.",
        "booked": "очікує підтвердження",
        "confirmed": "підтверджено",
        "needs_clarification": "адміністратор уточнить",
        "checked_in": "ви в клініці",
        "finished": "візит завершено",
        "no_show": "візит пропущено",
        "cancelled": "візит скасовано",
    },
    "en": {
        "your_visit": "Your visit",
        "when": "When",
        "service": "Service",
        "doctor": "Doctor",
        "clinic": "Clinic",
        "address": "Address",
        "map": "map",
        "phone": "Phone",
        "status": "Status",
        "confirm": "Confirm",
        "decline": "I can't come",
        "add_to_calendar": "Add to calendar",
        "memo": "Care memo",
        "confirmed_done": "Thank you! Your visit is confirmed.",
        "declined_done": "Thank you for letting us know. The front desk will contact you to find another time.",
        "not_reached": "We could not pass on your answer. Please call the clinic: {phone}.",
        "feedback_title": "How was your visit?",
        "nps_question": "How likely are you to recommend us to a friend? (0 not at all, 10 certainly)",
        "admin_rating": "Front desk",
        "doctor_rating": "Doctor",
        "like": "liked it",
        "dislike": "did not like it",
        "comment": "Anything we should know?",
        "send": "Send",
        "score_missing": "Choose a score from 0 to 10.",
        "feedback_done": "Thank you for your feedback! The clinic director reads every answer.",
        "expired": "This link has expired. Please call the clinic: {phone}.",
        "booked": "waiting for your confirmation",
        "confirmed": "confirmed",
        "needs_clarification": "the front desk will call you",
        "checked_in": "checked in",
        "finished": "visit finished",
        "no_show": "missed",
        "cancelled": "cancelled",
    },
}
BAD_LINK = [
    "Ссылка недействительна. Откройте её из сообщения клиники или позвоните в клинику.",
    "Посилання недійсне. Відкрийте його з повідомлення клініки або зателефонуйте до клініки.",
    "This link is not valid. Open it from the clinic's message, or call the clinic.",
]


class _Page:
    def __init__(self, appt: Appointment, clinic: Clinic, patient: Patient | None, lang: str, token: str) -> None:
        self.appt, self.clinic, self.patient, self.lang, self.token = appt, clinic, patient, lang, token
        self.t = T[lang]


def _html(name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    page = _env.get_template(name).render(status=ctx.pop("stage_text", None), **ctx)
    return HTMLResponse(page, status_code=status, headers=_HEADERS)


def _problem(lines: list[str], status: int, lang: str = "ru") -> HTMLResponse:
    return _html("problem.html", status, lines=lines, lang=lang, title=lines[0])


async def _open(request: Request, token: str, purpose: str, lang: str | None = None) -> _Page | HTMLResponse:
    settings = request.app.state.settings
    try:
        appointment_id, got = read_token(settings.link_secret, token)
    except BadLink:
        return _problem(BAD_LINK, 404)
    async with request.app.state.sessions() as s:
        appt = await s.get(Appointment, appointment_id)
        clinic = await s.get(Clinic, appt.clinic_id) if appt else None
        patient = await s.get(Patient, appt.patient_id) if appt else None
        guardian = await s.get(Patient, patient.guardian_id) if patient and patient.guardian_id else None
    if appt is None or clinic is None or (got != purpose and not (got == "visit" and purpose == "visit")):
        return _problem(BAD_LINK, 404)
    language = lang if lang in LANGUAGES else language_for(clinic, guardian, patient)
    if datetime.now(UTC) > expires_at(appt.ends_at, policy_from_json(clinic.policy)):
        return _problem([T[language]["expired"].format(phone=clinic.phone)], 410, language)
    return _Page(appt, clinic, patient, language, token)


def _base(token: str) -> str:
    return f"/p/{token}"


# ---------------------------------------------------------------- the visit
@router.get("/{token}", response_class=HTMLResponse)
async def visit_page(request: Request, token: str, done: str | None = None, lang: str | None = None) -> Response:
    page = await _open(request, token, "visit", lang)
    if isinstance(page, HTMLResponse):
        return page
    a, c, t = page.appt, page.clinic, page.t
    zone = clinic_zone(c.timezone)
    async with request.app.state.sessions() as s:
        doctor = await s.get(Doctor, a.doctor_id)
        memo = await _memo(request, s, page)
    notice = {"confirmed": t["confirmed_done"], "declined": t["declined_done"]}.get(done or "")
    if done == "unreached":
        notice = t["not_reached"].format(phone=c.phone)
    return _html(
        "visit.html",
        lang=page.lang,
        title=f"{t['your_visit']} · {c.name}",
        t=t,
        base=_base(token),
        done=notice,
        clinic=c,
        doctor=doctor.full_name if doctor else "",
        service=a.service,
        date=fmt_date(a.starts_at, zone, page.lang),
        weekday=fmt_weekday(a.starts_at, zone, page.lang),
        time=fmt_time(a.starts_at, zone),
        map_link=map_link(c.address),
        stage_text=t.get(a.stage, a.stage),
        can_confirm=a.stage in ("booked", "needs_clarification") and done is None,
        can_decline=a.stage in BEFORE_VISIT and done is None,
        upcoming=a.stage in BEFORE_VISIT,
        memo=memo,
    )


async def _memo(request: Request, s: Any, page: _Page) -> str | None:
    """After the visit: the care memo once it was sent; before it: the service's before-memo."""
    a = page.appt
    if a.stage not in BEFORE_VISIT:
        q = (
            select(MessageLog.body)
            .where(MessageLog.subject_id == a.id, MessageLog.direction == "out", MessageLog.kind == "care_memo")
            .where(col(MessageLog.status).in_(("sent", "delivered", "read", "unconfirmed")))
        )
        return (await s.exec(q)).first()
    facts = MessageFacts(appointment_id=a.id, doctor_id=a.doctor_id, starts_at=a.starts_at, service=a.service)
    facts.service_code = a.service_code
    composed = await compose(
        s, request.app.state.settings, a.clinic_id, a.patient_id, CARE_MEMO_BEFORE, facts, language=page.lang
    )
    return composed.text if composed else None


async def _answer(request: Request, page: _Page, button: str, extra: dict[str, Any] | None = None) -> Any:
    """The page's answer through the one inbound path (dedup row, routing, the signal)."""
    msg = Inbound(
        channel=Channel.web,
        source="page",
        dedup_key=f"in:page:{uuid.uuid4().hex}",
        kind="button",
        patient_id=page.appt.patient_id,
        button_id=button,
        extra=extra or {},
    )
    return await route_inbound(request.app.state.sessions, request.app.state.temporal, msg)


@router.post("/{token}/confirm")
async def confirm(request: Request, token: str) -> Response:
    return await _confirm_or_decline(request, token, "confirm")


@router.post("/{token}/decline")
async def decline(request: Request, token: str) -> Response:
    return await _confirm_or_decline(request, token, "decline")


async def _confirm_or_decline(request: Request, token: str, action: str) -> Response:
    page = await _open(request, token, "visit")
    if isinstance(page, HTMLResponse):
        return page
    routed = await _answer(request, page, button_id(action, page.appt.id))
    done = ("confirmed" if action == "confirm" else "declined") if routed.outcome == "signalled" else "unreached"
    log.info("patient answered on the page", action=action, outcome=routed.outcome, appointment_id=page.appt.id)
    return RedirectResponse(f"{_base(token)}?done={done}", status_code=303, headers=_HEADERS)


@router.get("/{token}/visit.ics")
async def calendar(request: Request, token: str) -> Response:
    page = await _open(request, token, "visit")
    if isinstance(page, HTMLResponse):
        return page
    a, c = page.appt, page.clinic
    async with request.app.state.sessions() as s:
        doctor = await s.get(Doctor, a.doctor_id)
    stamp = "%Y%m%dT%H%M%SZ"
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//patient-journeys//visit//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        "BEGIN:VEVENT",
        f"UID:{a.id}-v{a.version}@patient-journeys",
        f"DTSTAMP:{datetime.now(UTC).strftime(stamp)}",
        f"DTSTART:{a.starts_at.astimezone(UTC).strftime(stamp)}",
        f"DTEND:{a.ends_at.astimezone(UTC).strftime(stamp)}",
        f"SUMMARY:{_ics(f'{a.service} · {c.name}')}",
        f"LOCATION:{_ics(c.address)}",
        f"DESCRIPTION:{_ics(' · '.join([doctor.full_name if doctor else '', c.phone]))}",
        "END:VEVENT",
        "END:VCALENDAR",
    ]
    return Response(
        "\r\n".join(lines) + "\r\n",
        media_type="text/calendar; charset=utf-8",
        headers={**_HEADERS, "Content-Disposition": 'attachment; filename="visit.ics"'},
    )


def _ics(text: str) -> str:
    """RFC 5545 TEXT escaping."""
    return text.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")


# ---------------------------------------------------------------- feedback
@router.get("/{token}/feedback", response_class=HTMLResponse)
async def feedback_form(request: Request, token: str, lang: str | None = None) -> Response:
    page = await _open(request, token, "feedback", lang)
    if isinstance(page, HTMLResponse):
        return page
    return await _feedback_page(request, page)


async def _feedback_page(request: Request, page: _Page, done: str | None = None, error: str | None = None) -> Response:
    a, c = page.appt, page.clinic
    async with request.app.state.sessions() as s:
        doctor = await s.get(Doctor, a.doctor_id)
    return _html(
        "feedback.html",
        status=422 if error else 200,
        lang=page.lang,
        title=f"{page.t['feedback_title']} · {c.name}",
        t=page.t,
        base=_base(page.token),
        clinic=c,
        doctor=doctor.full_name if doctor else "",
        date=fmt_date(a.starts_at, clinic_zone(c.timezone), page.lang),
        done=done,
        error=error,
    )


@router.post("/{token}/feedback", response_class=HTMLResponse)
async def feedback_submit(request: Request, token: str) -> Response:
    page = await _open(request, token, "feedback")
    if isinstance(page, HTMLResponse):
        return page
    form = await request.form()
    raw = str(form.get("score") or "").strip()
    if not raw.isdigit() or not 0 <= int(raw) <= 10:
        return await _feedback_page(request, page, error=page.t["score_missing"])
    score = int(raw)
    ratings = {k: str(form.get(k) or "") for k in ("admin_rating", "doctor_rating")}
    ratings = {k: v for k, v in ratings.items() if v in ("like", "dislike")}
    comment = str(form.get("comment") or "").strip()[:2000]
    answer = {"score": score, **ratings, "comment": comment}
    routed = await _answer(request, page, button_id("nps", page.appt.id, str(score)), {"form": answer})
    if comment or "dislike" in ratings.values():
        async with request.app.state.sessions() as s:
            await raise_task(
                s,
                f"patient_feedback:{routed.message_id or uuid.uuid4().hex}",
                "patient_feedback",
                f"Feedback form: NPS {score}" + (", a comment" if comment else ""),
                assigned_role="director",
                clinic_id=page.appt.clinic_id,
                patient_id=page.appt.patient_id,
                subject_type="appointment",
                subject_id=page.appt.id,
                details={"nps": score, **ratings, "comment": comment, "message_log_id": routed.message_id},
            )
    log.info("feedback form received", outcome=routed.outcome, appointment_id=page.appt.id)
    return await _feedback_page(request, page, done=page.t["feedback_done"])
