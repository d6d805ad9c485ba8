"""Estimated wait for a new ticket: a separate, replaceable piece.

The engine only needs ``observe`` (a service just ended, it took so long) and
``estimate`` (how long will the person with this many people ahead wait). Accuracy is
measured by the simulator against the naive rule "people ahead × mean service time ÷ open
counters" (docs/performance.md), so a better estimator can be swapped in on evidence.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Callable
from typing import Protocol


class WaitEstimator(Protocol):
    def observe(self, service: str, service_seconds: float) -> None: ...

    def estimate(self, service: str, people_ahead: int, counters: float) -> int:
        """Seconds until the ticket is called; ``counters`` is the capacity serving it."""
        ...


class RecentMedianEstimator:
    """People ahead × recent median service time ÷ counter capacity.

    Why the median of the last ``window`` services: a few very long cases (a
    complicated registration) should not inflate every estimate printed afterwards, and
    the recent window follows the pace of the day. ``counters`` is not a plain count: a
    counter that serves several services is shared between them (see
    :meth:`server.engine.QueueEngine.capacity`). Half a service time is added for the
    client currently at the counter, unless nobody is ahead and a counter is free.

    ``free_counters(service)`` says how many open counters serving ``service`` have nobody
    at them. Why a hook: the estimate's other inputs do not tell a free counter from a busy
    one, and "0 min" for a resident while every clerk is still busy with someone is the
    one estimate that is always wrong. Without the hook no counter is assumed free, so
    the estimate is never 0 (a resident called sooner than promised is not let down).
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
