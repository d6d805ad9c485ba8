"""What an estimator is, and what it may read of the engine.

The engine depends only on these: it tells its estimator every event it records
(``on_event``) and asks it for an estimate giving it read access to itself (``predict``
with an :class:`EngineView`). Any object with these members can be swapped in; the
simulator (server/sim/) measures every candidate on the same tickets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import Protocol

from protocol.waits import MAX_PRINTED_WAIT_MIN
from server.config import Counter, Service
from server.domain import CounterRuntime, Event, Ticket


@dataclass(frozen=True)
class WaitEstimate:
    """One estimate: the printed range and a single number for devices that only know one.

    ``range_min`` is what residents see ("15–30 min"), minutes rounded outward
    (protocol/waits.py); ``None`` means "we cannot estimate the wait now". ``point_s`` is
    the best single guess, kept for ``estimated_wait_min`` on devices written before ranges
    (when there is no range it is the guess "as if one counter opened now", which is what
    those devices always showed). ``lo_s``/``hi_s`` are the range before rounding.
    """

    point_s: int
    range_min: tuple[int, int] | None
    lo_s: int = 0
    hi_s: int = 0
    ahead: int = 0
    """The people the estimate counts ahead (for a priority ticket: with overdue ordinary ones)."""

    def __post_init__(self) -> None:
        # A range longer than any office day is no estimate: "we cannot estimate the wait now"
        # (a soak with 600 waiting and slow counters gave [10020, ...]; the protocol caps ranges).
        if self.range_min is not None and self.range_min[1] > MAX_PRINTED_WAIT_MIN:
            object.__setattr__(self, "range_min", None)


class EngineView(Protocol):
    """The engine, read only, as an estimator sees it. :class:`~server.engine.QueueEngine` satisfies it.

    Why so little: an estimator must not depend on how the engine stores its state, only on
    what an office has: the clock, its services (targets, hours), its counters (services in
    order of preference; status and the ticket at each now) and the waiting queues. When a
    counter was paused, and everything learned, it keeps itself from :meth:`WaitEstimator.on_event`.
    """

    @property
    def tz(self) -> tzinfo: ...

    @property
    def day(self) -> date | None:
        """The office day the engine is on (it rolls before issuing the day's first ticket)."""
        ...

    def office_day(self, now: datetime) -> date:
        """The office day ``now`` belongs to (numbering restarts at ``day_starts``)."""
        ...

    @property
    def services(self) -> Mapping[str, Service]: ...

    @property
    def counter_config(self) -> Mapping[str, Counter]: ...

    @property
    def counters(self) -> Mapping[str, CounterRuntime]: ...

    @property
    def tickets(self) -> Mapping[int, Ticket]: ...

    def now(self) -> datetime: ...

    def waiting_queue(self, service: str, priority: bool) -> Sequence[tuple[datetime, int]]:
        """The service's waiting tickets of one class as (queue time, ticket id), in call order."""
        ...

    def personal_waiting(self, counter: str) -> int:
        """Tickets transferred to this counter itself (it calls them before anyone else)."""
        ...


class WaitEstimator(Protocol):
    def on_event(self, ev: Event, view: EngineView) -> None:
        """Every event the engine records, as it records it."""
        ...

    def observe(self, service: str, service_seconds: float) -> None:
        """A past service time, as restored from the store after a restart."""
        ...

    def predict(self, service: str, priority: bool, view: EngineView, ticket: Ticket | None = None) -> WaitEstimate:
        """The wait of a new ticket (or of the waiting ``ticket``) until its first call."""
        ...

    def estimate(self, service: str, people_ahead: int, counters: float) -> int:
        """Seconds for a ticket with ``people_ahead`` ahead (the older interface, kept for callers of it)."""
        ...
