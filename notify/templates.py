"""The texts residents receive, per language (pl, en, uk), in one catalogue.

Why it is shaped like this: the project will move user-facing text to gettext catalogues.
Each entry's English text is written to be its ``msgid``; the Polish and Ukrainian entries
are what the .po files will hold; counted words go through Babel's CLDR plural rules
(``ngettext`` later). Nothing else in the package holds a user-facing sentence, so the move
touches this module only.

SMS texts are kept short: a Polish text with diacritics is UCS-2 (70 characters a part) unless
the office transliterates; Ukrainian always is (see notify.sms_text). The tests check every
template's cost in parts with realistic values.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_datetime

from notify.message import NoticeKind

LANGUAGES = ("pl", "en", "uk")
DEFAULT_LANGUAGE = "pl"


@dataclass(frozen=True)
class Template:
    subject: str
    text: str
    link: str = ""
    """Appended when the values have a ``link`` (a booking's page to move or cancel it): the
    link costs an SMS part or two, so a message without one stays as short as before."""


CATALOGUE: dict[NoticeKind, dict[str, Template]] = {
    NoticeKind.TURN_NEAR: {
        "en": Template(
            "Your turn is near",
            "{office}: {ticket} – {ahead} {people} ahead of you ({minutes} min). Please come back to the hall.",
        ),
        "pl": Template(
            "Zbliża się Twoja kolej",
            "{office}: {ticket} – przed Tobą {ahead} {people} (ok. {minutes} min). Wróć do poczekalni.",
        ),
        "uk": Template(
            "Ваша черга наближається",
            "{office}: {ticket} – перед вами {ahead} {people} (~{minutes} хв). Поверніться до зали.",
        ),
    },
    NoticeKind.CALLED: {
        "en": Template("You are called", "{office}: {ticket} – {counter}, {place}. Please come now."),
        "pl": Template("Zapraszamy", "{office}: {ticket} – {counter}, {place}. Zapraszamy."),
        "uk": Template("Вас запрошують", "{office}: {ticket} – {counter}, {place}. Запрошуємо."),
    },
    NoticeKind.DOCUMENT_READY: {
        "en": Template(
            "Document ready for pick-up",
            "{office}: {document} ready for pick-up {where}, {counter}, {hours}. Ref. {reference}.",
        ),
        "pl": Template(
            "Dokument do odbioru", "{office}: {document} do odbioru {where}, {counter}, {hours}. Sygn. {reference}."
        ),
        "uk": Template(
            "Документ готовий", "{office}: {document} можна отримати {where}, {counter}, {hours}. Номер {reference}."
        ),
    },
    NoticeKind.BOOKING_CONFIRMED: {
        "en": Template(
            "Appointment booked", "{office}: booked {service}, {at}, {where}. Code {code}.", "Change or cancel: {link}"
        ),
        "pl": Template(
            "Wizyta zarezerwowana",
            "{office}: rezerwacja {service}, {at}, {where}. Kod {code}.",
            "Zmiana lub odwołanie: {link}",
        ),
        "uk": Template(
            "Візит заброньовано",
            "{office}: бронювання {service}, {at}, {where}. Код {code}.",
            "Змінити чи скасувати: {link}",
        ),
    },
    NoticeKind.BOOKING_REMINDER: {
        "en": Template(
            "Appointment reminder", "{office}: reminder – {service}, {at}, {where}. Code {code}.", "Cannot come? {link}"
        ),
        "pl": Template(
            "Przypomnienie o wizycie",
            "{office}: przypominamy – {service}, {at}, {where}. Kod {code}.",
            "Nie możesz przyjść? {link}",
        ),
        "uk": Template(
            "Нагадування про візит", "{office}: нагадуємо – {service}, {at}, {where}. Код {code}.", "Не зможете? {link}"
        ),
    },
    NoticeKind.OPTOUT_CONFIRMED: {
        "en": Template(
            "No more messages", "{office}: you will receive no more messages from us. To undo, reply START."
        ),
        "pl": Template(
            "Rezygnacja z wiadomości",
            "{office}: Nie będziesz już otrzymywać wiadomości od nas. Aby to cofnąć, odpisz START.",
        ),
        "uk": Template(
            "Більше без повідомлень",
            "{office}: ви більше не отримуватимете від нас повідомлень. Щоб скасувати, надішліть START.",
        ),
    },
    NoticeKind.TEST: {
        "en": Template("Numerek test message", "{office}: Numerek test message."),
        "pl": Template("Wiadomość testowa Numerka", "{office}: wiadomość testowa Numerka – zażółć gęślą jaźń."),
        "uk": Template("Тестове повідомлення", "{office}: тестове повідомлення Numerek."),
    },
}

PLURAL_WORDS: dict[str, dict[str, dict[str, str]]] = {
    # word id -> language -> CLDR plural form -> word (ngettext's singular/plural forms later)
    "people": {
        "en": {"one": "person", "other": "people"},
        "pl": {"one": "osoba", "few": "osoby", "many": "osób", "other": "osoby"},
        "uk": {"one": "особа", "few": "особи", "many": "осіб", "other": "особи"},
    },
}

DATE_FORMAT = "EEE d MMM, HH:mm"
"""CLDR pattern for a booking's time: "wt. 15 gru, 09:30", "Tue 15 Dec, 09:30"."""


class TemplateError(ValueError):
    pass


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str

    def html(self) -> str:
        """The e-mail's HTML alternative: the same words, escaped, readable at a large size."""
        body = html.escape(self.text)
        return (
            "<!doctype html><html><body>"
            f'<p style="font-size:18px;line-height:1.5;font-family:sans-serif">{body}</p>'
            "</body></html>"
        )


def _pick(value: object, lang: str) -> str:
    """A parameter may be one string or a {language: string} table (counter and service names are)."""
    if isinstance(value, Mapping):
        for candidate in (lang, DEFAULT_LANGUAGE, "en"):
            if candidate in value:
                return str(value[candidate])
        return str(next(iter(value.values()), ""))
    return str(value)


def render(kind: NoticeKind, lang: str, params: Mapping[str, object], zone: ZoneInfo) -> Rendered:
    """The notice's subject and text in ``lang`` (falls back to Polish); clear error on a missing value."""
    lang = lang if lang in LANGUAGES else DEFAULT_LANGUAGE
    template = CATALOGUE[kind][lang]
    values = {key: _pick(value, lang) for key, value in params.items()}
    if "ahead" in params:
        form = Locale.parse(lang).plural_form(int(str(params["ahead"])))
        words = PLURAL_WORDS["people"][lang]
        values["people"] = words.get(form, words["other"])
    if "at" in params:
        at = datetime.fromisoformat(str(params["at"])).astimezone(zone)
        values["at"] = format_datetime(at, DATE_FORMAT, locale=lang)
    text = template.text
    if template.link and values.get("link"):
        text = f"{text} {template.link}"
    try:
        return Rendered(template.subject, text.format_map(values))
    except KeyError as exc:
        raise TemplateError(f"the {kind.value} message needs a value for {exc.args[0]!r}") from None
