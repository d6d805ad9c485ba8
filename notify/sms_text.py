"""SMS length rules: which alphabet a text needs, how many parts it costs, and transliteration.

Why it matters: one Polish letter (ą, ł, ż…) or a typographic dash turns the whole message
into UCS-2, where a part holds 70 characters instead of 160 — and an office pays per part.
The office can choose to transliterate; the manager sees the cost in parts either way.

Rules (3GPP TS 23.038 / 23.040):

* GSM 7-bit default alphabet: 160 septets in one part; 153 per part when concatenated (the
  user data header takes 7 septets). Characters of the extension table (``€ [ ] { } ^ ~ \\ |``)
  take two septets, and an escape pair is never split between parts.
* UCS-2: 70 UTF-16 code units in one part, 67 per part when concatenated; a surrogate pair
  (an emoji) is never split.

Transliteration choice: Latin letters outside GSM-7 (Polish ą ć ę ł ń ó ś ź ż, and
anything else Latin) and typographic punctuation (– „ ” … NBSP) are replaced by their
closest GSM-7 form (anyascii's table); letters GSM-7 has (é, ö, ü, ß…) stay. **Cyrillic is
never transliterated**: a Ukrainian resident reads "Ваш номер A023" at a glance, while
"Vash nomer A023" is a puzzle (the official Ukrainian romanisation is meant for passports,
not for reading prose) — so Ukrainian messages stay UCS-2 and their templates are kept short.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from enum import StrEnum

import gsm0338  # noqa: F401  (registers the "gsm03.38" codec)
from anyascii import anyascii

GSM7_SINGLE, GSM7_MULTI = 160, 153
UCS2_SINGLE, UCS2_MULTI = 70, 67
MAX_PARTS = 6
"""Longer texts are refused: no notice needs more, and a runaway template must not cost 20 parts."""


class Encoding(StrEnum):
    GSM7 = "gsm7"
    UCS2 = "ucs2"


@dataclass(frozen=True)
class SmsCost:
    encoding: Encoding
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    parts: int

    def describe(self) -> str:
        alphabet = "GSM-7" if self.encoding is Encoding.GSM7 else "UCS-2"
        return f"{self.parts} part{'s' if self.parts != 1 else ''} ({alphabet}, {self.units} characters)"


class TextTooLong(ValueError):
    pass


def gsm7_septets(ch: str) -> int | None:
    """Septets one character takes in GSM-7 (1, or 2 for the extension table); None if it has none."""
    try:
        return len(ch.encode("gsm03.38"))
    except UnicodeEncodeError:
        return None


def is_gsm7(text: str) -> bool:
    return all(gsm7_septets(ch) is not None for ch in text)


def _count_parts(costs: list[int], single: int, multi: int) -> int:
    total = sum(costs)
    if total <= single:
        return 1
    parts, used = 1, 0
    for c in costs:
        if used + c > multi:  # an escape pair or a surrogate pair never straddles two parts
            parts, used = parts + 1, 0
        used += c
    return parts


def analyse(text: str) -> SmsCost:
    """The alphabet, length and part count the text costs as it is."""
    septets = [gsm7_septets(ch) for ch in text]
    if all(s is not None for s in septets):
        costs = [s for s in septets if s is not None]
        return SmsCost(Encoding.GSM7, sum(costs), _count_parts(costs, GSM7_SINGLE, GSM7_MULTI))
    costs = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    return SmsCost(Encoding.UCS2, sum(costs), _count_parts(costs, UCS2_SINGLE, UCS2_MULTI))


def _is_cyrillic(ch: str) -> bool:
    return unicodedata.name(ch, "").startswith("CYRILLIC")


def transliterate(text: str) -> str:
    """Replace what GSM-7 lacks by its closest GSM-7 form, except Cyrillic (see the module's note)."""
    out = []
    for ch in text:
        if gsm7_septets(ch) is not None or _is_cyrillic(ch):
            out.append(ch)
            continue
        plain = anyascii(ch)
        out.append(plain if plain and is_gsm7(plain) else ch)
    return "".join(out)


def prepare(text: str, transliterate_text: bool) -> tuple[str, SmsCost]:
    """The text to send under the office's setting, and its cost; refuses more than MAX_PARTS."""
    final = transliterate(text) if transliterate_text else text
    cost = analyse(final)
    if cost.parts > MAX_PARTS:
        raise TextTooLong(f"the message needs {cost.parts} SMS parts; at most {MAX_PARTS} are allowed")
    return final, cost


@dataclass(frozen=True)
class CostComparison:
    """What a manager sees before sending a list: the cost as written and transliterated."""

    as_written: SmsCost
    transliterated: SmsCost

    def describe(self) -> str:
        return f"as written: {self.as_written.describe()}; transliterated: {self.transliterated.describe()}"


def compare(text: str) -> CostComparison:
    return CostComparison(analyse(text), analyse(transliterate(text)))
