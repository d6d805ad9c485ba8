"""Predictors the default estimator is measured against, on the same tickets.

* **naive** — people ahead × mean service time ÷ open counters (the issue's yardstick).
* **before** — :class:`server.estimate.RecentMedianEstimator`, the estimator before issue 15.
* **QL** — the queue-length predictor (n+1)·E[S]/s of Whitt (1999) and Ibrahim & Whitt
  (2009), with n people ahead, s open counters serving the service and E[S] the mean service
  time so far ("the standard estimator ... commonly used in practice").
* **LES** — last-to-enter-service (Ibrahim & Whitt, "Real-time delay estimation based on
  delay history", Manufacturing & Service Operations Management 11(3), 2009): the wait of
  the last ticket of the same service and class to be called. Before any call of the day it
  falls back to QL.

Each takes the engine as it is just before the ticket is issued and learns only from the
events the engine records, like the default estimator.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Protocol

from server.domain import Event, EventKind
from server.engine import QueueEngine
from server.estimate import RecentMedianEstimator


class Predictor(Protocol):
    name: str

    def predict(self, engine: QueueEngine, service: str, priority: bool) -> float | None:
        """Seconds until the first call of a ticket issued now; None: no estimate."""
        ...

    def events(self, engine: QueueEngine, events: Iterable[Event]) -> None: ...


class _ServiceTimes:
    """Mean service time (start, or call, to finish) per service, from the day's finish events."""

    def __init__(self) -> None:
        self.total: dict[str, float] = {}
        self.n: dict[str, int] = {}
        self._begun: dict[int, datetime] = {}

    def events(self, events: Iterable[Event]) -> None:
        for ev in events:
            if ev.ticket_id is None:
                continue
            if ev.kind in (EventKind.CALL, EventKind.START):
                self._begun[ev.ticket_id] = ev.at
            elif ev.kind == EventKind.FINISH and ev.service is not None:
                begun = self._begun.pop(ev.ticket_id, None)
                if begun is not None:
                    self.total[ev.service] = self.total.get(ev.service, 0.0) + (ev.at - begun).total_seconds()
                    self.n[ev.service] = self.n.get(ev.service, 0) + 1
            elif ev.kind in (EventKind.NO_SHOW, EventKind.TRANSFER, EventKind.CANCEL):
                self._begun.pop(ev.ticket_id, None)

    def mean(self, service: str) -> float:
        n = self.n.get(service, 0)
        return self.total[service] / n if n else 300.0


class Naive:
    name = "naive"

    def __init__(self) -> None:
        self.times = _ServiceTimes()

    def predict(self, engine: QueueEngine, service: str, priority: bool) -> float | None:
        ahead = engine.people_ahead(service, priority)
        return ahead * self.times.mean(service) / max(len(engine.open_counters(service)), 1)

    def events(self, engine: QueueEngine, events: Iterable[Event]) -> None:
        self.times.events(events)


class QueueLength:
    name = "QL"

    def __init__(self) -> None:
        self.times = _ServiceTimes()

    def predict(self, engine: QueueEngine, service: str, priority: bool) -> float | None:
        ahead = engine.people_ahead(service, priority)
        if ahead == 0 and engine.free_counters(service) > 0:
            return 0.0
        return (ahead + 1) * self.times.mean(service) / max(len(engine.open_counters(service)), 1)

    def events(self, engine: QueueEngine, events: Iterable[Event]) -> None:
        self.times.events(events)


class LastToEnterService:
    name = "LES"

    def __init__(self) -> None:
        self.ql = QueueLength()
        self.last: dict[tuple[str, bool], float] = {}
        self.issued: dict[int, datetime] = {}
        self.day: date | None = None

    def predict(self, engine: QueueEngine, service: str, priority: bool) -> float | None:
        if engine.people_ahead(service, priority) == 0 and engine.free_counters(service) > 0:
            return 0.0
        last = self.last.get((service, priority))
        return last if last is not None else self.ql.predict(engine, service, priority)

    def events(self, engine: QueueEngine, events: Iterable[Event]) -> None:
        events = list(events)
        self.ql.events(engine, events)
        for ev in events:
            if ev.day != self.day:
                self.day, self.last, self.issued = ev.day, {}, {}
            if ev.ticket_id is None:
                continue
            if ev.kind == EventKind.ISSUE:
                self.issued[ev.ticket_id] = ev.at
            elif ev.kind == EventKind.CALL and ev.ticket_id in self.issued and ev.service is not None:
                t = engine.tickets.get(ev.ticket_id)
                prio = bool(t.priority) if t is not None else False
                self.last[(ev.service, prio)] = (ev.at - self.issued.pop(ev.ticket_id)).total_seconds()


class Before:
    """The estimator before issue 15, run beside the engine's own on the same events."""

    name = "before"

    def __init__(self) -> None:
        self.est = RecentMedianEstimator()
        self._begun: dict[int, datetime] = {}

    def predict(self, engine: QueueEngine, service: str, priority: bool) -> float | None:
        self.est.free_counters = engine.free_counters
        return float(self.est.estimate(service, engine.people_ahead(service, priority), engine.capacity(service)))

    def events(self, engine: QueueEngine, events: Iterable[Event]) -> None:
        for ev in events:  # what the engine's _end passed to observe(): start (or call) to finish
            if ev.ticket_id is None:
                continue
            if ev.kind in (EventKind.CALL, EventKind.RECALL, EventKind.START):
                self._begun[ev.ticket_id] = ev.at
            elif ev.kind == EventKind.FINISH and ev.service is not None:
                begun = self._begun.pop(ev.ticket_id, None)
                if begun is not None:
                    self.est.observe(ev.service, (ev.at - begun).total_seconds())
            elif ev.kind in (EventKind.NO_SHOW, EventKind.TRANSFER, EventKind.CANCEL):
                self._begun.pop(ev.ticket_id, None)


def all_baselines() -> list[Predictor]:
    return [Naive(), Before(), QueueLength(), LastToEnterService()]
