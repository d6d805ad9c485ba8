"""A resident's visit at the kiosk, without Kivy: the screens, the rules between them, what they say.

The flow: home (choose a service; the priority toggle; a language) → busy (the request is
out) → ticket (printed, or on screen only when the printer failed) or message (a refusal, or
"no ticket was issued") → home again after *Gotowe*, *Wróć* or the idle timeout.

Kept apart from the screen (as ``display/board.py`` is for the hall display) so the rules that
protect residents are plain code with fast tests (``tests/test_kiosk_visit.py``):

* the first tap wins: a second tap while a request is out is ignored, so one tap, one ticket;
* a screen change the resident caused ignores touches for ``TOUCH_GUARD_S``: the second tap of
  a double tap on *Gotowe* would otherwise land on the priority toggle in the same place;
* going home after a finished visit resets the language and the priority toggle, so the next
  person inherits neither; *Wróć* after a failure keeps the language (the same resident);
* after a printer fault the ticket screen stays ``fault_timeout_s``: it is the only copy;
* a request the server answers after we gave up is still shown if the resident is plausibly
  still reading our "no ticket was issued" message.

The model never does I/O. Each event returns a :class:`Step` that says what the shell must do:
redraw (and whether that redraw guards against touches), send a :class:`TicketAsk`, print a
:class:`~hardware.printer.TicketLayout`. The clock is injected (``monotonic``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from hardware.printer import Fault, PrinterStatus, TicketLayout
from kiosk.config import KioskSection
from kiosk.texts import come_back, service_name, t, wait_words
from kiosk.ticket_layout import status_url, ticket_layout, ticket_wait, wait_unknown
from notify.phone import InvalidPhoneNumber, normalise
from protocol.messages import (
    BOOKING_ALPHABET,
    BOOKING_CODE_LENGTH,
    ServiceInfo,
    ServicesMessage,
    TicketIssued,
    TicketResponse,
)

TOUCH_GUARD_S = 0.6
"""Touches this soon after a screen change are ignored: the second tap of a double tap on
"Gotowe" would otherwise land on the new home screen (the priority toggle sits where
"Gotowe" was) and give the next visitor a priority ticket."""
CONNECT_GRACE_S = 15.0
"""How long the kiosk says "connecting" at start before it says the system is not working."""
PRINTER_CHECK_S = 30.0
"""The idle printer check's period; also how long a ticket's own status round counts as fresh."""
REFUSALS_EXPLAINED = ("service_closed", "cut_off", "limit_reached")
BOOKING_REFUSALS = (
    "booking_unknown",
    "booking_too_early",
    "booking_too_late",
    "booking_other_day",
    "booking_cancelled",
)
KEYPAD = BOOKING_ALPHABET
"""The booking code's alphabet (the server's own, protocol/messages.py): no look-alikes."""
CODE_LENGTH = BOOKING_CODE_LENGTH
PHONE_KEYS = "123456789+0"
"""The phone keypad: digits, and + for a foreign number (+380 …)."""
PHONE_MAX = 16
PICKUP_KEYS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ./-"
"""A case reference's characters (server/pickups.py allows these and Polish letters; references
from a domain system use capitals, digits and . / -)."""
PICKUP_MAX = 40
PICKUP_REFUSALS = ("pickup_unknown", "pickup_collected")
SCAN_GAP_S = 0.5
"""A 2D scanner acting as a keyboard types a whole code in a few milliseconds; characters further
apart than this are not one scan (a stray key press, half a scan) and start a new one."""


def read_code(text: str) -> str | None:
    """The booking code in what a scanner typed or a resident keyed: case, spaces and the dash
    (``YTX-RY5``) do not matter, and a QR code holding a link gives its last path segment."""
    text = text.strip()
    if "/" in text:
        text = text.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
    code = text.replace("-", "").replace(" ", "").upper()
    if len(code) != CODE_LENGTH or not code.isascii() or not code.isalnum():
        return None
    return code


SMS_WORDS: dict[str, str] = {
    "subscribed": "sms_subscribed",
    "opted_out": "sms_opted_out",
    "invalid": "sms_not_sent",
    "not_mobile": "sms_not_sent",
}
"""What the ticket screen says for each answer about the number (docs/protocol.md); any other: no SMS now."""


class Screen(StrEnum):
    HOME = "home"
    BOOKING = "booking"  # the keypad for a booking's code
    PHONE = "phone"  # the keypad for a mobile number (SMS notices), after a service was chosen
    PICKUP = "pickup"  # the keypad for a ready document's case reference
    BUSY = "busy"
    TICKET = "ticket"
    MESSAGE = "message"


@dataclass(frozen=True)
class TicketAsk:
    """A ticket request the shell sends through the link."""

    service: str | None
    priority: bool
    lang: str
    booking: str | None = None
    pickup: str | None = None
    phone: str | None = None  # personal data: the shell hands it to the link and logs nothing of it


@dataclass(frozen=True)
class Step:
    """What the shell does after an event.

    ``redraw``: build the current screen again; ``guard``: the resident caused it, so touches
    are ignored for a moment; ``refresh``: only update home's service buttons in place (no
    rebuild under a finger); ``ask``: send this request; ``layout``: print this ticket.
    """

    redraw: bool = False
    guard: bool = False
    refresh: bool = False
    ask: TicketAsk | None = None
    layout: TicketLayout | None = None


STAY = Step()
MOVED = Step(redraw=True, guard=True)  # the resident's tap changed the screen
NEWS = Step(redraw=True)  # the world changed: same layout, touches still count


@dataclass(frozen=True)
class ServiceView:
    """One service button on home: what it says and whether it can be taken."""

    title: str
    detail: str
    enabled: bool
    style: str  # a key of kiosk.style.STYLES


@dataclass(frozen=True)
class TicketView:
    """The ticket screen's texts, top to bottom, and the printer outcome strip."""

    head: str
    head_style: str
    number: str
    service: str
    place: str | None
    issued: str
    ahead: str
    wait: str
    status: str
    status_style: str
    fault: bool  # the printer failed: the number and QR code are the only copy
    sms: str | None = None  # what became of the SMS notices (never the number)


