"""A clinic's patient texts: every message kind in ru / uk / en, built-in defaults the clinic
may override, a preview that renders a text for a real visit, and the service catalogue
whose entries point at care memos.

    GET  /v1/clinics/{id}/templates                       the effective set (overrides marked)
    GET  /v1/clinics/{id}/templates/{kind}/{language}     one
    PUT  /v1/clinics/{id}/templates/{kind}/{language}     {"text": "..."} (422 names an unknown
                                                          variable or the limit exceeded)
    DELETE …/templates/{kind}/{language}                  back to the built-in default
    POST /v1/clinics/{id}/templates/preview               {kind, language, appointment_id?, text?}
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import BaseModel, Field

from api import policy
from api.deps import SessionDep, SettingsDep
from api.errors import invalid_field
from contracts.common import Button, MessageFacts, button_id
from core.texts import LANGUAGES
from core.texts.compose import compose, overrides, template_text, values_for
from core.texts.defaults import KINDS, MEMO_PREFIX, VARIABLES, default_kinds, default_text, is_memo, limit_of
from core.texts.memos import DEFAULT_MEMOS
from core.texts.render import SAMPLE, TemplateError, check, render, variables_in
from models.appointment import Appointment
from models.core import Clinic, StaffUser, utcnow
from models.texts import MessageTemplate

router = APIRouter(prefix="/v1/clinics/{clinic_id}", tags=["patient texts"])

Manager = Annotated[StaffUser, policy.may("directory", "manage")]
Anyone = Annotated[StaffUser, policy.may("directory", "read")]
_MEMO_CODE = re.compile(r"^[a-z0-9][a-z0-9_]{0,58}$")
# Kinds a preview renders with buttons (ids are placeholders there).
_BUTTONS = {"reminder": ("confirm", "decline"), "reask": ("confirm", "decline"), "survey": ("nps",)}


class TemplateOut(BaseModel):
    kind: str
    language: str
    text: str
    source: str = Field(description="clinic: the clinic's own text; default: built in")
    default_text: str | None
    limit: int
    about: str
    variables: list[str]
    updated_at: datetime | None = None


class TemplateIn(BaseModel):
    text: str = Field(min_length=1, max_length=4000)


class PreviewIn(BaseModel):
    kind: str = Field(min_length=1, max_length=64)
    language: str | None = Field(default=None, description="default: the patient's, else the clinic's")
    appointment_id: str | None = Field(default=None, max_length=32)
    text: str | None = Field(default=None, max_length=4000, description="an unsaved text to try")


class PreviewOut(BaseModel):
    kind: str
    language: str
    text: str
    length: int
    limit: int
    buttons: list[dict[str, str]] = []
    sample: bool = Field(description="true: no appointment given, sample visit details")


# ---------------------------------------------------------------- helpers
async def clinic_for(session: SessionDep, user: StaffUser, clinic_id: str) -> Clinic:
    clinic = await session.get(Clinic, clinic_id)
    # Another branch's clinic answers as a missing one (api/policy.py: never 403).
    if clinic is None or not policy.in_scope(user, clinic_id):
        raise policy.not_found("clinic", clinic_id)
    return clinic


def check_kind(kind: str) -> None:
    if kind in KINDS:
        return
    if is_memo(kind) and _MEMO_CODE.match(kind[len(MEMO_PREFIX) :]):
        return
    raise HTTPException(
        404,
        f"unknown template kind {kind!r}: one of {', '.join(KINDS)}, or memo.<code> "
        "(lower-case letters, digits, _) for a care memo",
    )


def check_language(language: str, field: str | None = None) -> None:
    if language not in LANGUAGES:
        msg = f"language must be one of {', '.join(LANGUAGES)}"
        if field:
            raise invalid_field(field, msg)
        raise HTTPException(404, msg)


def _about(kind: str) -> str:
    if kind in KINDS:
        return KINDS[kind].about
    memo = DEFAULT_MEMOS.get(kind[len(MEMO_PREFIX) :])
    return f"care memo: {memo.about}" if memo else "care memo (the clinic's own)"


def _out(kind: str, language: str, text: str, row: MessageTemplate | None) -> TemplateOut:
    try:
        used = variables_in(text)
    except TemplateError:
        used = []
    return TemplateOut(
        kind=kind,
        language=language,
        text=text,
        source="clinic" if row is not None else "default",
        default_text=default_text(kind, language),
        limit=limit_of(kind),
        about=_about(kind),
        variables=used,
        updated_at=(row.updated_at or row.created_at) if row is not None else None,
    )


def _template_error(e: TemplateError) -> HTTPException:
    return invalid_field(e.field, str(e))


# ---------------------------------------------------------------- templates
@router.get("/templates", response_model=list[TemplateOut])
async def list_templates(clinic_id: str, session: SessionDep, user: Anyone) -> list[TemplateOut]:
    """Every kind in every language as the clinic's patients get it; `source` marks overrides."""
    await clinic_for(session, user, clinic_id)
    own = await overrides(session, clinic_id)
    kinds = list(dict.fromkeys([*default_kinds(), *(k for k, _ in own)]))
    out = []
    for kind in kinds:
        for lang in LANGUAGES:
            row = own.get((kind, lang))
            text = row.body if row is not None else default_text(kind, lang)
            if text is not None:
                out.append(_out(kind, lang, text, row))
    return out


