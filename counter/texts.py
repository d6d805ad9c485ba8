"""What the counter unit's number display says, from the ``counter`` catalogue (``counter/locale``).

Polish without diacritics on purpose (the display converts, but a clerk reading a cheap
HD44780 from an angle reads plain letters best) and at most 16 columns: the catalogue's
comments say so to a translator, and ``tests/test_catalogue_devices.py`` checks the width.
Polish and English; a new text is a ``counter.pot`` entry plus a ``pl`` PO entry
(docs/translating.md), read by :mod:`protocol.catalogue` like every role's texts.
"""

from __future__ import annotations

from pathlib import Path

from protocol.catalogue import Catalogue

CATALOGUE = Catalogue(Path(__file__).resolve().parent / "locale", "counter")


def text(key: str, lang: str = "pl", **kw: object) -> str:
    """``key`` in ``lang`` with its ``{fields}`` filled in (English where the language lacks it)."""
    got = CATALOGUE.text(key, lang)
    return got.format(**kw) if kw else got
