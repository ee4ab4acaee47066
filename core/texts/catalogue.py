"""A clinic's effective service catalogue (its own entries over the built-in defaults) and
matching a booking's service to it: by code, else by name or alias, case-, punctuation- and
language-insensitively ("УДАЛЕНИЕ ЗУБА", "Видалення зуба" and "tooth extraction" are one)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from core.texts.memos import DEFAULT_SERVICES, ServiceDef
from models.texts import Service

_PUNCT = re.compile(r"[\s\-‐–—_.,;:!?()\"'«»/+ʼ’`]+")


@lru_cache(maxsize=8192)
def normalize_name(text: str) -> str:
    """Casefolded, ё/ї folded, punctuation as spaces. Cached: `match` normalizes every name
    and alias of a catalogue per call (an import matches thousands of rows against it)."""
    t = text.casefold().replace("ё", "е").replace("ї", "і")
    return _PUNCT.sub(" ", t).strip()


@dataclass
class Entry:
    code: str
    name: str
    aliases: list[str] = field(default_factory=list)
    specialty: str | None = None
    duration_minutes: int = 30
    memo_before: str | None = None
    memo_after: str | None = None
    active: bool = True
    source: str = "default"  # default | clinic
    id: str | None = None

    def names(self) -> list[str]:
        return [self.name, *self.aliases]


def from_default(d: ServiceDef, language: str) -> Entry:
    own = d.names.get(language) or d.names["en"]
    others = [n for lang, ns in d.names.items() for n in ns if n not in own]
    return Entry(
        code=d.code,
        name=own[0],
        aliases=[*own[1:], *others, *d.extra_aliases],
        specialty=d.specialty,
        duration_minutes=d.duration_minutes,
        memo_before=d.memo_before,
        memo_after=d.memo_after,
    )


def from_row(r: Service) -> Entry:
    return Entry(
        code=r.code,
        name=r.name,
        aliases=list(r.aliases or []),
        specialty=r.specialty,
        duration_minutes=r.duration_minutes,
        memo_before=r.memo_before,
        memo_after=r.memo_after,
        active=r.active,
        source="clinic",
        id=r.id,
    )


async def catalogue(session: AsyncSession, clinic_id: str, language: str) -> list[Entry]:
    """The clinic's entries, then every built-in entry whose code the clinic has not taken."""
    rows = (await session.exec(select(Service).where(Service.clinic_id == clinic_id).order_by(Service.code))).all()
    own = [from_row(r) for r in rows]
    taken = {e.code for e in own}
    return own + [from_default(d, language) for d in DEFAULT_SERVICES if d.code not in taken]


def has_own(clinic_id: Any) -> Any:
    """SQL: does the clinic have entries of its own (a value or a bound parameter)?"""
    return select(Service.id).where(col(Service.clinic_id) == clinic_id).exists()


@cache
def defaults(language: str) -> list[Entry]:
    """The catalogue of a clinic without entries of its own (built once per language; shared,
    so read only)."""
    return [from_default(d, language) for d in DEFAULT_SERVICES]


def match(entries: list[Entry], code: str | None, text: str | None) -> Entry | None:
    """By code first; then the free text equal to a name or alias; then the longest name or
    alias the text contains as whole words ("Удаление зуба 36" -> extraction). Inactive
    entries never match."""
    live = [e for e in entries if e.active]
    if code:
        for e in live:
            if e.code == code:
                return e
    if not text:
        return None
    t = normalize_name(text)
    if not t:
        return None
    for e in live:
        if t == normalize_name(e.code) or any(t == normalize_name(n) for n in e.names()):
            return e
    best: tuple[int, Entry] | None = None
    padded = f" {t} "
    for e in live:
        for n in e.names():
            nn = normalize_name(n)
            if nn and f" {nn} " in padded and (best is None or len(nn) > best[0]):
                best = (len(nn), e)
    return best[1] if best else None
