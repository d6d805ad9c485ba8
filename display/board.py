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
from dataclasses import dataclass, field
from datetime import datetime

from protocol.clock import ServerClock
from protocol.messages import BoardMessage, CallMessage, ServiceInfo, ServicesMessage

log = logging.getLogger(__name__)

DAYS_PL = ("poniedziałek", "wtorek", "środa", "czwartek", "piątek", "sobota", "niedziela")
MONTHS_PL = (
    "stycznia",
    "lutego",
    "marca",
    "kwietnia",
    "maja",
    "czerwca",
    "lipca",
    "sierpnia",
    "września",
    "października",
    "listopada",
    "grudnia",
)
ARROW = "\u2192"


def call_line(call: CallMessage) -> str:
    """ "A023 → Stanowisko 4", the way a call is written everywhere on the board."""
    return f"{call.ticket} {ARROW} {call.counter_name}"


def polish_date(d: datetime) -> str:
    return f"{DAYS_PL[d.weekday()]}, {d.day} {MONTHS_PL[d.month - 1]} {d.year}"


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

    def apply_board(self, board: BoardMessage) -> bool:
        """Show the board silently. False (and nothing changes) for another zone's board."""
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
        """True when ``call`` is new and must be highlighted and announced."""
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

    def clock_text(self) -> tuple[str, str]:
        """("HH:MM", Polish date), or empty strings while no live message has told the time."""
        now = self.clock.now()
        if now is None:
            return "", ""
        return now.strftime("%H:%M"), polish_date(now)
