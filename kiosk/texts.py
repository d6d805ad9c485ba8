"""Everything the kiosk says, in Polish, English and Ukrainian — read from the ``kiosk`` catalogue.

Short, plain sentences: the readers include elderly residents and people who are
learning Polish. Each refusal says what happened *and* what to do next.

The words live in ``kiosk/locale`` (gettext: ``kiosk.pot``, the key in ``msgctxt`` and the
English source in ``msgid``; ``<lang>/LC_MESSAGES/kiosk.po`` a translation), read at start by
:mod:`protocol.catalogue`. A new text is a ``.pot`` entry plus an entry in each PO file, then
``t("its_key", lang)`` here — docs/translating.md has the commands. A translator adds a
language with a PO file alone: its ``language_name`` entry labels its button.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

from protocol.catalogue import Catalogue
from protocol.waits import wait_text

CATALOGUE = Catalogue(Path(__file__).resolve().parent / "locale", "kiosk")

LANGUAGES: tuple[str, ...] = CATALOGUE.languages()
"""Polish first, then every language with a PO file (English, Ukrainian, a translator's new one)."""
LANGUAGE_NAMES: dict[str, str] = {lang: CATALOGUE.text("language_name", lang) for lang in LANGUAGES}

PRINT_PREFIX = "print_"
"""The printed ticket's own, shorter wording: ``print_people_ahead`` beside the screen's ``people_ahead``."""

TEXTS: dict[str, dict[str, str]] = {
    key: row for key, row in CATALOGUE.table().items() if not key.startswith(PRINT_PREFIX)
}
"""Key -> {language: text}, the table's old shape (a plural entry shows its first form: use :func:`t`)."""

# The printed ticket is always Polish (the office's language) plus the visitor's language.
PRINT_TEXTS: dict[str, dict[str, str]] = {
    key.removeprefix(PRINT_PREFIX): row for key, row in CATALOGUE.table().items() if key.startswith(PRINT_PREFIX)
}

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# "on Monday" as a sentence needs it ("zapraszamy w poniedziałek"), Monday first.
ON_WEEKDAY: dict[str, tuple[str, ...]] = {
    lang: tuple(CATALOGUE.text(f"on_{day}", lang) for day in WEEKDAYS) for lang in LANGUAGES
}


def come_back(when: datetime, today: date, lang: str) -> str:
    """When to come back, as said to a resident: "jutro od 8:00", "w poniedziałek od 8:00",
    "14.12 od 8:00" (a date beyond the coming week). ``when`` and ``today`` in office time."""
    hour = f"{when.hour}:{when.minute:02d}"
    days = (when.date() - today).days
    if days == 1:
        return t("come_back_tomorrow", lang, t=hour)
    if 1 < days < 7:
        day = ON_WEEKDAY.get(lang, ON_WEEKDAY["pl"])[when.weekday()]
    else:
        day = f"{when.day}.{when.month:02d}"
    return t("come_back_on", lang, day=day, t=hour)


def t(key: str, lang: str, **kw: object) -> str:
    """The text of ``key`` in ``lang``, its ``{fields}`` filled in. A plural entry (``msgid_plural``
    in the catalogue) takes the form its language's ``Plural-Forms`` gives for ``n``: Polish
    "Kod ma 1 znak / 2 znaki / 6 znaków". A language the kiosk lacks reads Polish."""
    lang = lang if lang in LANGUAGES else "pl"
    n = kw.get("n")
    if CATALOGUE.template()[key].plural and isinstance(n, int):
        text = CATALOGUE.plural(key, n, lang)
    else:
        text = CATALOGUE.text(key, lang)
    return text.format(**kw) if kw else text


def service_name(names: dict[str, str], lang: str) -> str:
    """The service's name in ``lang``; Polish, then English, when the office gave none."""
    return names.get(lang) or names.get("pl") or names.get("en") or "?"


def wait_words(range_min: tuple[int, int] | list[int] | None, minutes: int | None, sent: bool, lang: str) -> str:
    """The wait as a resident reads it: the server's range in words ("15–30 min", "do 5 min",
    "we cannot estimate the wait now"), or "ok. 12 min" from a server written before ranges.

    Why a range: one number promises a precision nobody has (protocol/waits.py); ``sent`` tells
    a server's "cannot estimate" (the range field present and null) from an old server.
    """
    if sent:
        return wait_text(range_min, lang) if range_min is not None else t("wait_unknown_short", lang)
    return t("wait_min", lang, m=minutes if minutes is not None else "?")
