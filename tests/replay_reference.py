"""The replay as it was before it was made cheaper (server/estimates/forward.py, 2026-12-07): an oracle.

tests/test_replay_exact.py runs it beside the current one and requires the same answers, so a
faster replay never prints a different estimate. Verbatim copy of ``pick``, ``replay_many``,
``_due_appointment`` and ``_Coming`` at commit f5dbb56; do not "improve" it.
"""

# ruff: noqa

from __future__ import annotations

import bisect
import heapq
from collections.abc import Mapping, Sequence

from server.estimates.forward import INF, MAX_ARRIVALS, MAX_CALLS, Arrivals, SimCounter, SimQueues, Target


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
    coming = _Coming(arrivals, horizon)
    coming.extra.extend(sorted((q, s, p, tid) for s, p, q, tid in arriving))
    ghosts = {(t[0], t[1], t[2], t[3]): t for t in targets}
    ghost_keys = {(t[0], t[1], t[3]) for t in targets}
    found: dict[Target, tuple[float | None, int]] = {}
    served: dict[str, int] = {}  # calls per service, for the pace beyond MAX_CALLS

    heap = [(c.free_at, i) for i, c in enumerate(counters) if c.free_at < INF]
    heapq.heapify(heap)
    calls = 0
    while heap and len(found) < len(ghosts):
        t, i = heapq.heappop(heap)
        if t > horizon:
            break
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
            best = pick(c.services, queues, t, targets_s, service_priority)
            if best is None:
                break
            qt, tid = queues.queues[best][0]
            if (best[0], best[1], tid) not in ghost_keys:
                break
            queues.queues[best].pop(0)  # a ghost: note when, and call the next one at once
            found[ghosts[(best[0], best[1], qt, tid)]] = (t, calls)
        if best is None:  # nobody for this counter: it waits for the next arrival of one of its services
            later = coming.next_for(c.services)
            if appts:
                later = min(later, min((appts[s][0][0] for s in c.services if appts.get(s)), default=INF))
            if later < horizon:
                heapq.heappush(heap, (later, i))
            continue
        queues.queues[best].pop(0)
        calls += 1
        served[best[0]] = served.get(best[0], 0) + 1
        heapq.heappush(heap, (t + occupancy[best[0]] * slow, i))
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
    """Expected arrivals, service by service, at 1/rate intervals; priority by the running share."""

    def __init__(self, arrivals: Mapping[str, Arrivals], horizon: float) -> None:
        self.arrivals = arrivals
        self.horizon = horizon
        self.next: dict[str, float] = {}
        self.owed: dict[str, float] = dict.fromkeys(arrivals, 0.0)
        self.vid = 1e12
        self.extra: list[tuple[float, str, bool, float]] = []  # one-off tickets at a given time
        for s in arrivals:
            self.next[s] = self._after(s, 0.0)

    def _after(self, service: str, t: float) -> float:
        rate_at = self.arrivals[service].rate_at
        while t < self.horizon:
            rate = rate_at(t)
            if rate > 0:
                return t + 1.0 / rate
            t += 900.0  # nobody expected this quarter hour (closed, or before the cut-off): look further
        return INF

    def release(self, t: float, queues: SimQueues) -> None:
        while self.extra and self.extra[0][0] <= t:
            at, s, prio, tid = self.extra.pop(0)
            queues.add(s, prio, at, tid)
        for s, at in self.next.items():
            while at <= t:
                if self.vid >= 1e12 + MAX_ARRIVALS:
                    at = INF
                    break
                self.owed[s] += self.arrivals[s].priority_share
                prio = self.owed[s] >= 1.0
                if prio:
                    self.owed[s] -= 1.0
                self.vid += 1
                queues.add(s, prio, at, self.vid)
                at = self._after(s, at)
            self.next[s] = at

    def next_for(self, services: Sequence[str]) -> float:
        extra = min((e[0] for e in self.extra if e[1] in services), default=INF)
        return min(extra, min((self.next.get(s, INF) for s in services), default=INF))
