""" "Your document is ready for pick-up": what a clerk types or a manager's list holds, checked.

Plain functions, no I/O: the clerk panel's form and the managers' CSV upload
(server/pickup_web.py) both turn their fields into :class:`PickupRow` here, so one rule says
what a valid row is, and a list is imported only when every row is (a half-imported list
would leave the clerk guessing which residents were told).

The CSV comes from the office's domain system or from Excel: UTF-8 (with or without a BOM)
or Windows-1250, separated by ``;`` (Polish Excel), ``,`` or a tab, with a header naming the
columns in Polish or English: ``sygnatura/reference``, ``kontakt/contact`` (a phone number
or an e-mail), ``dokument/document``, ``usluga/service`` and optionally ``jezyk/lang``.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from notify.config import NotifyConfig
from notify.message import Channel, NoticeKind
from notify.sms_text import prepare
from notify.templates import LANGUAGES, render
from server.config import WEEKDAYS, Hours, Names, Notifications, SiteConfig
from server.notices import PHONE_REASONS, ContactError, parse_contact

REFERENCE = re.compile(r"^[0-9A-Za-zĄĆĘŁŃÓŚŹŻąćęłńóśźż./\-_ ]{1,40}$")
MAX_ROWS = 2000

COLUMNS: dict[str, tuple[str, ...]] = {
    "reference": ("reference", "sygnatura", "sygn", "numer sprawy"),
    "contact": ("contact", "kontakt", "telefon", "phone", "e-mail", "email"),
    "document": ("document", "dokument"),
    "service": ("service", "usluga", "usługa", "wydzial", "wydział"),
    "lang": ("lang", "jezyk", "język", "language"),
}

DAY_NAMES = {
    "pl": ("pn", "wt", "śr", "czw", "pt", "sob", "nd"),
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
    "uk": ("пн", "вт", "ср", "чт", "пт", "сб", "нд"),
}


@dataclass(frozen=True)
class PickupRow:
    reference: str
    channel: Channel
    recipient: str
    document: str  # a document kind's id
    service: str
    lang: str


@dataclass(frozen=True)
class Problem:
    line: int  # the line of the file (1 is the header); 0 for the file as a whole
    message: str


def _match(value: str, names: dict[str, Names]) -> str | None:
    """An id given as itself or as one of its names, case-insensitive."""
    text = value.strip()
    if text in names:
        return text
    folded = text.casefold()
    for key, n in names.items():
        if folded in {v.casefold() for v in n.as_dict().values()}:
            return key
    return None


def check_row(
    fields: dict[str, str], settings: Notifications, notify: NotifyConfig, site: SiteConfig
) -> tuple[PickupRow | None, list[str]]:
    """One row's fields → the row, or the problems (each a sentence naming the field)."""
    problems: list[str] = []
    reference = fields.get("reference", "").strip()
    if not REFERENCE.match(reference):
        problems.append("sygnatura: 1–40 znaków: litery, cyfry, . / - _ (reference)")
    channel: Channel | None = None
    recipient = ""
    try:
        channel, recipient = parse_contact(fields.get("contact", ""), notify)
    except ContactError as exc:
        why = PHONE_REASONS.get(exc.detail, {}).get("pl", exc.detail)
        problems.append(f"kontakt: {CONTACT_PROBLEMS.get(exc.code, exc.code)}{': ' + why if why else ''}")
    document = _match(fields.get("document", ""), settings.documents)
    if document is None:
        problems.append(
            f"dokument: nieznany rodzaj {fields.get('document', '')!r} (znane: {', '.join(settings.documents)})"
        )
    service_names = {s.id: s.name for s in site.services if s.id in settings.pickup}
    service = _match(fields.get("service", ""), service_names)
    if service is None:
        problems.append(
            f"usługa: {fields.get('service', '')!r} nie wydaje dokumentów (znane: {', '.join(service_names) or 'brak'})"
        )
    lang = (fields.get("lang") or "pl").strip().lower() or "pl"
    if lang not in LANGUAGES:
        problems.append(f"język: {lang!r}, dozwolone {', '.join(LANGUAGES)}")
    if problems or channel is None or document is None or service is None:
        return None, problems
    return PickupRow(reference, channel, recipient, document, service, lang), []


CONTACT_PROBLEMS = {
    "empty": "brak numeru telefonu lub adresu e-mail",
    "email": "to nie jest adres e-mail",
    "phone": "nie można wysłać SMS na ten numer",
    "no_sms": "urząd nie ma bramki SMS",
    "no_email": "urząd nie ma bramki e-mail",
}


class _Semicolon(csv.excel):
    delimiter = ";"


