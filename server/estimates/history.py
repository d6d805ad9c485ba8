"""What an office has shown about itself, learned from its event stream alone.

Why from events alone: the engine hands its estimator every event as it records it, and the
store keeps the same events, so after a restart the very same history can be rebuilt by
replaying the last weeks (:func:`server.estimates.honest.HonestEstimator.warm`). Nothing
here reads the engine's state.

Learned, per the failure modes of issue 15:

* **occupancy per client** — from a client's call at a counter to the end of that client
  (finish, no-show after recalls, transfer), per service, plus the clerk's turnaround before
  the next call while people were waiting: the time a counter is really taken per client,
  not the median service time;
* **calls per counter and service while that service has people waiting** — how fast a
  counter serves one service's queue, its share of calls under the routing rule and the
  counter's preferences included (shared counters are not split evenly);
* **breaks** — how long pauses last, so a paused counter is a break that ends;
* **each counter's day** — when it first opens per weekday (late openings), and per
  quarter hour how often it is open or paused (lunch, early closing): the counters expected
  for the hour;
* **arrivals that go ahead** — priority tickets and transfers into a service, per hour.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo

from server.domain import Event, EventKind

SLOT_MIN = 15
SLOTS = 24 * 60 // SLOT_MIN
RATE_MEMORY_S = 4 * 3600.0
"""Calls and exposure fade with this time constant (of exposure): about a busy day's worth."""
PROFILE_WEIGHT = 0.3
"""Weight of the newest day in a counter's open/paused profile per weekday."""


class _Samples:
    """The last ``size`` occupancy samples of a service, kept sorted with running sums.

    Why: the estimate asks for the mean, the spread and E[S - e | S > e] of the current
    client's service every time, and a new sample arrives with almost every client.
    """

    def __init__(self, size: int = 300) -> None:
        self.window: deque[float] = deque()
        self.size = size
        self.sorted: list[float] = []
        self.total = 0.0
        self.squares = 0.0

    def add(self, x: float) -> None:
        if len(self.window) == self.size:
            old = self.window.popleft()
            del self.sorted[bisect.bisect_left(self.sorted, old)]
            self.total -= old
            self.squares -= old * old
        self.window.append(x)
        bisect.insort(self.sorted, x)
        self.total += x
        self.squares += x * x

    def __len__(self) -> int:
        return len(self.window)

    def __iter__(self) -> Iterator[float]:
        return iter(self.window)

    @property
    def n(self) -> int:
        return len(self.window)

    @property
    def mean(self) -> float:
        return self.total / self.n

    @property
    def cv(self) -> float:
        n, m = self.n, self.mean
        if n < 2 or m <= 0:
            return 0.0
        return math.sqrt(max(0.0, (self.squares - n * m * m) / (n - 1))) / m

    def left_mean(self, elapsed: float) -> float | None:
        i = bisect.bisect_right(self.sorted, elapsed)
        k = self.n - i
        if k < 3:
            return None
        return sum(self.sorted[i:]) / k - elapsed


def _pool(profiles: Sequence[Profile]) -> Profile | None:
    """Profiles of several weekdays as one, each weighted by its days; None below two days in all."""
    days = sum(p.days for p in profiles)
    if days < 2:
        return None
    slots = len(profiles[0].open)
    out = Profile.empty(slots)
    out.open = [sum(p.open[i] * p.days for p in profiles) / days for i in range(slots)]
    out.paused = [sum(p.paused[i] * p.days for p in profiles) / days for i in range(slots)]
    out.breaks_per_day = sum(p.breaks_per_day * p.days for p in profiles) / days
    out.days = days
    return out


def minute_of_day(at: datetime, tz: tzinfo) -> float:
    local = at.astimezone(tz)
    return local.hour * 60 + local.minute + local.second / 60


@dataclass
class CounterDay:
    """One counter's office day so far, as its events told it."""

    status: str = "closed"
    since: datetime | None = None
    first_open: datetime | None = None
    opened: bool = False
    pauses: int = 0
    segments: list[tuple[datetime, datetime, str]] = field(default_factory=list)
    call_at: datetime | None = None  # the current client's call here
    call_service: str | None = None
    ended_at: datetime | None = None  # when the last client left
    ended_with_waiting: bool = False


