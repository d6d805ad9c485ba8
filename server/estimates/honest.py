"""The default wait estimator: when will the office call this ticket?

How (docs/estimates.md has the method and the figures):

1. **Who calls, and from when.** Each counter of the group of counters and services around
   the ticket's service (counters sharing services with it, and so on) is free at its
   expected moment: now if open and free; when its current client is expected to leave
   (the time a counter is occupied per client, call to end, given how long this one has
   been there); when its break is expected to end (learned break lengths), so a paused
   counter is a break that ends; when it usually opens on this weekday (or, with no history
   yet, when its services open), so a counter not open yet is expected, not "one counter".
   Through the day each counter's availability follows its profile for the hour (breaks to
   come, an early close). A service no counter serves, or with none open and none
   expected today, gets no estimate ("we cannot estimate the wait now").
2. **Whom they call.** The routing rule is replayed (server/estimates/forward.py): overdue
   tickets first, then priority, then each counter's preferences, so a priority ticket
   waits behind the ordinary tickets that go overdue first, and a shared counter gives a
   service the share the rule gives it at that moment. Residents expected to arrive
   meanwhile (this weekday's usual count for the hour, scaled by how today compares) join
   where the rule puts them.
3. **The range.** The wait is a sum of about j+1 service times (j: the calls before this
   ticket's), so its spread is about cv/sqrt(j+1) of it (Whitt 1999). The range is the wait
   ∓ k·spread, with k kept by adaptive conformal calibration (Gibbs & Candès 2021) on the
   office's own tickets so that about 85 % of waits fall inside before rounding outward,
   per group of j. It corrects itself when an office differs from the model.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from protocol.messages import CounterStatus
from protocol.waits import round_outward
from server.config import Counter, SiteConfig
from server.domain import Event, EventKind, Ticket, TicketStatus
from server.estimates.base import EngineView, WaitEstimate
from server.estimates.forward import INF, MAX_CALLS, Arrivals, SimCounter, SimQueues, replay_many
from server.estimates.history import OfficeHistory, Profile, minute_of_day
from server.estimates.memo import ConfigMemo

log = logging.getLogger(__name__)

DEFAULT_OCCUPANCY_S = 300.0
DEFAULT_OCCUPANCY_S_INT = 300
DEFAULT_BREAK_S = 15 * 60.0
SPREAD_FLOOR_S = 60.0
HORIZON_S = 12 * 3600.0
LATE_GRACE_MIN = 15.0
"""With no history, a counter still closed this long after its services opened is not expected today."""
NEW_TICKET_ID = 1e12 - 1
"""A new ticket's id in the replay: after every real ticket with the same queue time."""


class Calibration:
    """Adaptive conformal calibration of the range's width, per group of calls ahead.

    Why: the model's spread (cv/sqrt(j+1)) leaves out break returns, openings, arrivals that go
    ahead and the model's own errors. Each time a ticket is called, the k of its group is
    nudged on each side: up by ``step·(1-alpha)`` after a miss on that side, down by
    ``step·alpha`` after a hit, so misses settle at ``alpha`` per side whatever the office
    (Gibbs & Candès 2021, "Adaptive conformal inference under distribution shift").
    """

    BUCKETS = (0, 1, 3, 6, 11, 21, 41)

    def __init__(self, alpha_lo: float = 0.07, alpha_hi: float = 0.08, step: float = 0.05, start: float = 1.28):
        self.alpha_lo, self.alpha_hi, self.step = alpha_lo, alpha_hi, step
        self.k_lo = [start] * len(self.BUCKETS)
        self.k_hi = [start] * len(self.BUCKETS)
        # faded sums of actual and replayed waits (+1 min), per group: the replay's own bias
        self.actual = [0.0] * len(self.BUCKETS)
        self.replayed = [0.0] * len(self.BUCKETS)

    def factor(self, bucket: int) -> float:
        """Actual ÷ replayed wait lately (1 until tickets of the group have been called).

        Why: the replay uses mean times, so a counter's calls come in lockstep (the first of
        four busy counters is free after a whole service time, not a quarter), and the model
        misses whatever an office does differently. The ratio of faded sums corrects the mean
        without chasing single tickets.
        """
        a, r = self.actual[bucket], self.replayed[bucket]
        if r < 600.0:
            return 1.0
        return min(2.0, max(0.5, a / r))

    def bucket(self, ahead: float) -> int:
        return max(i for i, b in enumerate(self.BUCKETS) if ahead >= b - 1e-9)

    def learn_bias(self, bucket: int, replayed: float, actual: float) -> None:
        self.actual[bucket] = 0.98 * self.actual[bucket] + actual + 60.0
        self.replayed[bucket] = 0.98 * self.replayed[bucket] + replayed + 60.0

    def update(self, bucket: int, lo: float, hi: float, actual: float) -> None:
        miss_lo = 1.0 if actual < lo else 0.0
        miss_hi = 1.0 if actual > hi else 0.0
        self.k_lo[bucket] = min(8.0, max(0.1, self.k_lo[bucket] + self.step * (miss_lo - self.alpha_lo)))
        self.k_hi[bucket] = min(8.0, max(0.1, self.k_hi[bucket] + self.step * (miss_hi - self.alpha_hi)))


