"""Staffing advice: how many counters each service needs, per weekday and hour, to meet its target wait.

From what the office recorded (the store's tickets and events): arrivals per service,
weekday and hour, and the time a counter is taken per client (call to end, no-shows and
recalls included). Per hour:

1. **Erlang C, the first cut**: the fewest counters for which the M/M/N queue has at least
   ``goal`` (80 %) of residents called within the service's ``target_wait_min``.
2. **Checked by simulation** with the office's real service times (Erlang C assumes
   exponential service; real ones are not): a whole day of the service replayed many times,
   first come first served, the counters per hour as planned, arrivals at the recorded rates
   and service times drawn from the recorded ones. Queues carry over from hour to hour, so
   an hour short of counters shows in the next one too. Where the day falls short of the goal,
   the earliest short hour gets one more counter, until every hour meets it.
3. **What if**: the same day simulation for any plan (e.g. one more counter at 8:00).
4. **Against last week**: the counters that really served the service per hour (a shared
   counter by its share of that hour's calls) and the share of residents really called in time.

Each service is treated on its own: a counter shared between services counts for each by
its share of calls. The scenario simulator (server/sim/) plays whole offices with shared
counters through the real engine when that matters.
"""

from __future__ import annotations

import math
import random
import sqlite3
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo

GOAL = 0.8
"""Share of residents to be called within the service's target wait."""


# ---------------------------------------------------------------- Erlang C


def erlang_c(servers: int, load: float) -> float:
    """Probability that an arrival waits in an M/M/N queue with ``load`` Erlangs (λ·E[S]); 1 if overloaded."""
    if servers <= 0 or load >= servers:
        return 1.0
    if load <= 0:
        return 0.0
    b = 1.0  # Erlang B by its stable recursion
    for n in range(1, servers + 1):
        b = load * b / (n + load * b)
    return servers * b / (servers - load * (1 - b))


def erlang_c_share_within(servers: int, arrivals_per_s: float, mean_service_s: float, target_s: float) -> float:
    """Share of residents called within ``target_s`` (Erlang C: P(W ≤ t) = 1 − C·e^{−(N−A)t/E[S]})."""
    load = arrivals_per_s * mean_service_s
    if servers <= 0:
        return 0.0 if arrivals_per_s > 0 else 1.0
    if load >= servers:
        return 0.0
    return 1.0 - erlang_c(servers, load) * math.exp(-(servers - load) * target_s / mean_service_s)


def erlang_c_counters(arrivals_per_s: float, mean_service_s: float, target_s: float, goal: float = GOAL) -> int:
    """The fewest counters for which Erlang C promises ``goal`` within ``target_s`` (0 with nobody coming)."""
    if arrivals_per_s <= 0:
        return 0
    n = max(1, math.floor(arrivals_per_s * mean_service_s) + 1)
    while erlang_c_share_within(n, arrivals_per_s, mean_service_s, target_s) < goal:
        n += 1
    return n


# ---------------------------------------------------------------- a service's day, simulated


@dataclass
class DayOutcome:
    """A plan's expected result over many simulated days."""

    share_within: float  # of all residents of the day, called within the target
    by_hour: dict[int, float]  # share within the target of those who arrived in the hour
    mean_wait_s: float
    residents: float  # per day, on average


