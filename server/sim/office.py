"""A scenario's weeks, played through the real engine on a simulated clock.

Why the real engine: the wait a resident sees comes from the engine's routing rule
(overdue first, priority, preferences, transfers by original issue time), so an estimate
can only be judged against that rule, not against a textbook queue. Everything here goes
through :class:`~server.engine.QueueEngine`'s public methods (``issue``, ``command``,
``roll_day``, ``take_changes``) with an injected clock: five weeks of a county office run
in seconds. Residents and clerks act between the presses the engine sees (walking up,
being served, breaks), drawn from the scenario file (server/sim/scenario.py).

Observers (``RunObserver``) see every ticket before and after it is issued and every
event: that is how server/sim/measure.py compares estimators on the very same tickets.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

from protocol.messages import CounterAction, CounterStatus
from server.booking.plan import slots_on
from server.domain import Command, Event, Refusal, Ticket
from server.engine import Changes, QueueEngine
from server.estimate import WaitEstimator
from server.estimates.appointments import BookedVisit, show_rate
from server.sim.scenario import Scenario, Shift
from server.store import Store


class RunObserver(Protocol):
    def before_issue(self, engine: QueueEngine, service: str, priority: bool) -> Any:
        """Called just before a ticket is issued (the engine's state is the one the kiosk sees)."""
        ...

    def issued(self, engine: QueueEngine, ticket: Ticket, ahead: int, before: Any) -> None: ...

    def events(self, engine: QueueEngine, events: list[Event]) -> None: ...


@dataclass
class Clerk:
    """What the clerk at one counter is doing (the engine only sees their presses)."""

    mode: str = "off"  # off | idle | waking | busy | paused | done
    shift: Shift | None = None
    gen: int = 0  # bumped per call: a stale scheduled step for an earlier client is ignored
    break_due: float | None = None  # minutes of a break to take after the current client
    leaving: bool = False
    early: bool = False  # leaving before its services close (others take over)


@dataclass
class RunStats:
    days: int = 0
    tickets: int = 0
    refused: int = 0
    events: int = 0


@dataclass(order=True)
class _Step:
    at: datetime
    seq: int
    kind: str = field(compare=False)
    args: tuple = field(compare=False, default=())


class OfficeRun:
    """One scenario, one engine, one simulated clock (and optionally a real SQLite store)."""

    def __init__(
        self,
        scenario: Scenario,
        estimator: WaitEstimator | None = None,
        observers: Iterable[RunObserver] = (),
        database: str | None = None,
        seed: int | None = None,
    ) -> None:
        self.sc = scenario
        self.cfg = scenario.site
        self.tz = self.cfg.office.tz
        self.rng = random.Random(scenario.seed if seed is None else seed)
        self.now = datetime(2000, 1, 1, tzinfo=UTC)
        self.engine = QueueEngine(self.cfg, lambda: self.now, estimator=estimator, token_factory=self._token)
        self.observers = list(observers)
        self.store: Store | None = None
        if database is not None:
            self.store = Store(database)
            self.store.conn.execute("PRAGMA synchronous=OFF")  # a simulation can simply be re-run
            self.engine.restore(self.store.load())
        self._unsaved: list = []
        self._unsaved_tickets: dict[int, Ticket] = {}
        self._unsaved_counters: set[str] = set()
        self.stats = RunStats()
        self.clerks = {c.id: Clerk() for c in self.cfg.counters}
        self._heap: list[_Step] = []
        self._seq = itertools.count()
        self.handlers: dict[str, Callable[..., None]] = {
            "arrive": self._on_arrive,
            "shift_start": self._on_shift_start,
            "shift_end": self._on_shift_end,
            "wake": self._on_wake,
            "recall": self._on_recall,
            "at_counter": self._on_at_counter,
            "served": self._on_served,
            "free": self._on_free,
            "break": self._on_break,
            "break_end": self._on_break_end,
            "check_in": self._on_check_in,
            "appointment_due": self._wake,
        }
        self.booked_came: dict[str, int] = {}  # per service, over the days run: for the show rate
        self.booked_absent: dict[str, int] = {}

    def _token(self) -> str:
        return f"sim{self.rng.getrandbits(64):016x}"

    # ------------------------------------------------------------------ plumbing

    def _drain(self) -> None:
        ch = self.engine.take_changes()
        if not ch.events:
            return
        self.stats.events += len(ch.events)
        for o in self.observers:
            o.events(self.engine, ch.events)
        if self.store is not None:
            self._unsaved.extend(ch.events)
            self._unsaved_tickets.update(ch.tickets)
            self._unsaved_counters.update(ch.counters)
            if len(self._unsaved) >= 2000:
                self.commit()

    def commit(self) -> None:
        if self.store is None or not self._unsaved:
            return
        changes = Changes(events=self._unsaved, tickets=self._unsaved_tickets, counters=self._unsaved_counters)
        counters = [self.engine.counters[c] for c in self._unsaved_counters]
        self.store.commit(changes, counters, [])
        self._unsaved, self._unsaved_tickets, self._unsaved_counters = [], {}, set()

    def _cmd(self, counter: str, action: CounterAction, **kw: Any) -> Ticket | None:
        cmd = Command(action=action, **kw)
        try:
            return self.engine.command(counter, cmd)
        finally:
            self._drain()

    def _at(self, when: datetime, kind: str, *args: Any) -> None:
        heapq.heappush(self._heap, _Step(when, next(self._seq), kind, args))

    def _after(self, seconds: float, kind: str, *args: Any) -> None:
        self._at(self.now + timedelta(seconds=seconds), kind, *args)

    def _u(self, r: tuple[float, float]) -> float:
        return self.rng.uniform(r[0], r[1])

    def _local(self, day: date, hhmm: time, minutes: float = 0.0) -> datetime:
        return datetime.combine(day, hhmm, self.tz).astimezone(UTC) + timedelta(minutes=minutes)

    # ------------------------------------------------------------------ a day

    def _open_day(self, day: date) -> bool:
        if day in self.sc.closed_dates:
            return False
        return any(s.hours_on(day.weekday()) for s in self.cfg.services)

    def _office_days_before_in_month(self, day: date) -> int:
        d = day.replace(day=1)
        n = 0
        while d < day:
            n += self._open_day(d)
            d += timedelta(days=1)
        return n

    def arrivals(self, day: date) -> list[tuple[datetime, str, bool]]:
        """Residents of the day: (when they take a ticket, service, priority), sorted."""
        out: list[tuple[datetime, str, bool]] = []
        factor = self.sc.day_factor(day, self._office_days_before_in_month(day))
        wd = day.weekday()
        for s in self.cfg.services:
            hours = s.hours_on(wd)
            plan = self.sc.arrivals.services.get(s.id)
            if hours is None or plan is None:
                continue
            opens = self._local(day, hours.opens)
            first = opens - timedelta(minutes=self.sc.arrivals.early_min)
            last = self._local(day, hours.closes)
            for hour, share in sorted(self.sc.arrivals.shape(s.id).items()):
                rate = plan.per_hour * share * factor
                a = max(first, self._local(day, time(hour)))
                b = min(last, self._local(day, time(hour)) + timedelta(hours=1))
                t = a
                while rate > 0 and t < b:
                    t += timedelta(hours=self.rng.expovariate(rate))
                    if t < b:
                        out.append((max(t, opens), s.id, self.rng.random() < plan.priority))
        week = self.sc.week_of(day)
        for surge in self.sc.surges:
            if surge.applies(day, week):
                base = self._local(day, surge.at)
                for _ in range(surge.count):
                    when = base + timedelta(minutes=self.rng.uniform(0, surge.spread_min))
                    out.append((when, surge.service, self.rng.random() < surge.priority))
        out.sort()
        return out

    def run_day(self, day: date) -> None:
        if not self._open_day(day):
            return
        self.stats.days += 1
        wd = day.weekday()
        for c in self.cfg.counters:
            self.clerks[c.id] = Clerk()
            shift = self.sc.shift(c.id, day)
            own = [h for s in c.services if (h := self.engine.services[s].hours_on(wd)) is not None]
            if shift is None or not own or self.rng.random() < shift.absent:
                continue
            closes = max(h.closes for h in own)
            start = shift.start or min(h.opens for h in own)
            end = shift.end or closes
            self.clerks[c.id].shift = shift
            self.clerks[c.id].early = end < closes
            self._at(self._local(day, start, self._u(shift.start_jitter_min)), "shift_start", c.id)
            self._at(self._local(day, end), "shift_end", c.id)
            for b in shift.breaks:
                if self.rng.random() < b.share:
                    when = self._local(day, b.at, self.rng.uniform(0, b.spread_min))
                    self._at(when, "break", c.id, self._u(b.minutes))
        for when, service, priority in self.arrivals(day):
            self._at(when, "arrive", service, priority)
        self._book(day)
        while self._heap:
            step = heapq.heappop(self._heap)
            self.now = max(self.now, step.at)
            self.handlers[step.kind](*step.args)
        for cid, rt in self.engine.counters.items():  # a counter still open when nothing is left to do
            if rt.status != CounterStatus.CLOSED:
                self._cmd(cid, CounterAction.CLOSE)
        self.commit()

    def run(self, weeks: int | None = None) -> RunStats:
        for day in self.sc.days(weeks):
            self.run_day(day)
        self.commit()
        return self.stats

    def close(self) -> None:
        if self.store is not None:
            self.commit()
            self.store.conn.execute("PRAGMA synchronous=FULL")
            self.store.close()

    def _book(self, day: date) -> None:
        """The day's booked visits: handed to the engine as the server's booking feed would, and their check-ins."""
        plan = self.sc.appointments
        if plan is None:
            self.engine.set_booked_visits([])
            return
        visits = []
        window = timedelta(minutes=self.cfg.booking.call_window_min)
        for service in sorted(self.cfg.booking.plans):
            show = show_rate(self.booked_came.get(service, 0), self.booked_absent.get(service, 0))
            for slot in slots_on(self.cfg, service, day):
                for seat in range(slot.capacity):
                    if self.rng.random() >= plan.fill or self.rng.random() < plan.cancel:
                        continue  # not booked, or cancelled beforehand: the engine never hears of it
                    at = slot.start.astimezone(UTC)
                    code = f"{service}{day:%m%d}{slot.label}{seat}"
                    visits.append(BookedVisit(service, at, code, show))
                    self._at(at - window, "appointment_due", service)
                    if self.rng.random() < plan.no_show:
                        self.booked_absent[service] = self.booked_absent.get(service, 0) + 1
                        continue
                    self.booked_came[service] = self.booked_came.get(service, 0) + 1
                    self._at(at + timedelta(minutes=self._u(plan.arrive_min)), "check_in", service, at, code)
        self.engine.set_booked_visits(visits)

    def _on_check_in(self, service: str, at: datetime, code: str) -> None:
        self.engine.roll_day()
        try:
            self.engine.check_in(service, at, code, "sim")
        except Refusal:
            self.stats.refused += 1
        self._drain()
        self._wake(service)

    # ------------------------------------------------------------------ residents

    def _on_arrive(self, service: str, priority: bool) -> None:
        self.engine.roll_day()
        self._drain()
        before = [o.before_issue(self.engine, service, priority) for o in self.observers]
        try:
            ticket, ahead = self.engine.issue(service, priority=priority, origin="sim")
        except Refusal:
            self.stats.refused += 1
            self._drain()
            return
        self.stats.tickets += 1
        for o, b in zip(self.observers, before, strict=True):
            o.issued(self.engine, ticket, ahead, b)
        self._drain()
        self._wake(service)

    def _wake(self, service: str) -> None:
        for cid, cfg in self.engine.counter_config.items():
            clerk = self.clerks[cid]
            if clerk.mode == "idle" and service in cfg.services:
                clerk.mode = "waking"
                self._after(self._u(self.sc.behaviour.wake_s), "wake", cid)

    # ------------------------------------------------------------------ clerks

    def _on_shift_start(self, counter: str) -> None:
        clerk = self.clerks[counter]
        self._cmd(counter, CounterAction.SIGN_IN, clerk=f"clerk-{counter}")
        clerk.mode = "idle"
        self._free(counter)

    def _on_shift_end(self, counter: str) -> None:
        clerk = self.clerks[counter]
        if clerk.mode in ("off", "done"):
            return
        clerk.leaving = True
        if clerk.mode == "paused":
            clerk.mode = "idle"  # back from the break only to close the counter
        if clerk.mode in ("idle", "waking"):
            self._free(counter)

    def _on_wake(self, counter: str) -> None:
        if self.clerks[counter].mode == "waking":
            self.clerks[counter].mode = "idle"
            self._free(counter)

    def _covered(self, counter: str) -> bool:
        """Every service of this counter with people waiting has another open counter."""
        for s in self.engine.counter_config[counter].services:
            others = [c for c in self.engine.open_counters(s) if c != counter]
            if self.engine.people_ahead(s, False) and not others:
                return False
        return True

    def _free(self, counter: str) -> None:
        """The clerk has nobody (any more): break, leave, or call the next client."""
        clerk = self.clerks[counter]
        if clerk.break_due is not None and not clerk.leaving:
            minutes, clerk.break_due = clerk.break_due, None
            if self.engine.current_ticket(counter) is not None:
                self._cmd(counter, CounterAction.FINISH)
            self._cmd(counter, CounterAction.PAUSE)
            clerk.mode = "paused"
            self._after(minutes * 60, "break_end", counter)
            return
        if clerk.leaving and clerk.early and self._covered(counter):
            self._close(counter)
            return
        ticket = self._cmd(counter, CounterAction.NEXT)
        if ticket is None:
            if clerk.leaving:
                self._close(counter)
            else:
                clerk.mode = "idle"
            return
        clerk.mode = "busy"
        clerk.gen += 1
        b = self.sc.behaviour
        if self.rng.random() < b.no_show:
            self._after(self._u(b.recall_after_s), "recall", counter, clerk.gen)
        else:
            self._after(self._u(b.walk_s), "at_counter", counter, clerk.gen)

    def _close(self, counter: str) -> None:
        self._cmd(counter, CounterAction.CLOSE)
        self._cmd(counter, CounterAction.SIGN_OUT)
        self.clerks[counter].mode = "done"

    def _current(self, counter: str, gen: int) -> Ticket | None:
        if self.clerks[counter].gen != gen or self.clerks[counter].mode != "busy":
            return None
        return self.engine.current_ticket(counter)

    def _on_recall(self, counter: str, gen: int) -> None:
        ticket = self._current(counter, gen)
        if ticket is None:
            return
        if ticket.recalls == 0:
            self._cmd(counter, CounterAction.RECALL)
            self._after(self._u(self.sc.behaviour.recall_after_s), "recall", counter, gen)
        else:
            self._cmd(counter, CounterAction.NO_SHOW)
            self._turnaround(counter)

    def _on_at_counter(self, counter: str, gen: int) -> None:
        ticket = self._current(counter, gen)
        if ticket is None:
            return
        if self.rng.random() < self.sc.behaviour.start_pressed:
            self._cmd(counter, CounterAction.START)
        self._after(self.sc.service_times[ticket.service].draw(self.rng), "served", counter, gen)

    def _on_served(self, counter: str, gen: int) -> None:
        ticket = self._current(counter, gen)
        if ticket is None:
            return
        for t in self.sc.transfers:
            if t.from_service == ticket.service and self.rng.random() < t.share:
                self._cmd(counter, CounterAction.TRANSFER, target_service=t.to_service)
                self._wake(t.to_service)
                break
        self._turnaround(counter)

    def _turnaround(self, counter: str) -> None:
        clerk = self.clerks[counter]
        clerk.gen += 1
        clerk.mode = "turnaround"
        self._after(self._u(self.sc.behaviour.turnaround_s), "free", counter, clerk.gen)

    def _on_free(self, counter: str, gen: int) -> None:
        clerk = self.clerks[counter]
        if clerk.gen == gen and clerk.mode == "turnaround":
            clerk.mode = "busy"
            self._free(counter)

    def _on_break(self, counter: str, minutes: float) -> None:
        clerk = self.clerks[counter]
        if clerk.leaving or clerk.mode in ("off", "done", "paused"):
            return
        clerk.break_due = minutes
        if clerk.mode in ("idle", "waking"):
            self._free(counter)

    def _on_break_end(self, counter: str) -> None:
        clerk = self.clerks[counter]
        if clerk.mode != "paused":
            return
        self._cmd(counter, CounterAction.OPEN)
        clerk.mode = "idle"
        self._free(counter)
