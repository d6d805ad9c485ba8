"""What the hall display knows, without any Kivy: the board, the call rule, the server clock.

Kept apart from the screen so that the rule that matters most in a waiting room, *never
present an old call as a new one*, is plain code that reads in one place:

- the retained ``BoardMessage`` is the truth to show; it is applied silently (no chime),
  whether it arrives at start-up, after a broker restart or after the server republishes;
- a live ``CallMessage`` is announced only if its ``seq`` is greater than every seq already
  known (from a board or an earlier call). A duplicate or an older call changes nothing.

The clock shown on screen is the server's (:class:`protocol.clock.ServerClock`, shared with
kiosks and counter units): an offset to this machine's monotonic clock learnt from *live*
messages only, fed by the app where it still sees each message's retain flag. A retained board
or services list may be hours old (after a server outage it is), so until a live message comes
the display shows no time rather than a wrong one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from display.texts import BOARD_LANGUAGES, board_date, text
from protocol.clock import ServerClock
from protocol.messages import BoardMessage, CallMessage, ServiceInfo, ServicesMessage

log = logging.getLogger(__name__)

ARROW = "\u2192"


def call_line(call: CallMessage) -> str:
    """ "A023 → Stanowisko 4", the way a call is written everywhere on the board."""
    return f"{call.ticket} {ARROW} {call.counter_name}"


@dataclass(frozen=True)
class CounterLabels:
    """Counter names as a table shows them from 10 m: the word every name shares goes into the
    column heading once, and the cells keep what tells the counters apart.

    Why: "Stanowisko 4" in a font readable from 10 m (34 mm capitals) is ~0.6 m wide on a
    43-inch TV; a table of "A023 | 4" under the heading "Stanowisko" fits the same font in
    half the screen. Names that share no first word ("Kasa", "Pokój 12") are kept whole.
    """

    word: str
    """The shared first word ("Stanowisko"), or "" when the names share none."""
    labels: dict[str, str]
    """counter_name -> what its cell shows ("4", or the whole name)."""

    def heading(self, word_en: str = "counter", langs: Sequence[str] = BOARD_LANGUAGES) -> str:
        """ "Stanowisko · Counter": the shared word (the names are Polish) or the catalogue's
        "counter" in each board language; English says the office's own word (``counter_word_en``)."""
        words = []
        for lang in langs:
            if lang == "pl":
                words.append(self.word or text("counter", "pl"))
            elif lang == "en":
                words.append(f"{word_en[:1].upper()}{word_en[1:]}")
            else:
                words.append(text("counter", lang))
        return " \u00b7 ".join(words)


def counter_labels(names: list[str]) -> CounterLabels:
    parts = [name.split(None, 1) for name in names]
    words = {p[0].casefold() for p in parts if p}
    if names and len(words) == 1 and all(len(p) == 2 for p in parts):
        return CounterLabels(parts[0][0], {name: p[1].strip() for name, p in zip(names, parts, strict=True)})
    return CounterLabels("", {name: name for name in names})


@dataclass(frozen=True)
class CounterColumn:
    """One column of the per-counter ("banks") layout: a counter and the ticket it called last."""

    counter: str
    name: str
    call: CallMessage | None


def _natural(text: str) -> tuple:
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text) if part)


def polish_date(d: datetime) -> str:
    """The board's date, in Polish (the ``display`` catalogue's weekday and month names)."""
    return board_date(d, "pl")


