"""The counter time today's appointments take from walk-ins, as plain values for the replay.

Why: rule 1a (docs/queueing.md) calls a checked-in appointment ahead of every walk-in from
``call_window_min`` before its booked time. A walk-in who takes a ticket at 9:00 while six
residents are booked for the same service before 10:00 waits behind those of them who
come. The estimator used to see appointments only once they had checked in, and not even
then (they wait in a queue of their own), so it promised walk-ins too short a wait.

What counts, per service (:func:`expected_appointments`):

* a **checked-in** appointment ticket still waiting: one client, callable from its booked
  time less ``call_window_min`` (now, if that has passed);
* a **booked** visit not checked in yet (a :class:`BookedVisit` the server hands the engine,
  server/booking/feed.py; the simulator does the same): ``show`` of a client (1 − the
  service's no-show rate of past bookings, or :data:`DEFAULT_NO_SHOW`), from the same moment.
  Once that moment has passed without a check-in, the share falls linearly to nothing when
  check-in closes (booked time + ``late_min``), and the resident is expected halfway between
  now and then (not at once: the counter does not wait for someone not there). After that it
  counts no more: a resident who comes later is a walk-in, and the expected arrivals already
  cover walk-ins;
* a **cancelled** booking is not handed over at all, so its time is free again.

Pure: no clock of its own, no SQL; the engine passes its state and ``now`` in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

DEFAULT_NO_SHOW = 0.15
"""No-show rate of bookings assumed until a service has :data:`MIN_HISTORY` past bookings."""
MIN_HISTORY = 20


@dataclass(frozen=True)
class BookedVisit:
    """A booking for today not checked in yet: no name, no contact, only what the estimate needs."""

    service: str
    at: datetime  # the booked time
    code: str  # to recognise it once checked in (a ticket carries its booking's code)
    show: float = 1.0 - DEFAULT_NO_SHOW  # probability that the resident comes


@dataclass(frozen=True)
class Reserved:
    """Counter time kept for one appointment: callable from ``due`` (rule 1a), ``weight`` of a client."""

    due: datetime
    weight: float


def show_rate(checked_in: int, no_shows: int) -> float:
    """The probability that a booked resident comes, from past bookings (a documented default first)."""
    if checked_in + no_shows < MIN_HISTORY:
        return 1.0 - DEFAULT_NO_SHOW
    return checked_in / (checked_in + no_shows)


def expected_appointments(
    waiting: Iterable[datetime],
    booked: Sequence[BookedVisit],
    checked_in_codes: set[str],
    now: datetime,
    call_window_min: int,
    late_min: int,
) -> list[Reserved]:
    """One service's appointments still to be served today, earliest due first.

    ``waiting``: booked times of its checked-in appointment tickets still waiting;
    ``booked``: its visits not checked in (those whose code is in ``checked_in_codes``
    already have a ticket and are skipped: the booking's row is marked a moment later).
    """
    window = timedelta(minutes=call_window_min)
    late = timedelta(minutes=late_min)
    out = [Reserved(max(now, at - window), 1.0) for at in waiting]
    for v in booked:
        closes = v.at + late
        if v.code in checked_in_codes or now >= closes or v.show <= 0:
            continue
        due = v.at - window
        if now <= due:
            out.append(Reserved(due, v.show))
            continue
        # due already and not here: less likely to come the nearer check-in closes, and not before now
        left = (closes - now) / (closes - due)
        out.append(Reserved(now + (closes - now) / 2, v.show * left))
    out.sort(key=lambda r: r.due)
    return out
