"""The API base: health, auth, roles, directory validation (against the live API)."""

from __future__ import annotations

import httpx

from models.core import Role
from tests.support.api import Api


async def test_health_names_nothing_missing_when_all_up(api: Api) -> None:
    r = await api.http.get("/health")
    assert r.status_code == 200, r.text
    assert r.json()["worker"] == "ok"


async def test_openapi_docs_served(api: Api) -> None:
    assert (await api.http.get("/docs")).status_code == 200
    spec = (await api.http.get("/openapi.json")).json()
    assert "/v1/clinics" in spec["paths"]


async def test_wrong_password_is_401(api: Api, users: dict[Role, str]) -> None:
    r = await api.http.post("/v1/auth/token", data={"username": users[Role.admin], "password": "definitely-wrong"})
    assert r.status_code == 401
    assert "wrong username or password" in r.json()["detail"]
    r = await api.http.post("/v1/auth/token", data={"username": "nobody", "password": "x" * 10})
    assert r.status_code == 401


async def test_no_token_401_bad_token_401(api: Api) -> None:
    assert (await api.http.get("/v1/clinics")).status_code == 401
    r = await api.http.get("/v1/clinics", headers={"Authorization": "Bearer not.a.jwt"})
    assert r.status_code == 401


async def test_wrong_role_is_403(api: Api) -> None:
    r = await api.as_(Role.accountant).post(
        "/v1/clinics", json={"name": "X", "address": "Y", "phone": "+380441234567", "timezone": "Europe/Kyiv"}
    )
    assert r.status_code == 403
    assert "accountant" in r.json()["detail"]


async def test_me(api: Api, users: dict[Role, str]) -> None:
    r = await api.as_(Role.operator).get("/v1/auth/me")
    assert r.status_code == 200 and r.json()["role"] == "operator"
    assert r.json()["username"] == users[Role.operator]


def _fields(r: httpx.Response) -> set[str]:
    return {str(e["loc"][-1]) for e in r.json()["detail"]}


async def test_clinic_validation_names_the_field(api: Api) -> None:
    admin = api.as_(Role.admin)
    base = {"name": "Smile", "address": "Kyiv", "phone": "+380441234567", "timezone": "Europe/Kyiv"}
    r = await admin.post("/v1/clinics", json={**base, "timezone": "Mars/Olympus"})
    assert r.status_code == 422 and "timezone" in _fields(r)
    assert "IANA" in r.text
    r = await admin.post("/v1/clinics", json={**base, "phone": "12345"})
    assert r.status_code == 422 and "phone" in _fields(r)
    r = await admin.post("/v1/clinics", json={**base, "policy": {"reminder_lead": "tomorrow"}})
    assert r.status_code == 422 and "reminder_lead" in _fields(r)
    r = await admin.post("/v1/clinics", json={**base, "policy": {"reminder_lade": 10}})
    assert r.status_code == 422 and "reminder_lade" in _fields(r)


async def test_clinic_patch_checks_fields_as_create_does(api: Api) -> None:
    admin = api.as_(Role.admin)
    base = {"name": "Smile", "address": "Kyiv", "phone": "+380441234567", "timezone": "Europe/Kyiv"}
    c = (await admin.post("/v1/clinics", json=base)).json()
    for field, bad in [("timezone", "Mars/Olympus"), ("phone", "12345"), ("language", "xx"), ("code", "a b")]:
        r = await admin.patch(f"/v1/clinics/{c['id']}", json={field: bad})
        assert r.status_code == 422 and field in _fields(r), (field, r.text)
    r = await admin.patch(f"/v1/clinics/{c['id']}", json={"phone": "+38 (044) 765-43-21"})
    assert r.status_code == 200, r.text
    assert r.json()["phone"] == "+380447654321"
    r = await admin.post("/v1/clinics", json={**base, "phone": "  "})
    assert r.status_code == 422 and "phone" in _fields(r)


