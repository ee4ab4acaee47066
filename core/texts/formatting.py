"""Dates and times as a clinic writes them in each language, in the clinic's timezone.
No locale database needed: the month and weekday names are here (genitive for ru/uk)."""

from __future__ import annotations

from datetime import datetime, tzinfo

MONTHS = {
    "ru": (
        "января", "февраля", "марта", "апреля", "мая", "июня",
        "июля", "августа", "сентября", "октября", "ноября", "декабря",
    ),
    "uk": (
        "січня", "лютого", "березня", "квітня", "травня", "червня",
        "липня", "серпня", "вересня", "жовтня", "листопада", "грудня",
    ),
    "en": (
        "January", "February", "March", "April", "May", "June",
        "July", "August", "September", "October", "November", "December",
    ),
}  # fmt: skip
WEEKDAYS = {
    "ru": ("понедельник", "вторник", "среда", "четверг", "пятница", "суббота", "воскресенье"),
    "uk": ("понеділок", "вівторок", "середа", "четвер", "пʼятниця", "субота", "неділя"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}


def local(t: datetime, zone: tzinfo) -> datetime:
    return t.astimezone(zone)


def fmt_date(t: datetime, zone: tzinfo, language: str) -> str:
    """5 декабря · 5 грудня · 5 December (the year only when it is not this visit's year
    as seen from now would be ambiguous; clinics write it for visits in another year)."""
    lt = t.astimezone(zone)
    months = MONTHS.get(language, MONTHS["en"])
    text = f"{lt.day} {months[lt.month - 1]}"
    if lt.year != datetime.now(zone).year:
        text += f" {lt.year}"
    return text


def fmt_time(t: datetime, zone: tzinfo) -> str:
    """24-hour clock in all three languages (what clinics in Ukraine write, and in English)."""
    return t.astimezone(zone).strftime("%H:%M")


def fmt_weekday(t: datetime, zone: tzinfo, language: str) -> str:
    return WEEKDAYS.get(language, WEEKDAYS["en"])[t.astimezone(zone).weekday()]


def first_name(full_name: str) -> str:
    """The name to greet: "Olena Petrenko" -> Olena; "Петренко Олена Іванівна" (surname,
    name, patronymic, the order Ukrainian and Russian records use) -> Олена."""
    parts = full_name.split()
    if not parts:
        return ""
    patronymic = ("вич", "вна", "ична", "ич", "івна", "їна", "ївна")
    if len(parts) == 3 and parts[2].lower().endswith(patronymic):
        return parts[1]
    return parts[0]