def simulate_day(
    arrivals_per_hour: Mapping[int, float],
    plan: Mapping[int, int],
    service_times_s: Sequence[float],
    target_s: float,
    days: int = 300,
    seed: int = 1,
) -> DayOutcome:
    """Replay the service's day ``days`` times: Poisson arrivals at the hourly rates, ``plan[h]``
    counters in hour h (a counter leaving finishes its client first), first come first served,
    service times drawn from ``service_times_s`` (the office's own)."""
    if not service_times_s:
        raise ValueError("no recorded service times to draw from")
    rng = random.Random(seed)
    hours = sorted(set(arrivals_per_hour) | set(plan))
    if not hours:
        return DayOutcome(1.0, {}, 0.0, 0.0)
    first, last = hours[0], hours[-1]
    width = max(plan.values(), default=0)
    within: dict[int, int] = defaultdict(int)
    seen: dict[int, int] = defaultdict(int)
    total_wait = 0.0
    n_total = 0

    def staffed(i: int, t: float) -> float:
        """The earliest moment ≥ t at which counter i is planned to work (inf: not again)."""
        h = int(t // 3600)
        if h < first:
            h, t = first, first * 3600.0
        while h <= last + 24:
            if plan.get(min(h, last), 0) > i:
                return max(t, h * 3600.0)
            h += 1
            t = h * 3600.0
        return math.inf

    for _ in range(days):
        free = [0.0] * width
        for h in hours:
            rate = arrivals_per_hour.get(h, 0.0)
            t = h * 3600.0
            while rate > 0:
                t += rng.expovariate(rate / 3600.0)
                if t >= (h + 1) * 3600.0:
                    break
                best_i, best_start = -1, math.inf
                for i in range(width):
                    start = staffed(i, max(t, free[i]))
                    if start < best_start:
                        best_i, best_start = i, start
                seen[h] += 1
                n_total += 1
                if best_i < 0:
                    continue  # nobody planned to serve it: it never gets called
                wait = best_start - t
                total_wait += wait
                if wait <= target_s:
                    within[h] += 1
                free[best_i] = best_start + rng.choice(service_times_s)
    by_hour = {h: within[h] / seen[h] for h in hours if seen[h]}
    return DayOutcome(
        share_within=sum(within.values()) / n_total if n_total else 1.0,
        by_hour=by_hour,
        mean_wait_s=total_wait / n_total if n_total else 0.0,
        residents=n_total / days,
    )


@dataclass
class HourAdvice:
    hour: int
    arrivals_per_hour: float
    erlang_c: int  # counters by Erlang C
    advised: int  # after the check by simulation
    expected_share: float  # within the target with the advised plan (simulated)
    last_week_counters: float | None = None
    last_week_share: float | None = None


@dataclass
class ServiceAdvice:
    service: str
    weekday: int
    target_min: int
    mean_service_s: float
    hours: list[HourAdvice] = field(default_factory=list)
    expected_share: float = 1.0  # the whole day with the advised plan
    erlang_share: float = 1.0  # the whole day with Erlang C's plan, simulated


def advise(
    service: str,
    weekday: int,
    arrivals_per_hour: Mapping[int, float],
    service_times_s: Sequence[float],
    target_min: int,
    goal: float = GOAL,
    days: int = 300,
    seed: int = 1,
) -> ServiceAdvice:
    """Counters per hour for one service and weekday: Erlang C, then checked and topped up by simulation."""
    if not service_times_s:
        raise ValueError(f"{service}: no recorded service times")
    mean_s = sum(service_times_s) / len(service_times_s)
    target_s = target_min * 60.0
    hours = sorted(h for h, r in arrivals_per_hour.items() if r > 0)
    erlang = {h: erlang_c_counters(arrivals_per_hour[h] / 3600.0, mean_s, target_s, goal) for h in hours}
    plan = dict(erlang)
    first = simulate_day(arrivals_per_hour, plan, service_times_s, target_s, days, seed)
    outcome = first
    for _ in range(4 * len(hours) + 10):
        short = [h for h in hours if outcome.by_hour.get(h, 1.0) < goal]
        if not short:
            break
        plan[short[0]] += 1
        outcome = simulate_day(arrivals_per_hour, plan, service_times_s, target_s, days, seed)
    advice = ServiceAdvice(service, weekday, target_min, mean_s, expected_share=outcome.share_within)
    advice.erlang_share = first.share_within
    for h in hours:
        advice.hours.append(HourAdvice(h, arrivals_per_hour[h], erlang[h], plan[h], outcome.by_hour.get(h, 1.0)))
    return advice


def what_if(
    arrivals_per_hour: Mapping[int, float],
    plan: Mapping[int, int],
    change: Mapping[int, int],
    service_times_s: Sequence[float],
    target_min: int,
    days: int = 300,
    seed: int = 1,
) -> tuple[DayOutcome, DayOutcome]:
    """The day as planned and with ``change`` (hour -> counters added, e.g. {8: 1}): before, after."""
    after = dict(plan)
    for h, d in change.items():
        after[h] = max(0, after.get(h, 0) + d)
    target_s = target_min * 60.0
    return (
        simulate_day(arrivals_per_hour, plan, service_times_s, target_s, days, seed),
        simulate_day(arrivals_per_hour, after, service_times_s, target_s, days, seed),
    )


# ---------------------------------------------------------------- what the office recorded


@dataclass
class Record:
    """What the store says about some weeks, per service: the inputs of the advice."""

    arrivals: dict[tuple[str, int, int], float]  # (service, weekday, hour) -> arrivals per hour, mean over days
    service_times: dict[str, list[float]]  # service -> seconds a counter was taken per client
    counters: dict[tuple[str, int, int], float]  # (service, weekday, hour) -> counters at work for it, mean
    called_within: dict[tuple[str, int, int], tuple[int, int]]  # -> (called within target, arrived)
    days: dict[int, int]  # weekday -> office days seen


def load_record(
    conn: sqlite3.Connection, since: date, until: date, tz: tzinfo, targets_min: Mapping[str, int]
) -> Record:
    """Read [since, until) from a Numerek store (read only)."""
    span = (since.isoformat(), until.isoformat())
    days_seen: dict[str, int] = {}
    for (day,) in conn.execute("SELECT DISTINCT day FROM tickets WHERE day >= ? AND day < ?", span):
        days_seen[day] = date.fromisoformat(day).weekday()
    per_weekday: dict[int, int] = defaultdict(int)
    for wd in days_seen.values():
        per_weekday[wd] += 1

    def local(ts: float) -> datetime:
        return datetime.fromtimestamp(ts, UTC).astimezone(tz)

    counts: dict[tuple[str, int, int], float] = defaultdict(float)
    within: dict[tuple[str, int, int], list[int]] = defaultdict(lambda: [0, 0])
    for service, issued, called in conn.execute(
        "SELECT issued_service, issued_at, first_called_at FROM tickets WHERE day >= ? AND day < ?", span
    ):
        at = local(issued)
        key = (service, at.weekday(), at.hour)
        counts[key] += 1
        within[key][1] += 1
        if called is not None and called - issued <= targets_min.get(service, 20) * 60:
            within[key][0] += 1
    arrivals = {k: v / max(per_weekday[k[1]], 1) for k, v in counts.items()}

    # the time a counter is taken per client, and who called whom when (for counters at work)
    times: dict[str, list[float]] = defaultdict(list)
    calling: dict[str, tuple[float, str]] = {}  # counter -> (call time, service)
    calls: dict[tuple[str, str, int, int], int] = defaultdict(int)  # (counter, service, weekday, hour)
    open_s: dict[tuple[str, int, int], float] = defaultdict(float)  # (counter, weekday, hour) -> seconds open
    opened: dict[str, float] = {}
    rows = conn.execute(
        "SELECT kind, at, service, counter FROM events WHERE day >= ? AND day < ? AND kind IN "
        "('call','finish','no_show','transfer','counter_open','counter_pause','counter_close') ORDER BY id",
        span,
    )
    for kind, at, service, counter in rows:
        if counter is None:
            continue
        if kind == "call":
            calling[counter] = (at, service)
            t = local(at)
            calls[(counter, service, t.weekday(), t.hour)] += 1
        elif kind in ("finish", "no_show", "transfer"):
            began = calling.pop(counter, None)
            if began is not None and at > began[0]:
                times[began[1]].append(at - began[0])
        elif kind == "counter_open":
            opened.setdefault(counter, at)
        elif counter in opened:  # pause or close: an open stretch ends
            _spread_hours(open_s, counter, opened.pop(counter), at, local)
    counters: dict[tuple[str, int, int], float] = defaultdict(float)
    by_counter_hour: dict[tuple[str, int, int], int] = defaultdict(int)
    for (counter, _service, wd, h), n in calls.items():
        by_counter_hour[(counter, wd, h)] += n
    for (counter, service, wd, h), n in calls.items():
        share = n / by_counter_hour[(counter, wd, h)]
        counters[(service, wd, h)] += share * open_s.get((counter, wd, h), 0.0) / 3600.0 / max(per_weekday[wd], 1)
    return Record(
        arrivals=arrivals,
        service_times=dict(times),
        counters=dict(counters),
        called_within={k: (v[0], v[1]) for k, v in within.items()},
        days=dict(per_weekday),
    )


def _spread_hours(
    into: dict[tuple[str, int, int], float], counter: str, start: float, end: float, local: object
) -> None:
    """Add the seconds of [start, end) to each local hour they fall in."""
    t = start
    while t < end:
        at = local(t)  # type: ignore[operator]
        next_hour = at.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        stop = min(end, next_hour.timestamp())
        into[(counter, at.weekday(), at.hour)] += stop - t
        t = stop


def advise_from_record(
    record: Record,
    service: str,
    weekday: int,
    target_min: int,
    last_week: Record | None = None,
    goal: float = GOAL,
    days: int = 300,
) -> ServiceAdvice:
    """The advice for one service and weekday from recorded weeks, next to last week's reality."""
    rates = {h: r for (s, wd, h), r in record.arrivals.items() if s == service and wd == weekday}
    advice = advise(service, weekday, rates, record.service_times.get(service, []), target_min, goal, days)
    if last_week is not None:
        for row in advice.hours:
            key = (service, weekday, row.hour)
            row.last_week_counters = round(last_week.counters.get(key, 0.0), 2)
            ok, n = last_week.called_within.get(key, (0, 0))
            row.last_week_share = ok / n if n else None
    return advice


def advice_table(advice: ServiceAdvice) -> str:
    """Markdown, for docs and the manager's report page."""
    lines = [
        f"{advice.service}, weekday {advice.weekday}: target {advice.target_min} min, "
        f"{advice.mean_service_s / 60:.1f} min per client; expected within target with the advice "
        f"{100 * advice.expected_share:.0f} % (Erlang C's plan alone: {100 * advice.erlang_share:.0f} %)",
        "",
        "| hour | arrivals/h | Erlang C | advised | expected in time | last week: counters | last week: in time |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in advice.hours:
        lw_c = "–" if r.last_week_counters is None else f"{r.last_week_counters:.1f}"
        lw_s = "–" if r.last_week_share is None else f"{100 * r.last_week_share:.0f} %"
        lines.append(
            f"| {r.hour}:00 | {r.arrivals_per_hour:.1f} | {r.erlang_c} | {r.advised} | "
            f"{100 * r.expected_share:.0f} % | {lw_c} | {lw_s} |"
        )
    return "\n".join(lines)
