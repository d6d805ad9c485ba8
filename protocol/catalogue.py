"""User-facing texts from gettext catalogues: the one loader every role uses (devices and server).

Layout, the same for every domain (``kiosk``, ``display``, ``counter``, and the server's pages):
``<locale>/<domain>.pot`` is the template — the stable key the code uses in ``msgctxt``, the
English source in ``msgid`` (and ``msgid_plural`` where a number is counted) — and
``<locale>/<lang>/LC_MESSAGES/<domain>.po`` a translation. A translator adds a language by
copying the template to a PO file and filling it in with any PO editor; the language appears
(the kiosk's language buttons, the pages' switch) because its file exists. An entry that is
missing, empty or fuzzy falls back to the English text, so a half-finished file never shows a
key to a resident. Plural entries follow the PO file's ``Plural-Forms`` header (Polish and
Ukrainian have three forms: "1 osoba, 2 osoby, 5 osób").

Why the ``.po`` files are read at start, with the standard library, and not compiled ``.mo``
files through :mod:`gettext`'s ``GNUTranslations``: the devices stay light (no Babel on a
kiosk or a counter Pi; Babel is the translators' and developers' tool for ``pybabel update``),
there is no compile step to forget and no binary file in the repository that can drift from
its source — what a translator saved is what the kiosk shows, which a test can check without
a build. The cost is parsing a few hundred entries once per domain (a few milliseconds, see
docs/translating.md). Plural expressions go through the standard library's own compiler of C
plural expressions (:func:`gettext.c2py`, the one ``GNUTranslations`` uses), so a
``Plural-Forms`` line means exactly what it means to GNU gettext. ``tests/test_catalogue.py``
checks that this reader and Babel's read every catalogue of the repository the same way.

Only the standard library here: every role imports this module.
"""

from __future__ import annotations

import gettext
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SOURCE_LANG = "en"
"""The language of ``msgid``: always complete, never needs a PO file."""
FIRST_LANG = "pl"
"""The office's language: listed first, and the fallback for a language nobody wrote."""


class CatalogueError(ValueError):
    """A PO file that cannot be read (its path and line say where)."""


@dataclass(frozen=True)
class Entry:
    """One message of a PO/POT file."""

    context: str
    id: str
    plural: str = ""
    strings: tuple[str, ...] = ()
    """``msgstr`` (one item) or ``msgstr[0..n]`` (plural entries); empty strings untranslated."""
    fuzzy: bool = False

    @property
    def translated(self) -> bool:
        return bool(self.strings) and all(self.strings) and not self.fuzzy


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
_ESCAPE = re.compile(r"\\(.)")
_KEYWORD = re.compile(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?)\s+"(.*)"\s*$')


def _unquote(text: str) -> str:
    return _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(1)), text)


def read_po(path: Path) -> tuple[dict[str, str], list[Entry]]:
    """The header's fields and the entries of a PO or POT file (obsolete ``#~`` entries skipped)."""
    header: dict[str, str] = {}
    entries: list[Entry] = []
    fields: dict[str, str] = {}
    strings: dict[int, str] = {}
    fuzzy = False
    last: tuple[str, int] | None = None

    def flush() -> None:
        nonlocal fields, strings, fuzzy, last
        if "msgid" in fields:
            ordered = tuple(strings[i] for i in sorted(strings))
            if not fields["msgid"] and "msgctxt" not in fields:
                for line in (ordered[0] if ordered else "").splitlines():
                    name, _, value = line.partition(":")
                    if name.strip():
                        header[name.strip()] = value.strip()
            else:
                entries.append(
                    Entry(fields.get("msgctxt", ""), fields["msgid"], fields.get("msgid_plural", ""), ordered, fuzzy)
                )
        fields, strings, fuzzy, last = {}, {}, False, None

    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line:
            flush()
            continue
        if line.startswith("#"):
            if last is not None:  # a comment starts the next entry
                flush()
            if line.startswith("#,") and "fuzzy" in (f.strip() for f in line[2:].split(",")):
                fuzzy = True
            continue
        if line.startswith('"') and line.endswith('"') and len(line) >= 2 and last is not None:
            name, at = last
            if name == "msgstr":
                strings[at] += _unquote(line[1:-1])
            else:
                fields[name] += _unquote(line[1:-1])
            continue
        m = _KEYWORD.match(line)
        if m is None:
            raise CatalogueError(f"{path}:{number}: cannot read {line[:60]!r}")
        keyword, plural_index, value = m.group(1), m.group(2), _unquote(m.group(3))
        if keyword in ("msgctxt", "msgid") and ("msgid" in fields and strings):
            flush()  # a new entry without a blank line before it
        if keyword.startswith("msgstr"):
            i = int(plural_index) if plural_index is not None else 0
            strings[i] = value
            last = ("msgstr", i)
        else:
            fields[keyword] = value
            last = (keyword, 0)
    flush()
    return header, entries


