"""The default wait estimator: when will this ticket's service have called everyone ahead of it?

How (docs/estimates.md has the figures):

1. **Who is ahead.** Everyone waiting for the service; for a priority ticket the other
   priority tickets *and* every ordinary ticket that becomes overdue before it is called
   (the routing rule calls the most overdue first); for an ordinary ticket also the priority
   tickets and transfers that will arrive meanwhile (a transfer keeps its old place).
2. **Who calls them, and when.** Each counter that serves the service contributes calls of it
   at the rate it was *measured* to call that service while the service had people waiting
   (so a shared counter counts by its observed share, and no-shows, recalls and the clerk's
   turnaround are in). An open counter starts from where its current client is (the time
   left, given how long they have been there); a paused counter joins when its break ends
   (learned break lengths); a closed one when it usually opens on this weekday (or, with no
   history, when its services open). Through the day each counter's availability follows
   its profile for the hour (lunch, early closing). A service no counter serves, or with
   no counter open and none expected, gets no estimate.
3. **The wait** is when the expected calls reach the people ahead plus one: a fluid
   approximation stepped forward in time, exact for exponential service and steady staffing.
4. **The range.** The spread of the sum of j+1 service times is about cv/sqrt(j+1) of the wait
   (Whitt 1999); the range is the wait ∓ k·spread, where k is kept by adaptive conformal
   calibration (Gibbs & Candès 2021) so that about 85 % of waits fall inside before rounding
   outward, per group of "people ahead". It corrects itself when an office differs from
   the model, without anyone tuning it.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from protocol.messages import CounterStatus
from protocol.waits import round_outward
from server.config import SiteConfig
from server.domain import Event, EventKind, Ticket, TicketStatus
from server.estimates.base import EngineView, WaitEstimate
from server.estimates.history import OfficeHistory, Profile, minute_of_day

DEFAULT_OCCUPANCY_S = 300.0
DEFAULT_BREAK_S = 15 * 60.0
PRIOR_EXPOSURE_S = 1200.0
"""The prior rate of a counter counts as this much observed time: 20 minutes of real calls outweigh it."""
SPREAD_FLOOR_S = 60.0
HORIZON_S = 12 * 3600.0


def _grid() -> list[float]:
    """Times (s from now) the fluid is stepped to: fine at first, coarser for long waits."""
    out, t = [], 0.0
    for step, until in ((30.0, 1800.0), (60.0, 3 * 3600.0), (300.0, HORIZON_S)):
        while t < until:
            t += step
            out.append(t)
    return out


GRID = _grid()


class Calibration:
    """Adaptive conformal calibration of the range's width, per group of people ahead.

    Why: the model's spread (cv/sqrt(j+1)) leaves out break returns, openings, arrivals that go
    ahead and the model's own errors. Each time a ticket is called, a k below or above is
    nudged: up by ``step·(1-alpha)`` after a miss on that side, down by ``step·alpha`` after a
    hit, so misses settle at ``alpha`` per side whatever the office (Gibbs & Candès 2021,
    "Adaptive conformal inference under distribution shift").
    """

    BUCKETS = (0, 1, 3, 6, 11, 21)

    def __init__(self, alpha_lo: float = 0.07, alpha_hi: float = 0.08, step: float = 0.05, start: float = 1.28):
        self.alpha_lo, self.alpha_hi, self.step = alpha_lo, alpha_hi, step
        self.k_lo = [start] * len(self.BUCKETS)
        self.k_hi = [start] * len(self.BUCKETS)

    def bucket(self, ahead: float) -> int:
        return max(i for i, b in enumerate(self.BUCKETS) if ahead >= b - 1e-9)

    def update(self, bucket: int, lo: float, hi: float, actual: float) -> None:
        miss_lo = 1.0 if actual < lo else 0.0
        miss_hi = 1.0 if actual > hi else 0.0
        self.k_lo[bucket] = min(8.0, max(0.1, self.k_lo[bucket] + self.step * (miss_lo - self.alpha_lo)))
        self.k_hi[bucket] = min(8.0, max(0.1, self.k_hi[bucket] + self.step * (miss_hi - self.alpha_hi)))


@dataclass
class _Counter:
    """One counter's expected calls of the service: rate × (credit + availability so far)."""

    rate: float  # calls of the service per second of availability
    starts: list[tuple[float, float, float]]  # (from s, probability, credit s)
    avail: Callable[[float], float]  # availability factor at a local minute of day
    area: float = 0.0  # ∫ availability since now
    begun: list[float] = field(default_factory=list)  # the area at each start once reached

    def calls(self) -> float:
        total = 0.0
        for (_, w, credit), a0 in zip(self.starts, self.begun, strict=False):
            total += w * max(0.0, credit + self.area - a0)
        return self.rate * total


