"""What the hall display says for a call, in each of its spoken languages, from the ``display`` catalogue.

Why here and not in :mod:`hardware.audio`: the words are the display's texts like its captions
("Numer A 23, stanowisko 4", "Number A 23, counter 4", "Номер A 23, вікно 4"), so a translator
adds a spoken language with one PO file (``say_call``, ``say_recall``, ``say_counter``) and
the ``[audio] languages`` line, no code. The hardware layer knows no language: the
:class:`hardware.audio.Announcer` is handed a :class:`Phrases` and speaks what it returns.
What stays in hardware is how espeak-ng must be *given* a ticket so it reads it as a resident
does (:func:`hardware.audio.spoken_ticket`: letters spelled, no leading zeros, English letters
as phonemes because espeak-ng reads a lone "A" as the article).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from display.texts import CATALOGUE
from hardware.audio import Announcement, spoken_ticket
from protocol.catalogue import Catalogue

_TRAILING_NUMBER = re.compile(r"([0-9]+)\s*$")


def counter_number(a: Announcement) -> str:
    """What "counter N" says: the name's trailing number ("Stanowisko 4" -> "4"), else the
    counter's id when it is a number, else the whole name (the names are Polish)."""
    m = _TRAILING_NUMBER.search(a.counter_name)
    return m.group(1) if m else (a.counter if a.counter.isdigit() else a.counter_name)


@dataclass(frozen=True)
class Phrases:
    """The spoken call in each language, in order: what :class:`hardware.audio.Announcer` says
    after the chime. ``languages`` come from ``[audio] languages`` (validated against the
    catalogue by the config); ``counter_word_en`` is the ``{word}`` of ``say_counter``."""

    languages: Sequence[str] = ("pl",)
    counter_word_en: str = "counter"
    catalogue: Catalogue = field(default_factory=lambda: CATALOGUE, repr=False)

    def text(self, a: Announcement, lang: str) -> str:
        """ "Numer A 23, stanowisko 4" / "Number [['eI]] 23, counter 4" (``readable`` for people)."""
        name = a.counter_name[:1].lower() + a.counter_name[1:]
        counter = self.catalogue.text("say_counter", lang).format(
            name=name, number=counter_number(a), word=self.counter_word_en
        )
        key = "say_recall" if a.recall else "say_call"
        return self.catalogue.text(key, lang).format(ticket=spoken_ticket(a.ticket, lang), counter=counter)

    def __call__(self, a: Announcement) -> list[tuple[str, str]]:
        return [(lang, self.text(a, lang)) for lang in self.languages]


def announcement_text(a: Announcement, lang: str, counter_word_en: str = "counter") -> str:
    """One call's words in one language (tests, ``--test-audio``)."""
    return Phrases((lang,), counter_word_en).text(a, lang)