@dataclass
class _Stash:
    service: str
    priority: bool
    at: datetime
    lo: float
    hi: float
    bucket: int
    replayed: float


def group_of(counters: Mapping[str, Counter], service: str) -> tuple[list[str], set[str]]:
    """Counters and services connected to ``service`` through shared counters: who can affect its calls."""
    services, group, todo = {service}, [], [service]
    while todo:
        s = todo.pop()
        for cid, c in counters.items():
            if s in c.services and cid not in group:
                group.append(cid)
                for other in c.services:
                    if other not in services:
                        services.add(other)
                        todo.append(other)
    # in the config's order, whichever service was asked about: counters free at the same
    # moment are taken in this order by the replay, so every question sees the same replay
    return [cid for cid in counters if cid in group], services


class HonestEstimator:
    """See the module docstring. ``alpha_lo``/``alpha_hi``: target share of waits below/above the range."""

    def __init__(
        self,
        alpha_lo: float = 0.07,
        alpha_hi: float = 0.08,
        replays: int = 1,
        appointments: bool = True,
        memo: bool = True,
    ) -> None:
        self.replays = replays
        self.appointments = appointments
        """Leave room for today's appointments (rule 1a); False only to measure what that changes."""
        self.memo = ConfigMemo(enabled=memo)  # what depends on the config only, once per config
        self.history: OfficeHistory | None = None
        self.calibration = Calibration(alpha_lo, alpha_hi)
        self._synced = False
        self._view: EngineView | None = None
        self._stash: _Stash | None = None
        self._pending: dict[int, _Stash] = {}
        self._restored: dict[str, list[float]] = {}
        self._complained: set[str] = set()
        self._events_seen = 0
        self._cache_state: tuple | None = None
        self._cache: dict[tuple[str, bool], tuple[float, int, float]] = {}

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
        """Learn from the event. Why guarded: the estimate is advice; a bug in it must never stop
        the engine from recording a call or issuing a ticket (it is logged, once per kind)."""
        self._events_seen += 1
        try:
            self._learn(ev, view)
        except Exception:  # noqa: BLE001
            self._complain("learning from an event")

    def _complain(self, what: str) -> None:
        if what not in self._complained:
            self._complained.add(what)
            log.exception("wait estimator failed while %s; the estimate says 'cannot estimate' meanwhile", what)

    def _learn(self, ev: Event, view: EngineView) -> None:
        h = self._sync(view)
        if ev.kind == EventKind.ISSUE and ev.ticket_id is not None and self._stash is not None:
            stash = self._stash
            if stash.service == ev.service and stash.at == ev.at and stash.priority == bool(ev.data.get("priority")):
                self._pending[ev.ticket_id] = stash
            self._stash = None
        elif ev.kind == EventKind.CALL and ev.ticket_id is not None:
            called = self._pending.pop(ev.ticket_id, None)
            if called is not None:
                actual = (ev.at - called.at).total_seconds()
                self.calibration.update(called.bucket, called.lo, called.hi, actual)
                self.calibration.learn_bias(called.bucket, called.replayed, actual)
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
        """Seconds a client of the service takes a counter: measured call to end, plus the clerk's turnaround."""
        turnaround = h.mean_turnaround()
        measured = h.occupancy_mean(service)
        if measured is not None:
            return measured + turnaround
        restored = self._restored.get(service)
        if restored:
            return sum(restored) / len(restored) + 60.0  # plus the walk up and the call
        return DEFAULT_OCCUPANCY_S

    def estimate(self, service: str, people_ahead: int, counters: float) -> int:
        """The older interface (a ticket with ``people_ahead`` ahead), on the engine last seen."""
        if self._view is not None:
            return self._predict(service, False, self._view, None, people_ahead).point_s
        occ = self._restored.get(service)
        per_client = sum(occ) / len(occ) if occ else DEFAULT_OCCUPANCY_S
        return round((people_ahead + 0.5) * per_client / max(counters, 1.0))

    def predict(self, service: str, priority: bool, view: EngineView, ticket: Ticket | None = None) -> WaitEstimate:
        try:
            return self._predict(service, priority, view, ticket, None)
        except Exception:  # noqa: BLE001  (see on_event)
            self._complain("estimating")
            return WaitEstimate(point_s=DEFAULT_OCCUPANCY_S_INT, range_min=None)

    def wait_if_issued(self, service: str, view: EngineView, after_s: float, priority: bool = False) -> WaitEstimate:
        """The wait of a ticket taken ``after_s`` seconds from now, with the arrivals expected meanwhile.

        For the cut-off advice (server/estimates/cutoff.py): not printed, not learned from.
        """
        return self._predict(service, priority, view, None, None, later=max(0.0, after_s))

    def _predict(
        self,
        service: str,
        priority: bool,
        view: EngineView,
        ticket: Ticket | None,
        ahead_override: int | None,
        later: float = 0.0,
    ) -> WaitEstimate:
        h = self._sync(view)
        now = view.now()
        h.roll_to(view.office_day(now), now)  # a new day may begin before its first event
        svc = view.services.get(service)
        occ_s = self.occupancy(h, service)
        weekday = now.astimezone(view.tz).weekday()
        hours = svc.hours_on(weekday) if svc is not None else None
        if svc is None or hours is None:
            return self._unknown(0, occ_s)
        m_now = minute_of_day(now, view.tz)
        group, services = self._group(view, service)

        # a new ticket now: one replay answers every service and class of the group (ghost targets),
        # so the kiosk's list of services costs about one replay per state of the queues
        fresh = ticket is None and ahead_override is None and not later
        state = (self._events_seen, int(now.timestamp()), tuple(sorted(services)), getattr(view, "booked_version", 0))
        if fresh and self._cache_state == state and (service, priority) in self._cache:
            wait, calls, between = self._cache[(service, priority)]
            return self._range(h, service, priority, now, wait, calls, record=True, between=between)

        # 1. who calls, and from when
        occupancy = {s: self.occupancy(h, s) for s in view.services}
        sims = [
            c for cid in group if (c := self._sim_counter(h, view, cid, now, m_now, weekday, occupancy)) is not None
        ]
        ahead_now = len(view.waiting_queue(service, True)) + (
            0 if priority else len(view.waiting_queue(service, False))
        )
        if not any(c.free_at < INF and service in c.services for c in sims):
            return self._unknown(ahead_now, occ_s)  # before the queues are copied: nobody calls them
        queues = SimQueues()
        for s in services:
            for prio in (True, False):
                waiting = view.waiting_queue(s, prio)
                head = waiting[:MAX_CALLS]  # the replay stops before reaching further
                queues.queues[(s, prio)] = [((q - now).total_seconds(), float(tid)) for q, tid in head]
                queues.beyond[(s, prio)] = len(waiting) - len(head)
        if ahead_override is not None:
            keep = ahead_override
            for prio in (True, False):
                q = queues.queues[(service, prio)]
                queues.queues[(service, prio)] = q[:keep]
                keep = max(0, keep - len(q))
        if ticket is None:
            target = (service, priority, later, NEW_TICKET_ID)
            wanted = [target]
            if fresh and self._cache_state == state:  # asked again in this state: all of the group at once
                ids = itertools.count()  # below the expected arrivals' ids, above every real ticket's
                wanted = [
                    (s, p, 0.0, NEW_TICKET_ID - next(ids))
                    for s in sorted(services)
                    for p in (False, True)
                    if view.services[s].hours_on(weekday) is not None
                ]
                target = next(w for w in wanted if w[:2] == (service, priority))
        else:
            target = (ticket.service, ticket.priority, (ticket.queued_at - now).total_seconds(), float(ticket.id))
            wanted = [target]
            if (ticket.service, ticket.priority) not in queues.queues or ticket.target_counter is not None:
                return self._personal(h, view, ticket, now, m_now, weekday)
        if not later:
            for w in wanted:
                if ticket is None:
                    queues.add(w[0], w[1], w[2], w[3])  # a free counter that would call it: 0

        # 2. whom they call
        arrivals = {}
        for s in services:
            sh = view.services[s].hours_on(weekday)
            if sh is None:
                continue
            opens = sh.opens.hour * 60 + sh.opens.minute
            last = sh.closes.hour * 60 + sh.closes.minute - view.services[s].cutoff_min
            rate = h.arrival_rate(s, self._alike(view, [s], weekday), m_now, now)
            arrivals[s] = Arrivals(_within(rate, m_now, opens, last), h.priority_rate(s))
        targets = {s: view.services[s].target_wait_min * 60.0 for s in services}
        prios = {s: view.services[s].priority for s in services}
        appts = _appointments(view, services, now) if self.appointments else {}
        runs: list[dict] = []
        for r in range(self.replays):
            if self.replays > 1:  # each replay draws when each counter is next free (stratified, decorrelated)
                for i, c in enumerate(sims):
                    c.free_at = c.at_quantile(((r + 0.5) / self.replays + i * 0.618034) % 1.0)
            run_queues = SimQueues({k: list(v) for k, v in queues.queues.items()}, dict(queues.beyond))
            arriving = wanted if later else []
            run_appts = {k: list(v) for k, v in appts.items()}
            runs.append(
                replay_many(
                    sims, run_queues, wanted, targets, prios, occupancy, arrivals, HORIZON_S, arriving, run_appts
                )
            )
        results: dict[tuple[str, bool], tuple[float, int, float] | None] = {}
        for w in wanted:
            outcomes = [run[w] for run in runs]
            if any(o[0] is None for o in outcomes):
                results[(w[0], w[1])] = None
                continue
            waits = [max(0.0, o[0] - later) for o in outcomes]
            mean = sum(waits) / len(waits)
            between = math.sqrt(sum((x - mean) ** 2 for x in waits) / len(waits))
            results[(w[0], w[1])] = (mean, round(sum(o[1] for o in outcomes) / len(outcomes)), between)
        if fresh:
            if self._cache_state != state:
                self._cache_state, self._cache = state, {}
            self._cache.update({k: v for k, v in results.items() if v is not None})
        mine = results[(target[0], target[1])]
        if mine is None:
            return self._unknown(ahead_now, occ_s)
        wait, calls, between = mine
        return self._range(h, service, priority, now, wait, calls, record=fresh, between=between)

    def _range(
        self,
        h: OfficeHistory,
        service: str,
        priority: bool,
        now: datetime,
        wait: float,
        calls: int,
        record: bool,
        between: float = 0.0,
    ) -> WaitEstimate:
        """The wait ∓ k·spread, k calibrated; the new ticket's range is remembered to learn from its call.

        ``between``: the spread among the replays (when counters come free), added to the
        spread of the j+1 services ahead.
        """
        b = self.calibration.bucket(calls)
        factor = self.calibration.factor(b)
        replayed, wait = wait, wait * factor
        cv = h.occupancy_cv(service) or 0.8
        spread = math.hypot(wait * cv / math.sqrt(calls + 1), between * factor) + SPREAD_FLOOR_S
        lo = max(0.0, wait - self.calibration.k_lo[b] * spread)
        hi = wait + self.calibration.k_hi[b] * spread
        printed = round_outward(lo, hi)
        if record:  # calibrated on what residents see: the range after rounding
            self._stash = _Stash(service, priority, now, printed[0] * 60.0, printed[1] * 60.0, b, replayed)
        return WaitEstimate(point_s=round(wait), range_min=printed, lo_s=round(lo), hi_s=round(hi), ahead=calls)

    def _personal(
        self, h: OfficeHistory, view: EngineView, ticket: Ticket, now: datetime, m_now: float, weekday: int
    ) -> WaitEstimate:
        """A ticket sent to one counter: that counter calls its own queue first, oldest first."""
        cid = ticket.target_counter
        occupancy = {s: self.occupancy(h, s) for s in view.services}
        known = cid is not None and cid in view.counters
        sim = self._sim_counter(h, view, cid, now, m_now, weekday, occupancy) if known else None  # type: ignore[arg-type]
        if cid is None or sim is None or sim.free_at == INF:
            return self._unknown(0, self.occupancy(h, ticket.service))
        ahead = sum(
            1
            for t in view.tickets.values()
            if t.status == TicketStatus.WAITING
            and t.target_counter == cid
            and (t.queued_at, t.id) < (ticket.queued_at, ticket.id)
        )
        wait = (
            sim.free_at
            - view.personal_waiting(cid) * self.occupancy(h, ticket.service)
            + ahead * self.occupancy(h, ticket.service)
        )
        return self._range(h, ticket.service, ticket.priority, now, max(0.0, wait), ahead, record=False)

    def _unknown(self, ahead: float, occ: float) -> WaitEstimate:
        """No estimate; for devices that only show a number, the wait as if one counter opened now."""
        return WaitEstimate(point_s=round((ahead + 1) * occ), range_min=None, ahead=round(ahead))

    def _group(self, view: EngineView, service: str) -> tuple[list[str], set[str]]:
        """:func:`group_of`, once per config (server/estimates/memo.py)."""
        return self.memo.get(
            view.services, view.counter_config, ("group", service), lambda: group_of(view.counter_config, service)
        )

    def _alike(self, view: EngineView, services: Sequence[str], weekday: int) -> list[int]:
        """:func:`_alike`, once per config (server/estimates/memo.py)."""
        return self.memo.get(
            view.services,
            view.counter_config,
            ("alike", tuple(services), weekday),
            lambda: _alike(view, services, weekday),
        )

    def _sim_counter(
        self,
        h: OfficeHistory,
        view: EngineView,
        cid: str,
        now: datetime,
        m_now: float,
        weekday: int,
        occupancy: Mapping[str, float],
    ) -> SimCounter | None:
        """A counter as the replay sees it: when it next calls, and how its availability goes; None: not today."""
        services = view.counter_config[cid].services
        runtime = view.counters[cid]
        today = h.counters.get(cid)
        alike = self._alike(view, services, weekday)
        profile = h.profile(cid, alike)
        closes = [
            hh.closes.hour * 60 + hh.closes.minute for s in services if (hh := view.services[s].hours_on(weekday))
        ]
        if not closes:
            return None
        m_close = max(closes)
        occ = sum(occupancy[s] for s in services) / len(services)
        debt = view.personal_waiting(cid) * occ
        breaks_done = today is not None and today.pauses >= max(1, round(profile.breaks_per_day if profile else 1))
        if runtime.status == CounterStatus.OPEN:
            times = [0.0]
            if runtime.current is not None:
                cur = view.tickets.get(runtime.current)
                called = today.call_at if today is not None and today.call_at is not None else None
                if called is None and cur is not None:
                    called = cur.called_at or cur.first_called_at
                elapsed = (now - called).total_seconds() if called is not None else 0.0
                cur_service = cur.service if cur is not None else services[0]
                turnaround = h.turnaround.get(cid, 0.0)
                default = occupancy.get(cur_service, DEFAULT_OCCUPANCY_S)
                if self.replays > 1:
                    times = [x + turnaround for x in h.residuals(cur_service, elapsed, default)]
                else:  # one replay needs the mean only
                    times = [h.residual(cur_service, elapsed, default) + turnaround]
            avail = _availability(profile, m_now, m_close, breaks_done, relative=True)
        elif runtime.status == CounterStatus.PAUSED:
            if h.break_return_share() < 0.5:
                return None
            since = today.since if today is not None and today.status == "paused" else None
            elapsed = (now - since).total_seconds() if since is not None else 0.0
            times = h.break_left(elapsed, DEFAULT_BREAK_S)
            avail = _availability(profile, m_now, m_close, True, relative=True)
        else:
            if today is not None and today.opened:
                return None  # it opened today and closed: not back today
            openings = self._openings(h, view, cid, weekday, m_now)
            chance = sum(w for _, w in openings)
            if chance < 0.5:
                return None
            times = _weighted_sample(openings)
            avail = _availability(profile, m_now, m_close, False, relative=False)

        def slowdown(t: float) -> float:
            a = avail(m_now + t / 60)
            return INF if a < 0.05 else 1.0 / a

        return SimCounter(cid, services, sum(times) / len(times) + debt, slowdown, [x + debt for x in times])

    def _openings(
        self, h: OfficeHistory, view: EngineView, cid: str, weekday: int, m_now: float
    ) -> list[tuple[float, float]]:
        """When a closed counter that has not opened today is expected to: (s from now, probability)."""
        past = h.opening_history(cid, self._alike(view, view.counter_config[cid].services, weekday))
        if past is None:  # no history: the plan is the counter's services' opening hours
            opens = [
                hh.opens.hour * 60 + hh.opens.minute
                for s in view.counter_config[cid].services
                if (hh := view.services[s].hours_on(weekday)) is not None
            ]
            if opens and m_now < min(opens) + LATE_GRACE_MIN:
                return [(max(0.0, min(opens) - m_now) * 60.0, 1.0)]
            return []  # well past its opening and still closed: nothing says when it comes
        later = [m for m in past if m is not None and m > m_now]
        never = sum(1 for m in past if m is None)
        if later or never:
            w = 1.0 / (len(later) + never)
            return [((m - m_now) * 60.0, w) for m in later]
        latest = max(m for m in past if m is not None)
        p = max(0.0, 1.0 - (m_now - latest) / 60.0)  # later than ever before: less likely by the minute
        return [(300.0, p)] if p > 0 else []


