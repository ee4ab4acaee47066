"""The reply classifier (pure): confirm / decline / other, and NPS scores."""

from __future__ import annotations

import pytest

from contracts.replies import classify, parse_score


@pytest.mark.parametrize(
    "text",
    [
        "да",
        "Да!",
        "буду",
        "Подтверждаю",
        "приду",
        "так",
        "Так.",
        "yes",
        "Y",
        "ok",
        "Okay",
        "1",
        "+",
        "👍",
        "confirm:abc123",
        "  да, буду  ",
        "ДА",
    ],
)
def test_confirm_words(text: str) -> None:
    assert classify(text) == "confirm"


@pytest.mark.parametrize(
    "text", ["нет", "Нет.", "не приду", "не смогу", "отмена", "ні", "не зможу", "no", "N", "2", "decline:abc123"]
)
def test_decline_words(text: str) -> None:
    assert classify(text) == "decline"


@pytest.mark.parametrize(
    "text",
    ["cancel", "CANCEL", "stop", "Unsubscribe", "what time?", "можно перенести на вторник?", "", None, "12", "yes no"],
)
def test_everything_else_goes_to_a_person(text: str | None) -> None:
    # CANCEL/STOP are carrier opt-out words: never an appointment decline.
    assert classify(text) == "other"


@pytest.mark.parametrize(
    ("text", "score"), [("10", 10), (" 7 ", 7), ("0", 0), ("8/10", 8), ("11", None), ("nice", None), ("-1", None)]
)
def test_scores(text: str, score: int | None) -> None:
    assert parse_score(text) == score


@pytest.mark.parametrize(
    ("text", "meaning"),
    [
        ("Так, буду", "confirm"),
        ("да, приду!", "confirm"),
        ("Ok 👍", "confirm"),
        ("Нет, не смогу.", "decline"),
        ("не буду", "decline"),
        ("ні, не прийду", "decline"),
        # mixed or anything more: a person reads it
        ("да не приду", "other"),
        ("буду в 10", "other"),
        ("cancel please", "other"),
        ("Yes, but later", "other"),
    ],
)
def test_phrases_with_punctuation(text: str, meaning: str) -> None:
    assert classify(text) == meaning
