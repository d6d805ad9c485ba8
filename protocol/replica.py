"""The replication messages between a branch and the centre (docs/multi-branch.md).

A branch's replicator publishes its append-only event log in batches on
``<base>/replica/<branch>/events``; Mosquitto's bridge carries them to the central broker;
the centre's ingester writes them into PostgreSQL by (branch, event id) and, when it sees a
hole, asks on ``<base>/replica/<branch>/resend`` for everything after the last event it
has in an unbroken run.

Why the batch says ``head``: a lost *last* batch leaves no hole for the centre to notice
(nothing comes after it). The replicator's heartbeat is an empty batch with the branch's
newest event id, so the centre learns that it is behind even when nothing new happens.

Why the devices offline ride in the batches and not on topics of their own: the bridge then
carries nothing new (its ACL stays the four replica topics of the branch) and the centre
learns the devices' state with every heartbeat, in the same order as the events.

Why no clerk name: the centre's views and reports need counters, services and times; a
staff member's login is personal data it does not need.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from protocol.topics import ID_PATTERN

MAX_BATCH = 500
"""Events in one message at most (a bridge queue counts messages, not bytes)."""


class ReplicaEvent(BaseModel):
    """One row of a branch's ``events`` table (docs/storage.md), without the clerk."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[int, Field(ge=1)]
    at: float
    """Unix seconds, UTC, from the branch server's clock."""
    day: date
    kind: Annotated[str, Field(min_length=1, max_length=32)]
    ticket_id: int | None = None
    ticket: str | None = None
    service: str | None = None
    counter: str | None = None
    data: dict[str, Any] | None = None


class BookingOffer(BaseModel):
    """One service a branch takes bookings for, and its next free appointment times: what
    the centre's booking entry shows before sending a resident to the branch's own booking."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service: Annotated[str, Field(pattern=ID_PATTERN)]
    name: dict[Annotated[str, Field(pattern=r"^[a-z]{2}$")], Annotated[str, Field(max_length=60)]] = {}
    next_free: Annotated[list[float], Field(max_length=5)] = []
    """Unix seconds of the next slots with a free seat, earliest first (empty: fully booked)."""


class EventBatch(BaseModel):
    """Events ``after`` < id, in order, and the branch's newest event id (``head``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    branch: Annotated[str, Field(pattern=ID_PATTERN)]
    head: Annotated[int, Field(ge=0)]
    sent_at: float
    """When the replicator sent it (branch clock): the centre's link lag."""
    events: Annotated[list[ReplicaEvent], Field(max_length=MAX_BATCH)] = []
    devices_offline: Annotated[list[Annotated[str, Field(pattern=ID_PATTERN)]], Field(max_length=500)] | None = None
    """The branch's devices (kiosks, counters, displays) whose retained availability on the
    branch broker is ``offline`` (their last will, or a clean stop) when the batch was sent;
    ``None``: not known (a replicator that does not watch them, or not yet)."""
    booking: Annotated[list[BookingOffer], Field(max_length=50)] | None = None
    """The branch's booking offer, when the replicator has looked again (once a minute);
    ``None`` in the batches between."""

    @model_validator(mode="after")
    def _ordered(self) -> EventBatch:
        ids = [e.id for e in self.events]
        if ids != sorted(set(ids)):
            raise ValueError("events must be in increasing id order without repeats")
        if ids and ids[-1] > self.head:
            raise ValueError("an event is newer than the batch's head")
        return self


class ResendRequest(BaseModel):
    """The centre to one branch: publish every event with id > ``after`` again."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    after: Annotated[int, Field(ge=0)]


PUSH_ID = r"^[A-Za-z0-9_-]{1,64}$"


class ConfigEdit(BaseModel):
    """One change of a pushed configuration: what the branch's admin page could change,
    named the way it names it (server/admin.py): ``service:<id>`` with ``hours``,
    ``daily_limit``, ``cutoff_min``, ``target_wait_min``, ``priority``; ``counter:<id>`` with
    ``services``, ``name``; ``booking:<service id>`` with ``plan`` (the booking plan's fields,
    laid over the current plan, or ``null``: no bookings)."""

    model_config = ConfigDict(extra="forbid")
    target: Annotated[str, Field(pattern=r"^(service|counter|booking):[A-Za-z0-9_-]{1,32}$")]
    values: Annotated[dict[str, Any], Field(min_length=1, max_length=10)]


class ConfigPush(BaseModel):
    """The centre to one branch (``replica/<branch>/config``, retained, QoS 1): apply all of
    ``changes`` or none. ``id`` is new for each push; a branch that has answered it once
    answers the same again (a retained push comes back at every reconnect)."""

    model_config = ConfigDict(extra="forbid")
    v: Literal[1] = 1
    id: Annotated[str, Field(pattern=PUSH_ID)]
    by: Annotated[str, Field(min_length=1, max_length=64)]
    at: float
    changes: Annotated[list[ConfigEdit], Field(min_length=1, max_length=200)]


class ConfigResult(BaseModel):
    """A branch's answer (``replica/<branch>/config-result``, QoS 1)."""

    model_config = ConfigDict(extra="forbid")
    v: Literal[1] = 1
    id: Annotated[str, Field(pattern=PUSH_ID)]
    branch: Annotated[str, Field(pattern=ID_PATTERN)]
    applied: bool
    reasons: list[str] = []
    changed: int = 0
    """Fields that differed and were changed (0: applied, but nothing was different)."""
    at: float
