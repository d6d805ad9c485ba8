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

The files are read with Babel (already a server dependency for numbers and dates) when a
domain is first asked for, and kept: no compile step, nothing binary in the repository.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
SOURCE_LANG = "en"
FIRST_LANG = "pl"
"""The office's language: listed first and used when a page is asked for one it lacks."""


def _read(path: Path) -> Catalog:
    with path.open("rb") as f:
        return read_po(f, charset="utf-8")


@cache
def template(domain: str) -> dict[str, str]:
    """Key -> English source text, from ``<domain>.pot``."""
    return {str(m.context): str(m.id) for m in _read(LOCALE_DIR / f"{domain}.pot") if m.id and m.context}


@cache
def languages(domain: str) -> tuple[str, ...]:
    """The languages with a catalogue for ``domain``: the office's first, then alphabetical."""
    found = {p.parent.parent.name for p in LOCALE_DIR.glob(f"*/LC_MESSAGES/{domain}.po")} | {SOURCE_LANG}
    return tuple(sorted(found, key=lambda lang: (lang != FIRST_LANG, lang)))


@cache
def texts(domain: str, lang: str) -> dict[str, str]:
    """Every key of ``domain`` in ``lang`` (English where the translation is missing)."""
    source = template(domain)
    path = LOCALE_DIR / lang / "LC_MESSAGES" / f"{domain}.po"
    translated: dict[str, str] = {}
    if path.exists():
        for m in _read(path):
            if m.id and m.context and isinstance(m.string, str) and m.string and not m.fuzzy:
                translated[str(m.context)] = m.string
    return {key: translated.get(key, english) for key, english in source.items()}


def missing(domain: str, lang: str) -> list[str]:
    """Keys of ``domain`` with no translation in ``lang`` (for the catalogue test and translators)."""
    path = LOCALE_DIR / lang / "LC_MESSAGES" / f"{domain}.po"
    if lang == SOURCE_LANG:
        return []
    done = {str(m.context) for m in _read(path) if m.context and m.string and not m.fuzzy} if path.exists() else set()
    return sorted(set(template(domain)) - done)


def table(domain: str) -> dict[str, dict[str, str]]:
    """Key -> {language: text}: the shape the pages' label tables have always had."""
    langs = languages(domain)
    by_lang = {lang: texts(domain, lang) for lang in langs}
    return {key: {lang: by_lang[lang][key] for lang in langs} for key in template(domain)}
