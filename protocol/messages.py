"""JSON payloads of the MQTT protocol, as pydantic models.

Every message carries ``v`` (the protocol version). Requests from devices carry ``id``,
chosen by the device and unique per device; the server answers each id once and answers a
redelivered id with the same reply without acting again, which is what makes QoS 1
redelivery and double presses harmless. Unknown fields are refused, so a typo in a
third-party device shows up as an error reply instead of being silently ignored. The server
validates device requests with ``model_validate_json(payload, strict=True)``: no coercion
(``"yes"`` is not a bool, ``"5"`` not an int), while enum values are their JSON strings.

Times are ISO 8601 with the office's UTC offset and always come from the server's clock.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from protocol.topics import ID_PATTERN

PROTOCOL_VERSION: Literal[1] = 1
MAX_PAYLOAD_BYTES = 4096
"""Requests larger than this are refused unread (a command is well under 300 bytes)."""

DeviceId = Annotated[str, Field(pattern=ID_PATTERN)]
BOOKING_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
"""The characters of a booking code (no 0/O, 1/I/L: they look or sound alike). One list for the
server that makes codes and the kiosk keypad that types them."""
BOOKING_CODE_LENGTH = 6
BookingCode = Annotated[str, Field(pattern=r"^[0-9A-Z]{6}$")]
"""A booking's code: six capitals and digits, without the dash it is shown with (``YTX-RY5``)."""
RequestId = Annotated[str, Field(min_length=1, max_length=64)]

PREFIX_PATTERN = r"^[A-Z]{1,2}$"
"""A service's ticket prefix: one or two capital letters (the site config's ``prefix``)."""
MAX_TICKET_SEQ = 999_999
"""The highest number of one service's day: 6 digits, so a number always fits a 16-column
counter display ("Numer AB999999") and a call can always name it."""
_NUMBER = r"[A-Z]{1,2}(?:[0-9]{3}|[1-9][0-9]{3,5})"
TICKET_NUMBER_PATTERN = rf"^{_NUMBER}$"
"""A ticket number: the prefix, then the day's sequence number with at least 3 digits and
no fixed width: A001 … A999, A1000 … A999999 (docs/protocol.md, "Ticket numbers")."""
TicketNumber = Annotated[str, Field(pattern=TICKET_NUMBER_PATTERN)]
CurrentTicket = Annotated[str, Field(pattern=rf"^(?:{_NUMBER})?$")]
"""``current`` of a command: a ticket number, or ``""`` for none (one type, so an error names the field plainly)."""


def ticket_number(prefix: str, seq: int) -> str:
    """The number of a service's ``seq``-th ticket of the day: ``ticket_number("A", 7) == "A007"``.

    Raises ValueError past :data:`MAX_TICKET_SEQ`: a number no device could call.
    """
    if not 1 <= seq <= MAX_TICKET_SEQ:
        raise ValueError(f"ticket sequence {seq} outside 1..{MAX_TICKET_SEQ}")
    return f"{prefix}{seq:03d}"


CLERK_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$"
"""A clerk id (a badge number or a login): letters, digits, '.', '_', '-', at most 32, and a
letter or digit first. Clerk ids land in the managers' CSV and XLSX exports, where a value
starting with = + - @ would be a live formula; nothing here can start one."""
ClerkId = Annotated[str, Field(pattern=CLERK_PATTERN)]

_ISO_WITH_OFFSET = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?(?:Z|[+-]\d{2}:\d{2})$")
OFFSET_EXAMPLE = "2026-11-23T09:15:05+01:00"


def _iso_with_offset(value: object) -> datetime:
    """Only an ISO 8601 text with a UTC offset is a time on the wire.

    pydantic alone also reads numbers and digit strings as Unix time ("9999999999" is a
    deadline in 2286, "-1" one in 1969) and times without an offset (any of 24 moments):
    both are refused here, for every deadline alike.
    """
    if isinstance(value, datetime):  # built in Python (a device's own message): checked after
        return value
    if not isinstance(value, str) or not _ISO_WITH_OFFSET.match(value):
        raise ValueError(f"must be an ISO 8601 time with a UTC offset, e.g. {OFFSET_EXAMPLE}")
    return datetime.fromisoformat(value)


def _aware(value: datetime) -> datetime:
    """A deadline without a UTC offset could mean any of 24 moments: refuse it."""
    if value.utcoffset() is None:
        raise ValueError(f"expires_at needs a UTC offset, e.g. {OFFSET_EXAMPLE}")
    return value


Deadline = Annotated[datetime, BeforeValidator(_iso_with_offset), AfterValidator(_aware)]
"""``expires_at``: when the device stops waiting (server time); the server refuses the request later."""


