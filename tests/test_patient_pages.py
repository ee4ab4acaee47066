"""The patient's pages (issue 9) in a real headless Chromium (JavaScript off): the signed
link from the booking notice opens the visit in the patient's language, Confirm moves the
appointment to `confirmed` through the inbound path, I can't come hands it to the desk,
the feedback form reaches the journey, and a tampered or expired link shows a plain page."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from temporalio.client import Client

from contracts.appointment import AppointmentOutcome
from core.deps import Deps
from core.links import make_token, read_token
from core.settings import Settings
from models.appointment import Appointment
from models.core import Role
from tests.support.api import Api
from tests.support.appointments import book, make_clinic, sent, state, tasks
from tests.support.browser import chromium
from tests.support.live import eventually

LINK = re.compile(r"(https?://\S+/p/[A-Za-z0-9_\-]+)(/feedback)?")


async def _link(deps: Deps, appointment_id: str, kind: str) -> str:
    async def found() -> str:
        msgs = [m for m in await sent(deps, appointment_id) if m.kind == kind]
        assert msgs, kind
        m = LINK.search(msgs[0].body or "")
        assert m, msgs[0].body
        return m.group(0)

    return await eventually(found)


async def test_visit_page_confirm_calendar_and_memo_in_russian(
    api: Api, deps: Deps, settings: Settings, tmp_path: Path
) -> None:
    clinic = await make_clinic(api, fields={"language": "ru"}, patient={"full_name": "Петренко Олена Іванівна"})
    appt = await book(api, clinic, in_seconds=3600, service="Удаление зуба")
    link = await _link(deps, appt["id"], "booking_notice")
    token = link.rsplit("/", 1)[1]
    assert appt["id"] not in link and "Олена" not in link and read_token(settings.link_secret, token)[0] == appt["id"]

    async with chromium() as b:
        await b.get(link)
        await b.screenshot(tmp_path / "visit.png")
        html = await b.source()
        assert "Ваш визит" in html and "Dr Shevchenko" in html and "Удаление зуба" in html
        assert "1 Khreshchatyk St, Kyiv" in html and 'href="tel:+380441234567"' in html
        assert "google.com/maps" in (await b.attr("a[rel~=noopener]", "href") or "")
        assert (await b.text("#status")) == "ожидает подтверждения"
        assert "Перед операцией" in await b.text("#memo")
        assert "Traceback" not in html

        await b.click("#confirm")
        assert (await b.text("#done")) == "Спасибо! Визит подтверждён."
        assert not await b.exists("#confirm")  # answered: no second button press offered

    async def confirmed() -> None:
        assert (await state(api, appt["id"]))["stage"] == "confirmed"

    await eventually(confirmed)

    async with httpx.AsyncClient() as http:
        r = await http.get(f"{link}/visit.ics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/calendar")
    start = datetime.fromisoformat(appt["starts_at"]).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    assert "BEGIN:VEVENT" in r.text and f"DTSTART:{start}" in r.text and "LOCATION:1 Khreshchatyk St\\, Kyiv" in r.text


async def test_i_cant_come_hands_the_visit_to_the_desk(api: Api, deps: Deps) -> None:
    clinic = await make_clinic(api, fields={"language": "uk"})
    appt = await book(api, clinic, in_seconds=3600, service="Консультація")
    link = await _link(deps, appt["id"], "booking_notice")
    async with chromium() as b:
        await b.get(link)
        assert (await b.text("#decline")) == "Не зможу прийти"
        await b.click("#decline")
        assert "Адміністратор зв'яжеться" in await b.text("#done")

    async def declined() -> None:
        assert (await state(api, appt["id"]))["stage"] == "needs_clarification"
        assert [t["kind"] for t in await tasks(api, appt["id"])] == ["declined"]

    await eventually(declined)


async def test_feedback_form_reaches_the_journey(api: Api, client: Client, deps: Deps) -> None:
    clinic = await make_clinic(api, fields={"language": "ru"})
    appt = await book(api, clinic, service="Профессиональная гигиена")
    await eventually(lambda: _has(deps, appt["id"], "booking_notice"))
    for action, role in (("confirm", Role.operator), ("check-in", Role.front_desk), ("finish", Role.doctor)):
        assert (await api.as_(role).post(f"/v1/appointments/{appt['id']}/{action}")).status_code == 200
    link = await _link(deps, appt["id"], "survey")
    assert link.endswith("/feedback")

    async with chromium() as b:
        await b.get(link)
        assert "Как прошёл визит?" in await b.source()
        await b.click("#score-3")
        await b.click("#admin-like")
        await b.click("#doctor-dislike")
        await b.type("#comment", "Долго ждала в очереди")
        await b.click("#send")
        assert (await b.text("#done")).startswith("Спасибо за отзыв!")

    out = await client.get_workflow_handle(appt["workflow_id"], result_type=AppointmentOutcome).result()
    assert out.nps == 3
    kinds = sorted(t["kind"] for t in await tasks(api, appt["id"]))
    assert kinds == ["detractor_feedback", "patient_feedback"]
    fb = next(t for t in await tasks(api, appt["id"]) if t["kind"] == "patient_feedback")
    assert fb["details"]["comment"] == "Долго ждала в очереди" and fb["details"]["doctor_rating"] == "dislike"
    # The visit page after the visit shows the care memo that was sent.
    visit = await _link(deps, appt["id"], "booking_notice")
    async with chromium() as b:
        await b.get(visit)
        assert (await b.text("#status")) == "визит завершён"
        assert "После профессиональной гигиены" in await b.text("#memo")
        assert not await b.exists("#confirm") and not await b.exists("#ics")


async def test_tampered_and_expired_links_show_a_clear_page(api: Api, deps: Deps, settings: Settings) -> None:
    clinic = await make_clinic(api, fields={"language": "ru"})
    appt = await book(api, clinic, in_seconds=3600)
    link = await _link(deps, appt["id"], "booking_notice")
    token = link.rsplit("/", 1)[1]
    tampered = link[: -len(token)] + ("A" if token[5] != "A" else "B").join([token[:5], token[6:]])
    base = link[: -len(token)]

    # An old visit (its journey long over): the link expired a week after the survey window.
    async with deps.sessions() as s:
        old = Appointment(
            clinic_id=clinic["id"],
            doctor_id=clinic["doctor_id"],
            patient_id=clinic["patient_id"],
            service="Консультация",
            starts_at=datetime.now(UTC) - timedelta(days=60),
            ends_at=datetime.now(UTC) - timedelta(days=60) + timedelta(minutes=30),
            duration_minutes=30,
            stage="finished",
            workflow_id="appointment-old",
        )
        s.add(old)
        await s.commit()
        old_id = old.id
    expired = base + make_token(settings.link_secret, old_id)

    async with chromium() as b:
        await b.get(tampered)
        text = await b.text("#problem")
        assert "Ссылка недействительна" in text and "This link is not valid" in text
        await b.get(expired)
        assert "Срок действия ссылки истёк" in await b.text("#problem") and "+380441234567" in await b.text("#problem")
        assert "Traceback" not in await b.source()
    async with httpx.AsyncClient() as http:
        assert (await http.get(tampered)).status_code == 404
        assert (await http.get(expired)).status_code == 410
        assert (await http.post(f"{expired}/confirm")).status_code == 410
        assert (await http.get(base + "not-a-token")).status_code == 404
        # A visit link is not a feedback link and the other way round.
        assert (await http.get(base + make_token(settings.link_secret, appt["id"], "feedback"))).status_code == 404


async def _has(deps: Deps, appointment_id: str, kind: str) -> None:
    assert kind in [m.kind for m in await sent(deps, appointment_id)]
