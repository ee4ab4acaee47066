"""Reading the clinic MIS's export files: CSV (UTF-8 or Windows-1251; `;`, `,` or tab, all
detected) and XLSX (the first sheet), a header row naming the columns, then one record per
row. No database and no Temporal here: the import activities turn these cells into
patients and visits.

Errors name what a person at the clinic can fix: `FileError` (the whole file: encoding,
missing column) and `RowError` (one cell: its column header and why)."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

import phonenumbers

from models.imports import DEFAULT_HEADERS, KIND_FIELDS, REQUIRED, ImportKind

MAX_ROWS = 100_000


class FileError(Exception):
    """The file as a whole cannot be imported (nothing is applied)."""


class RowError(Exception):
    def __init__(self, column: str | None, reason: str) -> None:
        super().__init__(reason)
        self.column, self.reason = column, reason


@dataclass
class Table:
    headers: list[str]
    rows: list[tuple[int, list[Any]]]  # (row number as the spreadsheet shows it, cells)


# ------------------------------------------------------------------ reading
def read_table(content: bytes) -> Table:
    if not content.strip():
        raise FileError("the file is empty")
    if content[:4] == b"PK\x03\x04":
        return _read_xlsx(content)
    return _read_csv(content)


def _read_xlsx(content: bytes) -> Table:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as e:
        raise FileError("the file looks like a spreadsheet but cannot be opened as XLSX; save it again as .xlsx") from e
    try:
        ws = wb.worksheets[0]
        it = ws.iter_rows(values_only=True)
        headers: list[str] | None = None
        rows: list[tuple[int, list[Any]]] = []
        for n, values in enumerate(it, start=1):
            cells = list(values)
            if headers is None:
                if _blank(cells):
                    continue
                headers = [_text(c) for c in cells]
                continue
            if _blank(cells):
                continue
            rows.append((n, cells))
            if len(rows) > MAX_ROWS:
                raise FileError(f"the file has more than {MAX_ROWS} rows; split it")
    finally:
        wb.close()
    if headers is None:
        raise FileError("the file has no header row")
    return Table(headers, rows)


def _read_csv(content: bytes) -> Table:
    text = _decode(content)
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    delimiter = max((";", ",", "\t"), key=first.count)
    if first.count(delimiter) == 0 and len(first.split()) > 1:
        raise FileError("cannot find the column separator in the header row: use ';' or ','")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    headers: list[str] | None = None
    rows: list[tuple[int, list[Any]]] = []
    try:
        for n, cells in enumerate(reader, start=1):
            if headers is None:
                if _blank(cells):
                    continue
                headers = [c.strip() for c in cells]
                continue
            if _blank(cells):
                continue
            rows.append((n, cells))
            if len(rows) > MAX_ROWS:
                raise FileError(f"the file has more than {MAX_ROWS} rows; split it")
    except csv.Error as e:
        raise FileError(f"the CSV cannot be read near line {reader.line_num}: {e}") from e
    if headers is None:
        raise FileError("the file has no header row")
    return Table(headers, rows)


def _decode(content: bytes) -> str:
    """UTF-8 (with or without BOM), else Windows-1251 (what Russian Excel saves as CSV)."""
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        text = content.decode("cp1251")
    except UnicodeDecodeError as e:
        raise FileError("the file is neither UTF-8 nor Windows-1251 text; save it as CSV (UTF-8) or XLSX") from e
    if "\x00" in text:
        raise FileError("the file is not a CSV or XLSX export")
    return text


def _blank(cells: Iterable[Any]) -> bool:
    return all(c is None or (isinstance(c, str) and not c.strip()) for c in cells)


# ------------------------------------------------------------------ columns
def header_key(h: str) -> str:
    return re.sub(r"\s+", "", h.casefold().replace("ё", "е"))


def resolve_columns(headers: list[str], overrides: dict[str, Any], kind: ImportKind) -> dict[str, int]:
    """Field name -> column index, using the clinic's mapping first, then the defaults.
    A missing required column fails the file, saying which headers would do."""
    index = {header_key(h): i for i, h in enumerate(headers) if h}
    out: dict[str, int] = {}
    for fld in KIND_FIELDS[kind]:
        wanted = overrides.get(fld)
        names = [wanted] if isinstance(wanted, str) and wanted else DEFAULT_HEADERS[fld]
        for name in names:
            i = index.get(header_key(name))
            if i is not None:
                out[fld] = i
                break
    missing = [f for f in REQUIRED[kind] if f not in out]
    if missing:
        parts = []
        for f in missing:
            wanted = overrides.get(f)
            names = [wanted] if isinstance(wanted, str) and wanted else DEFAULT_HEADERS[f]
            parts.append(f"{f} (a column named {' or '.join(repr(n) for n in names)})")
        raise FileError(
            "the file has no column for "
            + ", ".join(parts)
            + "; rename the column or set it in the clinic's import mapping (PUT /v1/clinics/{id}/import-mapping)"
        )
    return out


# ------------------------------------------------------------------ cells
def text(v: Any) -> str | None:
    s = _text(v)
    return s or None


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, datetime):
        return v.isoformat(sep=" ")
    return re.sub(r"\s+", " ", str(v)).strip()


_DATE_FORMATS = ("%d.%m.%Y", "%d.%m.%y", "%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y")


def parse_date(v: Any, column: str) -> date:
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, date):
        return v
    s = _text(v)
    if not s:
        raise RowError(column, "the date is empty")
    head = s.split(" ")[0].split("T")[0]
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(head, fmt).date()
        except ValueError:
            continue
    raise RowError(column, f"{s!r} is not a date; write it as DD.MM.YYYY (e.g. 27.11.2026)")


def parse_time(v: Any, column: str) -> time:
    if isinstance(v, datetime):
        return v.time().replace(second=0, microsecond=0)
    if isinstance(v, time):
        return v.replace(second=0, microsecond=0)
    if isinstance(v, timedelta):
        return (datetime.min + v).time()
    if isinstance(v, float) and 0 <= v < 1:  # an Excel time stored as a fraction of a day
        minutes = round(v * 24 * 60)
        return time(minutes // 60, minutes % 60)
    s = _text(v)
    m = re.fullmatch(r"(\d{1,2})[:.](\d{2})(?:[:.]\d{2})?", s)
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise RowError(column, f"{s!r} is not a time of day; write it as HH:MM (e.g. 09:30)")
    return time(int(m.group(1)), int(m.group(2)))


def time_in_date_cell(v: Any) -> time | None:
    """A date cell that also carries the time ("27.11.2026 09:30", or an Excel datetime)."""
    if isinstance(v, datetime):
        t = v.time()
        return t if t != time(0) else None
    s = _text(v)
    m = re.search(r"[ T](\d{1,2}[:.]\d{2})", s)
    return parse_time(m.group(1), "") if m else None


def parse_int(v: Any, column: str, lo: int, hi: int) -> int:
    s = _text(v).replace(" ", "").replace("\u00a0", "")
    try:
        n = int(float(s.replace(",", ".")))
    except ValueError:
        raise RowError(column, f"{s!r} is not a whole number") from None
    if not lo <= n <= hi:
        raise RowError(column, f"{n} is outside {lo}..{hi}")
    return n


def parse_phone(v: Any, column: str, region: str | None) -> str | None:
    """A phone as the MIS writes it (8 (067) 123-45-67, 0671234567, +380…) in E.164."""
    s = _text(v)
    if not s:
        return None
    try:
        num = phonenumbers.parse(s, region)
    except phonenumbers.NumberParseException:
        num = None
    if num is None or not phonenumbers.is_valid_number(num):
        raise RowError(column, f"{s!r} is not a valid phone number; write it with the country code, e.g. +380671234567")
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def region_of(clinic_phone: str) -> str | None:
    """The clinic's own country: local numbers in its files are read in it."""
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(clinic_phone, None))
    except phonenumbers.NumberParseException:
        return None