class _Message(BaseModel):
    """Base of every message. ``v`` defaults to 1 so that senders need not spell it out;
    a receiver of device requests must insist on it (the server does: see
    docs/protocol.md, "Strict validation")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = PROTOCOL_VERSION

    @field_validator("v", mode="before")
    @classmethod
    def _integer_version(cls, value: object) -> object:
        """``true`` and ``1.0`` are not version 1 (``Literal[1]`` alone takes both, even strict)."""
        if type(value) is not int:
            raise ValueError(f"must be the integer {PROTOCOL_VERSION}")
        return value

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=False).encode()


class ErrorCode(StrEnum):
    """Machine-readable refusal reasons. Clients show their own translated text."""

    INVALID_REQUEST = "invalid_request"  # not JSON, wrong fields, too large
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_TOPIC = "unknown_topic"
    UNKNOWN_COUNTER = "unknown_counter"
    UNKNOWN_SERVICE = "unknown_service"
    UNKNOWN_TICKET = "unknown_ticket"
    NOT_ALLOWED = "not_allowed"  # e.g. a counter not serving the target service
    SERVICE_CLOSED = "service_closed"  # outside opening hours
    CUT_OFF = "cut_off"  # too close to closing time to take a ticket
    LIMIT_REACHED = "limit_reached"  # daily ticket limit reached
    COUNTER_CLOSED = "counter_closed"  # the counter must be opened first
    COUNTER_PAUSED = "counter_paused"
    NO_CURRENT_TICKET = "no_current_ticket"
    QUEUE_EMPTY = "queue_empty"
    STALE = "stale"  # the command was about a ticket that is no longer current
    EXPIRED = "expired"  # the command's expires_at had passed / a rating came too long after the service
    TOO_SOON = "too_soon"  # a recall while the previous call of the ticket is still being announced
    RATE_LIMITED = "rate_limited"  # a device asked faster than a person can (e.g. tickets from one kiosk)
    UNAVAILABLE = "unavailable"  # the server cannot save right now (disk full, damaged file): nothing was done
    BOOKING_UNKNOWN = "booking_unknown"  # no booking has this code (mistyped?)
    BOOKING_TOO_EARLY = "booking_too_early"  # check-in opens [booking] early_min before the booked time
    BOOKING_TOO_LATE = "booking_too_late"  # check-in closed [booking] late_min after it (and late = "refuse")
    BOOKING_OTHER_DAY = "booking_other_day"  # the booking is for another day
    BOOKING_CANCELLED = "booking_cancelled"  # the booking was cancelled
    PICKUP_UNKNOWN = "pickup_unknown"  # no document is ready for pick-up under this case reference
    PICKUP_COLLECTED = "pickup_collected"  # a pick-up ticket for this case was issued already
    INTERNAL = "internal"


class ErrorInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    code: ErrorCode
    message: str


class ErrorMessage(_Message):
    """Published on ``<base>/server/errors`` when a message has no other way back."""

    topic: str
    id: str | None = None
    error: ErrorInfo
    server_time: datetime


# --------------------------------------------------------------------------- tickets


class TicketInfo(BaseModel):
    """A ticket as devices see it (no personal data: there is none)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    number: TicketNumber
    service: str
    status: Literal["waiting", "called", "serving", "finished", "no_show", "transferred", "cancelled"]
    priority: bool = False
    issued_at: datetime
    called_at: datetime | None = None
    started_at: datetime | None = None
    recalls: int = 0
    counter: str | None = None


# --------------------------------------------------------------------------- counters


class CounterAction(StrEnum):
    NEXT = "next"  # finish the current ticket (if any) and call the next one
    CALL = "call"  # call a specific waiting ticket (``ticket``), e.g. from the clerk panel
    RECALL = "recall"  # call the current ticket again
    START = "start"  # the called client has arrived; service starts now
    FINISH = "finish"  # end the current service without calling anyone
    NO_SHOW = "no_show"  # the called client did not come
    TRANSFER = "transfer"  # send the current ticket to ``target_service`` or ``target_counter``
    PAUSE = "pause"
    OPEN = "open"
    CLOSE = "close"
    SIGN_IN = "sign_in"  # ``clerk`` starts working at this counter
    SIGN_OUT = "sign_out"
    RATE = "rate"  # client satisfaction ``rating`` (1-5) for ``ticket``
    SYNC = "sync"  # no-op; answers with the current state (after reconnect)