def _appointments(view: EngineView, services: Iterable[str], now: datetime) -> dict[str, list[tuple[float, float]]]:
    """Counter time kept for today's appointments (rule 1a), per service: (due in s from now, share of a client).

    Read through ``expected_appointments`` when the view has it (the engine does; a view
    without bookings keeps the estimate as it was). server/estimates/appointments.py says what counts.
    """
    expected = getattr(view, "expected_appointments", None)
    if expected is None:
        return {}
    out = {}
    for s in services:
        reserved = expected(s)
        if reserved:
            out[s] = [((r.due - now).total_seconds(), r.weight) for r in reserved]
    return out


def _alike(view: EngineView, services: Sequence[str], weekday: int) -> list[int]:
    """``weekday`` and then the other weekdays on which these services keep the same hours."""

    def hours(wd: int) -> tuple:
        return tuple(
            (h.opens, h.closes) if (h := view.services[s].hours_on(wd)) is not None else None for s in services
        )

    mine = hours(weekday)
    return [weekday] + [wd for wd in range(7) if wd != weekday and hours(wd) == mine]


def _weighted_sample(points: list[tuple[float, float]], n: int = 20) -> list[float]:
    """``n`` values standing for a weighted set of times (its quantiles), for the replays."""
    points = sorted(points)
    total = sum(w for _, w in points)
    out, acc, i = [], 0.0, 0
    for k in range(n):
        q = (k + 0.5) / n * total
        while i < len(points) - 1 and acc + points[i][1] < q:
            acc += points[i][1]
            i += 1
        out.append(points[i][0])
    return out


def _within(rate: Callable[[float], float], m_now: float, opens: float, last: float) -> Callable[[float], float]:
    """Arrivals only while the service issues tickets (from opening to its cut-off)."""

    def rate_at(t: float) -> float:
        m = m_now + t / 60
        return rate(t) if opens <= m < last else 0.0

    return rate_at


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
        # a break to come slows the counter down (it is away part of the hour), never ends its day
        on_break = 0.0 if breaks_done else min(0.8, profile.paused[slot] / s)
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