def decode(data: bytes) -> str:
    """UTF-8 (a BOM is dropped), else Windows-1250 (Polish Excel's "CSV" on Windows)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1250", errors="replace")


def parse_csv(
    data: bytes, settings: Notifications, notify: NotifyConfig, site: SiteConfig
) -> tuple[list[PickupRow], list[Problem]]:
    """Every row checked; the rows are only to be used when the problems are none."""
    text = decode(data)
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        return [], [Problem(0, "plik jest pusty: pierwszy wiersz to nagłówek (sygnatura;kontakt;dokument;usluga)")]
    dialect: type[csv.Dialect] | csv.Dialect
    try:
        dialect = csv.Sniffer().sniff(lines[0], delimiters=";,\t")
    except csv.Error:
        dialect = _Semicolon
    reader = csv.reader(io.StringIO(text), dialect)
    header = [h.strip().casefold() for h in next(reader)]
    where: dict[str, int] = {}
    for column, names in COLUMNS.items():
        for i, h in enumerate(header):
            if h in names:
                where[column] = i
    missing = [c for c in ("reference", "contact", "document", "service") if c not in where]
    if missing:
        wanted = ", ".join(f"{COLUMNS[c][1]} ({c})" for c in missing)
        return [], [Problem(1, f"nagłówek: brak kolumn {wanted}")]
    rows: list[PickupRow] = []
    problems: list[Problem] = []
    seen: dict[tuple[str, str], int] = {}
    for values in reader:
        line = reader.line_num
        if not any(v.strip() for v in values):
            continue
        if len(rows) + len(problems) >= MAX_ROWS:
            problems.append(Problem(line, f"więcej niż {MAX_ROWS} wierszy: podziel listę"))
            break
        fields = {c: values[i] if i < len(values) else "" for c, i in where.items()}
        row, found = check_row(fields, settings, notify, site)
        if row is not None:
            key = (row.reference, row.recipient)
            if key in seen:
                found = [f"powtórzony wiersz {seen[key]} (ta sama sygnatura i kontakt)"]
                row = None
            else:
                seen[key] = line
        if row is None:
            problems.append(Problem(line, "; ".join(found)))
        else:
            rows.append(row)
    if not rows and not problems:
        problems.append(Problem(0, "plik nie ma żadnego wiersza poza nagłówkiem"))
    return rows, problems


def hours_text(hours: dict[str, Hours], lang: str) -> str:
    """The service's opening hours in words: "pn–pt 08:00–16:00, sob 09:00–13:00"."""
    names = DAY_NAMES.get(lang, DAY_NAMES["pl"])
    runs: list[tuple[int, int, str]] = []
    for i, day in enumerate(WEEKDAYS):
        h = hours.get(day)
        if h is None:
            continue
        text = f"{Hours.clock(h.opens)}–{Hours.clock(h.closes)}"
        if runs and runs[-1][1] == i - 1 and runs[-1][2] == text:
            runs[-1] = (runs[-1][0], i, text)
        else:
            runs.append((i, i, text))
    return ", ".join(f"{names[a]}{'–' + names[b] if b != a else ''} {t}" for a, b, t in runs)


def payload(row: PickupRow, settings: Notifications, site: SiteConfig) -> dict[str, object]:
    """The template's values (notify/templates.py, document_ready), each a {language: text} table."""
    place = settings.pickup[row.service]
    service = site.service(row.service)
    assert service is not None
    return {
        "document": settings.documents[row.document].as_dict(),
        "where": place.where.as_dict(),
        "counter": place.counter.as_dict(),
        "hours": {lang: hours_text(service.hours, lang) for lang in LANGUAGES},
        "reference": row.reference,
    }


@dataclass(frozen=True)
class Preview:
    """What a list costs before it is sent: messages per channel, SMS parts, price."""

    sms: int
    email: int
    parts: int
    price: float
    sample: str  # the first message's text, as the resident will read it


def preview(rows: list[PickupRow], settings: Notifications, notify: NotifyConfig, site: SiteConfig) -> Preview:
    zone = ZoneInfo(notify.notify.timezone)
    parts = sms = email = 0
    sample = ""
    for row in rows:
        values = {"office": notify.notify.office, **payload(row, settings, site)}
        text = render(NoticeKind.DOCUMENT_READY, row.lang, values, zone).text
        sample = sample or text
        if row.channel is Channel.SMS:
            sms += 1
            parts += prepare(text, notify.notify.transliterate)[1].parts
        else:
            email += 1
    return Preview(sms, email, parts, round(parts * settings.sms_part_price, 2), sample)
