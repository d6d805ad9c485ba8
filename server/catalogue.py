"""User-facing texts of the server's pages, from gettext catalogues (``server/locale``).

Why catalogues and not dictionaries in code: a translator adds a language by copying
``server/locale/<domain>.pot`` to ``server/locale/<lang>/LC_MESSAGES/<domain>.po`` and filling
it in with any PO editor (Poedit, Weblate, Lokalize) — no code changes, and a new language
appears on the pages' language switch when its file exists.

How the entries are keyed: ``msgctxt`` is the stable name the code and templates use
(``L.issued``), ``msgid`` the English source text a translator translates, ``msgstr`` the
translation. An entry missing or empty in a language falls back to the English text, so a
half-finished catalogue never shows a key to a reader; ``tests/test_catalogue.py`` lists
what is missing.

The files are read by :mod:`protocol.catalogue`, the same loader the kiosk, the hall display
and the counter unit use (standard library only, the ``.po`` read at first use and kept: no
compile step, nothing binary in the repository). ``LOCALE_DIR`` is read at each first use, so
a tool (or a test) can point it at a copy.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from protocol.catalogue import FIRST_LANG, SOURCE_LANG, Catalogue

LOCALE_DIR = Path(__file__).resolve().parent / "locale"

__all__ = ["FIRST_LANG", "LOCALE_DIR", "SOURCE_LANG", "catalogue", "languages", "missing", "table", "template", "texts"]


@cache
def catalogue(domain: str) -> Catalogue:
    """The domain's catalogue under :data:`LOCALE_DIR`."""
    return Catalogue(LOCALE_DIR, domain)


def template(domain: str) -> dict[str, str]:
    """Key -> English source text, from ``<domain>.pot``."""
    return {key: entry.id for key, entry in catalogue(domain).template().items()}


@cache
def languages(domain: str) -> tuple[str, ...]:
    """The languages with a catalogue for ``domain``: the office's first, then alphabetical."""
    return catalogue(domain).languages()


@cache
def texts(domain: str, lang: str) -> dict[str, str]:
    """Every key of ``domain`` in ``lang`` (English where the translation is missing)."""
    c = catalogue(domain)
    return {key: c.text(key, lang) for key in c.template()}


def missing(domain: str, lang: str) -> list[str]:
    """Keys of ``domain`` with no translation in ``lang`` (for the catalogue test and translators)."""
    return catalogue(domain).missing(lang)


def table(domain: str) -> dict[str, dict[str, str]]:
    """Key -> {language: text}: the shape the pages' label tables have always had."""
    return catalogue(domain).table()