@dataclass
class Profile:
    """Per quarter hour: how often the counter was open / paused on days it opened at all."""

    open: list[float]
    paused: list[float]
    days: int = 0
    breaks_per_day: float = 0.0

    @classmethod
    def empty(cls, slots: int = SLOTS) -> Profile:
        return cls([0.0] * slots, [0.0] * slots)

    def add(self, open_: list[float], paused: list[float], breaks: int) -> None:
        w = 1.0 if self.days == 0 else max(PROFILE_WEIGHT, 1.0 / (self.days + 1))
        self.open = [(1 - w) * a + w * b for a, b in zip(self.open, open_, strict=True)]
        self.paused = [(1 - w) * a + w * b for a, b in zip(self.paused, paused, strict=True)]
        self.breaks_per_day = (1 - w) * self.breaks_per_day + w * breaks
        self.days += 1


class OfficeHistory:
    """Everything learned so far; fed one event at a time (``feed``), read by the estimator."""

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        self.day: date | None = None
        self.last_at: datetime | None = None
        # today's mirror of the queues (ticket id -> service), kept from events
        self.waiting: dict[int, str] = {}
        self.personal: dict[int, str] = {}  # ticket id -> counter it was transferred to
        self.n_waiting: dict[str, int] = {}
        self.priority_of: dict[int, bool] = {}
        self.counters: dict[str, CounterDay] = {}
        # learned
        self.occupancy: dict[str, _Samples] = {}  # per service: the time a counter is taken per client
        self.counter_occupancy: dict[str, float] = {}  # EW mean per counter, all its clients
        self.turnaround: dict[str, float] = {}  # EW mean gap before the next call, per counter
        self.calls: dict[tuple[str, str], float] = {}
        self.exposure: dict[tuple[str, str], float] = {}
        self.breaks: deque[float] = deque(maxlen=200)
        self.break_returns = 0
        self.break_no_returns = 0
        self.first_open: dict[tuple[str, int], deque[float | None]] = {}
        self.profiles: dict[tuple[str, int], Profile] = {}
        self.priority_arrivals: dict[str, deque[datetime]] = {}
        self.transfers_in: dict[str, deque[datetime]] = {}
        self.day_started: datetime | None = None
        # arrivals per service and local hour: today's counts, and per weekday what is usual
        self.arrivals_today: dict[str, list[float]] = {}
        self.priority_today: dict[str, int] = {}
        self.recent_issues: dict[str, deque[datetime]] = {}
        self.arrival_profiles: dict[tuple[str, int], Profile] = {}
        self.priority_share: dict[str, tuple[float, float]] = {}  # service -> (priority, all), faded

    # ------------------------------------------------------------------ feeding

    def feed(self, ev: Event, services_of: Mapping[str, Sequence[str]]) -> None:
        if self.day != ev.day:
            self.close_day()
            self.day = ev.day
            self.day_started = ev.at
        if self.last_at is not None and ev.at > self.last_at:
            self._expose((ev.at - self.last_at).total_seconds(), services_of)
        if self.last_at is None or ev.at > self.last_at:
            self.last_at = ev.at
        handler = self._handlers.get(ev.kind)
        if handler is not None:
            handler(self, ev, services_of)

    def _expose(self, dt: float, services_of: Mapping[str, Sequence[str]]) -> None:
        """Time in which an open counter could have called someone of each service that had people waiting."""
        fade = math.exp(-dt / RATE_MEMORY_S)
        for cid, day in self.counters.items():
            if day.status != "open":
                continue
            for s in services_of.get(cid, ()):
                if self.n_waiting.get(s, 0) > 0:
                    key = (cid, s)
                    self.calls[key] = self.calls.get(key, 0.0) * fade
                    self.exposure[key] = self.exposure.get(key, 0.0) * fade + dt

    def _counter(self, cid: str | None) -> CounterDay | None:
        if cid is None:
            return None
        return self.counters.setdefault(cid, CounterDay())

    def _unwait(self, tid: int | None) -> str | None:
        """Take a ticket out of the mirrored queues; the service it waited for, if it was in one."""
        if tid is None:
            return None
        self.personal.pop(tid, None)
        s = self.waiting.pop(tid, None)
        if s is not None:
            self.n_waiting[s] -= 1
        return s

    def _wait(self, tid: int, service: str) -> None:
        if tid in self.waiting:
            return
        self.waiting[tid] = service
        self.n_waiting[service] = self.n_waiting.get(service, 0) + 1

    def _on_issue(self, ev: Event, services_of: Mapping[str, Sequence[str]]) -> None:
        if ev.ticket_id is None or ev.service is None:
            return
        prio = bool(ev.data.get("priority"))
        self.priority_of[ev.ticket_id] = prio
        self._wait(ev.ticket_id, ev.service)
        if prio:
            self.priority_arrivals.setdefault(ev.service, deque(maxlen=60)).append(ev.at)
            self.priority_today[ev.service] = self.priority_today.get(ev.service, 0) + 1
        hour = int(minute_of_day(ev.at, self.tz) // 60)
        self.arrivals_today.setdefault(ev.service, [0.0] * 24)[hour] += 1
        self.recent_issues.setdefault(ev.service, deque(maxlen=200)).append(ev.at)

    def _on_call(self, ev: Event, services_of: Mapping[str, Sequence[str]]) -> None:
        service = self._unwait(ev.ticket_id)
        c = self._counter(ev.counter)
        if c is None or ev.counter is None:
            return
        if service is not None:
            key = (ev.counter, service)
            self.calls[key] = self.calls.get(key, 0.0) + 1.0
        if c.ended_at is not None and c.ended_with_waiting and c.status == "open":
            gap = (ev.at - c.ended_at).total_seconds()
            if 0 <= gap < 1800:
                old = self.turnaround.get(ev.counter, gap)
                self.turnaround[ev.counter] = 0.9 * old + 0.1 * gap
        c.ended_at = None
        c.call_at, c.call_service = ev.at, ev.service

    def _on_end(self, ev: Event, services_of: Mapping[str, Sequence[str]]) -> None:
        """Finish, no-show or transfer of the client at a counter: one occupancy sample."""
        c = self._counter(ev.counter)
        if ev.kind == EventKind.TRANSFER and ev.ticket_id is not None:
            to_counter = ev.data.get("to_counter")
            if to_counter:
                self.personal[ev.ticket_id] = str(to_counter)
            elif ev.service is not None:
                self._wait(ev.ticket_id, ev.service)
                self.transfers_in.setdefault(ev.service, deque(maxlen=60)).append(ev.at)
        if c is None or ev.counter is None or c.call_at is None or c.call_service is None:
            return
        took = (ev.at - c.call_at).total_seconds()
        if took > 0:
            self.occupancy.setdefault(c.call_service, _Samples()).add(took)
            old = self.counter_occupancy.get(ev.counter, took)
            self.counter_occupancy[ev.counter] = 0.95 * old + 0.05 * took
        c.call_at = c.call_service = None
        c.ended_at = ev.at
        own = services_of.get(ev.counter, ())
        c.ended_with_waiting = any(self.n_waiting.get(s, 0) > 0 for s in own) or any(
            v == ev.counter for v in self.personal.values()
        )

    def _on_cancel(self, ev: Event, services_of: Mapping[str, Sequence[str]]) -> None:
        self._unwait(ev.ticket_id)

    def _on_status(self, ev: Event, services_of: Mapping[str, Sequence[str]]) -> None:
        c = self._counter(ev.counter)
        if c is None:
            return
        new = {
            EventKind.COUNTER_OPEN: "open",
            EventKind.COUNTER_PAUSE: "paused",
            EventKind.COUNTER_CLOSE: "closed",
        }[ev.kind]
        if c.since is not None and c.status != "closed":
            c.segments.append((c.since, ev.at, c.status))
        if c.status == "paused" and c.since is not None:
            if new == "open":
                self.breaks.append((ev.at - c.since).total_seconds())
                self.break_returns += 1
            else:
                self.break_no_returns += 1
        if new == "open" and not c.opened:
            c.opened, c.first_open = True, ev.at
        if new == "paused":
            c.pauses += 1
        c.status, c.since = new, ev.at

    _handlers = {
        EventKind.ISSUE: _on_issue,
        EventKind.CALL: _on_call,
        EventKind.FINISH: _on_end,
        EventKind.NO_SHOW: _on_end,
        EventKind.TRANSFER: _on_end,
        EventKind.CANCEL: _on_cancel,
        EventKind.COUNTER_OPEN: _on_status,
        EventKind.COUNTER_PAUSE: _on_status,
        EventKind.COUNTER_CLOSE: _on_status,
    }

    def sync(
        self,
        day: date | None,
        waiting: Mapping[int, tuple[str, bool]],
        statuses: Mapping[str, str],
        now: datetime,
    ) -> None:
        """Start from the engine's state (after a restart, before any event of this run)."""
        if day is not None and day != self.day:
            self.close_day()
            self.day = day
            self.day_started = now
        self.waiting, self.n_waiting = {}, {}
        for tid, (service, prio) in waiting.items():
            self.priority_of[tid] = prio
            self._wait(tid, service)
        for cid, status in statuses.items():
            c = self._counter(cid)
            assert c is not None
            if c.status != status:
                c.status, c.since = status, now
                c.opened = c.opened or status != "closed"

    def roll_to(self, day: date | None, now: datetime) -> None:
        """The engine is on a new office day before any event of it (the estimate for its first ticket)."""
        if day is not None and self.day is not None and day != self.day:
            self.close_day()
            self.day = day
            self.day_started = now

    def close_day(self) -> None:
        """Fold the day's counter timelines into the profiles; start a fresh day."""
        if self.day is not None:
            wd = self.day.weekday()
            end = self.last_at
            for cid, c in self.counters.items():
                segments = list(c.segments)
                if c.since is not None and c.status != "closed" and end is not None and end > c.since:
                    segments.append((c.since, end, c.status))
                first = minute_of_day(c.first_open, self.tz) if c.first_open is not None else None
                self.first_open.setdefault((cid, wd), deque(maxlen=8)).append(first)
                if not c.opened:
                    continue
                open_, paused = self._fractions(segments)
                self.profiles.setdefault((cid, wd), Profile.empty()).add(open_, paused, c.pauses)
            for service, counts in self.arrivals_today.items():
                self.arrival_profiles.setdefault((service, wd), Profile.empty(24)).add(counts, counts, 0)
                prio, total = self.priority_share.get(service, (0.0, 0.0))
                self.priority_share[service] = (
                    0.8 * prio + self.priority_today.get(service, 0),
                    0.8 * total + sum(counts),
                )
        self.counters = {}
        self.waiting, self.personal, self.n_waiting, self.priority_of = {}, {}, {}, {}
        self.priority_arrivals = {}
        self.transfers_in = {}
        self.arrivals_today, self.priority_today, self.recent_issues = {}, {}, {}

    def _fractions(self, segments: list[tuple[datetime, datetime, str]]) -> tuple[list[float], list[float]]:
        open_ = [0.0] * SLOTS
        paused = [0.0] * SLOTS
        for a, b, status in segments:
            target = open_ if status == "open" else paused
            m0, m1 = minute_of_day(a, self.tz), minute_of_day(b, self.tz)
            if (b - a) >= timedelta(hours=24) or m1 < m0:
                m1 = 24 * 60.0  # ran past midnight: count to the end of the local day
            slot = int(m0 // SLOT_MIN)
            while slot < SLOTS and slot * SLOT_MIN < m1:
                lo, hi = max(m0, slot * SLOT_MIN), min(m1, (slot + 1) * SLOT_MIN)
                if hi > lo:
                    target[slot] += (hi - lo) / SLOT_MIN
                slot += 1
        return [min(1.0, x) for x in open_], [min(1.0, x) for x in paused]

    # ------------------------------------------------------------------ reading

    def mean_turnaround(self) -> float:
        return sum(self.turnaround.values()) / len(self.turnaround) if self.turnaround else 0.0

    def samples(self, service: str) -> _Samples | None:
        samples = self.occupancy.get(service)
        return samples if samples else None

    def occupancy_mean(self, service: str) -> float | None:
        stats = self.samples(service)
        return stats.mean if stats is not None else None

    def occupancy_cv(self, service: str) -> float | None:
        stats = self.samples(service)
        return stats.cv if stats is not None and stats.n >= 10 else None

    def residual(self, service: str, elapsed: float, default: float) -> float:
        """Expected time left for a client called ``elapsed`` seconds ago: E[S - e | S > e]."""
        stats = self.samples(service)
        if stats is None or stats.n < 10:
            return max(default - elapsed, default * 0.25)
        left = stats.left_mean(elapsed)
        return left if left is not None else max(60.0, 0.25 * elapsed)  # longer than almost anyone: soon

    def residuals(self, service: str, elapsed: float, default: float) -> list[float]:
        """Times left for a client called ``elapsed`` seconds ago, one per past client who took longer (sorted)."""
        stats = self.samples(service)
        if stats is None or stats.n < 10:
            return [max(default - elapsed, default * 0.25)]
        i = bisect.bisect_right(stats.sorted, elapsed)
        if stats.n - i < 3:
            return [max(60.0, 0.25 * elapsed)]  # longer than almost anyone before: soon, but unknown
        return [x - elapsed for x in stats.sorted[i:]]

    def rate(self, counter: str, service: str) -> tuple[float, float]:
        """(calls, exposure seconds) of ``service`` at ``counter`` while it had people waiting."""
        key = (counter, service)
        return self.calls.get(key, 0.0), self.exposure.get(key, 0.0)

    def break_left(self, elapsed: float, default: float) -> list[float]:
        """Seconds left of a break that has lasted ``elapsed``: samples of E[B - e | B > e]."""
        samples = list(self.breaks) or [default]
        longer = sorted(b - elapsed for b in samples if b > elapsed)
        if not longer:
            return [max(120.0, 0.2 * elapsed)]
        return longer

    def break_return_share(self) -> float:
        return (self.break_returns + 9) / (self.break_returns + self.break_no_returns + 10)

    def opening_history(self, counter: str, alike: Sequence[int]) -> list[float | None] | None:
        """When the counter first opened on recent days like today (None: a day it did not).

        ``alike``: today's weekday first, then the weekdays with the same opening hours, which
        are pooled when today's weekday has fewer than two days of history (a long Wednesday
        is not pooled with the other days).
        """
        own = self.first_open.get((counter, alike[0]))
        if own is not None and len(own) >= 2:
            return list(own)
        pooled = [m for wd in alike for m in self.first_open.get((counter, wd), ())]
        return pooled if len(pooled) >= 2 else None

    def profile(self, counter: str, alike: Sequence[int]) -> Profile | None:
        """The counter's open/paused profile on days like today (see ``opening_history``)."""
        own = self.profiles.get((counter, alike[0]))
        if own is not None and own.days >= 2:
            return own
        return _pool([self.profiles[(counter, wd)] for wd in alike if (counter, wd) in self.profiles])

    def recent_rate(self, arrivals: Mapping[str, deque[datetime]], service: str, now: datetime) -> float:
        """Per second over the last hour of today (or since the day began, at least 15 minutes)."""
        times = arrivals.get(service)
        if not times:
            return 0.0
        since = now - timedelta(hours=1)
        n = sum(1 for t in times if t > since)
        span = 3600.0
        if self.day_started is not None:
            span = min(span, max(900.0, (now - self.day_started).total_seconds()))
        return n / span

    def arrival_rate(self, service: str, alike: Sequence[int], m_now: float, now: datetime) -> Callable[[float], float]:
        """Expected arrivals per second of ``service`` at t seconds from now.

        The usual count for the hour on this weekday (or on weekdays with the same hours), scaled by how today
        compares with usual so far (a Monday rush, a quiet day); with no history yet, the
        last hour's rate held on.
        """
        profile = self.arrival_profiles.get((service, alike[0]))
        if profile is None or profile.days < 2:
            profile = _pool(
                [self.arrival_profiles[(service, wd)] for wd in alike if (service, wd) in self.arrival_profiles]
            )
        if profile is None or profile.days < 2:
            times = self.recent_issues.get(service)
            since = now - timedelta(hours=1)
            n = sum(1 for t in times if t > since) if times else 0
            span = 3600.0
            if self.day_started is not None:
                span = min(span, max(900.0, (now - self.day_started).total_seconds()))
            rate = n / span
            return lambda t: rate
        usual = profile.open
        hour_now = int(m_now // 60)
        today = self.arrivals_today.get(service, [0.0] * 24)
        expected = sum(usual[:hour_now])
        seen = sum(today[:hour_now])
        level = min(1.6, max(0.6, (seen + 10.0) / (expected + 10.0)))

        def rate_at(t: float) -> float:
            hour = min(23, int((m_now + t / 60) // 60))
            return usual[hour] * level / 3600.0

        return rate_at

    def priority_rate(self, service: str) -> float:
        prio, total = self.priority_share.get(service, (0.0, 0.0))
        today_p = self.priority_today.get(service, 0)
        today_n = sum(self.arrivals_today.get(service, ()))
        return (prio + today_p + 0.3) / (total + today_n + 10.0)
