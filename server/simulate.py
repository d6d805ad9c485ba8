"""``numerek-simulate``: run a realistic office through the real engine on a simulated clock.

Why a simulator: reports, benchmarks and the demo need months of believable data, and
the estimated wait printed on tickets needs to be judged against what really happened.
Everything goes through the real :class:`~server.engine.QueueEngine` (issue, next,
recall, start, no-show, transfer, pause, rate, close) and is written by the real
:class:`~server.store.Store`, so the reports read exactly the files a live server writes.

The model (docs/reports.md, "Simulator"):

* arrivals per service are a Poisson process whose rate varies by hour (morning peak,
  lunch dip, smaller afternoon peak) and weekday (Monday busiest, Friday quietest);
* service times are lognormal around each service's typical duration;
* 5 % of called clients do not come (recalled once, then marked no-show);
* some registrations are sent to the cash desk (transfer); a third of clients rate;
* counters open a little late, take a lunch pause, and one hall counter closes early
  on Fridays; everyone holding a ticket is served before the counters close.

It also measures the accuracy of the printed estimate (``estimated_wait_s``) against the
actual wait, next to the naive "people ahead × mean service time ÷ open counters".
The only liberty taken with storage: the simulation writes with ``synchronous=OFF``
(it can simply be re-run; a live server keeps ``FULL``).
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import math
import random
import sys
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

from protocol.messages import CounterAction, CounterStatus
from server.config import EXAMPLE_CONFIG, ConfigError, SiteConfig, load_config
from server.domain import Command, Refusal, Ticket, TicketStatus
from server.engine import Changes, QueueEngine
from server.estimate import WaitEstimator
from server.store import Store

# Typical service minutes (median) by service id; unknown services get DEFAULT_MINUTES.
TYPICAL_MINUTES = {"rej": 9.0, "pj": 7.0, "odb": 2.5, "kasa": 2.0, "pasz": 11.0}
DEFAULT_MINUTES = 6.0
# Arrivals per hour per service on an average day at the peak hour.
PEAK_ARRIVALS = {"rej": 11.0, "pj": 8.0, "odb": 12.0, "kasa": 10.0, "pasz": 7.0}
DEFAULT_PEAK = 10.0
# Shape of a day (local hour -> share of the peak) and of a week (weekday -> factor).
HOUR_SHAPE = {7: 0.3, 8: 0.8, 9: 1.0, 10: 0.95, 11: 0.8, 12: 0.6, 13: 0.65, 14: 0.7, 15: 0.5, 16: 0.4, 17: 0.3}
WEEKDAY_FACTOR = {0: 1.25, 1: 1.0, 2: 1.05, 3: 0.95, 4: 0.75, 5: 0.4, 6: 0.3}
NO_SHOW = 0.05
TRANSFER = {"rej": ("kasa", 0.08)}  # a registration sent to pay at the cash desk
RATES = 0.33
SIGMA = 0.55  # lognormal shape of service times


@dataclass
class Accuracy:
    """Mean absolute error of wait estimates, over tickets that were called."""

    tickets: int = 0
    printed_abs: float = 0.0
    naive_abs: float = 0.0

    def add(self, actual: float, printed: float, naive: float) -> None:
        self.tickets += 1
        self.printed_abs += abs(printed - actual)
        self.naive_abs += abs(naive - actual)

    def as_dict(self) -> dict:
        n = max(self.tickets, 1)
        return {
            "tickets": self.tickets,
            "printed_mae_min": round(self.printed_abs / n / 60, 2),
            "naive_mae_min": round(self.naive_abs / n / 60, 2),
        }


@dataclass
class Result:
    days: int = 0
    tickets: int = 0
    events: int = 0
    refused: int = 0
    accuracy: Accuracy = field(default_factory=Accuracy)
    by_service: dict[str, Accuracy] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "days": self.days,
            "tickets": self.tickets,
            "events": self.events,
            "refused_at_kiosk": self.refused,
            "estimate_accuracy": self.accuracy.as_dict(),
            "estimate_accuracy_by_service": {k: v.as_dict() for k, v in sorted(self.by_service.items())},
        }


class Simulation:
    """One office, one engine, one store, one simulated clock."""

    def __init__(
        self,
        config: SiteConfig,
        database: str,
        seed: int = 1,
        scale: float = 1.0,
        estimator: WaitEstimator | None = None,
    ) -> None:
        self.config = config
        self.tz = config.office.tz
        self.rng = random.Random(seed)
        self.scale = scale
        self.now = datetime(2000, 1, 1, tzinfo=UTC)
        self.store = Store(database)
        self.store.conn.execute("PRAGMA synchronous=OFF")
        state = self.store.load()
        self.engine = QueueEngine(config, lambda: self.now, estimator=estimator, token_factory=self._token)
        self.engine.restore(state)
        self.last_day = state.day
        self.pending = Changes()
        self.result = Result()
        self._ids = itertools.count(1)
        self._naive: dict[int, tuple[float, str]] = {}  # ticket id -> naive estimate, service
        self._svc_sum: dict[str, float] = {}
        self._svc_n: dict[str, int] = {}
        self._queue: list[tuple[datetime, int, str, tuple]] = []
        self._seq = itertools.count()
        self._finished: dict[str, Ticket] = {}  # counter -> its last finished ticket (for ratings)

    def _token(self) -> str:
        return f"sim{self.rng.getrandbits(64):016x}"

    # ------------------------------------------------------------------ plumbing

    def _flush_engine(self) -> None:
        ch = self.engine.take_changes()
        if ch.events:
            self.pending.events.extend(ch.events)
            self.pending.tickets.update(ch.tickets)
            self.pending.counters.update(ch.counters)
            for ev in ch.events:
                if ev.kind == "finish" and ev.ticket_id is not None:
                    t = ch.tickets[ev.ticket_id]
                    self._finished[ev.counter or ""] = t
                    if t.started_at is not None and t.finished_at is not None:
                        s = (t.finished_at - t.started_at).total_seconds()
                        self._svc_sum[t.service] = self._svc_sum.get(t.service, 0.0) + s
                        self._svc_n[t.service] = self._svc_n.get(t.service, 0) + 1
                elif ev.kind == "call" and ev.ticket_id is not None:
                    t = ch.tickets[ev.ticket_id]
                    self._on_first_call(t)
        if len(self.pending.events) >= 2000:
            self.commit()

    def commit(self) -> None:
        if not self.pending.events:
            return
        counters = [self.engine.counters[c] for c in self.pending.counters if c in self.engine.counters]
        self.store.commit(self.pending, counters, [])
        self.result.events += len(self.pending.events)
        self.pending = Changes()

    def _cmd(self, counter: str, action: CounterAction, **kw) -> Ticket | None:
        cmd = Command(action=action, **kw)
        try:
            return self.engine.command(counter, cmd)
        finally:
            self._flush_engine()

    def _at(self, when: datetime, kind: str, *args) -> None:
        heapq.heappush(self._queue, (when, next(self._seq), kind, args))

    # ------------------------------------------------------------------ estimates

    def _naive_estimate(self, service: str, ahead: int) -> float:
        """People ahead × mean service time so far ÷ open counters serving the service."""
        n = self._svc_n.get(service, 0)
        mean = self._svc_sum[service] / n if n else 300.0
        open_counters = max(len(self.engine.open_counters(service)), 1)
        return ahead * mean / open_counters

    def _on_first_call(self, t: Ticket) -> None:
        naive = self._naive.pop(t.id, None)
        if naive is None or t.first_called_at != t.called_at or t.estimated_wait_s is None:
            return
        actual = (t.first_called_at - t.issued_at).total_seconds()  # type: ignore[operator]
        self.result.accuracy.add(actual, t.estimated_wait_s, naive[0])
        self.result.by_service.setdefault(naive[1], Accuracy()).add(actual, t.estimated_wait_s, naive[0])

    # ------------------------------------------------------------------ one day

    def _local(self, day: date, hhmm: time, minutes: float = 0.0) -> datetime:
        return datetime.combine(day, hhmm, self.tz).astimezone(UTC) + timedelta(minutes=minutes)

    def _arrivals(self, day: date) -> list[tuple[datetime, str]]:
        out = []
        wd = day.weekday()
        for s in self.config.services:
            hours = s.hours_on(wd)
            if hours is None:
                continue
            peak = PEAK_ARRIVALS.get(s.id, DEFAULT_PEAK) * self.scale * WEEKDAY_FACTOR[wd]
            start = self._local(day, hours.opens, -15)  # some wait at the door before opening
            end = self._local(day, hours.closes)
            t = start
            top = peak * 1.05
            while True:  # thinning: candidates at the top rate, kept with rate(t)/top
                t += timedelta(hours=self.rng.expovariate(top))
                if t >= end:
                    break
                hour = t.astimezone(self.tz).hour
                if self.rng.random() * top < peak * HOUR_SHAPE.get(hour, 0.2):
                    out.append((max(t, self._local(day, hours.opens)), s.id))
        out.sort()
        return out

    def _service_seconds(self, service: str) -> float:
        median = TYPICAL_MINUTES.get(service, DEFAULT_MINUTES) * 60
        return max(20.0, self.rng.lognormvariate(math.log(median), SIGMA))

    def run_day(self, day: date) -> None:
        wd = day.weekday()
        hours = {s.id: s.hours_on(wd) for s in self.config.services}
        if not any(hours.values()):
            return
        self._queue.clear()
        for c in self.config.counters:
            own = [h for s in c.services if (h := hours.get(s)) is not None]
            if not own:
                continue
            opens = min(h.opens for h in own)
            closes = max(h.closes for h in own)
            self._at(self._local(day, opens, self.rng.uniform(-5, 10)), "open", c.id)
            lunch = self._local(day, time(11, 0), self.rng.uniform(0, 150))
            self._at(lunch, "pause", c.id, self.rng.uniform(15, 30))
            early = wd == 4 and c.id == self.config.counters[0].id
            self._at(self._local(day, closes, -90 if early else 0), "closing", c.id)
        for when, service in self._arrivals(day):
            self._at(when, "arrive", service)
        self.result.days += 1
        self._state: dict[str, str] = {}  # counter -> idle | busy | closing | closed | pausing
        while self._queue:
            when, _n, kind, args = heapq.heappop(self._queue)
            self.now = max(self.now, when)
            getattr(self, f"_on_{kind}")(*args)
        self.commit()

    # ------------------------------------------------------------------ event handlers

    def _on_arrive(self, service: str) -> None:
        try:
            ticket, ahead = self.engine.issue(service, priority=self.rng.random() < 0.03, origin="sim")
        except Refusal:
            self.result.refused += 1
            self.engine.take_changes()
            return
        self._naive[ticket.id] = (self._naive_estimate(service, ahead), service)
        self.result.tickets += 1
        self._flush_engine()
        for cid in self.engine.counter_config:
            if self._state.get(cid) == "idle" and service in self.engine.counter_config[cid].services:
                self._at(self.now + timedelta(seconds=self.rng.uniform(2, 20)), "next", cid)
                self._state[cid] = "waking"

    def _on_open(self, counter: str) -> None:
        self._cmd(counter, CounterAction.SIGN_IN, clerk=f"clerk-{int(counter):02d}" if counter.isdigit() else counter)
        self._cmd(counter, CounterAction.OPEN)
        self._state[counter] = "idle"
        self._on_next(counter)

    def _on_next(self, counter: str) -> None:
        state = self._state.get(counter)
        if state in ("busy", "closed", "paused"):
            return
        if state == "pausing":
            self._start_pause(counter)
            return
        current = self.engine.current_ticket(counter)
        ticket = self._cmd(counter, CounterAction.NEXT)
        if current is not None and current.status == TicketStatus.FINISHED:
            self._maybe_rate(counter)
        if ticket is None:
            if state == "closing":
                self._close(counter)
            else:
                self._state[counter] = "idle"
            return
        self._state[counter] = "busy" if state != "closing" else "closing-busy"
        if self.rng.random() < NO_SHOW:
            self._at(self.now + timedelta(seconds=self.rng.uniform(45, 90)), "recall", counter, ticket.number)
        else:
            walk = self.rng.uniform(15, 60)
            self._at(self.now + timedelta(seconds=walk), "start", counter, ticket.number)

    def _on_recall(self, counter: str, number: str) -> None:
        cur = self.engine.current_ticket(counter)
        if cur is None or cur.number != number:
            return
        if cur.recalls == 0:
            self._cmd(counter, CounterAction.RECALL)
            self._at(self.now + timedelta(seconds=self.rng.uniform(45, 90)), "recall", counter, number)
        else:
            self._cmd(counter, CounterAction.NO_SHOW)
            self._done(counter)

    def _on_start(self, counter: str, number: str) -> None:
        cur = self.engine.current_ticket(counter)
        if cur is None or cur.number != number:
            return
        if self.rng.random() < 0.7:  # some clerks press "start", others go straight on
            self._cmd(counter, CounterAction.START)
        self._at(self.now + timedelta(seconds=self._service_seconds(cur.service)), "end", counter, number)

    def _on_end(self, counter: str, number: str) -> None:
        cur = self.engine.current_ticket(counter)
        if cur is None or cur.number != number:
            return
        target = TRANSFER.get(cur.service)
        if target and target[0] in self.engine.services and self.rng.random() < target[1]:
            self._cmd(counter, CounterAction.TRANSFER, target_service=target[0])
            self._wake(target[0])
            self._done(counter)
            return
        self._state[counter] = "closing" if self._state.get(counter, "").startswith("closing") else "ready"
        self._on_next(counter)

    def _done(self, counter: str) -> None:
        """The counter's client left (no-show or transfer): call the next one."""
        self._state[counter] = "closing" if self._state.get(counter, "").startswith("closing") else "ready"
        self._on_next(counter)

    def _maybe_rate(self, counter: str) -> None:
        last = self.engine.counters[counter].last_finished
        if last is None or self.rng.random() >= RATES:
            return
        ticket = self._finished.get(counter)
        waited = (
            (ticket.first_called_at - ticket.issued_at).total_seconds() / 60 if ticket and ticket.first_called_at else 0
        )
        rating = 5 if self.rng.random() < 0.5 else 4 if self.rng.random() < 0.6 else self.rng.choice((1, 2, 3, 3))
        if waited > 40 and rating > 2:
            rating -= 1
        try:
            self._cmd(counter, CounterAction.RATE, rating=rating)
        except Refusal:
            pass

    def _wake(self, service: str) -> None:
        for cid, cfg in self.engine.counter_config.items():
            if self._state.get(cid) == "idle" and service in cfg.services:
                self._at(self.now + timedelta(seconds=self.rng.uniform(2, 20)), "next", cid)
                self._state[cid] = "waking"

    def _on_pause(self, counter: str, minutes: float) -> None:
        state = self._state.get(counter)
        if state in (None, "closed") or str(state).startswith("closing"):
            return
        self._pause_minutes = getattr(self, "_pause_minutes", {})
        self._pause_minutes[counter] = minutes
        if state in ("idle", "waking"):
            self._start_pause(counter)
        else:
            self._state[counter] = "pausing"  # after the current client

    def _start_pause(self, counter: str) -> None:
        if self.engine.current_ticket(counter) is not None:
            self._cmd(counter, CounterAction.FINISH)
            self._maybe_rate(counter)
        self._cmd(counter, CounterAction.PAUSE)
        self._state[counter] = "paused"
        self._at(self.now + timedelta(minutes=self._pause_minutes.get(counter, 20)), "resume", counter)

    def _on_resume(self, counter: str) -> None:
        if self._state.get(counter) != "paused":
            return
        self._cmd(counter, CounterAction.OPEN)
        self._state[counter] = "idle"
        self._on_next(counter)

    def _on_closing(self, counter: str) -> None:
        """Closing time: no new clients at this counter once the queue it serves is empty."""
        state = self._state.get(counter)
        if state == "paused":
            self._cmd(counter, CounterAction.OPEN)
        if state in ("busy", "pausing"):
            self._state[counter] = "closing-busy"
            return
        self._state[counter] = "closing"
        self._on_next(counter)

    def _close(self, counter: str) -> None:
        # Leave the last counter of each service open while anyone still waits for it.
        for s in self.engine.counter_config[counter].services:
            others = [c for c in self.engine.open_counters(s) if c != counter]
            if self.engine.waiting(s) and not others:
                self._at(self.now + timedelta(minutes=2), "closing", counter)
                self._state[counter] = "idle-closing"
                return
        self._cmd(counter, CounterAction.CLOSE)
        self._cmd(counter, CounterAction.SIGN_OUT)
        self._state[counter] = "closed"

    # ------------------------------------------------------------------ whole runs

    def run(self, start: date, days: int) -> Result:
        if self.last_day is not None and start <= self.last_day:
            raise ValueError(f"the database already holds data up to {self.last_day}; start after it")
        for i in range(days):
            self.run_day(start + timedelta(days=i))
        self.commit()
        # Counters still open (a service whose last client left after its closing event).
        for cid, c in self.engine.counters.items():
            if c.status != CounterStatus.CLOSED:
                self._cmd(cid, CounterAction.CLOSE)
        self.commit()
        return self.result

    def close(self) -> None:
        self.store.conn.execute("PRAGMA synchronous=FULL")
        self.store.close()