@router.get("/templates/{kind}/{language}", response_model=TemplateOut)
async def get_template(clinic_id: str, kind: str, language: str, session: SessionDep, user: Anyone) -> TemplateOut:
    await clinic_for(session, user, clinic_id)
    check_kind(kind)
    check_language(language)
    row = (await overrides(session, clinic_id)).get((kind, language))
    text = row.body if row is not None else default_text(kind, language)
    if text is None:
        raise HTTPException(404, f"no {kind} text in {language}: PUT one")
    return _out(kind, language, text, row)


@router.put("/templates/{kind}/{language}", response_model=TemplateOut)
async def put_template(
    clinic_id: str, kind: str, language: str, body: TemplateIn, session: SessionDep, user: Manager
) -> TemplateOut:
    await clinic_for(session, user, clinic_id)
    check_kind(kind)
    check_language(language)
    try:
        check(kind, body.text)
    except TemplateError as e:
        raise _template_error(e) from None
    row = (await overrides(session, clinic_id)).get((kind, language))
    if row is None:
        row = MessageTemplate(clinic_id=clinic_id, kind=kind, language=language, body=body.text, updated_by=user.id)
    else:
        row.body, row.updated_by, row.updated_at = body.text, user.id, utcnow()
    session.add(row)
    await session.commit()
    await session.refresh(row)
    return _out(kind, language, row.body, row)


@router.delete("/templates/{kind}/{language}", status_code=status.HTTP_204_NO_CONTENT)
async def reset_template(clinic_id: str, kind: str, language: str, session: SessionDep, user: Manager) -> Response:
    """Drop the clinic's text: the built-in default applies again."""
    await clinic_for(session, user, clinic_id)
    check_kind(kind)
    check_language(language)
    row = (await overrides(session, clinic_id)).get((kind, language))
    if row is None:
        raise HTTPException(404, f"the clinic has no own {kind} text in {language}")
    await session.delete(row)
    await session.commit()
    return Response(status_code=204)


@router.post("/templates/preview", response_model=PreviewOut)
async def preview(
    clinic_id: str, body: PreviewIn, session: SessionDep, settings: SettingsDep, user: Anyone
) -> PreviewOut:
    """The text as a patient would get it: for a real visit (`appointment_id`), or with sample
    visit details. `text` tries an unsaved version. 422 names an unknown variable or the limit."""
    clinic = await clinic_for(session, user, clinic_id)
    check_kind(body.kind)
    if body.language is not None:
        check_language(body.language, "language")
    if body.text is not None:
        try:
            variables_in(body.text)
        except TemplateError as e:
            raise _template_error(e) from None
    limit = limit_of(body.kind)
    if body.appointment_id:
        appt = await session.get(Appointment, body.appointment_id)
        if appt is None or appt.clinic_id != clinic_id:
            raise invalid_field("appointment_id", f"appointment_id {body.appointment_id!r} is not this clinic's")
        facts = MessageFacts(
            appointment_id=appt.id,
            plan_id=appt.plan_id,
            doctor_id=appt.doctor_id,
            starts_at=appt.starts_at,
            duration_minutes=appt.duration_minutes,
            service=appt.service,
            service_code=appt.service_code,
            version=appt.version,
            nps=appt.nps,
        )
        buttons = [
            Button(id=button_id(a, appt.id, "10" if a == "nps" else None), title="")
            for a in _BUTTONS.get(body.kind, ())
        ]
        composed = await compose(
            session, settings, clinic_id, appt.patient_id, body.kind, facts, buttons, body.language, body.text
        )
        if composed is None:
            raise HTTPException(404, f"nothing to send: {body.kind} has no text for this visit (no memo?)")
        text, language, out_buttons = (
            composed.text,
            composed.language,
            [{"id": b.id, "title": b.title} for b in composed.buttons],
        )
        sample = False
    else:
        language = body.language or clinic.language
        found = (body.text, "") if body.text is not None else await template_text(session, clinic, body.kind, language)
        if found is None:
            raise HTTPException(404, f"no {body.kind} text in {language}")
        values = {**_sample(language), **await values_for(session, settings, clinic, language, None, None, None, None)}
        text = render(found[0], values)
        out_buttons = []
        sample = True
    if len(text) > limit:
        raise invalid_field("text", f"text is over the limit for {body.kind}: {len(text)} characters, limit {limit}")
    return PreviewOut(
        kind=body.kind, language=language, text=text, length=len(text), limit=limit, buttons=out_buttons, sample=sample
    )


def _sample(language: str) -> dict[str, Any]:
    from contracts.appointment import clinic_zone
    from core.texts.formatting import fmt_date, fmt_weekday

    zone = clinic_zone("Europe/Kyiv")
    when = (datetime.now(UTC) + timedelta(days=1)).astimezone(zone).replace(hour=10, minute=30)
    return {
        **SAMPLE,
        "date": fmt_date(when, zone, language),
        "weekday": fmt_weekday(when, zone, language),
        "patient_first_name": {"ru": "Ольга", "uk": "Ольга", "en": "Olga"}.get(language, "Olga"),
    }


__all__ = ["router", "VARIABLES"]
