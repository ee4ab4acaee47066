"""Patient texts (issue 9): templates per clinic and language, rendering in the activity,
the service catalogue and its memos, like/dislike and the review-link policy."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import Client

from contracts.appointment import AppointmentOutcome
from contracts.common import Button
from core.deps import Deps
from core.settings import Settings
from core.texts.catalogue import from_default, match, normalize_name
from core.texts.defaults import KINDS, VARIABLES, default_kinds, default_text, limit_of
from core.texts.formatting import first_name, fmt_date, fmt_weekday
from core.texts.memos import DEFAULT_MEMOS, DEFAULT_SERVICES
from core.texts.render import SAMPLE, TemplateError, check, render, variables_in
from models.core import Role
from providers.whatsapp import WhatsAppClient
from tests.support.api import Api
from tests.support.appointments import book, make_clinic, reply, sent, tasks
from tests.support.live import eventually

LANGS = ("ru", "uk", "en")
KYIV = ZoneInfo("Europe/Kyiv")


# ---------------------------------------------------------------- defaults (pure)
@pytest.mark.parametrize("language", LANGS)
def test_every_default_renders_in_every_language_without_missing_variables(language: str) -> None:
    for kind in default_kinds():
        text = default_text(kind, language)
        assert text, f"{kind} has no {language} default"
        used = variables_in(text)
        assert set(used) <= set(VARIABLES)
        out = render(text, SAMPLE)
        assert "{" not in out and "}" not in out, (kind, out)
        assert len(check(kind, text)) <= limit_of(kind), kind
        if kind.startswith("memo."):
            assert "{phone}" in text, f"{kind} must tell the patient to call the clinic"


def test_defaults_are_in_the_language_they_claim() -> None:
    cyr = set("абвгдежзийклмнопрстуфхцчшщьюяіїєґ")
    for kind in default_kinds():
        ru, uk, en = (default_text(kind, lang) or "" for lang in LANGS)
        assert any(c in cyr for c in ru.lower()) and any(c in cyr for c in uk.lower()), kind
        assert ru != uk, kind
        letters = [c for c in en.lower().replace("{", "").replace("}", "") if c.isalpha()]
        assert not any(c in cyr for c in letters), kind
    assert any(c in "іїєґ" for c in (default_text("reminder", "uk") or ""))


def test_at_least_17_memos_cover_the_issues_list() -> None:
    assert len(DEFAULT_MEMOS) >= 17
    for code in (
        "anaesthesia_before",
        "implantation_before",
        "implantation_after",
        "extraction_after",
        "wisdom_extraction_after",
        "sinus_lift_after",
        "bone_graft_after",
        "root_canal_after",
        "filling_after",
        "hygiene_after",
        "whitening_after",
        "braces_after",
        "aligners_after",
        "crown_after",
        "dentures_after",
        "child_first_visit_before",
    ):
        assert code in DEFAULT_MEMOS
    for svc in DEFAULT_SERVICES:
        for memo in (svc.memo_before, svc.memo_after):
            assert memo is None or memo in DEFAULT_MEMOS, svc.code


def test_button_titles_fit_whatsapp() -> None:
    for kind in KINDS:
        if kind.startswith("button."):
            for lang in LANGS:
                assert len(default_text(kind, lang) or "") <= 20, (kind, lang)


def test_dates_in_each_language_and_the_clinics_timezone() -> None:
    t = datetime(2026, 12, 4, 8, 30, tzinfo=UTC)  # 10:30 in Kyiv, a Friday
    assert fmt_date(t, KYIV, "ru").startswith("4 декабря")
    assert fmt_date(t, KYIV, "uk").startswith("4 грудня")
    assert fmt_date(t, KYIV, "en").startswith("4 December")
    assert fmt_weekday(t, KYIV, "ru") == "пятница" and fmt_weekday(t, KYIV, "uk") == "пʼятниця"
    late = datetime(2026, 12, 4, 22, 30, tzinfo=UTC)  # already Saturday in Kyiv
    assert fmt_weekday(late, KYIV, "en") == "Saturday" and fmt_date(late, KYIV, "en").startswith("5 December")


def test_first_name_reads_both_orders() -> None:
    assert first_name("Olena Petrenko") == "Olena"
    assert first_name("Петренко Олена Іванівна") == "Олена"
    assert first_name("Иванов Сергей Петрович") == "Сергей"


def test_unknown_variable_and_limits_are_named() -> None:
    with pytest.raises(TemplateError, match=r"\{doktor\}"):
        check("reminder", "Завтра в {time}, врач {doktor}")
    with pytest.raises(TemplateError, match="limit"):
        check("button.confirm", "Подтверждаю свой визит")
    with pytest.raises(TemplateError, match="brace"):
        check("reminder", "Завтра {time")
    with pytest.raises(TemplateError, match="format"):
        check("reminder", "{time!r}")


# ---------------------------------------------------------------- catalogue matching (pure)
def test_services_match_by_code_or_name_in_any_language_and_case() -> None:
    entries = [from_default(d, "ru") for d in DEFAULT_SERVICES]
    assert match(entries, "extraction", None).code == "extraction"  # type: ignore[union-attr]
    for text in ("Удаление зуба", "УДАЛЕНИЕ  ЗУБА.", "видалення зуба", "Tooth extraction", "удаление зуба 36"):
        assert match(entries, None, text).code == "extraction", text  # type: ignore[union-attr]
    assert match(entries, None, "Удаление зуба мудрости").code == "wisdom_extraction"  # type: ignore[union-attr]
    assert match(entries, None, "Имплантация").code == "implantation"  # type: ignore[union-attr]
    assert match(entries, None, "Наркоз").code == "general_anaesthesia"  # type: ignore[union-attr]
    assert match(entries, None, "Синус-лифтинг").code == "sinus_lift"  # type: ignore[union-attr]
    assert match(entries, None, "Массаж лица") is None
    assert normalize_name("Съёмный  протез") == "съемный протез"


# ---------------------------------------------------------------- WhatsApp template per clinic
def test_whatsapp_template_name_and_language_outside_the_window(settings: Settings) -> None:
    wa = WhatsAppClient(settings, None)  # type: ignore[arg-type]
    body = wa.payload("+380671234567", "Текст", [Button("confirm:x", "Подтверждаю")], "visit_ru", False, "ru")
    assert body["template"]["name"] == "visit_ru" and body["template"]["language"] == {"code": "ru"}


# ---------------------------------------------------------------- templates API
async def test_templates_api_lists_overrides_previews_and_rejects_bad_text(api: Api, deps: Deps) -> None:
    clinic = await make_clinic(api)
    cid = clinic["id"]
    director, desk = api.as_(Role.director), api.as_(Role.front_desk)

    r = await desk.get(f"/v1/clinics/{cid}/templates")
    assert r.status_code == 200
    listed = {(t["kind"], t["language"]): t for t in r.json()}
    assert len(listed) == len(default_kinds()) * 3
    assert all(t["source"] == "default" for t in listed.values())
    assert ("memo.extraction_after", "uk") in listed

    text = "{patient_first_name}, ждём вас {date} в {time} у врача {doctor}. Ответьте «Да» или «Нет»."
    r = await director.put(f"/v1/clinics/{cid}/templates/reminder/ru", json={"text": text})
    assert r.status_code == 200, r.text
    assert r.json()["source"] == "clinic" and r.json()["variables"] == ["patient_first_name", "date", "time", "doctor"]
    r = await desk.get(f"/v1/clinics/{cid}/templates/reminder/ru")
    assert r.json()["text"] == text and r.json()["source"] == "clinic"
    r = await desk.get(f"/v1/clinics/{cid}/templates")
    marked = {(t["kind"], t["language"]): t["source"] for t in r.json()}
    assert marked[("reminder", "ru")] == "clinic" and marked[("reminder", "uk")] == "default"

    # Front desk may read but not edit.
    r = await desk.put(f"/v1/clinics/{cid}/templates/reminder/ru", json={"text": text})
    assert r.status_code == 403

    # An unknown variable, a title over 20, an unknown kind or language: named, nothing saved.
    r = await director.put(f"/v1/clinics/{cid}/templates/reminder/uk", json={"text": "Візит {data} о {time}"})
    assert r.status_code == 422 and "{data}" in r.text
    r = await director.put(f"/v1/clinics/{cid}/templates/button.confirm/ru", json={"text": "Да, обязательно приду"})
    assert r.status_code == 422 and "limit" in r.text and "20" in r.text
    r = await director.put(f"/v1/clinics/{cid}/templates/reminder/uk", json={"text": "x" * 1100})
    assert r.status_code == 422 and "limit" in r.text
    assert (await desk.get(f"/v1/clinics/{cid}/templates/reminder/uk")).json()["source"] == "default"
    assert (await director.put(f"/v1/clinics/{cid}/templates/nonsense/ru", json={"text": "x"})).status_code == 404
    assert (await director.put(f"/v1/clinics/{cid}/templates/reminder/de", json={"text": "x"})).status_code == 404

    # Preview for a real visit renders the override with the visit's details.
    appt = await book(api, clinic, in_seconds=3600, service="Удаление зуба")
    r = await desk.post(
        f"/v1/clinics/{cid}/templates/preview",
        json={"kind": "reminder", "language": "ru", "appointment_id": appt["id"]},
    )
    assert r.status_code == 200, r.text
    p = r.json()
    local = datetime.fromisoformat(appt["starts_at"]).astimezone(KYIV)
    assert p["text"].startswith("Olena, ждём вас") and local.strftime("%H:%M") in p["text"]
    assert "Dr Shevchenko" in p["text"] and p["sample"] is False
    assert [b["title"] for b in p["buttons"]] == ["Подтверждаю", "Не смогу прийти"]
    # ... an unsaved text, and a preview with sample values; bad variable -> 422 naming it.
    r = await desk.post(
        f"/v1/clinics/{cid}/templates/preview",
        json={"kind": "booking_notice", "language": "uk", "appointment_id": appt["id"]},
    )
    assert "Видалення зуба" in r.json()["text"] and "Перед операцією" in r.json()["text"]
    r = await desk.post(f"/v1/clinics/{cid}/templates/preview", json={"kind": "survey", "language": "en"})
    assert r.status_code == 200 and r.json()["sample"] is True and clinic["name"] in r.json()["text"]
    r = await desk.post(
        f"/v1/clinics/{cid}/templates/preview", json={"kind": "reminder", "text": "Hi {first_name}", "language": "en"}
    )
    assert r.status_code == 422 and "{first_name}" in r.text

    # Reset: the default applies again.
    assert (await director.delete(f"/v1/clinics/{cid}/templates/reminder/ru")).status_code == 204
    assert (await desk.get(f"/v1/clinics/{cid}/templates/reminder/ru")).json()["source"] == "default"


# ---------------------------------------------------------------- journeys speak the language
async def _through_visit(api: Api, deps: Deps, clinic: dict, **book_kw) -> dict:  # type: ignore[no-untyped-def]
    appt = await book(api, clinic, **book_kw)

    async def noticed() -> None:
        assert "booking_notice" in [m.kind for m in await sent(deps, appt["id"])]

    await eventually(noticed)
    for action, role in (("confirm", Role.operator), ("check-in", Role.front_desk), ("finish", Role.doctor)):
        r = await api.as_(role).post(f"/v1/appointments/{appt['id']}/{action}")
        assert r.status_code == 200, (action, r.text)

    async def surveyed() -> None:
        assert "survey" in [m.kind for m in await sent(deps, appt["id"])]

    await eventually(surveyed)
    return appt


async def test_russian_clinic_extraction_journey_in_russian_with_the_right_memos(
    api: Api, client: Client, deps: Deps
) -> None:
    clinic = await make_clinic(api, fields={"language": "ru"}, patient={"full_name": "Петренко Олена Іванівна"})
    appt = await book(api, clinic, in_seconds=305, service="удаление зуба")
    assert appt["service_code"] == "extraction"

    async def asked() -> None:
        assert "reminder" in [m.kind for m in await sent(deps, appt["id"])]

    await eventually(asked)
    msgs = {m.kind: m for m in await sent(deps, appt["id"])}
    notice, ask = msgs["booking_notice"].body or "", msgs["reminder"]
    local = datetime.fromisoformat(appt["starts_at"]).astimezone(KYIV)
    months = ("января февраля марта апреля мая июня июля августа сентября октября ноября декабря").split()
    assert notice.startswith("Здравствуйте, Олена! Вы записаны")
    assert f"{local.day} {months[local.month - 1]}" in notice and local.strftime("%H:%M") in notice
    assert "Перед операцией" in notice  # the before-memo of an extraction
    assert "/p/" in notice and appt["id"] not in notice  # the signed link, no ids in the URL
    assert "Ответьте «Да»" in (ask.body or "")
    assert [b["title"] for b in ask.payload["buttons"]] == ["Подтверждаю", "Не смогу прийти"]
    assert ask.payload["language"] == "ru"

    await api.as_(Role.front_desk).post(f"/v1/appointments/{appt['id']}/cancel", json={"reason": "test"})
    clinic2 = await make_clinic(api, fields={"language": "ru"})
    appt2 = await _through_visit(api, deps, clinic2, service=None, service_code="extraction")
    await reply(api, clinic2, "10")
    await client.get_workflow_handle(appt2["workflow_id"], result_type=AppointmentOutcome).result()
    by_kind = {m.kind: m.body or "" for m in await sent(deps, appt2["id"])}
    assert by_kind["care_memo"].startswith("После удаления зуба") and "+380441234567" in by_kind["care_memo"]
    assert by_kind["survey"].startswith("Спасибо, что были у нас") and "/feedback" in by_kind["survey"]
    assert by_kind["review_link"].startswith("Спасибо за высокую оценку")


async def test_patient_language_overrides_the_clinics(api: Api, deps: Deps) -> None:
    clinic = await make_clinic(api, fields={"language": "ru"}, patient={"language": "uk"})
    appt = await book(api, clinic, in_seconds=3600, service="Имплантация")

    async def noticed() -> None:
        assert "booking_notice" in [m.kind for m in await sent(deps, appt["id"])]

    await eventually(noticed)
    notice = (await sent(deps, appt["id"]))[0].body or ""
    assert notice.startswith("Добрий день, Olena! Ви записані") and "Перед імплантацією" in notice


async def test_a_clinics_edited_text_goes_out_without_a_deploy(api: Api, deps: Deps) -> None:
    clinic = await make_clinic(api, fields={"language": "uk"})
    r = await api.as_(Role.admin).put(
        f"/v1/clinics/{clinic['id']}/templates/booking_notice/uk",
        json={"text": "{clinic}: чекаємо вас {date} о {time}. Телефон {phone}. {link}"},
    )
    assert r.status_code == 200, r.text
    appt = await book(api, clinic, in_seconds=3600, service="Консультація")

    async def noticed() -> None:
        assert "booking_notice" in [m.kind for m in await sent(deps, appt["id"])]

    await eventually(noticed)
    assert (await sent(deps, appt["id"]))[0].body.startswith(f"{clinic['name']}: чекаємо вас")  # type: ignore[union-attr]


async def test_unknown_service_code_is_422(api: Api) -> None:
    clinic = await make_clinic(api)
    r = await api.as_(Role.front_desk).post(
        "/v1/appointments",
        json={
            "patient_id": clinic["patient_id"],
            "clinic_id": clinic["id"],
            "doctor_id": clinic["doctor_id"],
            "starts_at": datetime.now(UTC).replace(year=datetime.now(UTC).year + 1).isoformat(),
            "duration_minutes": 30,
            "service_code": "teleportation",
        },
    )
    assert r.status_code == 422 and "service_code" in r.text


async def test_thumbs_up_and_dislike_answer_the_survey(api: Api, client: Client, deps: Deps) -> None:
    clinic = await make_clinic(api, fields={"language": "ru"})
    appt = await _through_visit(api, deps, clinic, service="Консультация")
    await reply(api, clinic, "👍")
    await client.get_workflow_handle(appt["workflow_id"], result_type=AppointmentOutcome).result()
    kinds = [m.kind for m in await sent(deps, appt["id"])]
    assert kinds[-1] == "thanks" and await tasks(api, appt["id"]) == []

    clinic = await make_clinic(api, fields={"language": "uk"})
    appt = await _through_visit(api, deps, clinic, service="Консультація")
    await reply(api, clinic, "Дизлайк")
    await client.get_workflow_handle(appt["workflow_id"], result_type=AppointmentOutcome).result()
    assert [m.kind for m in await sent(deps, appt["id"])][-1] == "feedback_form"
    assert [t["kind"] for t in await tasks(api, appt["id"])] == ["detractor_feedback"]


@pytest.mark.parametrize(("score", "kind"), [("7", "thanks_review"), ("3", "feedback_form_review")])
async def test_review_link_to_everyone(api: Api, client: Client, deps: Deps, score: str, kind: str) -> None:
    clinic = await make_clinic(api, fields={"language": "en"}, review_link_to="everyone")
    appt = await _through_visit(api, deps, clinic, service="Consultation")
    await reply(api, clinic, score)
    await client.get_workflow_handle(appt["workflow_id"], result_type=AppointmentOutcome).result()
    last = (await sent(deps, appt["id"]))[-1]
    assert last.kind == kind and "https://reviews.example/smile" in (last.body or "")
    assert [t["kind"] for t in await tasks(api, appt["id"])] == (["detractor_feedback"] if score == "3" else [])


# ---------------------------------------------------------------- service catalogue API
async def test_service_catalogue_create_list_patch_and_memos(api: Api, deps: Deps) -> None:
    clinic = await make_clinic(api, fields={"language": "ru"})
    cid = clinic["id"]
    director, desk = api.as_(Role.director), api.as_(Role.front_desk)

    r = await desk.get(f"/v1/clinics/{cid}/services")
    assert r.status_code == 200
    defaults = {s["code"]: s for s in r.json()}
    assert defaults["extraction"]["name"] == "Удаление зуба" and defaults["extraction"]["source"] == "default"
    assert defaults["extraction"]["memo_after"] == "extraction_after"

    # The clinic's own memo and a service using it.
    r = await director.post(
        f"/v1/clinics/{cid}/services",
        json={"code": "laser", "name": "Лазерная терапия", "duration_minutes": 20, "memo_after": "laser_after"},
    )
    assert r.status_code == 422 and "memo_after" in r.text  # the memo does not exist yet: nothing written
    r = await director.put(
        f"/v1/clinics/{cid}/templates/memo.laser_after/ru",
        json={"text": "После лазерной терапии: 2 часа не ешьте. Если что-то не так, звоните: {phone}."},
    )
    assert r.status_code == 200, r.text
    r = await director.post(
        f"/v1/clinics/{cid}/services",
        json={
            "code": "laser",
            "name": "Лазерная терапия",
            "aliases": ["Laser therapy", "Лазерна терапія"],
            "specialty": "therapy",
            "duration_minutes": 20,
            "memo_after": "laser_after",
        },
    )
    assert r.status_code == 201, r.text
    assert (await director.post(f"/v1/clinics/{cid}/services", json=r.json())).status_code == 409
    assert (await desk.post(f"/v1/clinics/{cid}/services", json={"code": "x", "name": "x"})).status_code == 403

    # PATCH a built-in entry: the clinic gets its own copy.
    r = await director.patch(f"/v1/clinics/{cid}/services/hygiene", json={"duration_minutes": 45})
    assert r.status_code == 200 and r.json()["source"] == "clinic" and r.json()["memo_after"] == "hygiene_after"
    r = await director.patch(f"/v1/clinics/{cid}/services/hygiene", json={"memo_after": "nope"})
    assert r.status_code == 422
    assert (await director.patch(f"/v1/clinics/{cid}/services/unknown", json={"active": False})).status_code == 404

    # A booking by name in another language finds the clinic's service and its memo.
    appt = await book(api, clinic, in_seconds=3600, service="laser THERAPY")
    assert appt["service_code"] == "laser"
    r = await desk.post(
        f"/v1/clinics/{cid}/templates/preview", json={"kind": "memo.laser_after", "appointment_id": appt["id"]}
    )
    assert r.status_code == 200 and r.json()["text"].endswith("звоните: +380441234567.")


async def test_clinic_and_patient_languages_are_checked(api: Api) -> None:
    admin = api.as_(Role.admin)
    clinic = await make_clinic(api)
    assert clinic["language"] == "ru" and clinic["whatsapp_template"] == "appointment_notice"  # the defaults
    r = await admin.patch(
        f"/v1/clinics/{clinic['id']}",
        json={"language": "uk", "whatsapp_template": "visit_uk", "whatsapp_template_language": "uk"},
    )
    assert r.status_code == 200 and r.json()["language"] == "uk" and r.json()["whatsapp_template"] == "visit_uk"
    for bad in ("de", None):
        r = await admin.patch(f"/v1/clinics/{clinic['id']}", json={"language": bad})
        assert r.status_code == 422 and "language" in r.text
    r = await admin.patch(f"/v1/clinics/{clinic['id']}", json={"policy": {"review_link_to": "happy_ones"}})
    assert r.status_code == 422 and "review_link_to" in r.text
    r = await admin.post(
        "/v1/patients",
        json={"full_name": "Test", "phone": "+380671112233", "clinic_id": clinic["id"], "language": "pl"},
    )
    assert r.status_code == 422 and "language" in r.text
    r = await admin.post(
        "/v1/patients",
        json={"full_name": "Test", "phone": "+380671112233", "clinic_id": clinic["id"], "preferred_channel": "web"},
    )
    assert r.status_code == 422 and "preferred_channel" in r.text