def simulate(
    config: SiteConfig,
    database: str,
    start: date,
    days: int,
    seed: int = 1,
    scale: float = 1.0,
    estimator: WaitEstimator | None = None,
) -> Result:
    sim = Simulation(config, database, seed=seed, scale=scale, estimator=estimator)
    try:
        return sim.run(start, days)
    finally:
        sim.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="numerek-simulate", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(EXAMPLE_CONFIG), help="site config (default: the example county office)")
    p.add_argument("--database", help="SQLite file to write (new, or holding earlier days); optional with --scenario")
    p.add_argument(
        "--scenario",
        action="append",
        help="a scenario file (scenarios/*.toml; repeatable): run it and score the wait estimates (docs/estimates.md)",
    )
    p.add_argument("--weeks", type=int, default=None, help="with --scenario: weeks to run (default: the file's)")
    p.add_argument("--report", action="store_true", help="with --scenario: every scenario's full tables")
    p.add_argument(
        "--estimator",
        choices=("honest", "honest5", "before", "no-appointments"),
        default="honest",
        help="with --scenario: what the engine prints (no-appointments: the default, blind to bookings)",
    )
    p.add_argument("--start", default=None, help="first office day, YYYY-MM-DD (default: 4 weeks ago)")
    p.add_argument("--days", type=int, default=20, help="calendar days to simulate (weekends are closed)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: 1, or the scenario's)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply arrival rates (busier office)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    args = p.parse_args(argv)
    if args.scenario:
        from server.sim.run import scenario_main

        try:
            if args.weeks is not None and not 1 <= args.weeks <= 104:
                raise ValueError("--weeks must be 1-104")
            return scenario_main(
                args.scenario, args.weeks, args.seed, args.estimator, args.database, args.json, args.report
            )
        except ConfigError as exc:
            print(f"numerek-simulate: invalid scenario:\n{exc}", file=sys.stderr)
            return 2
        except ValueError as exc:
            print(f"numerek-simulate: {exc}", file=sys.stderr)
            return 2
    if args.database is None:
        print("numerek-simulate: --database is required (unless --scenario)", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args.config)
        start = date.fromisoformat(args.start) if args.start else date.today() - timedelta(days=28)
        if not 1 <= args.days <= 3660 or not 0 < args.scale <= 100:
            raise ValueError("--days must be 1-3660 and --scale 0-100")
        if Path(args.database).is_dir():
            raise ValueError(f"{args.database} is a directory")
        result = simulate(
            cfg, args.database, start, args.days, seed=1 if args.seed is None else args.seed, scale=args.scale
        )
    except (ConfigError, ValueError, RuntimeError) as exc:
        print(f"numerek-simulate: {exc}", file=sys.stderr)
        return 2
    data = result.as_dict()
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        acc = data["estimate_accuracy"]
        print(f"{data['days']} office days, {data['tickets']} tickets, {data['events']} events -> {args.database}")
        print(f"refused at the kiosk (closed, cut-off, daily limit): {data['refused_at_kiosk']}")
        print(
            f"estimated wait, mean absolute error over {acc['tickets']} called tickets: "
            f"printed {acc['printed_mae_min']} min, naive {acc['naive_mae_min']} min"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