def plural_rule(header: dict[str, str]) -> Callable[[int], int]:
    """The ``Plural-Forms`` header's ``plural=`` as a function (English's ``n != 1`` without one)."""
    m = re.search(r"plural\s*=\s*([^;]+)", header.get("Plural-Forms", ""))
    return gettext.c2py(m.group(1).strip() if m else "n != 1")


@dataclass
class Translation:
    """One language of one domain: key -> text(s), and its plural rule."""

    lang: str
    texts: dict[str, tuple[str, ...]]
    plural: Callable[[int], int]


@dataclass
class Catalogue:
    """One domain's texts in every language that has a PO file under ``directory``.

    Files are read when first needed and kept (a device reads each once at start)."""

    directory: Path
    domain: str
    _template: dict[str, Entry] | None = field(default=None, repr=False)
    _langs: dict[str, Translation] = field(default_factory=dict, repr=False)

    def po_path(self, lang: str) -> Path:
        return self.directory / lang / "LC_MESSAGES" / f"{self.domain}.po"

    def template(self) -> dict[str, Entry]:
        """Key -> the template's entry (English source, plural source)."""
        if self._template is None:
            _, entries = read_po(self.directory / f"{self.domain}.pot")
            self._template = {e.context: e for e in entries if e.context and e.id}
        return self._template

    def languages(self) -> tuple[str, ...]:
        """The languages with a catalogue: the office's first, then alphabetical (English always)."""
        found = {p.parent.parent.name for p in self.directory.glob(f"*/LC_MESSAGES/{self.domain}.po")}
        return tuple(sorted(found | {SOURCE_LANG}, key=lambda lang: (lang != FIRST_LANG, lang)))

    def translation(self, lang: str) -> Translation:
        if lang not in self._langs:
            path = self.po_path(lang)
            header, entries = read_po(path) if lang != SOURCE_LANG and path.exists() else ({}, [])
            done = {e.context: e.strings for e in entries if e.context and e.id and e.translated}
            self._langs[lang] = Translation(lang, done, plural_rule(header))
        return self._langs[lang]

    def text(self, key: str, lang: str) -> str:
        """The text of ``key`` in ``lang`` (English where it is not translated). ``KeyError``
        for a key the template lacks: a typo in code fails loudly in tests, not on a kiosk."""
        source = self.template()[key]
        got = self.translation(lang).texts.get(key)
        return got[0] if got else source.id

    def plural(self, key: str, n: int, lang: str) -> str:
        """The form of ``key`` for the number ``n`` in ``lang`` (``ngettext`` keyed by context)."""
        source = self.template()[key]
        tr = self.translation(lang)
        got = tr.texts.get(key)
        if got:
            index = tr.plural(n)
            return got[index] if index < len(got) else got[-1]
        return source.id if n == 1 or not source.plural else source.plural

    def missing(self, lang: str) -> list[str]:
        """Keys with no (or an incomplete, or a fuzzy) translation in ``lang``, for translators and tests."""
        if lang == SOURCE_LANG:
            return []
        return sorted(set(self.template()) - set(self.translation(lang).texts))

    def table(self) -> dict[str, dict[str, str]]:
        """Key -> {language: text}: the shape the old text tables had (a plural entry: its first form)."""
        langs = self.languages()
        return {key: {lang: self.text(key, lang) for lang in langs} for key in self.template()}


def main(argv: list[str] | None = None) -> int:
    """``python -m protocol.catalogue DIRECTORY DOMAIN``: each language's count, and what is missing.

    The translator's check after editing a PO file (no compile step: this is what the role reads).
    Exit status 1 when a language misses an entry, 2 when a file cannot be read."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m protocol.catalogue", description=main.__doc__)
    p.add_argument("directory", type=Path, help="the locale directory, e.g. kiosk/locale")
    p.add_argument("domain", help="the domain, e.g. kiosk")
    a = p.parse_args(argv)
    c = Catalogue(a.directory, a.domain)
    try:
        total = len(c.template())
        report = {lang: c.missing(lang) for lang in c.languages()}
    except (OSError, CatalogueError) as e:
        print(f"error: {e}")
        return 2
    for lang, missing in report.items():
        print(
            f"{lang}: {total - len(missing)} of {total} translated"
            + (f", missing: {', '.join(missing)}" if missing else "")
        )
    return 1 if any(report.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
