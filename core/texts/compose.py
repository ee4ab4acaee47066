"""Render a message for a patient from the database: the clinic's template (or the built-in
default) for the kind, in the recipient's language, with the visit's details formatted in
the clinic's timezone. Used by the messaging activity, the preview endpoint and the pages."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from urllib.parse import quote_plus

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from contracts.appointment import clinic_zone
from contracts.common import Button, MessageFacts, parse_button_id
from core.links import page_url
from core.settings import Settings
from core.texts import DEFAULT_LANGUAGE, LANGUAGES
from core.texts.catalogue import Entry, catalogue, match
from core.texts.defaults import MEMO_PREFIX, default_text
from core.texts.formatting import first_name, fmt_date, fmt_time, fmt_weekday
from core.texts.render import render
from models.core import Clinic, Doctor, Patient
from models.texts import MessageTemplate

# Journey-facing kinds that name a memo through the service rather than a template.
CARE_MEMO_AFTER = "care_memo"
CARE_MEMO_BEFORE = "care_memo_before"


@dataclass
class Composed:
    text: str
    language: str
    buttons: list[Button] = field(default_factory=list)
    template_kind: str = ""
    whatsapp_template: str = "appointment_notice"
    whatsapp_template_language: str = "ru"
    service: Entry | None = None
    # The rows read to address it (the delivery walk reuses them instead of reading again).
    patient: Patient | None = None
    guardian: Patient | None = None


def language_for(clinic: Clinic, *people: Patient | None) -> str:
    """The first set language of the addressee, then the patient, then the clinic's."""
    for p in people:
        if p is not None and p.language in LANGUAGES:
            return p.language
    return clinic.language if clinic.language in LANGUAGES else DEFAULT_LANGUAGE


async def template_text(session: AsyncSession, clinic: Clinic, kind: str, language: str) -> tuple[str, str] | None:
    """(text, source) for a kind in a language: the clinic's own, else the built-in default;
    a kind missing in that language (a memo the clinic wrote only in Russian) falls back to
    the clinic's language, then ru, uk, en."""
    return (await Templates.load(session, clinic, [kind])).text(kind, language)


class Templates:
    """The clinic's own texts of some kinds, read in one query (a message needs its kind, its
    buttons' titles and maybe a memo: one statement instead of one per kind)."""

    def __init__(self, clinic: Clinic, own: dict[tuple[str, str], str]) -> None:
        self.clinic = clinic
        self.own = own

    @classmethod
    async def load(cls, session: AsyncSession, clinic: Clinic, kinds: list[str]) -> Templates:
        wanted = list(dict.fromkeys(kinds))
        rows = (
            await session.exec(
                select(MessageTemplate).where(
                    MessageTemplate.clinic_id == clinic.id, col(MessageTemplate.kind).in_(wanted)
                )
            )
        ).all()
        return cls(clinic, {(r.kind, r.language): r.body for r in rows})

    def text(self, kind: str, language: str) -> tuple[str, str] | None:
        for lang in dict.fromkeys([language, self.clinic.language, *LANGUAGES]):
            if (kind, lang) in self.own:
                return self.own[(kind, lang)], "clinic"
            default = default_text(kind, lang)
            if default is not None:
                return default, "default"
        return None


async def overrides(session: AsyncSession, clinic_id: str) -> dict[tuple[str, str], MessageTemplate]:
    rows = (
        await session.exec(
            select(MessageTemplate)
            .where(MessageTemplate.clinic_id == clinic_id)
            .order_by(col(MessageTemplate.kind), col(MessageTemplate.language))
        )
    ).all()
    return {(r.kind, r.language): r for r in rows}


def map_link(address: str) -> str:
    return "https://www.google.com/maps/search/?api=1&query=" + quote_plus(address)


async def values_for(
    session: AsyncSession,
    settings: Settings,
    clinic: Clinic,
    language: str,
    addressee: Patient | None,
    patient: Patient | None,
    facts: MessageFacts | None,
    service: Entry | None,
) -> dict[str, str]:
    zone = clinic_zone(clinic.timezone)
    reader = addressee or patient
    v: dict[str, str] = {
        "clinic": clinic.name,
        "address": clinic.address,
        "phone": clinic.phone,
        "map_link": map_link(clinic.address),
        "review_link": clinic.review_url or "",
        "patient_first_name": first_name(reader.full_name) if reader is not None else "",
        "patient_name": patient.full_name if patient else "",
    }
    if facts is None:
        return v
    if facts.campaign_send_id:
        v.update(await campaign_values(session, clinic, language, patient, facts.campaign_send_id))
    if facts.starts_at is not None:
        v["date"] = fmt_date(facts.starts_at, zone, language)
        v["time"] = fmt_time(facts.starts_at, zone)
        v["weekday"] = fmt_weekday(facts.starts_at, zone, language)
    if facts.doctor_id:
        doctor = await session.get(Doctor, facts.doctor_id)
        v["doctor"] = doctor.full_name if doctor else ""
    v["service"] = service.name if service is not None else (facts.service or "")
    if facts.appointment_id:
        v["link"] = page_url(settings.public_base_url, settings.link_secret, facts.appointment_id)
        v["feedback_link"] = page_url(settings.public_base_url, settings.link_secret, facts.appointment_id, "feedback")
    if facts.nps is not None:
        v["score"] = str(facts.nps)
    return v