@dataclass
class _Stash:
    service: str
    priority: bool
    at: datetime
    lo: float
    hi: float
    bucket: int


class HonestEstimator:
    """See the module docstring. ``alpha``: target share of waits outside the range, per side."""

    def __init__(self, alpha_lo: float = 0.07, alpha_hi: float = 0.08) -> None:
        self.history: OfficeHistory | None = None
        self.calibration = Calibration(alpha_lo, alpha_hi)
        self._synced = False
        self._view: EngineView | None = None
        self._stash: _Stash | None = None
        self._pending: dict[int, _Stash] = {}
        self._restored: dict[str, list[float]] = {}

    # ------------------------------------------------------------------ learning

    def _history(self, view: EngineView) -> OfficeHistory:
        if self.history is None:
            self.history = OfficeHistory(view.tz)
        return self.history

    def _sync(self, view: EngineView) -> OfficeHistory:
        """The first time the engine is seen: take its queues and counters as they are (a restart)."""
        h = self._history(view)
        self._view = view
        if not self._synced:
            self._synced = True
            waiting = {
                t.id: (t.service, t.priority)
                for t in view.tickets.values()
                if t.status == TicketStatus.WAITING and t.target_counter is None
            }
            h.sync(view.day, waiting, {cid: c.status.value for cid, c in view.counters.items()}, view.now())
        return h

    def observe(self, service: str, service_seconds: float) -> None:
        """Service times restored after a restart: a weak prior until occupancy is measured."""
        if service_seconds > 0:
            self._restored.setdefault(service, []).append(service_seconds)

    def on_event(self, ev: Event, view: EngineView) -> None:
        h = self._sync(view)
        if ev.kind == EventKind.ISSUE and ev.ticket_id is not None and self._stash is not None:
            st = self._stash
            if st.service == ev.service and st.at == ev.at and st.priority == bool(ev.data.get("priority")):
                self._pending[ev.ticket_id] = st
            self._stash = None
        elif ev.kind == EventKind.CALL and ev.ticket_id is not None:
            st = self._pending.pop(ev.ticket_id, None)
            if st is not None:
                self.calibration.update(st.bucket, st.lo, st.hi, (ev.at - st.at).total_seconds())
        elif ev.kind == EventKind.CANCEL and ev.ticket_id is not None:
            self._pending.pop(ev.ticket_id, None)
        h.feed(ev, {cid: c.services for cid, c in view.counter_config.items()})

    def warm(self, events: Iterable[Event], config: SiteConfig) -> int:
        """Learn from past events (the store's last weeks) before the first live one; returns how many."""
        if self.history is None:
            self.history = OfficeHistory(config.office.tz)
        services_of = {c.id: c.services for c in config.counters}
        n = 0
        for ev in events:
            self.history.feed(ev, services_of)
            n += 1
        return n

    # ------------------------------------------------------------------ estimating

    def occupancy(self, h: OfficeHistory, service: str) -> float:
        measured = h.occupancy_mean(service)
        if measured is not None:
            return measured
        restored = self._restored.get(service)
        if restored:
            return sum(restored) / len(restored) + 60.0  # plus the walk up and the call
        return DEFAULT_OCCUPANCY_S

    def counter_occupancy(self, h: OfficeHistory, counter: str, services: Sequence[str]) -> float:
        measured = h.counter_occupancy.get(counter)
        if measured is None:
            measured = sum(self.occupancy(h, s) for s in services) / len(services)
        return measured + h.turnaround.get(counter, 0.0)

    def counter_rate(self, h: OfficeHistory, counter: str, service: str, services: Sequence[str], occ: float) -> float:
        calls, exposure = h.rate(counter, service)
        prior = 1.0 / len(services) / occ
        return (calls + PRIOR_EXPOSURE_S * prior) / (exposure + PRIOR_EXPOSURE_S)

    def estimate(self, service: str, people_ahead: int, counters: float) -> int:
        """The older interface (a ticket with ``people_ahead`` ahead), on the engine last seen."""
        if self._view is not None:
            return self._predict(service, False, self._view, None, people_ahead).point_s
        occ = self._restored.get(service)
        per_client = sum(occ) / len(occ) if occ else DEFAULT_OCCUPANCY_S
        return round((people_ahead + 0.5) * per_client / max(counters, 1.0))

    def predict(self, service: str, priority: bool, view: EngineView, ticket: Ticket | None = None) -> WaitEstimate:
        return self._predict(service, priority, view, ticket, None)

    def _predict(
        self, service: str, priority: bool, view: EngineView, ticket: Ticket | None, ahead_override: int | None
    ) -> WaitEstimate:
        h = self._sync(view)
        now = view.now()
        h.roll_to(view.day, now)
        svc = view.services.get(service)
        serving = [cid for cid, c in view.counter_config.items() if service in c.services]
        occ_s = self.occupancy(h, service)
        if svc is None or not serving:
            return self._unknown(0, occ_s)
        local = now.astimezone(view.tz)
        hours = svc.hours_on(local.weekday())
        m_now = minute_of_day(now, view.tz)
        m_close = (hours.closes.hour * 60 + hours.closes.minute) if hours is not None else m_now + 60.0
        target = svc.target_wait_min * 60.0

        # 1. who is ahead: now (base), later (overdue ordinary tickets, arrivals that go ahead)
        overdue_at: list[float] = []
        extra_rate, extra_until = 0.0, 0.0
        transfer_rate = h.recent_rate(h.transfers_in, service, now)
        prio_q = view.waiting_queue(service, True)
        ord_q = view.waiting_queue(service, False)
        if ahead_override is not None:
            base = float(ahead_override)
        elif ticket is None and not priority:
            base = float(len(prio_q) + len(ord_q))
            extra_rate, extra_until = h.recent_rate(h.priority_arrivals, service, now), target
        elif ticket is None:
            base = float(len(prio_q))
            for q, _ in ord_q:
                due = (q - now).total_seconds() + target
                if due <= 0:
                    base += 1
                else:
                    overdue_at.append(due)
        else:
            mine = (ticket.queued_at, ticket.id)
            own, other = (prio_q, ord_q) if ticket.priority else (ord_q, prio_q)
            base = float(sum(1 for k in own if k < mine))
            my_due = (ticket.queued_at - now).total_seconds() + target
            for q, tid in other:
                if ticket.priority:
                    if (q, tid) < mine:
                        due = (q - now).total_seconds() + target
                        if due <= 0:
                            base += 1
                        else:
                            overdue_at.append(due)
                elif (q, tid) < mine or my_due > 0:
                    base += 1
            if not ticket.priority and my_due > 0:
                extra_rate, extra_until = h.recent_rate(h.priority_arrivals, service, now), my_due
        overdue_at.sort()

        # 2. who calls them
        supply = [c for cid in serving if (c := self._counter_supply(h, view, cid, service, now, m_now, m_close))]
        free_now = any(
            view.counters[cid].status == CounterStatus.OPEN
            and view.counters[cid].current is None
            and view.personal_waiting(cid) == 0
            for cid in serving
        )
        if not supply:
            return self._unknown(base, occ_s)
        if base == 0 and free_now and ticket is None:
            return WaitEstimate(point_s=0, range_min=round_outward(0, 0), ahead=0)

        # 3. when the expected calls reach the people ahead plus one
        wait, ahead = self._first_passage(supply, base, overdue_at, extra_rate, extra_until, transfer_rate, m_now)
        if wait is None:
            return self._unknown(base, occ_s)

        # 4. the range
        cv = h.occupancy_cv(service) or 0.8
        spread = wait * cv / math.sqrt(ahead + 1) + SPREAD_FLOOR_S
        b = self.calibration.bucket(ahead)
        lo = max(0.0, wait - self.calibration.k_lo[b] * spread)
        hi = wait + self.calibration.k_hi[b] * spread
        if ticket is None and ahead_override is None:
            self._stash = _Stash(service, priority, now, lo, hi, b)
        return WaitEstimate(
            point_s=round(wait), range_min=round_outward(lo, hi), lo_s=round(lo), hi_s=round(hi), ahead=round(ahead)
        )

    def _unknown(self, ahead: float, occ: float) -> WaitEstimate:
        """No estimate; for devices that only show a number, the wait as if one counter opened now."""
        return WaitEstimate(point_s=round((ahead + 1) * occ), range_min=None, ahead=round(ahead))

    def _counter_supply(
        self,
        h: OfficeHistory,
        view: EngineView,
        cid: str,
        service: str,
        now: datetime,
        m_now: float,
        m_close: float,
    ) -> _Counter | None:
        services = view.counter_config[cid].services
        occ = self.counter_occupancy(h, cid, services)
        rate = self.counter_rate(h, cid, service, services, occ)
        rate = min(rate, 1.0 / occ if occ > 0 else rate) if len(services) == 1 else rate
        runtime = view.counters[cid]
        today = h.counters.get(cid)
        weekday = now.astimezone(view.tz).weekday()
        profile = h.profile(cid, weekday)
        debt = view.personal_waiting(cid) * occ
        breaks_done = today is not None and today.pauses >= max(1, round(profile.breaks_per_day if profile else 1))
        if runtime.status == CounterStatus.OPEN:
            if runtime.current is None:
                credit = occ
            else:
                cur = view.tickets.get(runtime.current)
                called = today.call_at if today is not None and today.call_at is not None else None
                if called is None and cur is not None:
                    called = cur.called_at or cur.first_called_at
                elapsed = (now - called).total_seconds() if called is not None else 0.0
                cur_service = cur.service if cur is not None else service
                left = h.residual(cur_service, elapsed, self.occupancy(h, cur_service))
                credit = occ - left - h.turnaround.get(cid, 0.0)
            starts = [(0.0, 1.0, credit - debt)]
            avail = _availability(profile, m_now, m_close, breaks_done, relative=True)
        elif runtime.status == CounterStatus.PAUSED:
            since = today.since if today is not None and today.status == "paused" else None
            elapsed = (now - since).total_seconds() if since is not None else 0.0
            left = _quantiles(h.break_left(elapsed, DEFAULT_BREAK_S), 6)
            w = h.break_return_share() / len(left)
            starts = [(x, w, occ - debt) for x in left]
            avail = _availability(profile, m_now, m_close, True, relative=True)
        else:
            if today is not None and today.opened:
                return None  # it opened today and closed: not back today
            starts = [(x, w, occ - debt) for x, w in self._openings(h, view, cid, weekday, m_now)]
            if not starts:
                return None
            avail = _availability(profile, m_now, m_close, False, relative=False)
        c = _Counter(rate=rate, starts=sorted(starts), avail=avail)
        return c

    def _openings(
        self, h: OfficeHistory, view: EngineView, cid: str, weekday: int, m_now: float
    ) -> list[tuple[float, float]]:
        """When a closed counter that has not opened today is expected to: (s from now, probability)."""
        past = h.opening_history(cid, weekday)
        if past is None:  # no history: the plan is the counter's services' opening hours
            opens = [
                hh.opens.hour * 60 + hh.opens.minute
                for s in view.counter_config[cid].services
                if (hh := view.services[s].hours_on(weekday)) is not None
            ]
            if not opens:
                return []
            first = min(opens)
            if m_now < first:
                return [((first - m_now) * 60.0, 1.0)]
            return []
        later = [m for m in past if m is not None and m > m_now]
        never = sum(1 for m in past if m is None)
        if later or never:
            w = 1.0 / (len(later) + never)
            return _merge([((m - m_now) * 60.0, w) for m in later], 6)
        latest = max(m for m in past if m is not None)
        late = m_now - latest
        p = max(0.0, 1.0 - late / 60.0)
        return [(300.0, p)] if p > 0 else []

    def _first_passage(
        self,
        supply: list[_Counter],
        base: float,
        overdue_at: list[float],
        extra_rate: float,
        extra_until: float,
        transfer_rate: float,
        m_now: float,
    ) -> tuple[float | None, float]:
        def need(t: float, i: int) -> float:
            return base + i + extra_rate * min(t, extra_until) + transfer_rate * t

        for c in supply:
            c.area, c.begun = 0.0, [0.0 for s in c.starts if s[0] <= 0]
        i_over = 0
        while i_over < len(overdue_at) and overdue_at[i_over] <= 0:
            i_over += 1
        prev_t = 0.0
        prev_d = sum(c.calls() for c in supply) - need(0.0, i_over) - 1
        if prev_d >= 0:
            return 0.0, need(0.0, i_over)
        for t in GRID:
            dt = t - prev_t
            m = m_now + (prev_t + t) / 120.0
            for c in supply:
                a = c.avail(m)
                while len(c.begun) < len(c.starts) and c.starts[len(c.begun)][0] <= t:
                    c.begun.append(c.area + a * max(0.0, c.starts[len(c.begun)][0] - prev_t))
                c.area += a * dt
            while i_over < len(overdue_at) and overdue_at[i_over] <= t:
                i_over += 1
            d = sum(c.calls() for c in supply) - need(t, i_over) - 1
            if d >= 0:
                at = prev_t + dt * (-prev_d) / (d - prev_d) if d > prev_d else t
                return at, need(at, i_over)
            prev_t, prev_d = t, d
        return None, base