@dataclass
class BoardState:
    """The zone's board as shown on screen, plus the highest call seq this display knows."""

    zone: str
    clock: ServerClock = field(default_factory=ServerClock)
    known_seq: int = 0
    calls: list[CallMessage] = field(default_factory=list)  # newest first
    waiting: dict[str, int] = field(default_factory=dict)
    services: dict[str, ServiceInfo] = field(default_factory=dict)
    office: str = ""
    highlight_seq: int | None = None
    highlight_until: float = 0.0
    other_zones: tuple[str, ...] = ()
    """Zones whose calls are listed at the side with their place, never announced here."""
    other_calls: list[CallMessage] = field(default_factory=list)  # newest first, one per ticket

    def apply_board(self, board: BoardMessage) -> bool:
        """Show the board silently. False (and nothing changes) for a zone this display does not show.

        Another zone's board (``other_zones``) replaces that zone's side-list lines; it never
        touches this zone's calls nor the seq that decides what is announced."""
        if board.zone in self.other_zones and board.zone != self.zone:
            kept = [c for c in self.other_calls if c.zone != board.zone]
            self._set_other_calls(kept + list(board.calls))
            return True
        if board.zone != self.zone:
            log.warning("ignoring the board of zone %r (this display shows %r)", board.zone, self.zone)
            return False
        if board.seq < self.known_seq:
            # Only a server that starts its numbering again (a new database) goes backwards;
            # follow it, or its next calls would never be announced.
            log.warning(
                "board seq %d is below the known %d: the server's call numbering restarted", board.seq, self.known_seq
            )
        self.known_seq = board.seq
        self.calls = sorted(board.calls, key=lambda c: c.seq, reverse=True)
        self.waiting = dict(board.waiting)
        return True

    def apply_call(self, call: CallMessage, highlight_seconds: float = 0.0) -> bool:
        """True when ``call`` is new and must be highlighted and announced.

        A call of one of ``other_zones`` is False (never announced in this hall: the speaker
        would send people to the wrong room's counters by name) but goes into the side list."""
        if call.zone in self.other_zones and call.zone != self.zone:
            if not any(c.ticket == call.ticket and c.seq >= call.seq for c in self.other_calls):
                self._set_other_calls([call, *self.other_calls])
            return False
        if call.zone != self.zone:
            log.warning("ignoring a call for zone %r (this display shows %r)", call.zone, self.zone)
            return False
        if call.seq <= self.known_seq:
            log.info("call %s (seq %d) is already known (seq %d); not announced", call.ticket, call.seq, self.known_seq)
            return False
        self.known_seq = call.seq
        # The board that follows will say the same; until then show the call at the top,
        # replacing an earlier line of the same ticket (a recall moves it up again).
        self.calls = [call, *[c for c in self.calls if c.ticket != call.ticket]][:10]
        self.highlight_seq = call.seq
        self.highlight_until = self.clock.monotonic() + highlight_seconds
        return True

    def _set_other_calls(self, calls: list[CallMessage]) -> None:
        newest: dict[str, CallMessage] = {}
        for c in sorted(calls, key=lambda c: c.seq, reverse=True):
            newest.setdefault(c.ticket, c)
        self.other_calls = list(newest.values())[:10]

    def other_rows(self, lang: str = "pl") -> list[tuple[str, str]]:
        """(ticket, where to go) for the side list, newest first: "Stanowisko 3, pokój 12, I piętro"."""
        rows = []
        for c in self.other_calls:
            place = (c.place or {}).get(lang) or (c.place or {}).get("pl") or ""
            rows.append((c.ticket, f"{c.counter_name}, {place}" if place else c.counter_name))
        return rows

    def apply_services(self, msg: ServicesMessage) -> None:
        self.office = msg.office
        self.services = {s.id: s for s in msg.services if s.zone == self.zone}

    @property
    def newest(self) -> CallMessage | None:
        return self.calls[0] if self.calls else None

    @property
    def highlighted(self) -> bool:
        newest = self.newest
        return newest is not None and newest.seq == self.highlight_seq and self.clock.monotonic() < self.highlight_until

    def waiting_rows(self, lang: str = "pl") -> list[tuple[str, int]]:
        """(service name, waiting) for the zone's services, in the server's order."""
        order = [s for s in self.services if s in self.waiting] + sorted(
            s for s in self.waiting if s not in self.services
        )
        rows = []
        for sid in order:
            info = self.services.get(sid)
            name = (info.name.get(lang) or info.name.get("pl") or sid) if info else sid
            rows.append((name, self.waiting[sid]))
        return rows

    def counter_columns(self, order: list[str] | None = None) -> list[CounterColumn]:
        """The per-counter layout's columns: the configured counters in that order, or else
        every counter the board has called, in natural order ("2" before "10"). Each shows the
        newest call to it (a recall included); a counter not called today shows nothing."""
        latest: dict[str, CallMessage] = {}
        for call in sorted(self.calls, key=lambda c: c.seq):
            latest[call.counter] = call
        ids = list(order) if order else sorted(latest, key=_natural)
        return [CounterColumn(cid, latest[cid].counter_name if cid in latest else cid, latest.get(cid)) for cid in ids]

    def clock_text(self) -> tuple[str, str]:
        """("HH:MM", Polish date), or empty strings while no live message has told the time."""
        now = self.clock.now()
        if now is None:
            return "", ""
        return now.strftime("%H:%M"), polish_date(now)
