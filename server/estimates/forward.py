"""Play the routing rule forward from now, with expected times, until a ticket is called.

Why: who is called next at a shared counter depends on the routing rule
(docs/queueing.md): overdue tickets first (the most overdue first), then priority, then
the counter's preferences. In an overloaded hall every queue is overdue and the counters
serve all of them by how overdue they are; a moment earlier they served their preferred
service. No fixed share of calls captures both, so the estimator replays the rule: the
counters of the connected group of counters and services, each free at its expected
moment (its current client's expected time left, the end of its break, its usual opening),
taking tickets in the rule's order, each for the mean time its service occupies a counter;
residents expected to arrive meanwhile (at the office's usual rate for the hour) join the
queues and go ahead where the rule puts them.

This mirrors :meth:`server.engine.QueueEngine.pick_next`; tests/test_estimates.py checks
both agree on the cases the rule distinguishes. Pure: plain numbers in, seconds out.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

INF = math.inf
MAX_CALLS = 100
"""Calls replayed at most; beyond, the rest is extrapolated at the replayed pace (a queue of hundreds)."""
MAX_ARRIVALS = 150
"""Expected arrivals replayed at most (a day of a busy office); a burst far beyond stops adding more."""


@dataclass
class SimCounter:
    id: str
    services: Sequence[str]  # in order of preference
    free_at: float  # seconds from now when it next calls someone; INF: not today
    slowdown: Callable[[float], float] = lambda t: 1.0
    """Occupancy multiplier at t (1 / expected availability: breaks to come, early closing); INF: gone."""
    free_times: list[float] = field(default_factory=list)
    """When it may next call, as a sorted sample (the replays draw their ``free_at`` from it)."""

    def at_quantile(self, q: float) -> float:
        if not self.free_times:
            return self.free_at
        return self.free_times[min(len(self.free_times) - 1, int(q * len(self.free_times)))]


@dataclass
class SimQueues:
    """Waiting tickets per (service, priority class) as (queue time, id), queue time in s from now."""

    queues: dict[tuple[str, bool], list[tuple[float, float]]] = field(default_factory=dict)
    beyond: dict[tuple[str, bool], int] = field(default_factory=dict)
    """Tickets left out at the end of a long queue (the replay stops before reaching them)."""

    def add(self, service: str, priority: bool, q: float, tid: float) -> None:
        bisect.insort(self.queues.setdefault((service, priority), []), (q, tid))


@dataclass
class Arrivals:
    """Expected arrivals of one service: a rate per local hour (per second) and the priority share."""

    rate_at: Callable[[float], float]  # per second, at t seconds from now
    priority_share: float


def pick(
    services: Sequence[str],
    queues: SimQueues,
    t: float,
    targets_s: Mapping[str, float],
    service_priority: Mapping[str, int],
) -> tuple[str, bool] | None:
    """The queue a counter calls from at ``t``: the routing rule of docs/queueing.md.

    Overdue tickets first (the most overdue first), then priority tickets, then the counter's
    order of preference, then the service's priority, then first come first served. Only
    queue heads compete: within a queue every part of the rule follows queue time.
    """
    best: tuple[str, bool] | None = None
    best_key: tuple = ()
    for pref, s in enumerate(services):
        target_s = targets_s[s]
        for prio in (True, False):
            q = queues.queues.get((s, prio))
            if not q:
                continue
            qt, tid = q[0]
            over = (t - qt) - target_s
            key = (
                0 if over > 0 else 1,
                -over if over > 0 else 0.0,
                0 if prio else 1,
                pref,
                -service_priority.get(s, 0),
                qt,
                tid,
            )
            if best is None or key < best_key:
                best, best_key = (s, prio), key
    return best


Target = tuple[str, bool, float, float]
"""A ticket whose call time is wanted: (service, priority, queue time in s from now, id)."""


def replay(
    counters: list[SimCounter],
    queues: SimQueues,
    target: Target,
    targets_s: Mapping[str, float],
    service_priority: Mapping[str, int],
    occupancy: Mapping[str, float],
    arrivals: Mapping[str, Arrivals],
    horizon: float,
    target_arrives: bool = False,
) -> tuple[float | None, int]:
    """When ``target``, already in ``queues``, is called.

    With ``target_arrives`` the target is not in ``queues`` yet: it is issued at its queue
    time (a ticket taken later, for the cut-off advice). Returns (seconds from now, or None if
    not within ``horizon``; calls replayed before it).
    """
    extra = [target] if target_arrives else []
    return replay_many(counters, queues, [target], targets_s, service_priority, occupancy, arrivals, horizon, extra)[
        target
    ]


def replay_many(
    counters: list[SimCounter],
    queues: SimQueues,
    targets: Sequence[Target],
    targets_s: Mapping[str, float],
    service_priority: Mapping[str, int],
    occupancy: Mapping[str, float],
    arrivals: Mapping[str, Arrivals],
    horizon: float,
    arriving: Sequence[Target] = (),
    appointments: Mapping[str, list[tuple[float, float]]] | None = None,
) -> dict[Target, tuple[float | None, int]]:
    """When each of ``targets`` (in ``queues``, or issued later if in ``arriving``) is called.

    The targets are ghosts: a counter that calls one records the moment and calls again at
    once, so no target delays anything. That is exact: a ticket's call depends only on what
    happens before it, and a target the replay had not met would not have changed that. One
    replay thus gives the estimate for a new ticket of every service and class of a group
    (the kiosk's service list) for the cost of the longest.

    ``appointments``: per service, (seconds from now when it may be called, expected share
    of a client), earliest first (server/estimates/appointments.py). Rule 1a: a counter
    takes a due appointment of its services before any walk-in, for that share of the
    service's time. The lists are consumed.
    """
    appts = appointments or {}
    coming = _Coming(arrivals, horizon, sorted((q, s, p, tid) for s, p, q, tid in arriving))
    ghosts = {(t[0], t[1], t[2], t[3]): t for t in targets}
    ghost_keys = {(t[0], t[1], t[3]) for t in targets}
    ghost_ids = {t[3] for t in targets}
    found: dict[Target, tuple[float | None, int]] = {}
    served: dict[str, int] = {}  # calls per service, for the pace beyond MAX_CALLS
    choices = [_choices(c.services, queues, targets_s, service_priority) for c in counters]

    heap = [(c.free_at, i) for i, c in enumerate(counters) if c.free_at < INF]
    heapq.heapify(heap)
    calls = 0
    while heap and len(found) < len(ghosts):
        t, i = heapq.heappop(heap)
        if t > horizon:
            break
        if t >= coming.soonest:
            coming.release(t, queues)
        c = counters[i]
        slow = c.slowdown(t)
        if slow == INF:
            continue  # gone for the day (an early close)
        if appts and (due := _due_appointment(c.services, appts, t)) is not None:  # rule 1a
            weight = appts[due].pop(0)[1]
            calls += 1
            heapq.heappush(heap, (t + occupancy[due] * weight * slow, i))
            continue
        while True:
            # pick(c.services, queues, t, ...) with the counter's queues looked up once (_choices)
            best = None
            best_key: tuple = ()
            for choice in choices[i]:
                q = choice[3]
                if not q:
                    continue
                qt, tid = q[0]
                over = (t - qt) - choice[4]
                if over > 0:
                    key = (0, -over, choice[5], choice[0], choice[6], qt, tid)
                else:
                    key = (1, 0.0, choice[5], choice[0], choice[6], qt, tid)
                if best is None or key < best_key:
                    best, best_key = choice, key
            if best is None:
                break
            qt, tid = best[3][0]
            if tid not in ghost_ids or (best[1], best[2], tid) not in ghost_keys:
                break
            best[3].pop(0)  # a ghost: note when, and call the next one at once
            found[ghosts[(best[1], best[2], qt, tid)]] = (t, calls)
        if best is None:  # nobody for this counter: it waits for the next arrival of one of its services
            later = coming.next_for(c.services)
            if appts:
                later = min(later, min((appts[s][0][0] for s in c.services if appts.get(s)), default=INF))
            if later < horizon:
                heapq.heappush(heap, (later, i))
            continue
        best[3].pop(0)
        calls += 1
        served[best[1]] = served.get(best[1], 0) + 1
        heapq.heappush(heap, (t + occupancy[best[1]] * slow, i))
        if calls >= MAX_CALLS:  # the rest at the pace so far
            for g in ghosts.values():
                if g in found:
                    continue
                own = queues.queues.get((g[0], g[1]), [])
                ahead = bisect.bisect_left(own, (g[2], g[3])) + queues.beyond.get((g[0], g[1]), 0)
                pace = t / max(served.get(g[0], 0), 1)
                found[g] = (t + (ahead + 1) * pace, calls + ahead)
            break
    return {g: found.get(g, (None, calls)) for g in targets}


_Choice = tuple[int, str, bool, list[tuple[float, float]], float, int, int]
"""One queue a counter may call from: (preference, service, priority class, the queue's list,
the service's target in s, 0 for the priority class else 1, minus the service's priority)."""


def _choices(
    services: Sequence[str], queues: SimQueues, targets_s: Mapping[str, float], service_priority: Mapping[str, int]
) -> list[_Choice]:
    """A counter's queues in :func:`pick`'s order, with what its key needs that does not change.

    Why: the replay asks "whom does this counter call" about a hundred times per estimate, and
    ``pick`` looks up each queue, target and priority by key every time. The lists are created
    here if missing (an arrival would create them later; an empty list is no queue to ``pick``),
    so later arrivals land in the very lists held here."""
    out: list[_Choice] = []
    for pref, s in enumerate(services):
        for prio in (True, False):
            q = queues.queues.setdefault((s, prio), [])
            out.append((pref, s, prio, q, targets_s[s], 0 if prio else 1, -service_priority.get(s, 0)))
    return out


def _due_appointment(services: Sequence[str], appts: Mapping[str, list[tuple[float, float]]], t: float) -> str | None:
    """The service whose appointment a counter serving ``services`` calls at ``t``: the earliest
    due one (rule 1a, mirroring ``QueueEngine.pick_next``; checked by
    tests/test_walk_in_estimate_appointments.py). At the same booked time the engine takes the
    one checked in first; booked visits have no ticket yet, so the replay takes the counter's
    preferred: both go before every walk-in, which is what a walk-in's estimate depends on."""
    best: tuple[float, int] | None = None
    found = None
    for pref, s in enumerate(services):
        q = appts.get(s)
        if q and q[0][0] <= t and (best is None or (q[0][0], pref) < best):
            best, found = (q[0][0], pref), s
    return found


class _Coming:
    """Expected arrivals, service by service, at 1/rate intervals; priority by the running share.

    ``soonest`` is the earliest moment anything is due (an arrival or a one-off ticket):
    the replay calls :meth:`release` only from then on, as nothing would be released before."""

    def __init__(
        self, arrivals: Mapping[str, Arrivals], horizon: float, extra: Sequence[tuple[float, str, bool, float]] = ()
    ) -> None:
        self.arrivals = arrivals
        self.horizon = horizon
        self.next: dict[str, float] = {}
        self.owed: dict[str, float] = dict.fromkeys(arrivals, 0.0)
        self.vid = 1e12
        self.extra: list[tuple[float, str, bool, float]] = list(extra)  # one-off tickets at a given time, sorted
        for s in arrivals:
            self.next[s] = self._after(s, 0.0)
        self.soonest = self._soonest()

    def _soonest(self) -> float:
        first = self.extra[0][0] if self.extra else INF
        return min(first, min(self.next.values(), default=INF))

    def _after(self, service: str, t: float) -> float:
        rate_at = self.arrivals[service].rate_at
        while t < self.horizon:
            rate = rate_at(t)
            if rate > 0:
                return t + 1.0 / rate
            t += 900.0  # nobody expected this quarter hour (closed, or before the cut-off): look further
        return INF

    def release(self, t: float, queues: SimQueues) -> None:
        qs = queues.queues
        while self.extra and self.extra[0][0] <= t:
            at, s, prio, tid = self.extra.pop(0)
            bisect.insort(qs.setdefault((s, prio), []), (at, tid))
        last = 1e12 + MAX_ARRIVALS
        for s, at in self.next.items():
            if at > t:
                continue
            share, rate_at = self.arrivals[s].priority_share, self.arrivals[s].rate_at
            owed, vid = self.owed[s], self.vid
            while at <= t:
                if vid >= last:
                    at = INF
                    break
                owed += share
                prio = owed >= 1.0
                if prio:
                    owed -= 1.0
                vid += 1
                bisect.insort(qs.setdefault((s, prio), []), (at, vid))
                rate = rate_at(at) if at < self.horizon else 0.0  # _after's first step, without the call
                at = at + 1.0 / rate if rate > 0 else self._after(s, at)
            self.owed[s], self.vid = owed, vid
            self.next[s] = at
        self.soonest = self._soonest()

    def next_for(self, services: Sequence[str]) -> float:
        extra = min((e[0] for e in self.extra if e[1] in services), default=INF)
        return min(extra, min((self.next.get(s, INF) for s in services), default=INF))