async def campaign_values(
    session: AsyncSession, clinic: Clinic, language: str, patient: Patient | None, send_id: str
) -> dict[str, str]:
    """{offer}, {booking_link}, {last_visit}, {points} of a campaign message."""
    from core.campaigns import settings_of
    from models.campaigns import CampaignSend

    row = await session.get(CampaignSend, send_id)
    if row is None:
        raise LookupError(f"campaign send {send_id} not found")
    st = await settings_of(session, clinic.id, row.kind)
    v = {"offer": st.offer, "booking_link": st.booking_link or ""}
    if last := row.facts.get("last_visit"):
        zone = clinic_zone(clinic.timezone)
        v["last_visit"] = fmt_date(datetime.combine(date.fromisoformat(last), time(12), zone), zone, language)
    points = patient.loyalty_points if patient is not None else row.facts.get("points", 0)
    v["points"] = str(points)
    return v


def _title_kind(b: Button) -> str:
    """The template kind of a button's title: button.<action>[_<value>] unless it names one."""
    parsed = parse_button_id(b.id)
    action = parsed[0] if parsed else b.id
    return b.title_kind or f"button.{action}" + (f"_{parsed[2]}" if parsed and parsed[2] is not None else "")


async def compose(
    session: AsyncSession,
    settings: Settings,
    clinic_id: str,
    patient_id: str,
    kind: str,
    facts: MessageFacts | None,
    buttons: list[Button] | None = None,
    language: str | None = None,
    text_override: str | None = None,
) -> Composed | None:
    """The message for `kind`, or None when there is nothing to say (no memo for the service)."""
    clinic = await session.get(Clinic, clinic_id)
    if clinic is None:
        raise LookupError(f"clinic {clinic_id} not found")
    patient = await session.get(Patient, patient_id) if patient_id else None
    guardian = await session.get(Patient, patient.guardian_id) if patient and patient.guardian_id else None
    addressee = guardian or patient
    lang = language or language_for(clinic, addressee, patient)
    service = None
    if facts is not None and (facts.service or facts.service_code):
        service = match(await catalogue(session, clinic.id, lang), facts.service_code, facts.service)

    template_kind = kind
    if kind in (CARE_MEMO_AFTER, CARE_MEMO_BEFORE):
        code = None if service is None else (service.memo_after if kind == CARE_MEMO_AFTER else service.memo_before)
        if not code:
            return None
        template_kind = MEMO_PREFIX + code
    values = await values_for(session, settings, clinic, lang, addressee, patient, facts, service)
    memo_kind = None
    if kind == "booking_notice" and service is not None and service.memo_before:
        memo_kind = MEMO_PREFIX + service.memo_before
    titles = {b.id: _title_kind(b) for b in buttons or [] if not b.title}
    wanted = [k for k in (memo_kind, None if text_override is not None else template_kind) if k]
    texts = await Templates.load(session, clinic, [*wanted, *titles.values()])
    if memo_kind is not None:
        memo = texts.text(memo_kind, lang)
        values["memo"] = render(memo[0], values) if memo else ""
    if text_override is not None:
        text = text_override
    else:
        found = texts.text(template_kind, lang)
        if found is None:
            return None
        text = found[0]
    out_buttons = []
    for b in buttons or []:
        title = b.title
        if not title:
            found_b = texts.text(titles[b.id], lang)
            title = render(found_b[0], values) if found_b else b.id
        out_buttons.append(Button(id=b.id, title=title[:20]))
    return Composed(
        text=render(text, values),
        language=lang,
        buttons=out_buttons,
        template_kind=template_kind,
        whatsapp_template=clinic.whatsapp_template or "appointment_notice",
        whatsapp_template_language=clinic.whatsapp_template_language or lang,
        service=service,
        patient=patient,
        guardian=guardian,
    )