def _availability(
    profile: Profile | None, m_now: float, m_close: float, breaks_done: bool, relative: bool
) -> Callable[[float], float]:
    """A counter's expected availability at a local minute, from its profile for this weekday.

    ``relative``: the counter is at work now, so it stays as long as it usually does after
    this hour (an early Friday close shows); beyond the service's closing time the last hour
    holds (everyone with a ticket is served). Without a profile: available all day.
    """
    if profile is None:
        return lambda m: 1.0
    last = max(0, int((m_close - 1) // 15))

    def staffed(slot: int) -> float:
        return profile.open[slot] + profile.paused[slot]

    now_slot = min(max(0, int(m_now // 15)), last)
    staffed_now = max(staffed(now_slot), 0.05)

    def avail(m: float) -> float:
        slot = min(max(0, int(m // 15)), last)
        s = staffed(slot)
        stay = min(1.0, s / staffed_now) if relative else 1.0
        if s <= 1e-9:
            return stay if not relative else 0.0
        on_break = 0.0 if breaks_done else profile.paused[slot] / s
        return stay * (1.0 - on_break)

    return avail


def _quantiles(values: list[float], n: int) -> list[float]:
    """At most ``n`` values standing for a sorted sample (its n quantile midpoints)."""
    values = sorted(values)
    if len(values) <= n:
        return values
    return [values[min(len(values) - 1, int((i + 0.5) * len(values) / n))] for i in range(n)]


def _merge(points: list[tuple[float, float]], n: int) -> list[tuple[float, float]]:
    """At most ``n`` (time, weight) points with the same total weight."""
    if len(points) <= n:
        return points
    points = sorted(points)
    total = sum(w for _, w in points)
    times = _quantiles([t for t, _ in points], n)
    return [(t, total / len(times)) for t in times]


def recent_events(conn: sqlite3.Connection, before: date, days: int = 42) -> Iterable[Event]:
    """The store's events of the ``days`` office days before ``before``, oldest first (for ``warm``)."""
    import json

    from server.store import dt

    since = (before - timedelta(days=days)).isoformat()
    rows = conn.execute(
        "SELECT id, kind, at, day, ticket_id, ticket, service, counter, clerk, data FROM events "
        "WHERE day >= ? AND day < ? AND kind IN ('issue','call','finish','no_show','transfer','cancel',"
        "'counter_open','counter_pause','counter_close') ORDER BY id",
        (since, before.isoformat()),
    )
    for r in rows:
        yield Event(
            id=r[0],
            kind=EventKind(r[1]),
            at=dt(r[2]),  # type: ignore[arg-type]
            day=date.fromisoformat(r[3]),
            ticket_id=r[4],
            ticket=r[5],
            service=r[6],
            counter=r[7],
            clerk=r[8],
            data=json.loads(r[9]) if r[9] else {},
        )