class CounterCommand(_Message):
    """Published by a counter unit or the clerk panel on ``<base>/counter/<id>/command``.

    ``current`` is the ticket the device believes it is serving. When given, the server
    refuses the command with ``stale`` if the counter's current ticket differs: two NEXT
    presses sent in quick succession both say ``current: A001``; the first one calls A002,
    the second is refused instead of skipping A002.

    ``expires_at`` (server time) is when the device stops waiting for the reply and tells the
    clerk the press failed. The server refuses a command that reaches it later with
    ``expired``: a server that froze for a while must not call a ticket the clerk was told
    was not called. Devices without a clock estimate (and scripts) leave it out.
    """

    id: RequestId
    action: CounterAction
    current: CurrentTicket | None = None
    ticket: TicketNumber | None = None
    target_service: DeviceId | None = None
    target_counter: DeviceId | None = None
    clerk: ClerkId | None = None
    rating: Annotated[int, Field(ge=1, le=5)] | None = None
    expires_at: Deadline | None = None


class CounterStatus(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    PAUSED = "paused"


class CounterState(_Message):
    """Retained on ``<base>/counter/<id>/state``: the truth a (re)connecting unit shows."""

    counter: str
    name: str
    zone: str
    status: CounterStatus
    clerk: str | None = None
    ticket: TicketInfo | None = None
    services: list[str]
    waiting: dict[str, int]  # per service this counter serves
    personal_waiting: int = 0  # tickets transferred to this counter itself
    server_time: datetime


class CounterReply(_Message):
    """Published once per command id on ``<base>/counter/<id>/reply``
    (or on the command's MQTT 5 response topic)."""

    id: str | None
    ok: bool
    action: CounterAction | None = None
    ticket: TicketInfo | None = None
    error: ErrorInfo | None = None
    server_time: datetime


# --------------------------------------------------------------------------- halls


class CallMessage(_Message):
    """One call (or recall) of a ticket to a counter, on ``<base>/zone/<zone>/call``.

    ``seq`` increases by one per call across the whole office; displays use it to order
    announcements and to tell a live call from one they already know from the board.
    """

    seq: int
    ticket: TicketNumber
    service: str
    counter: str
    counter_name: str
    zone: str
    recall: bool = False
    at: datetime
    place: dict[str, str] | None = None
    """Where to go, per language ("pl": "pokój 12, I piętro", "en": "room 12, 1st floor"): the
    counter's ``place``, else its zone's name for residents; null when the office set neither.
    Optional, so a device written before it still validates. A display listing another zone's
    calls shows it, so a resident in the wrong hall learns where to go."""


class BoardMessage(_Message):
    """Retained on ``<base>/zone/<zone>/board``: what a display shows after (re)connecting."""

    zone: str
    seq: int  # the highest call seq included (0 if none today)
    calls: list[CallMessage]  # newest first, at most 10
    waiting: dict[str, int]  # per service shown in this zone
    server_time: datetime


# --------------------------------------------------------------------------- kiosks


def _wait_range(value: tuple[int, int]) -> tuple[int, int]:
    if not 0 <= value[0] < value[1]:
        raise ValueError("a wait range is [lo, hi] minutes with 0 <= lo < hi")
    return value


WaitRange = Annotated[
    tuple[Annotated[int, Field(ge=0, le=10000)], Annotated[int, Field(ge=1, le=10000)]], AfterValidator(_wait_range)
]
"""``[lo, hi]``: the estimated wait in whole minutes, rounded outward by the server."""


class ServiceInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    prefix: str
    name: dict[str, str]  # language code -> name ("pl", "en", optionally "uk")
    zone: str
    available: bool  # a ticket can be taken now
    reason: ErrorCode | None = None  # why not: service_closed, cut_off, limit_reached
    waiting: int
    estimated_wait_min: int
    """One number, for devices written before ranges: show ``estimated_wait_range_min`` instead."""
    open_counters: int
    # For the kiosk's priority path: who is ahead of a new priority ticket (the other priority
    # tickets) and its estimate. Optional, so a device written before them still validates.
    priority_ahead: int | None = None
    priority_estimated_wait_min: int | None = None
    estimated_wait_range_min: WaitRange | None = None
    """[lo, hi] minutes, rounded outward ("15–30 min", [0, 5] is "do 5 min"); null: the server
    cannot estimate the wait now (no counter serves the service today, or none is open or
    expected). protocol/waits.py turns it into words."""
    priority_estimated_wait_range_min: WaitRange | None = None
    opens_at: str | None = None  # "HH:MM" today, when closed now but opening later
    closes_at: str | None = None
    place: dict[str, str] | None = None
    """Where residents go for the service, by language ("pl", "en", optionally "uk"): the
    zone's name for residents from the site config (``[public] zone_names``, e.g. "I piętro,
    pokój 12"); null when the office named no place. The kiosk prints and shows it."""
    next_opening: datetime | None = None
    """The service's first opening on a later day, in the office's local time: when a service
    that stopped taking tickets today (``cut_off``, also one refused at the kiosk's tap) takes
    them again ("come back on Monday from 8:00"). Optional; null: not within two weeks."""


class ServicesMessage(_Message):
    """Retained on ``<base>/services``."""

    office: str
    services: list[ServiceInfo]
    server_time: datetime


class TicketRequest(_Message):
    """A kiosk asks for a ticket on ``<base>/kiosk/<id>/request`` (MQTT 5 request/response).

    ``expires_at`` (server time), as for counter commands: when the kiosk gives up and tells
    the resident no ticket was issued. The server refuses a request it reads later with
    ``expired`` instead of issuing a ticket nobody holds.
    """

    id: RequestId
    service: DeviceId | None = None
    priority: bool = False
    lang: Literal["pl", "en", "uk"] = "pl"
    expires_at: Deadline | None = None
    booking: Annotated[str, Field(min_length=1, max_length=40)] | None = None
    """A booking code as typed or scanned (``K7M-4PX``, any case, dashes and spaces ignored):
    check in for that booking instead of taking a walk-in ticket (docs/protocol.md, "Check-in")."""

    pickup: Annotated[str, Field(min_length=1, max_length=40)] | None = None
    """A case reference as typed or scanned (``KM.1/2026``, any case, spaces ignored): a ticket for
    collecting that case's ready document, in the case's service (docs/protocol.md, "Document pick-up")."""
    phone: Annotated[str, Field(min_length=1, max_length=32)] | None = None
    """A mobile number the resident typed at the kiosk, under the kiosk's consent sentence, for "your
    turn is near" and "you are called" by SMS; only with ``service``. The server validates it as the
    ticket page's form does and subscribes the ticket in the same transaction; ``TicketResponse.phone``
    says what became of it. Personal data: never logged, never echoed back."""

    @model_validator(mode="after")
    def _service_or_booking(self) -> TicketRequest:
        if self.service is None and self.booking is None and self.pickup is None:
            raise ValueError("a ticket request needs 'service', 'booking' or 'pickup'")
        if self.pickup is not None and (self.service is not None or self.booking is not None):
            raise ValueError("'pickup' names the case: send it without 'service' and 'booking'")
        if self.phone is not None and self.service is None:
            raise ValueError("'phone' goes only with 'service'")
        return self


class TicketIssued(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    number: TicketNumber
    service: str
    service_name: dict[str, str]
    priority: bool
    issued_at: datetime
    people_ahead: int
    estimated_wait_min: int
    """One number, for devices written before ranges: print ``estimated_wait_range_min`` instead."""
    token: str  # unguessable; the ticket status page is ``/t/<token>``
    status_path: str
    estimated_wait_range_min: WaitRange | None = None
    """What to print: [lo, hi] minutes rounded outward; null: "we cannot estimate the wait now"."""
    appointment_at: datetime | None = None
    """A checked-in booking's time (office time): print "Wizyta o 10:30"; null for a walk-in ticket."""


PhoneOutcome = Literal["subscribed", "invalid", "not_mobile", "opted_out", "rate_limited", "unavailable"]
"""What became of a request's ``phone`` (docs/protocol.md): the ticket is issued either way."""


class TicketResponse(_Message):
    id: str | None
    ok: bool
    ticket: TicketIssued | None = None
    error: ErrorInfo | None = None
    server_time: datetime
    phone: PhoneOutcome | None = None
    """Only when the request had ``phone``: ``subscribed`` (SMS notices will come), ``invalid`` or
    ``not_mobile`` (no SMS: the number cannot get one), ``opted_out`` (the number replied STOP to
    an earlier SMS), ``rate_limited`` (too many numbers from this
    kiosk or for this number just now), ``unavailable`` (the office sends no SMS). Never the number."""

    def to_json(self) -> bytes:
        """``phone`` only when the request had one: a kiosk from before the field (devices refuse
        unknown fields) still reads every other answer."""
        if self.phone is not None:
            return super().to_json()
        return self.model_dump_json(exclude={"phone"}).encode()


class FaultReport(_Message):
    """A kiosk reports its printer state on ``<base>/kiosk/<id>/fault`` (retained)."""

    device: str
    component: Literal["printer"] = "printer"
    fault: Literal["ok", "offline", "paper_out", "paper_low", "cover_open", "error"]
    message: str = ""
