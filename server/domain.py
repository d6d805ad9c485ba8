"""Domain records of the queue engine: tickets, counters, events. Plain data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from protocol.messages import CounterAction, CounterStatus, ErrorCode


class TicketStatus(StrEnum):
    WAITING = "waiting"
    CALLED = "called"
    SERVING = "serving"
    FINISHED = "finished"
    NO_SHOW = "no_show"
    TRANSFERRED = "transferred"  # only in history: a transferred ticket waits again
    CANCELLED = "cancelled"

    @property
    def is_open(self) -> bool:
        return self in (TicketStatus.WAITING, TicketStatus.CALLED, TicketStatus.SERVING)


class EventKind(StrEnum):
    ISSUE = "issue"
    CALL = "call"
    RECALL = "recall"
    START = "start"
    FINISH = "finish"
    NO_SHOW = "no_show"
    TRANSFER = "transfer"
    CANCEL = "cancel"
    COUNTER_OPEN = "counter_open"
    COUNTER_PAUSE = "counter_pause"
    COUNTER_CLOSE = "counter_close"
    SIGN_IN = "sign_in"
    SIGN_OUT = "sign_out"
    RATING = "rating"
    DEVICE_FAULT = "device_fault"


@dataclass
class Ticket:
    id: int
    day: date
    number: str
    service: str  # the service it waits for now (changes on transfer)
    priority: bool
    token: str
    issued_at: datetime
    queued_at: datetime  # queue position key; a transfer keeps it (see docs/queueing.md)
    status: TicketStatus = TicketStatus.WAITING
    counter: str | None = None  # the counter calling or serving it
    target_counter: str | None = None  # set when transferred to a specific counter
    first_called_at: datetime | None = None
    called_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    recalls: int = 0
    clerk: str | None = None
    estimated_wait_s: int | None = None
    estimated_wait_range_min: tuple[int, int] | None = None  # printed "15–30 min"; None: cannot estimate
    origin: str | None = None  # the kiosk (or "http") that issued it
    rating: int | None = None
    transfers: int = 0
    issued_service: str = ""  # the service it was issued for (reports); set by the engine
    appointment_at: datetime | None = None  # a checked-in booking's booked time (docs/queueing.md, "Appointments")
    booking: str | None = None  # the booking code it was checked in with

    @property
    def is_appointment(self) -> bool:
        """Waits in its service's appointment queue: checked in on time and not transferred since."""
        return self.appointment_at is not None and self.transfers == 0

    def __post_init__(self) -> None:
        if not self.issued_service:
            self.issued_service = self.service


@dataclass
class CounterRuntime:
    id: str
    status: CounterStatus = CounterStatus.CLOSED
    clerk: str | None = None
    current: int | None = None  # ticket id
    last_finished: int | None = None  # ticket id, for the client's rating


@dataclass(frozen=True)
class Event:
    """One row of the append-only event log. ``id`` orders events and numbers calls."""

    id: int
    kind: EventKind
    at: datetime
    day: date
    ticket_id: int | None = None
    ticket: str | None = None
    service: str | None = None
    counter: str | None = None
    clerk: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Command:
    """What a counter asks the engine to do: the domain's input, not the wire message.

    The gateway builds it from a ``protocol.messages.CounterCommand`` (MQTT or the clerk
    panel); the simulator and tests build it directly. ``current`` is what the counter
    believes it serves: None when it does not say, "" for nobody.
    """

    action: CounterAction
    current: str | None = None
    ticket: str | None = None
    target_service: str | None = None
    target_counter: str | None = None
    clerk: str | None = None
    rating: int | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class ConfigChange:
    """One admin edit (server/admin.py): the override the store keeps and its audit row (values as JSON)."""

    target: str
    field: str
    old: str  # JSON
    new: str  # JSON
    user: str
    at: float


class Refusal(Exception):
    """A command the engine will not carry out. Nothing was changed."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
