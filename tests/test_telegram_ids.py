"""Telegram's chat.id is an integer in every Bot API object: the API takes it as a number or
as digits (negative group ids too) and always answers the same canonical string."""

from __future__ import annotations

import pytest

from models.core import Role
from tests.support.api import Api


@pytest.mark.parametrize(
    ("sent", "stored"),
    [(700010002, "700010002"), ("700010003", "700010003"), (-1001234567890, "-1001234567890"), ("-42", "-42")],
)
async def test_chat_id_as_number_or_digits(api: Api, sent: object, stored: str) -> None:
    r = await api.as_(Role.front_desk).post(
        "/v1/patients", json={"full_name": "Taras", "preferred_channel": "telegram", "telegram_chat_id": sent}
    )
    assert r.status_code == 201, r.text
    assert r.json()["telegram_chat_id"] == stored
    again = await api.as_(Role.front_desk).get(f"/v1/patients/{r.json()['id']}")
    assert again.json()["telegram_chat_id"] == stored


@pytest.mark.parametrize("sent", ["@olena", "12a", 1.5, True, 10**25])
async def test_chat_id_that_is_not_a_number_is_422(api: Api, sent: object) -> None:
    r = await api.as_(Role.front_desk).post(
        "/v1/patients", json={"full_name": "Taras", "preferred_channel": "telegram", "telegram_chat_id": sent}
    )
    assert r.status_code == 422
    assert "telegram_chat_id" in r.text
