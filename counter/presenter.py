"""What one counter's number display and LED say, without GPIO: a plain model.

Kept apart from the gpiozero wiring (counter/unit.py) so the rules the clerk and the client
rely on are plain code with fast tests (``tests/test_counter_presenter.py``):

* the display's top line is for the client (the number being served, or why nobody is),
  the bottom line for the clerk (a notice, the connection, or the counter's name);
* offline is shown, never hidden: the LED blinks red and the display says so;
* a refused press turns the LED red for ``message_s`` and says why in 16 columns; a refusal
  that is not the clerk's mistake (``too_soon``, ``stale``, a client's rating) is a notice
  only, and the LED keeps its colour.

Texts are Polish without diacritics on purpose: the display converts, but a clerk reading a
cheap HD44780 from an angle reads plain letters best. They come from the ``counter``
catalogue (counter/texts.py); ``lang`` picks its language (Polish unless configured).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from counter.texts import text
from protocol.messages import CounterAction, CounterReply, CounterState, CounterStatus, ErrorCode


class Indicator(StrEnum):
    """What the LED shows, most important first."""

    OFFLINE = "offline"
    ERROR = "error"
    READY = "ready"
    SERVING = "serving"
    PAUSED = "paused"
    CLOSED = "closed"


# Colours are (red, green, blue); offline blinks red (OFFLINE_BLINK_S on, the same off).
LED_COLOURS: dict[str, tuple[int, int, int]] = {
    Indicator.ERROR: (1, 0, 0),
    Indicator.READY: (0, 1, 0),
    Indicator.SERVING: (0, 0, 1),
    Indicator.PAUSED: (1, 1, 0),
    Indicator.CLOSED: (1, 1, 0),
}
OFFLINE_BLINK_S = 0.5

# Why a press was refused, as keys of the ``counter`` catalogue (counter/texts.py): words that fit
# the 16-column display. The clerk reads these; the client sees the number line.
REFUSAL_TEXT: dict[str, str] = {
    "offline": "refused_offline",
    "timeout": "refused_timeout",
    ErrorCode.NO_CURRENT_TICKET: "refused_no_current_ticket",
    ErrorCode.QUEUE_EMPTY: "refused_queue_empty",
    ErrorCode.COUNTER_CLOSED: "refused_counter_closed",
    ErrorCode.COUNTER_PAUSED: "refused_counter_paused",
    ErrorCode.NOT_ALLOWED: "refused_not_allowed",
    ErrorCode.UNKNOWN_TICKET: "refused_unknown_ticket",
    ErrorCode.UNKNOWN_SERVICE: "refused_unknown_service",
    ErrorCode.UNKNOWN_COUNTER: "refused_unknown_counter",
    ErrorCode.EXPIRED: "refused_expired",  # our clock estimate was off: the reply taught us better
}

# Refusals that are not the clerk's mistake: shown as a notice, the LED keeps its colour.
GENTLE_REFUSAL_TEXT: dict[str, str] = {
    ErrorCode.TOO_SOON: "gentle_too_soon",  # the hall is still announcing this number
    ErrorCode.STALE: "gentle_stale",  # a double press, or the panel acted first; we re-read the state
}

# The client pressed a rating button: tell them in their terms.
RATING_REFUSAL_TEXT: dict[str, str] = {
    ErrorCode.UNKNOWN_TICKET: "rating_unknown_ticket",
    ErrorCode.NOT_ALLOWED: "rating_not_allowed",
    ErrorCode.EXPIRED: "rating_expired",  # too long after the service
}


class Refusal(StrEnum):
    """How a refusal is taken: the client's rating, a gentle notice, or the clerk's error."""

    RATING = "rating"
    GENTLE = "gentle"
    ERROR = "error"


@dataclass
class Notice:
    text: str
    error: bool
    until: float  # monotonic


@dataclass
class Presenter:
    """One counter's display lines and LED, from the server's state, the connection and notices."""

    cols: int = 16
    name: str = ""  # the configured name; else the server's
    message_s: float = 4.0
    monotonic: Callable[[], float] = time.monotonic
    state: CounterState | None = None
    lang: str = "pl"
    notice_: Notice | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ events

    def notice(self, text: str, error: bool) -> None:
        self.notice_ = Notice(text, error, self.monotonic() + self.message_s)

    def expire(self) -> None:
        """Drop a notice whose time is up (the unit's thread calls this every tick)."""
        if self.notice_ is not None and self.monotonic() >= self.notice_.until:
            self.notice_ = None

    def accepted(self, action: CounterAction, reply: CounterReply, done_text: str | None = None) -> None:
        if action == CounterAction.NEXT and reply.ticket is None:
            self.notice(text("queue_empty", self.lang), error=False)
        elif action == CounterAction.TRANSFER:
            self.notice(done_text or text("transferred", self.lang), error=False)
        elif action == CounterAction.RATE:
            self.notice(text("thanks", self.lang), error=False)

    def refused(self, code: str, action: CounterAction | None = None) -> Refusal:
        """Say why a press was refused; the answer tells the unit how to log it (and, for a
        ``stale`` refusal, to read the state again)."""
        if action == CounterAction.RATE and code in RATING_REFUSAL_TEXT:
            self.notice(text(RATING_REFUSAL_TEXT[code], self.lang), error=False)
            return Refusal.RATING
        if code in GENTLE_REFUSAL_TEXT:
            self.notice(text(GENTLE_REFUSAL_TEXT[code], self.lang), error=False)
            return Refusal.GENTLE
        key = REFUSAL_TEXT.get(code)
        self.notice(text(key, self.lang) if key else text("refused_other", self.lang, code=code), error=True)
        return Refusal.ERROR

    # ------------------------------------------------------------------ output

    def shown_ticket(self) -> str | None:
        return self.state.ticket.number if self.state and self.state.ticket else None

    def indicator(self, online: bool, display_ok: bool = True) -> Indicator:
        """What the LED shows: offline, error (a refused press, or the display not working),
        ready, serving, paused or closed."""
        error = self.notice_ is not None and self.notice_.error
        if not online:
            return Indicator.ERROR if error else Indicator.OFFLINE
        if error or not display_ok:
            return Indicator.ERROR  # a dead display: the client sees nothing, the clerk must know
        if self.state is None:
            return Indicator.OFFLINE
        if self.state.status == CounterStatus.PAUSED:
            return Indicator.PAUSED
        if self.state.status == CounterStatus.CLOSED:
            return Indicator.CLOSED
        return Indicator.SERVING if self.state.ticket else Indicator.READY

    def lines(self, online: bool) -> tuple[str, str]:
        """What the client at the counter reads: the number on top, a note or our name below."""
        ticket = self.shown_ticket()
        if ticket:
            top = text("number", self.lang, ticket=ticket)
        elif self.state is None:
            top = text("brand", self.lang)
        elif self.state.status == CounterStatus.PAUSED:
            top = text("paused", self.lang)
        elif self.state.status == CounterStatus.CLOSED:
            top = text("closed", self.lang)
        else:
            top = text("welcome", self.lang)
        if self.notice_ is not None:
            bottom = self.notice_.text
        elif not online:
            bottom = text("offline", self.lang)
        elif self.state is None:
            bottom = text("connecting", self.lang)
        else:
            bottom = self.name or self.state.name
        return top.center(self.cols).rstrip(), bottom