class Visit:
    """The kiosk's state between taps, and its rules. One per kiosk, lives as long as the app."""

    def __init__(self, settings: KioskSection, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.monotonic = monotonic
        self.lang: str = settings.default_language
        self.priority = False
        self.screen = Screen.HOME
        self.busy = False
        self.services: ServicesMessage | None = None
        self.broker_up = False
        self.server_up = False
        self.server_known = False  # the server's retained availability has been read
        self.current_request: str | None = None
        self.ticket: TicketIssued | None = None
        self.print_outcome: PrinterStatus | None = None
        self._outcome_ahead: tuple[str, PrinterStatus] | None = None
        """A print's outcome that came before the answer that started it (see :meth:`printed`)."""
        self.message = ""
        self.code = ""  # the booking code typed so far
        self.code_note: str | None = None  # why the code was not sent (too short, unreadable scan)
        self.booked = False  # this visit is a booking's check-in
        self.chosen: str | None = None  # the service chosen before the phone keypad
        self.phone = ""  # the mobile number typed so far (personal data: cleared once sent)
        self.phone_note: str | None = None
        self.sms_tail: str | None = None  # the number's last three digits, for the paper ticket
        self.sms_outcome: str | None = None  # the server's answer about the number
        self.reference = ""  # the case reference typed so far
        self.reference_note: str | None = None
        self.pickup: str | None = None  # this visit is a document pick-up for this case
        self.asked: str | None = None  # the service of the last ticket asked for (a refusal's details)
        self._typed = ""  # what a keyboard-like scanner typed since the last Enter
        self._typed_at = float("-inf")
        self.printer_status = PrinterStatus(Fault.OK, known=False)
        self.started = monotonic()
        self.grace_over = False
        self.last_touch = self.started
        self.shown_at = float("-inf")  # the last guarded screen change (touch guard)
        self.undrawn = False  # a guarded screen is built but its first frame not drawn yet
        self.printed_at = -PRINTER_CHECK_S  # when the last ticket's own status round ended
        self.checking = True  # the start-up check, which the shell begins at once

    # ------------------------------------------------------------------ touches and time

    def showing(self, guard: bool) -> None:
        """The shell builds the current screen; a guarded change starts the touch guard."""
        if guard:
            self.shown_at = self.monotonic()
        self.undrawn = guard

    def drawn(self) -> None:
        """The screen's first frame is on the glass: the guard starts again from now.

        Why: on a busy kiosk, building and drawing a screen can take longer than the guard. It
        then ran out before anyone saw the screen, and the second touch of a double tap on
        "Gotowe" pressed the priority button of the home screen drawn under the finger."""
        if self.undrawn:
            self.shown_at = self.monotonic()
            self.undrawn = False

    def touched(self) -> bool:
        """A touch anywhere: keeps the screen awake. True: swallow it (just after a screen change)."""
        self.last_touch = self.monotonic()
        return self.last_touch - self.shown_at < TOUCH_GUARD_S

    def idle_limit(self) -> float:
        """How long the current screen stays untouched before going home.

        Longer on the ticket screen after a printer fault: the number and the QR code on
        screen are the resident's only copy, and noting or photographing them takes time.
        """
        s = self.settings
        fault = self.screen == Screen.TICKET and self.print_outcome is not None and not self.print_outcome.can_print
        return max(s.idle_timeout_s, s.fault_timeout_s) if fault else s.idle_timeout_s

    def tick(self) -> Step:
        """About once a second: go home (reset) when the screen was left alone long enough, and
        end the start-up grace: if nothing answered, "connecting…" becomes "not working, ask at
        the information desk" (nobody should wait in front of a kiosk that never connects)."""
        if not self.grace_over and self.monotonic() - self.started >= CONNECT_GRACE_S:
            self.grace_over = True
            if self.screen == Screen.HOME and self.problem() is not None:
                return NEWS
        idle = self.monotonic() - self.last_touch
        if idle > self.idle_limit() and not self.busy:
            if self.screen != Screen.HOME or self.lang != self.settings.default_language or self.priority:
                return self.go_home(reset=True)
        return STAY

    # ------------------------------------------------------------------ the resident's taps

    def go_home(self, reset: bool = False) -> Step:
        """Back home; the priority toggle is always switched off. ``reset`` (the visit is
        over: "Gotowe" or the idle timeout) also goes back to the default language, so the
        next visitor inherits neither; "Wróć" after a failure keeps the resident's language."""
        self.busy = False
        self.ticket = None
        self.priority = False
        self.booked = False
        self.code, self.code_note = "", None
        self._forget_phone()
        self.sms_outcome = self.pickup = self.chosen = None
        self.reference, self.reference_note = "", None
        if reset:
            self.lang = self.settings.default_language
        self.screen = Screen.HOME
        return MOVED

    def set_lang(self, lang: str) -> Step:
        if lang == self.lang:
            return STAY
        self.lang = lang
        return MOVED

    def toggle_priority(self) -> Step:
        if self.screen != Screen.HOME:
            return STAY
        self.priority = not self.priority
        return MOVED

    def take(self, service_id: str) -> Step:
        """A tap on a service. The first tap wins; the rest are ignored until home again."""
        if self.busy or self.screen != Screen.HOME:
            return STAY
        service = self.service(service_id)
        if service is None or not service.available:
            return STAY  # a grey button: it says why in words
        self.asked = service.id
        if self.settings.sms and self.server_up and self.broker_up:  # first: SMS or not (skip is the default)
            self.chosen = service.id
            self._forget_phone()
            self.screen = Screen.PHONE
            return MOVED
        return self._ask_service(service.id, None)

    def _ask_service(self, service_id: str, phone: str | None) -> Step:
        self.busy = True
        self.screen = Screen.BUSY
        if not self.server_up:  # the server said goodbye (or its last will did): nobody would answer
            return self._fail(t("unreachable", self.lang))
        return Step(redraw=True, guard=True, ask=TicketAsk(service_id, self.priority, self.lang, phone=phone))

    # ------------------------------------------------------------------ a phone number for SMS

    def _forget_phone(self) -> None:
        self.phone, self.phone_note, self.sms_tail = "", None, None

    def phone_key(self, char: str) -> Step:
        """A key of the phone keypad; + only first. Only the number line changes (no rebuild)."""
        if self.screen != Screen.PHONE or char not in PHONE_KEYS or len(self.phone) >= PHONE_MAX:
            return STAY
        if char == "+" and self.phone:
            return STAY
        self.phone += char
        self.phone_note = None
        return Step(refresh=True)

    def phone_erase(self) -> Step:
        if self.screen != Screen.PHONE or not self.phone:
            return STAY
        self.phone = self.phone[:-1]
        self.phone_note = None
        return Step(refresh=True)

    def phone_text(self) -> str:
        """The number as typed, in groups of three (``600 100 20``): easy to check against a phone."""
        head, digits = ("+", self.phone[1:]) if self.phone.startswith("+") else ("", self.phone)
        return head + " ".join(digits[i : i + 3] for i in range(0, len(digits), 3)) if self.phone else "_"

    def phone_skip(self) -> Step:
        """ "Bilet bez SMS": the ticket at once, no number (the big default button)."""
        if self.screen != Screen.PHONE or self.busy or self.chosen is None:
            return STAY
        self._forget_phone()
        return self._ask_service(self.chosen, None)

    def phone_submit(self) -> Step:
        """ "Bilet i SMS": a number that cannot get an SMS is pointed out here, on the keypad, so
        the resident can correct it (the same rules as the server's, notify/phone.py); the server
        checks again and issues the ticket whatever it thinks of the number."""
        if self.screen != Screen.PHONE or self.busy or self.chosen is None:
            return STAY
        try:
            normalise(self.phone)
        except InvalidPhoneNumber:
            self.phone_note = t("sms_bad_number", self.lang)
            return Step(refresh=True)
        number = self.phone
        self.phone, self.phone_note = "", None
        self.sms_tail = number[-3:]
        return self._ask_service(self.chosen, number)

    # ------------------------------------------------------------------ a document pick-up

    @property
    def pickups_open(self) -> bool:
        return self.settings.pickups and self.broker_up and self.server_up

    def start_pickup(self) -> Step:
        if self.busy or self.screen != Screen.HOME or not self.pickups_open:
            return STAY
        self.reference, self.reference_note = "", None
        self.screen = Screen.PICKUP
        return MOVED

    def pickup_key(self, char: str) -> Step:
        if self.screen != Screen.PICKUP or char not in PICKUP_KEYS or len(self.reference) >= PICKUP_MAX:
            return STAY
        self.reference += char
        self.reference_note = None
        return Step(refresh=True)

    def pickup_erase(self) -> Step:
        if self.screen != Screen.PICKUP or not self.reference:
            return STAY
        self.reference = self.reference[:-1]
        self.reference_note = None
        return Step(refresh=True)

    def pickup_submit(self) -> Step:
        if self.screen != Screen.PICKUP or self.busy:
            return STAY
        if len(self.reference.strip()) < 3:
            self.reference_note = t("pickup_short", self.lang)
            return Step(refresh=True)
        return self._ask_pickup(self.reference)

    def _ask_pickup(self, reference: str) -> Step:
        self.busy = True
        self.pickup = reference.strip()[:PICKUP_MAX]
        self.screen = Screen.BUSY
        return Step(redraw=True, guard=True, ask=TicketAsk(None, False, self.lang, pickup=self.pickup))

    def sent(self, request_id: str | None) -> Step:
        """The link took the request (its id), or could not send it (None: the broker is down)."""
        self.current_request = request_id
        if request_id is None:
            return self._fail(t("unreachable", self.lang))
        return STAY

    # ------------------------------------------------------------------ a booking's check-in

    @property
    def bookings_open(self) -> bool:
        """Whether "Mam rezerwację" can be used now (the office takes bookings, the system is up)."""
        return self.settings.bookings and self.broker_up and self.server_up

    def start_booking(self) -> Step:
        if self.busy or self.screen != Screen.HOME or not self.bookings_open:
            return STAY
        self.code, self.code_note = "", None
        self.screen = Screen.BOOKING
        return MOVED

    def key(self, char: str) -> Step:
        """A key of the keypad. Only the code line changes: no rebuild, so fast typing is not
        swallowed by the touch guard."""
        if self.screen != Screen.BOOKING or char not in KEYPAD or len(self.code) >= CODE_LENGTH:
            return STAY
        self.code += char
        self.code_note = None
        return Step(refresh=True)

    def erase(self) -> Step:
        if self.screen != Screen.BOOKING or not self.code:
            return STAY
        self.code = self.code[:-1]
        self.code_note = None
        return Step(refresh=True)

    def code_text(self) -> str:
        """The code as typed so far, in the two groups it is printed in: ``YTX-R__``."""
        padded = self.code.ljust(CODE_LENGTH, "_")
        return f"{padded[:3]}-{padded[3:]}"

    def submit(self) -> Step:
        """Send the typed code (the keypad's "Potwierdź")."""
        if self.screen != Screen.BOOKING or self.busy:
            return STAY
        if len(self.code) != CODE_LENGTH:
            self.code_note = t("booking_short", self.lang, n=CODE_LENGTH)
            return Step(refresh=True)
        return self._check_in(self.code)

    def typed(self, text: str) -> None:
        """Characters from a keyboard (a 2D scanner "types" the code it reads)."""
        now = self.monotonic()
        if now - self._typed_at > SCAN_GAP_S:
            self._typed = ""
        self._typed = (self._typed + text)[-200:]
        self._typed_at = now

    def entered(self) -> Step:
        """Enter after typed characters: a scanned code, checked in at once from home or the keypad."""
        text, self._typed = self._typed, ""
        if self.busy or not text.strip():
            return STAY
        if self.screen == Screen.PICKUP or (
            self.screen == Screen.HOME and self.pickups_open and not (self.bookings_open and read_code(text))
        ):  # a case reference: a scanned booking code still checks in from home
            return self._ask_pickup(text) if self.pickups_open else STAY
        if self.screen not in (Screen.HOME, Screen.BOOKING) or not self.bookings_open:
            return STAY
        code = read_code(text)
        if code is None:
            first = self.screen == Screen.HOME
            self.screen = Screen.BOOKING
            self.code, self.code_note = "", t("booking_bad_scan", self.lang)
            return MOVED if first else Step(refresh=True)
        self.code = code
        return self._check_in(code)

    def _check_in(self, code: str) -> Step:
        self.busy = True
        self.booked = True
        self.screen = Screen.BUSY
        return Step(redraw=True, guard=True, ask=TicketAsk(None, False, self.lang, booking=code))

    # ------------------------------------------------------------------ the server's answers

    def answered(self, response: TicketResponse | None) -> Step:
        """The answer to our request, or None when none came in ``response_timeout_s``."""
        if self.screen != Screen.BUSY:
            return STAY
        if response is None or (response.error is not None and response.error.code == "expired"):
            # expired: the server read the request only after its deadline (it was stalled), so
            # it issued nothing; for the resident that is the same as no answer.
            return self._fail(t("unreachable", self.lang))
        if not response.ok or response.ticket is None:
            code = response.error.code.value if response.error else ""
            if code in BOOKING_REFUSALS or code in PICKUP_REFUSALS:
                return self._fail(t(code, self.lang))
            if self.booked:  # e.g. a server that does not take check-ins yet
                return self._fail(t("booking_failed", self.lang))
            reason = t(code, self.lang) if code in REFUSALS_EXPLAINED else ""
            asked = self.service(self.asked) if self.asked else None
            if code == "cut_off" and asked is not None and asked.next_opening is not None:
                reason = self.cut_off_text(asked.next_opening)
            return self._fail(t("refused", self.lang) + ("\n" + reason if reason else ""))
        return self._got_ticket(response.ticket, response.phone)

    def late_response(self, response: TicketResponse) -> Step:
        """A ticket the server issued after we had given up: still real, so show it if its
        requester is plausibly still looking at our "not answering" message."""
        if self.screen == Screen.MESSAGE and response.ok and response.ticket and response.id == self.current_request:
            return self._got_ticket(response.ticket, response.phone)
        return STAY

    def _fail(self, text: str) -> Step:
        self.busy = False
        self.message = text
        self.screen = Screen.MESSAGE
        return MOVED

    def _got_ticket(self, ticket: TicketIssued, phone: str | None = None) -> Step:
        self.busy = False
        self.sms_outcome = phone
        if phone != "subscribed":
            self.sms_tail = None
        self.ticket = ticket
        ahead, self._outcome_ahead = self._outcome_ahead, None
        self.print_outcome = ahead[1] if ahead is not None and ahead[0] == ticket.number else None
        self.last_touch = self.monotonic()
        self.screen = Screen.TICKET
        return Step(redraw=True, guard=True, layout=self.layout_for_print(ticket))

    def services_arrived(self, msg: ServicesMessage) -> Step:
        old = self.services
        self.services = msg
        if self.screen != Screen.HOME:
            return STAY
        if old is None or [s.id for s in old.services] != [s.id for s in msg.services]:
            return NEWS
        return Step(refresh=True)

    def connection(self, broker: bool, server: bool, server_known: bool | None = None) -> Step:
        """The broker connection or the server's availability changed: home says so at once."""
        known = self.server_known if server_known is None else server_known
        changed = (broker, server, known) != (self.broker_up, self.server_up, self.server_known)
        self.broker_up, self.server_up, self.server_known = broker, server, known
        return NEWS if changed and self.screen == Screen.HOME else STAY

    # ------------------------------------------------------------------ the printer

    def printed(self, number: str, status: PrinterStatus) -> Step:
        """The ticket's print result (from the shell's printing thread).

        It may come before the answer that started the print: the link starts the printer on
        the network thread as the ticket arrives, and a fast printer is done before this
        thread has taken the answer. While the request is out the outcome is kept, and the
        ticket screen shows it as soon as the ticket comes (:meth:`_got_ticket`)."""
        self.printed_at = self.monotonic()
        step = self.printer_checked(status)
        if self.screen == Screen.TICKET and self.ticket is not None and self.ticket.number == number:
            self.print_outcome = status
            return NEWS
        if self.screen == Screen.BUSY:
            self._outcome_ahead = (number, status)
        return step

    def check_due(self) -> bool:
        """Whether to start the idle printer check now; True also marks it started.

        Skipped right after a ticket (its own status round is fresher) and while a check is
        still out; the printer itself lets a ticket go first if one comes mid-check.
        """
        fresh = self.monotonic() - self.printed_at < PRINTER_CHECK_S
        if self.screen == Screen.HOME and not self.busy and not fresh and not self.checking:
            self.checking = True
            return True
        return False

    def printer_checked(self, status: PrinterStatus) -> Step:
        """Keep the printer's state; rebuild home when whether it can print changed.

        Both answers (a ticket's print and the idle check) come here: a resident may tap
        "Gotowe" before the print result arrives, and home, built while the printer still
        looked fine, must then show the warning; the next idle check sees no change.
        """
        changed = status.can_print != self.printer_status.can_print
        self.printer_status = status
        return NEWS if changed and self.screen == Screen.HOME else STAY

    # ------------------------------------------------------------------ what the screens say

    def service(self, service_id: str) -> ServiceInfo | None:
        return next((s for s in self.services.services if s.id == service_id), None) if self.services else None

    @property
    def office(self) -> str:
        return self.services.office if self.services else ""

    def problem(self) -> str | None:
        """Home's red banner: connecting (at start, briefly) or the system is not working."""
        if self.broker_up and self.server_up:
            return None
        # Just connected, the server's retained availability not yet here: no false alarm.
        starting = (self.broker_up and not self.server_known) or (not self.broker_up and not self.services)
        starting = starting and self.monotonic() - self.started < CONNECT_GRACE_S
        return t("connecting", self.lang) if starting else t("system_down", self.lang)

    def title(self) -> tuple[str, str]:
        """Home's heading (shown when there is no banner) and its style."""
        if self.priority:
            return t("priority_hint", self.lang), "accent"
        return t("choose", self.lang), "screen"

    def printer_warning(self) -> str | None:
        return None if self.printer_status.can_print else t("printer_down_home", self.lang)

    def priority_button(self) -> tuple[str, str]:
        if self.priority:
            return t("priority_on", self.lang), "priority_on"
        return t("priority_off", self.lang), "priority_off"

    def service_view(self, s: ServiceInfo) -> ServiceView:
        """The button of one service: prefix, name and the queue's figures, or why not."""
        name = service_name(s.name, self.lang)
        # With the server or the broker down no ticket can be issued: the buttons must not
        # look live (the banner above says why and where to go instead).
        down = not (self.broker_up and self.server_up)
        if s.available and not down:
            sent = s.model_fields_set
            if self.priority and s.priority_ahead is not None and s.priority_estimated_wait_min is not None:
                # A priority ticket's own figures: the other priority tickets and the overdue ordinary ones.
                count = t("ahead_priority", self.lang, n=s.priority_ahead)
                wait = wait_words(
                    s.priority_estimated_wait_range_min,
                    s.priority_estimated_wait_min,
                    "priority_estimated_wait_range_min" in sent,
                    self.lang,
                )
            else:
                count = t("waiting", self.lang, n=s.waiting)
                wait = wait_words(
                    s.estimated_wait_range_min, s.estimated_wait_min, "estimated_wait_range_min" in sent, self.lang
                )
            detail = count + "   •   " + wait
            return ServiceView(f"{s.prefix}  {name}", detail, True, "service_priority" if self.priority else "service")
        reason = t("system_down_short", self.lang) if down else self.reason(s)
        return ServiceView(name, reason, False, "disabled")

    def reason(self, s: ServiceInfo) -> str:
        code = s.reason.value if s.reason else ""
        if code == "service_closed":
            return t("service_closed_opens", self.lang, t=s.opens_at) if s.opens_at else t("service_closed", self.lang)
        if code == "cut_off" and s.next_opening is not None and self.services is not None:
            return self.cut_off_text(s.next_opening)
        if code in ("cut_off", "limit_reached"):
            return t(code, self.lang)
        return t("unavailable", self.lang)

    def cut_off_text(self, next_opening: datetime) -> str:
        """No more tickets today, and when the service takes them again (the server's next opening)."""
        assert self.services is not None
        today = self.services.server_time.astimezone(next_opening.tzinfo).date()
        return t("cut_off_back", self.lang, when=come_back(next_opening, today, self.lang))

    def ticket_view(self) -> TicketView:
        tk = self.ticket
        assert tk is not None, "the ticket screen without a ticket"
        lang = self.lang
        outcome = self.print_outcome
        if outcome is None:
            status, style = t("please_wait", lang), "pending"
        elif outcome.can_print:
            status, style = t("printed", lang), "good"
        else:
            key = f"fault_{outcome.fault.value}"
            why = t(key, lang) if key in FAULT_KEYS else outcome.fault.value
            status, style = t("printer_fault", lang, why=why), "alarm"
        if self.booked and tk.appointment_at is not None:  # the booked time: the resident checks it at once
            head = t("appointment_ticket_at", lang, t=f"{tk.appointment_at:%H:%M}")
        else:
            head = t(
                "appointment_ticket"
                if self.booked
                else "pickup_ticket"
                if self.pickup
                else "priority_ticket"
                if tk.priority
                else "your_number",
                lang,
            )
        return TicketView(
            head=head,
            head_style="accent" if tk.priority or self.booked or self.pickup else "screen",
            number=tk.number,
            service=service_name(tk.service_name, lang),
            place=t("go_to", lang, place=service_name(place, lang)) if (place := self.place_of(tk)) else None,
            issued=t("issued", lang, t=f"{tk.issued_at:%d.%m.%Y %H:%M}"),
            ahead=t("people_ahead", lang, n=tk.people_ahead),
            wait=t("est_wait_unknown", lang) if wait_unknown(tk) else t("est_wait", lang, w=ticket_wait(tk, lang)),
            status=status,
            status_style=style,
            fault=style == "alarm",
            sms=self.sms_words(),
        )

    def sms_words(self) -> str | None:
        """What the ticket screen says about SMS notices: never the number."""
        outcome = self.sms_outcome
        if outcome is None:
            return None
        return t(SMS_WORDS.get(outcome, "sms_unavailable"), self.lang)

    def place_of(self, ticket: TicketIssued) -> dict[str, str] | None:
        """Where the ticket's holder goes (the services list says, per language), if the office said."""
        s = self.service(ticket.service)
        return s.place if s is not None else None

    def status_url(self, ticket: TicketIssued) -> str:
        return status_url(self.settings.public_url, ticket, self.lang)

    def layout_for_print(self, ticket: TicketIssued) -> TicketLayout:
        return self.print_plan().layout(ticket, self.sms_outcome)

    def print_plan(self) -> PrintPlan:
        """What the paper needs besides the ticket, as it stands now (when the request leaves).

        The shell hands it to the link, which starts printing on the network thread the moment
        the ticket arrives (issue 14); the ticket screen later prints nothing again. Frozen
        values, so reading them there is safe: nothing here changes while the kiosk waits."""
        return PrintPlan(
            self.lang,
            self.office,
            self.settings.public_url,
            {s.id: s.place for s in self.services.services if s.place} if self.services else {},
            self.booked,
            self.pickup,
            self.sms_tail,
        )


@dataclass(frozen=True)
class PrintPlan:
    """The ticket's print layout given the ticket: :meth:`Visit.print_plan` captured the rest."""

    lang: str
    office: str
    public_url: str
    places: dict[str, dict[str, str]]
    appointment: bool
    pickup: str | None
    sms_tail: str | None

    def layout(self, ticket: TicketIssued, sms_outcome: str | None) -> TicketLayout:
        """``sms_outcome`` is the answer's ``phone`` ("subscribed": the number's tail is printed)."""
        return ticket_layout(
            ticket,
            self.lang,
            self.office,
            status_url(self.public_url, ticket, self.lang),
            self.places.get(ticket.service),
            appointment=self.appointment,
            pickup=self.pickup,
            sms_tail=self.sms_tail if sms_outcome == "subscribed" else None,
        )


FAULT_KEYS = {"fault_offline", "fault_paper_out", "fault_cover_open", "fault_error"}
