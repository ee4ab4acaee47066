"""What a patient's free-text reply means for an appointment: confirm, decline or other.

Pure and deterministic (used inside the journeys and by inbound routing). Carrier
opt-out words (STOP, CANCEL, UNSUBSCRIBE, ...) are deliberately NOT appointment keywords:
the carrier acts on them, and reading "cancel" as "decline" would cancel on an opt-out.
Anything we do not recognise goes to a person ("other").
"""

from __future__ import annotations

import re
from typing import Literal

Meaning = Literal["confirm", "decline", "other"]

CONFIRM_WORDS = frozenset(
    {
        # ru
        "да",
        "ага",
        "буду",
        "подтверждаю",
        "подтвердить",
        "приду",
        "хорошо",
        "ок",
        "конечно",
        "да буду",
        "да приду",
        "да, буду",
        "да, приду",
        # uk
        "так",
        "підтверджую",
        "прийду",
        "добре",
        "так буду",
        "так прийду",
        # en
        "yes",
        "y",
        "yep",
        "yeah",
        "ok",
        "okay",
        "confirm",
        "confirmed",
        "sure",
        # symbols / digits
        "1",
        "+",
        "👍",
        "✅",
    }
)
DECLINE_WORDS = frozenset(
    {
        # ru
        "нет",
        "не приду",
        "не смогу",
        "не буду",
        "отмена",
        "отменить",
        "отмените",
        "нет не приду",
        "нет, не приду",
        "нет не смогу",
        "нет, не смогу",
        # uk
        "ні",
        "не прийду",
        "не зможу",
        "скасувати",
        "ні не прийду",
        "ні, не прийду",
        # en
        "no",
        "n",
        "nope",
        "decline",
        "can't come",
        "cannot come",
        "not coming",
        # symbols / digits
        "2",
        "-",
        "👎",
        "❌",
    }
)
# The one opt-out vocabulary: carrier words (CTIA / Twilio) plus Russian and Ukrainian.
# Inbound routing opts the patient out on them (and back in on OPT_IN_WORDS); the journeys
# never read them as an appointment answer. CANCEL is here on purpose: an opt-out word.
OPT_OUT_WORDS = frozenset(
    {"stop", "unsubscribe", "end", "quit", "stopall", "revoke", "optout", "cancel", "стоп", "отписаться", "відписатися"}
)
OPT_IN_WORDS = frozenset({"start", "unstop", "старт"})

_TRIM = re.compile(r"^[\s.!,;:()\"'«»]+|[\s.!,;:()\"'«»]+$")
_SPACES = re.compile(r"\s+")
_INNER_PUNCT = re.compile(r"[.!?,;:()\"'«»]+")
# Single words that, alone or together, still mean the same ("Так, буду", "Ok 👍", "Нет, не
# приду"). A reply mixing both kinds ("да не приду") or holding any other word ("буду в 10")
# goes to a person.
_CONFIRM_TOKENS = frozenset(w for w in CONFIRM_WORDS if " " not in w and "," not in w)
_DECLINE_TOKENS = frozenset(
    {w for w in DECLINE_WORDS if " " not in w and "," not in w}
    | {"не", "приду", "прийду", "смогу", "зможу", "буду", "come", "can't", "cannot", "not", "coming"}
)


def normalize(text: str) -> str:
    t = _SPACES.sub(" ", text.strip().lower().replace("ё", "е"))
    return _TRIM.sub("", t) or t.strip()


def classify(text: str | None) -> Meaning:
    """Free text or a button id ("confirm:<id>", "decline:<id>") -> confirm/decline/other."""
    if not text:
        return "other"
    raw = text.strip()
    low = raw.lower()
    if low.startswith("confirm:"):
        return "confirm"
    if low.startswith("decline:"):
        return "decline"
    t = normalize(raw)
    if t in OPT_OUT_WORDS:
        return "other"
    if t in CONFIRM_WORDS:
        return "confirm"
    if t in DECLINE_WORDS:
        return "decline"
    tokens = _INNER_PUNCT.sub(" ", t).split()
    if not tokens or any(tok in OPT_OUT_WORDS for tok in tokens):
        return "other"
    if all(tok in _CONFIRM_TOKENS for tok in tokens):
        return "confirm"
    negated = any(tok in ("не", "ні", "нет", "no", "not", "can't", "cannot") for tok in tokens)
    if negated and all(tok in _DECLINE_TOKENS for tok in tokens):
        return "decline"
    return "other"


# Like / dislike, answered to the survey (a score is better, but a thumb is an answer too).
LIKE_WORDS = frozenset({"👍", "👍🏻", "👍🏼", "👍🏽", "👍🏾", "👍🏿", "лайк", "like", "❤️", "❤", "супер", "super"})
DISLIKE_WORDS = frozenset({"👎", "👎🏻", "👎🏼", "👎🏽", "👎🏾", "👎🏿", "дизлайк", "dislike"})


def feedback_word(text: str | None) -> str | None:
    """ "like" / "dislike" for 👍 / 👎, «лайк» / «дизлайк», like / dislike; else None."""
    if not text:
        return None
    t = normalize(text)
    if t in LIKE_WORDS:
        return "like"
    if t in DISLIKE_WORDS:
        return "dislike"
    return None


def parse_score(text: str | None) -> int | None:
    """An NPS answer: "10", "8/10", " 7 " -> int 0..10; anything else -> None."""
    if not text:
        return None
    m = re.fullmatch(r"\s*(\d{1,2})(?:\s*/\s*10)?\s*[.!]?\s*", text)
    if not m:
        return None
    n = int(m.group(1))
    return n if 0 <= n <= 10 else None


def opt_word(text: str | None) -> Literal["stop", "start"] | None:
    """A message that is only an opt-out ("stop") or opt-in ("start") word, else None."""
    if not text:
        return None
    word = re.sub(r"[\s.!,;:/]+", " ", text).strip().lower()
    if word in OPT_OUT_WORDS:
        return "stop"
    if word in OPT_IN_WORDS:
        return "start"
    return None
