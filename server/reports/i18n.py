"""Labels of the reports in Polish (first) and English (from the catalogues in server/locale), and numbers and dates written the way
each reader expects (Babel's CLDR data: "12,5" and "7 gru 2026, 10:15" in Polish, "12.5" and
"7 Dec 2026, 10:15" in English). Figures never depend on the language.
"""

from __future__ import annotations

from datetime import date, datetime

from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal

from server.catalogue import languages, table

LANGS = languages("reports")
LOCALES = {"pl": "pl_PL", "en": "en_GB"}  # en_GB: a 24-hour clock and day-month order, as in the office

LABELS: dict[str, dict[str, str]] = table("reports")
"""Key -> {language: text}, from the gettext catalogues in server/locale (server/catalogue.py)."""


class Labels(dict[str, str]):
    """The labels of one language, plus that language's way of writing numbers and dates
    (templates call ``L.number(v, 1)``)."""

    def __init__(self, lang: str) -> None:
        super().__init__({k: v[lang] for k, v in LABELS.items()})
        self.lang = lang

    def number(self, value: float | None, digits: int = 1, sign: bool = False) -> str:
        return fmt_number(value, self.lang, digits, sign)

    def minutes(self, seconds: float | None, digits: int = 1) -> str:
        return fmt_number(None if seconds is None else seconds / 60, self.lang, digits)

    def percent(self, share: float | None, digits: int = 1) -> str:
        if share is None:
            return "—"
        return fmt_number(share * 100, self.lang, digits) + (" %" if self.lang == "pl" else "%")  # Polish: "81,2 %"

    def date(self, d: date) -> str:
        return fmt_date(d, self.lang)

    def datetime(self, dt: datetime) -> str:
        return fmt_datetime(dt, self.lang)


def labels(lang: str) -> Labels:
    return Labels(lang if lang in LANGS else "pl")


def fmt_number(value: float | None, lang: str, digits: int = 1, sign: bool = False) -> str:
    """``12,5`` (pl) / ``12.5`` (en); "—" for no value; ``sign``: always show + or −."""
    if value is None:
        return "—"
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    if sign:
        pattern = f"+{pattern};-{pattern}"
    return format_decimal(value, pattern, locale=LOCALES.get(lang, "pl_PL"))


def fmt_date(d: date, lang: str) -> str:
    """``7.12.2026`` (pl) / ``07/12/2026`` (en): the short date each reader writes."""
    return format_date(d, "short" if lang == "en" else "d.MM.y", locale=LOCALES.get(lang, "pl_PL"))


def fmt_date_short(d: date, lang: str) -> str:
    """Day and month only (chart axes): ``07.12`` (pl) / ``07/12`` (en)."""
    return format_date(d, "dd.MM" if lang != "en" else "dd/MM", locale=LOCALES.get(lang, "pl_PL"))


def fmt_datetime(dt: datetime, lang: str) -> str:
    """A local date and time to the second: ``7 gru 2026, 10:15:03`` / ``7 Dec 2026, 10:15:03``."""
    return format_datetime(dt, "medium", tzinfo=dt.tzinfo, locale=LOCALES.get(lang, "pl_PL"))
