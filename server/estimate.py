"""Estimated wait for a new ticket: a separate, replaceable piece.

The engine tells its estimator every event it records (``on_event``) and asks it for an
estimate with read access to itself (``predict``, see :mod:`server.estimates.base`). The
default is :class:`~server.estimates.honest.HonestEstimator` (issue 15, docs/estimates.md):
a range that holds, from what the office has shown it. :class:`RecentMedianEstimator` is the
estimator before it, kept as the measured baseline ("before") and for callers of the older
``estimate(service, people_ahead, counters)``. Accuracy is measured by the simulator against
naive and published predictors on the same tickets (``numerek-simulate --scenario``).
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Callable
from typing import Protocol

from protocol.waits import round_outward
from server.domain import Event, Ticket
from server.estimates.base import EngineView, WaitEstimate, WaitEstimator
from server.estimates.honest import HonestEstimator

__all__ = ["EngineView", "HonestEstimator", "RecentMedianEstimator", "WaitEstimate", "WaitEstimator"]


class LegacyView(Protocol):
    """What :class:`RecentMedianEstimator` reads of the engine (its own older rule)."""

    def people_ahead(self, service: str, priority: bool) -> int: ...

    def capacity(self, service: str) -> float: ...

    def free_counters(self, service: str) -> int: ...


class RecentMedianEstimator:
    """People ahead × recent median service time ÷ counter capacity (the estimator before issue 15).

    Why the median of the last ``window`` services: a few very long cases (a
    complicated registration) should not inflate every estimate printed afterwards, and
    the recent window follows the pace of the day. ``counters`` is not a plain count: a
    counter that serves several services is shared between them (see
    :meth:`server.engine.QueueEngine.capacity`). Half a service time is added for the
    client currently at the counter, unless nobody is ahead and a counter is free.

    Measured on simulated bad days (docs/estimates.md) it is no better than naive: a paused
    counter counts as closed, priority tickets ignore overdue ordinary ones, the median
    service time is below the time a counter spends per client, and with no counter open one
    is assumed. Kept as the baseline those figures are "before".

    ``free_counters(service)`` says how many open counters serving ``service`` have nobody
    at them; without the hook no counter is assumed free, so the estimate is never 0.
    """

    def __init__(
        self,
        default_seconds: float = 300.0,
        window: int = 25,
        free_counters: Callable[[str], int] | None = None,
    ) -> None:
        self.default_seconds = default_seconds
        self.window = window
        self.free_counters = free_counters
        self._recent: dict[str, deque[float]] = {}

    def observe(self, service: str, service_seconds: float) -> None:
        if service_seconds <= 0:
            return
        self._recent.setdefault(service, deque(maxlen=self.window)).append(service_seconds)

    def on_event(self, ev: Event, view: EngineView) -> None:
        """Service times come through :meth:`observe` (the engine calls it when a service ends)."""

    def typical(self, service: str) -> float:
        recent = self._recent.get(service)
        if not recent:
            return self.default_seconds
        return statistics.median(recent)

    def estimate(self, service: str, people_ahead: int, counters: float) -> int:
        if counters <= 0:
            counters = 1.0  # assume one counter will open; the wait is not zero meanwhile
        elif people_ahead == 0 and self.free_counters is not None and self.free_counters(service) > 0:
            return 0  # nobody ahead and a clerk free: called at once
        per_client = self.typical(service)
        return round((people_ahead + 0.5) * per_client / counters)

    def predict(self, service: str, priority: bool, view: EngineView, ticket: Ticket | None = None) -> WaitEstimate:
        """The older rule through the newer interface; its "range" is just the point rounded outward."""
        legacy: LegacyView = view  # type: ignore[assignment]  # the engine has both faces
        if self.free_counters is None:
            self.free_counters = legacy.free_counters
        ahead = legacy.people_ahead(service, priority)
        seconds = self.estimate(service, ahead, legacy.capacity(service))
        return WaitEstimate(point_s=seconds, range_min=round_outward(seconds, seconds), ahead=ahead)