async def test_clinic_policy_accepts_iso_and_seconds_and_patch_merges(api: Api) -> None:
    admin = api.as_(Role.admin)
    r = await admin.post(
        "/v1/clinics",
        json={
            "name": "Smile",
            "address": "Kyiv",
            "phone": "+380441234567",
            "timezone": "Europe/Kyiv",
            "policy": {"reminder_lead": "PT2H", "reask_interval": 90},
        },
    )
    assert r.status_code == 201, r.text
    c = r.json()
    assert c["id"] and c["policy"]["reminder_lead"] == "PT2H"
    assert c["policy"]["reask_interval"] == "PT1M30S"
    r = await admin.patch(f"/v1/clinics/{c['id']}", json={"policy": {"reask_count": 2}})
    assert r.status_code == 200, r.text
    assert r.json()["policy"]["reask_count"] == 2
    assert r.json()["policy"]["reminder_lead"] == "PT2H"
    r = await admin.patch(f"/v1/clinics/{c['id']}", json={"policy": {"reask_count": -1}})
    assert r.status_code == 422 and "reask_count" in _fields(r)
    assert (await admin.get(f"/v1/clinics/{c['id']}")).json()["policy"]["reask_count"] == 2


async def test_doctor_and_patients(api: Api, clinic: dict) -> None:
    admin, desk = api.as_(Role.admin), api.as_(Role.front_desk)
    r = await admin.post("/v1/doctors", json={"clinic_id": "nope", "full_name": "Dr A", "specialty": "implantology"})
    assert r.status_code == 422 and "clinic_id" in _fields(r)
    r = await admin.post(
        "/v1/doctors", json={"clinic_id": clinic["id"], "full_name": "Dr A", "specialty": "implantology"}
    )
    assert r.status_code == 201 and r.json()["id"]

    r = await desk.post(
        "/v1/patients",
        json={"full_name": "Olena Petrenko", "phone": "+380 67 123 45 67", "preferred_channel": "whatsapp"},
    )
    assert r.status_code == 201, r.text
    parent = r.json()
    assert parent["phone"] == "+380671234567"
    r = await desk.post(
        "/v1/patients",
        json={
            "full_name": "Child",
            "birth_date": "2018-05-01",
            "preferred_channel": "sms",
            "guardian_id": parent["id"],
        },
    )
    assert r.status_code == 201 and r.json()["phone"] is None
    r = await desk.post("/v1/patients", json={"full_name": "Nobody", "preferred_channel": "sms"})
    assert r.status_code == 422 and "phone" in _fields(r)
    r = await desk.post(
        "/v1/patients", json={"full_name": "X", "phone": "+380671234567", "preferred_channel": "pigeon"}
    )
    assert r.status_code == 422 and "preferred_channel" in _fields(r)
    r = await desk.post(
        "/v1/patients", json={"full_name": "X", "preferred_channel": "telegram", "phone": "+380671234567"}
    )
    assert r.status_code == 422 and "telegram_chat_id" in _fields(r)
    r = await api.as_(Role.accountant).post("/v1/patients", json={"full_name": "X", "phone": "+380671234567"})
    assert r.status_code == 403


async def test_tasks_queue_filters(api: Api) -> None:
    r = await api.as_(Role.operator).get("/v1/tasks", params={"state": "bogus"})
    assert r.status_code == 422 and "state" in r.text
    r = await api.as_(Role.operator).get("/v1/tasks", params={"state": "open"})
    assert r.status_code == 200 and isinstance(r.json(), list)


async def test_list_filters_name_an_unknown_choice(api: Api) -> None:
    admin = api.as_(Role.admin)
    for url, field in [
        ("/v1/appointments?stage=lost", "stage"),
        ("/v1/appointments?source=fax", "source"),
        ("/v1/treatment-plans?direction=astrology", "direction"),
        ("/v1/waitlist?state=maybe", "state"),
        ("/v1/tasks?state=maybe", "state"),
        ("/v1/reports/expenses?month=2026-13", "month"),
    ]:
        r = await admin.get(url)
        assert r.status_code == 422, (url, r.text)
        (err,) = r.json()["detail"]
        assert err["loc"] == ["query", field], (url, err)
        if field != "month":
            assert "one of" in err["msg"], (url, err)