def name_key(name: str) -> str:
    return " ".join(name.casefold().replace("ё", "е").split())


# Visit outcomes in a completed-visits file.
_FINISHED = {"пришел", "был", "была", "состоялся", "завершен", "выполнен", "оказан", "да", "1", "finished", "done"}
_NO_SHOW = {"не пришел", "не пришла", "неявка", "не явился", "не явилась", "нет", "0", "no_show", "no-show"}


def parse_outcome(v: Any, column: str) -> str:
    s = name_key(_text(v))
    if not s or s in _FINISHED:
        return "finished"
    if s in _NO_SHOW:
        return "no_show"
    raise RowError(column, f"{_text(v)!r} is not a visit outcome; write «пришёл» or «не пришёл»")


# Lead sources as Russian/Ukrainian MIS exports write them -> the slugs of clinic.lead_sources.
SOURCE_WORDS = {
    "сайт": "site",
    "звонок": "call",
    "телефон": "call",
    "рекомендация": "referral",
    "по рекомендации": "referral",
    "рекомендація": "referral",
    "инстаграм": "instagram",
    "instagram": "instagram",
    "фейсбук": "facebook",
    "facebook": "facebook",
    "продокторов": "prodoctorov",
    "prodoctorov": "prodoctorov",
    "гугл": "google",
    "google": "google",
    "с улицы": "walk_in",
    "проходил мимо": "walk_in",
    "другое": "other",
    "інше": "other",
}


def parse_source(v: Any, column: str, allowed: list[str]) -> str | None:
    s = name_key(_text(v))
    if not s:
        return None
    slug = SOURCE_WORDS.get(s, s.replace(" ", "_"))
    if allowed and slug not in allowed:
        raise RowError(column, f"{_text(v)!r} is not one of the clinic's lead sources ({', '.join(allowed)})")
    return slug
