"""Everything the hall display writes, from the ``display`` catalogue (``display/locale``).

The board speaks to a hall: every caption is shown in the board's languages at once, Polish
first ("Wywołany numer · Now calling"), because nobody can switch a TV's language. The
``display`` catalogue has Polish, English and Ukrainian; :data:`BOARD_LANGUAGES` are the two
the board shows unless its config says others (``[display] languages``). A new text is a ``display.pot`` entry plus an entry in each PO file
(docs/translating.md); the keys are read by :mod:`protocol.catalogue`, the loader every role
shares, and never change the board's layout code.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from protocol.catalogue import Catalogue

CATALOGUE = Catalogue(Path(__file__).resolve().parent / "locale", "display")

BOARD_LANGUAGES: tuple[str, ...] = ("pl", "en")
"""The board's languages by default, in the order shown: the office's language, then English."""

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def text(key: str, lang: str = "pl") -> str:
    """One text in one language (English where the language's file lacks it)."""
    return CATALOGUE.text(key, lang)


def caption(key: str, sep: str = " \u00b7 ", langs: Sequence[str] = BOARD_LANGUAGES) -> str:
    """``key`` in every board language: "Wywołany numer · Now calling" (``sep="\\n"``: one per line)."""
    return sep.join(CATALOGUE.text(key, lang) for lang in langs)


def board_date(d: datetime, lang: str = "pl") -> str:
    """The date under the clock: "poniedziałek, 7 grudnia 2026"."""
    return text("date", lang).format(
        weekday=text(f"weekday_{WEEKDAYS[d.weekday()]}", lang),
        day=d.day,
        month=text(f"month_{d.month}", lang),
        year=d.year,
    )
