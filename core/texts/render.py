"""Pure template checks and rendering: `{name}` variables from VARIABLES only."""

from __future__ import annotations

import re
import string
from collections.abc import Mapping

from core.texts.defaults import VARIABLES, limit_of

_FORMATTER = string.Formatter()
_BLANK_LINES = re.compile(r"\n[ \t]*\n([ \t]*\n)+")

# Representative values for checking a template's length without a real visit.
SAMPLE: dict[str, str] = {
    "patient_first_name": "Олександра",
    "patient_name": "Олександра Петренко-Шевченко",
    "clinic": "Стоматологія «Усмішка» на Подолі",
    "address": "вул. Хорива, 1, Київ",
    "phone": "+380441234567",
    "map_link": "https://www.google.com/maps/search/?api=1&query=%D0%B2%D1%83%D0%BB.+%D0%A5%D0%BE%D1%80",
    "doctor": "Коваль Ірина Олександрівна",
    "service": "Встановлення імплантата",
    "date": "15 листопада",
    "weekday": "понеділок",
    "time": "10:30",
    "link": "https://clinic.example/p/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdEFG",
    "memo": "",
    "review_link": "https://g.page/r/CdEfGhIjKlMnOp/review",
    "feedback_link": "https://clinic.example/p/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdEFG/feedback",
    "score": "10",
    "offer": "Профессиональная гигиена со скидкой 20 % до конца месяца, только для вас.",
    "booking_link": "https://clinic.example/online-booking/podil?utm_source=whatsapp&utm_medium=campaign",
    "last_visit": "15 листопада",
    "points": "12500",
}


class TemplateError(ValueError):
    """A template a clinic cannot save: names the variable or the limit."""

    def __init__(self, message: str, field: str = "text") -> None:
        super().__init__(message)
        self.field = field


def variables_in(text: str) -> list[str]:
    """The `{names}` a template uses; TemplateError for an unknown name or a malformed brace."""
    try:
        parts = list(_FORMATTER.parse(text))
    except ValueError as e:
        raise TemplateError(f"malformed braces: {e}; write a literal brace as {{{{ or }}}}") from None
    names: list[str] = []
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name == "" or not name.isidentifier():
            raise TemplateError(f"unknown variable {{{name}}}: variables are {{name}} with a known name")
        if spec or conversion:
            raise TemplateError(f"variable {{{name}}} takes no format or conversion")
        if name not in VARIABLES:
            raise TemplateError(f"unknown variable {{{name}}}; known: {', '.join(sorted(VARIABLES))}")
        if name not in names:
            names.append(name)
    return names


def render(text: str, values: Mapping[str, str]) -> str:
    variables_in(text)
    out = _FORMATTER.vformat(text, (), {k: values.get(k, "") for k in VARIABLES})
    return _BLANK_LINES.sub("\n\n", out).strip()


def check(kind: str, text: str) -> str:
    """Validate a template for saving: known variables, and within the channel's limit when
    rendered with representative values. Returns that sample rendering."""
    if not text.strip():
        raise TemplateError("text is empty")
    sample = render(text, SAMPLE)
    limit = limit_of(kind)
    if len(sample) > limit:
        raise TemplateError(
            f"text is over the limit for {kind}: {len(sample)} characters with sample values, limit {limit}"
        )
    return sample
