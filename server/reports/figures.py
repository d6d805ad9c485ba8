"""The report figures: one implementation behind the dashboard, the JSON API, the exports and the PDF.

Definitions are in docs/reports.md and are the only ones used anywhere. Results are the typed
models of :mod:`server.reports.models`.

Why this module reads SQLite itself (and not the engine or a query façade): it is the
*reports reader*. Reports need every ticket and event of months or years, which the engine
never holds (it keeps today in memory), and they only read: a read-only connection of its
own (``mode=ro``; WAL lets it read while the worker writes) can neither block nor damage
the write path. The live view is different: it shows the engine's present state
(server/reports/web.py).

Why a columnar cache: a busy office writes a million tickets a year, and the dashboard
must answer in under a second for any date range. Reading a million rows from SQLite on
every request takes seconds, but past office days never change (a ticket's last change,
a rating, happens the same day, and the day roll cancels leftovers before the next day's
first event). So every day before the latest one is loaded once into numpy arrays sorted
by day, and only the latest day is read from SQLite when a range includes it. A date range
is then a slice (binary search on the day column) and every figure a vectorised pass over it.

Why a memo keyed by "past" or by the data version: figures of a range that ends before the
latest day cannot change, so they are computed once per filter and kept (the dashboard, its
five charts, the exports and the monthly report all read the same object). A range that
includes the latest day is recomputed when an event arrives (or after 30 s, for counters
still open "until now").
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time as _time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np

from server.config import SiteConfig
from server.reports.models import (
    Block,
    ClerkRow,
    CounterRow,
    DayRow,
    Heatmap,
    Ratings,
    ServiceRow,
    StaffFigures,
    Summary,
    TimeStats,
    WaitStats,
)

STATUSES = ("waiting", "called", "serving", "finished", "no_show", "transferred", "cancelled")
ST = {s: i for i, s in enumerate(STATUSES)}
COUNTER_KINDS = ("counter_open", "counter_pause", "counter_close", "sign_in", "sign_out")
MAX_RANGE_DAYS = 3660
LIVE_MEMO_S = 30.0  # figures of a range with the latest day: "open until now" moves with the clock
MEMO_SIZE = 64
NOBODY = -2  # the code of a filter value never seen in the data: matches no row (-1 is "none")


class FilterError(ValueError):
    """A filter value that makes no sense (message says which)."""


@dataclass(frozen=True)
class Filters:
    date_from: date
    date_to: date
    service: str | None = None
    counter: str | None = None
    clerk: str | None = None

    def span(self) -> int:
        """Days in the range, both ends included."""
        return (self.date_to - self.date_from).days + 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": self.date_from.isoformat(),
            "to": self.date_to.isoformat(),
            "service": self.service,
            "counter": self.counter,
            "clerk": self.clerk,
        }


class Codes:
    """Strings (service, counter, clerk ids) as small integers; -1 is "none"."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.names: list[str] = []

    def code(self, value: str | None) -> int:
        if value is None:
            return -1
        c = self.index.get(value)
        if c is None:
            c = self.index[value] = len(self.names)
            self.names.append(value)
        return c

    def encode(self, values: tuple) -> np.ndarray:
        """Codes of many values at once (C-speed lookups after adding the new ones)."""
        for v in set(values):
            self.code(v)
        table: dict[str | None, int] = {None: -1}
        table.update(self.index)
        return np.fromiter(map(table.__getitem__, values), np.int32, len(values))

    def get(self, value: str | None) -> int | None:
        return self.index.get(value) if value is not None else None


@dataclass
class Part:
    """Tickets, busy segments and open time of a run of office days, sorted by day."""

    # tickets
    day: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    isvc: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    svc: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    counter: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    clerk: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    status: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    issued: np.ndarray = field(default_factory=lambda: np.zeros(0))
    first_call: np.ndarray = field(default_factory=lambda: np.zeros(0))
    started: np.ndarray = field(default_factory=lambda: np.zeros(0))
    finished: np.ndarray = field(default_factory=lambda: np.zeros(0))
    transfers: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))
    rating: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    weekday: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    hour: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    # busy segments at counters (call -> end), for utilisation
    s_day: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    s_counter: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    s_clerk: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    s_svc: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    s_seconds: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # open time per (day, counter, clerk)
    o_day: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    o_counter: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    o_clerk: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    o_seconds: np.ndarray = field(default_factory=lambda: np.zeros(0))

    TICKET_COLS = (
        "day",
        "isvc",
        "svc",
        "counter",
        "clerk",
        "status",
        "issued",
        "first_call",
        "started",
        "finished",
        "transfers",
        "rating",
        "weekday",
        "hour",
    )
    SEG_COLS = ("s_day", "s_counter", "s_clerk", "s_svc", "s_seconds")
    OPEN_COLS = ("o_day", "o_counter", "o_clerk", "o_seconds")

    def __len__(self) -> int:
        return len(self.day)

    def extend(self, other: Part) -> None:
        for name in (*self.TICKET_COLS, *self.SEG_COLS, *self.OPEN_COLS):
            setattr(self, name, np.concatenate([getattr(self, name), getattr(other, name)]))

    def slice(self, first: int, last: int) -> Part:
        """Rows whose day ordinal is in [first, last] (each group of arrays is sorted by day)."""
        out = Part()
        for key, cols in (("day", self.TICKET_COLS), ("s_day", self.SEG_COLS), ("o_day", self.OPEN_COLS)):
            days = getattr(self, key)
            lo, hi = np.searchsorted(days, first, "left"), np.searchsorted(days, last, "right")
            for name in cols:
                setattr(out, name, getattr(self, name)[lo:hi])
        return out

    @staticmethod
    def join(parts: list[Part]) -> Part:
        parts = [p for p in parts if len(p) or len(p.o_day) or len(p.s_day)]
        if len(parts) == 1:
            return parts[0]
        out = Part()
        for p in parts:
            out.extend(p)
        return out


def _r(value: float | None, digits: int = 1) -> float | None:
    return None if value is None or value != value else round(float(value), digits)


def _time_stats(seconds: np.ndarray) -> TimeStats:
    empty = not len(seconds)
    return TimeStats(
        n=int(len(seconds)),
        mean_s=None if empty else _r(seconds.mean()),
        median_s=None if empty else _r(np.percentile(seconds, 50)),
        p90_s=None if empty else _r(np.percentile(seconds, 90)),
    )


def _share(part: float, whole: float, digits: int = 4) -> float | None:
    return _r(part / whole, digits) if whole else None


class _Tickets:
    """Per-ticket facts of one slice of the data, derived once and shared by every figure."""

    def __init__(self, p: Part, target_s: np.ndarray) -> None:
        self.p = p
        self.called = ~np.isnan(p.first_call)
        self.wait_s = p.first_call - p.issued  # NaN for tickets never called
        self.within = np.zeros(len(p), bool)
        self.within[self.called] = self.wait_s[self.called] <= target_s[p.isvc[self.called]]
        self.finished = p.status == ST["finished"]
        self.no_show = p.status == ST["no_show"]
        self.never_called = (p.status == ST["cancelled"]) & ~self.called
        self.service_s = p.finished - p.started
        self.rated = p.rating > 0

    def block(self, issued: np.ndarray, outcome: np.ndarray) -> Block:
        """Ticket figures: ``issued`` selects by the service issued for (issue and wait figures),
        ``outcome`` by the service that served (served, no-show, service time, rating)."""
        p = self.p
        called = issued & self.called
        waits = self.wait_s[called]
        within = int((issued & self.within).sum())
        served = outcome & self.finished
        grades = p.rating[outcome & self.rated]
        wait = _time_stats(waits)
        return Block(
            issued=int(issued.sum()),
            served=int(served.sum()),
            no_show=int((outcome & self.no_show).sum()),
            transferred=int((issued & (p.transfers > 0)).sum()),
            not_called=int((issued & self.never_called).sum()),
            wait=WaitStats(
                **wait.model_dump(),
                max_s=_r(waits.max()) if len(waits) else None,
                within_target=within,
                within_target_share=_share(within, len(waits)),
            ),
            service_time=_time_stats(self.service_s[served & ~np.isnan(self.service_s)]),
            rating=Ratings(
                n=int(len(grades)),
                mean=_r(grades.mean(), 2) if len(grades) else None,
                counts={str(k): int((grades == k).sum()) for k in range(1, 6)},
            ),
        )


@dataclass(frozen=True)
class _Selection:
    """Which rows of a :class:`Part` the filters keep, for each kind of figure."""

    issued: np.ndarray  # tickets, by the service issued for
    outcome: np.ndarray  # tickets, by the service that served them
    segments: np.ndarray  # busy segments at counters
    open_time: np.ndarray  # open time of counters


def _per_code(codes: np.ndarray, keep: np.ndarray, size: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Count (or sum ``weights``) of the kept rows per code; rows with no code (-1) drop out."""
    keep = keep & (codes >= 0)
    return np.bincount(codes[keep], weights=None if weights is None else weights[keep], minlength=size)


class ReportData:
    """Reads the store's ``tickets`` and ``events`` tables and computes the figures."""

    def __init__(
        self,
        database: str,
        config: SiteConfig | Callable[[], SiteConfig],
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.database = database
        # A callable gives the server's live config: the admin page replaces it (targets,
        # hours), and the reports must judge "within target" by the same target as the
        # live view and the engine, without a restart.
        self._config = config if callable(config) else (lambda: config)
        self.tz = self.config.office.tz
        self.now = now or (lambda: datetime.now(UTC))
        self.conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, check_same_thread=False)
        self.conn.execute("PRAGMA busy_timeout=5000")
        self.lock = threading.RLock()
        self.services = Codes()
        self.counters = Codes()
        self.clerks = Codes()
        for s in self.config.services:
            self.services.code(s.id)
        for c in self.config.counters:
            self.counters.code(c.id)
        self.cached = Part()
        self.cut: str | None = None  # days before this are in ``cached``
        self._day_offsets: dict[int, int] = {}
        # (filters, stamp) -> (computed at, config it was computed with, figures)
        self._memo: OrderedDict[tuple[Filters, tuple], tuple[float, SiteConfig, Summary]] = OrderedDict()
        self._compute = threading.Lock()  # one computation at a time: concurrent requests share its result
        self.computations = 0  # how many summaries were computed (not served from the memo): for tests and the bench

    @property
    def config(self) -> SiteConfig:
        return self._config()

    def close(self) -> None:
        self.conn.close()

    # ------------------------------------------------------------------ loading

    def _offset(self, ordinal: int) -> int:
        """Seconds to add to UTC for local time on this office day (fixed during office hours)."""
        off = self._day_offsets.get(ordinal)
        if off is None:
            noon = datetime.combine(date.fromordinal(ordinal), time(12), self.tz)
            off = self._day_offsets[ordinal] = int(noon.utcoffset().total_seconds())  # type: ignore[union-attr]
        return off

    def last_day(self) -> str | None:
        with self.lock:
            row = self.conn.execute("SELECT day FROM events ORDER BY id DESC LIMIT 1").fetchone()
        return row[0] if row else None

    def version(self) -> int:
        """Changes whenever anything happens (the last event id): the memo's key."""
        with self.lock:
            row = self.conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()
        return row[0]

    def _load(self, first: str, before: str | None) -> Part:
        """Office days in [first, before) (``before`` None: to the end) as a :class:`Part`."""
        cond, args = ("day >= ? AND day < ?", [first, before]) if before else ("day >= ?", [first])
        rows = self.conn.execute(
            "SELECT day, issued_service, service, counter, clerk, status, issued_at, first_called_at, started_at, "
            f"finished_at, transfers, rating, id FROM tickets WHERE {cond} ORDER BY +id",  # +id: use the day index
            args,
        ).fetchall()
        p = Part()
        ordinal: dict[str, int] = {}

        def o(day: str) -> int:
            v = ordinal.get(day)
            if v is None:
                v = ordinal[day] = date.fromisoformat(day).toordinal()
            return v

        if rows:
            cols = list(zip(*rows, strict=True))
            n = len(rows)
            p.day = np.fromiter(map({d: o(d) for d in set(cols[0])}.__getitem__, cols[0]), np.int32, n)
            p.isvc = self.services.encode(cols[1])
            p.svc = self.services.encode(cols[2])
            p.counter = self.counters.encode(cols[3])
            p.clerk = self.clerks.encode(cols[4])
            p.status = np.fromiter(map(ST.__getitem__, cols[5]), np.int8, n)
            p.issued = np.array(cols[6], dtype=float)
            p.first_call = np.array(cols[7], dtype=float)  # None becomes NaN
            p.started = np.array(cols[8], dtype=float)
            p.finished = np.array(cols[9], dtype=float)
            p.transfers = np.nan_to_num(np.array(cols[10], dtype=float)).astype(np.int16)
            p.rating = np.nan_to_num(np.array(cols[11], dtype=float)).astype(np.int8)
            uniq = np.unique(p.day)
            offsets = np.zeros(int(uniq[-1] - uniq[0]) + 1, dtype=np.int64)
            for d in uniq:
                offsets[d - uniq[0]] = self._offset(int(d))
            local = p.issued + offsets[p.day - uniq[0]]
            p.hour = ((local // 3600) % 24).astype(np.int8)
            p.weekday = ((p.day + 6) % 7).astype(np.int8)  # ordinal 1 (0001-01-01) was a Monday
            order = np.argsort(p.day, kind="stable")
            if (np.diff(p.day) < 0).any():
                for name in Part.TICKET_COLS:
                    setattr(p, name, getattr(p, name)[order])
            ids = cols[12]
        else:
            ids = ()
        self._load_segments(p, rows, ids, first, before, o)
        return p

    def _load_segments(self, p: Part, rows: list, ids: Iterable[int], first: str, before: str | None, o) -> None:
        """Busy segments (a ticket at a counter, from its call to its end) and open time."""
        last_activity: dict[tuple[int, int], float] = {}
        cc, kc, sc = self.counters.code, self.clerks.code, self.services.code
        # A ticket never transferred has one segment: first call -> finish or no-show, at its counter.
        single = (
            (p.transfers == 0)
            & ((p.status == ST["finished"]) | (p.status == ST["no_show"]))
            & ~np.isnan(p.first_call)
            & ~np.isnan(p.finished)
        )
        seg_cols = [
            p.day[single],
            p.counter[single],
            p.clerk[single],
            p.svc[single],
            (p.finished - p.first_call)[single],
        ]
        moved = [tid for r, tid in zip(rows, ids, strict=True) if r[10]]  # transferred: segments from the events
        extra: list[tuple[int, int, int, int, float]] = []
        for chunk in range(0, len(moved), 500):
            part = moved[chunk : chunk + 500]
            open_at: dict[int, tuple] = {}
            for tid, kind, at, day, counter, clerk, service in self.conn.execute(
                "SELECT ticket_id, kind, at, day, counter, clerk, service FROM events WHERE ticket_id IN "
                f"({','.join('?' * len(part))}) AND +kind IN ('call', 'transfer', 'finish', 'no_show', 'cancel') "  # ticket index
                "ORDER BY id",
                part,
            ):
                if kind == "call":
                    open_at.setdefault(tid, (at, o(day), cc(counter), kc(clerk), sc(service)))
                elif tid in open_at:
                    start, d, c, k, s = open_at.pop(tid)
                    if kind != "cancel":  # a day-end cancel is not work done
                        extra.append((d, c, k, s, at - start))
        if extra:
            more = list(zip(*extra, strict=True))
            seg_cols = [np.concatenate([a, np.array(b, a.dtype)]) for a, b in zip(seg_cols, more, strict=True)]
        order = np.argsort(seg_cols[0], kind="stable")
        p.s_day, p.s_counter, p.s_clerk, p.s_svc, p.s_seconds = (c[order] for c in seg_cols)
        # The latest activity per (day, counter) ends an open period the day roll closed.
        done = (p.counter >= 0) & ~np.isnan(p.finished)
        if done.any():
            key = p.day[done].astype(np.int64) * 65536 + p.counter[done]
            ends = p.finished[done]
            order = np.lexsort((ends, key))
            key, ends = key[order], ends[order]
            last = np.r_[key[1:] != key[:-1], True]
            last_activity = {
                (int(k) // 65536, int(k) % 65536): float(e) for k, e in zip(key[last], ends[last], strict=True)
            }
        cond, args = ("AND day >= ? AND day < ?", [first, before]) if before else ("AND day >= ?", [first])
        events = self.conn.execute(
            f"SELECT day, at, kind, counter, clerk, data FROM events WHERE kind IN {COUNTER_KINDS} {cond} ORDER BY id",
            args,
        ).fetchall()
        now = self.now().timestamp()
        totals: dict[tuple[int, int, int], float] = {}
        state: dict[tuple[int, int], tuple[bool, int, float]] = {}  # (day, counter) -> open?, clerk, since
        for day, at, kind, counter, clerk, data in events:
            d, c = o(day), cc(counter)
            is_open, who, since = state.get((d, c), (False, -1, at))
            end = at
            if kind == "counter_close" and data and "day_end" in data:
                end = min(at, max(since, last_activity.get((d, c), since)))
            if is_open and end > since:
                totals[(d, c, who)] = totals.get((d, c, who), 0.0) + (end - since)
            if kind == "counter_open":
                is_open = True
            elif kind in ("counter_pause", "counter_close"):
                is_open = False
            if kind == "sign_in":
                who = kc(clerk)
            elif kind == "sign_out":
                who = -1
            elif kind.startswith("counter_") and clerk is not None:
                who = kc(clerk)
            state[(d, c)] = (is_open, who, at)
        for (d, c), (is_open, who, since) in state.items():
            if is_open:  # still open: up to now (today) or to its last activity (a past day)
                end = now if before is None else max(since, last_activity.get((d, c), since))
                if end > since:
                    totals[(d, c, who)] = totals.get((d, c, who), 0.0) + (end - since)
        if totals:
            items = sorted(totals.items())
            p.o_day = np.array([k[0] for k, _ in items], np.int32)
            p.o_counter = np.array([k[1] for k, _ in items], np.int32)
            p.o_clerk = np.array([k[2] for k, _ in items], np.int32)
            p.o_seconds = np.array([v for _, v in items], float)

    def _advance(self) -> str | None:
        """Bring the cache up to the day before the latest one; return the latest day."""
        with self.lock:
            last = self.last_day()
            if last is None:
                return None
            if self.cut is None or last > self.cut:
                start = self.cut or "0000-00-00"
                self.cached.extend(self._load(start, last))
                self.cut = last
            return last

    def refresh(self) -> Part:
        """Bring the cache up to the day before the latest one; return the latest day's part."""
        with self.lock:
            return Part() if self._advance() is None else self._load(self.cut, None)  # type: ignore[arg-type]

    def warm(self) -> None:
        """Load the cache now (the server calls this in the background at start)."""
        try:
            self._advance()
        except sqlite3.Error:
            pass

    # ------------------------------------------------------------------ filters

    def office_today(self) -> date:
        """Today's office day by the server clock (a day starts at ``[office] day_starts``)."""
        start = self.config.office.day_starts
        local = self.now().astimezone(self.tz) - timedelta(hours=start.hour, minutes=start.minute)
        return local.date()

    def default_range(self) -> tuple[date, date]:
        last = self.last_day()
        end = date.fromisoformat(last) if last else self.office_today()
        return end - timedelta(days=29), end

    def parse_filters(
        self,
        date_from: str | None,
        date_to: str | None,
        service: str | None = None,
        counter: str | None = None,
        clerk: str | None = None,
    ) -> Filters:
        d0, d1 = self.default_range()
        try:
            a = date.fromisoformat(date_from) if date_from else d0
            b = date.fromisoformat(date_to) if date_to else (d1 if not date_from else max(a, d1))
        except ValueError:
            raise FilterError("dates must be YYYY-MM-DD") from None
        if b < a:
            raise FilterError("'to' must not be before 'from'")
        if (b - a).days > MAX_RANGE_DAYS:
            raise FilterError(f"a report covers at most {MAX_RANGE_DAYS} days")
        if service and service not in {s.id for s in self.config.services}:
            raise FilterError(f"no service {service!r}")
        if counter and counter not in {c.id for c in self.config.counters}:
            raise FilterError(f"no counter {counter!r}")
        clerk = clerk.strip() if clerk else None
        if clerk and len(clerk) > 32:
            raise FilterError("a clerk id has at most 32 characters")
        return Filters(a, b, service or None, counter or None, clerk or None)

    def clerk_ids(self) -> list[str]:
        """Clerks seen so far (for the filter's list); call after :meth:`summary`."""
        return sorted(self.clerks.names)

    # ------------------------------------------------------------------ figures

    def stamp(self, f: Filters) -> tuple:
        """What the figures of ``f`` depend on besides the filters: nothing more for a range
        that ends before the latest office day (those days never change), else the data version."""
        last = self._advance()
        if last is not None and f.date_to.isoformat() < last:
            return ("past",)
        return ("live", self.version())

    def summary(self, f: Filters) -> Summary:
        """Every figure of the dashboard for these filters, computed once per filter and data state."""
        with self._compute:
            stamp = self.stamp(f)
            key = (f, stamp)
            config = self.config  # an admin edit replaces it: figures of the old one are stale
            hit = self._memo.get(key)
            if hit and hit[1] is config and (stamp[0] == "past" or _time.monotonic() - hit[0] < LIVE_MEMO_S):
                self._memo.move_to_end(key)
                return hit[2]
            result = self._summary(f, with_latest=stamp[0] == "live")
            self.computations += 1
            self._memo[key] = (_time.monotonic(), config, result)
            while len(self._memo) > MEMO_SIZE:
                self._memo.popitem(last=False)
            return result

    def forget(self) -> None:
        """Drop the memo (the bench measures computing, not remembering)."""
        with self._compute:
            self._memo.clear()

    def _part(self, f: Filters, with_latest: bool) -> Part:
        a, b = f.date_from.toordinal(), f.date_to.toordinal()
        latest = self.refresh().slice(a, b) if with_latest else Part()
        with self.lock:
            cached = self.cached.slice(a, b)
        return Part.join([cached, latest])

    def _selection(self, p: Part, f: Filters) -> _Selection:
        def code(codes: Codes, value: str | None) -> int:
            c = codes.get(value)
            return NOBODY if c is None else c

        base = np.ones(len(p), bool)
        segments = np.ones(len(p.s_day), bool)
        open_time = np.ones(len(p.o_day), bool)
        if f.counter:
            c = code(self.counters, f.counter)
            base &= p.counter == c
            segments &= p.s_counter == c
            open_time &= p.o_counter == c
        if f.clerk:
            k = code(self.clerks, f.clerk)
            base &= p.clerk == k
            segments &= p.s_clerk == k
            open_time &= p.o_clerk == k
        if not f.service:
            return _Selection(base, base, segments, open_time)
        s = code(self.services, f.service)
        # With a service filter, open time stays the counter's whole open time (docs/reports.md).
        return _Selection(base & (p.isvc == s), base & (p.svc == s), segments & (p.s_svc == s), open_time)

    def _summary(self, f: Filters, with_latest: bool = True) -> Summary:
        p = self._part(f, with_latest)
        config = self.config
        target_s = np.array(
            [(s.target_wait_min * 60 if (s := config.service(name)) else np.inf) for name in self.services.names]
            or [0.0]
        )
        t = _Tickets(p, target_s)
        sel = self._selection(p, f)

        by_service = []
        for service in config.services:
            if f.service and service.id != f.service:
                continue
            code = self.services.get(service.id)
            issued, outcome = sel.issued, sel.outcome
            if not f.service:
                issued, outcome = issued & (p.isvc == code), outcome & (p.svc == code)
            by_service.append(
                ServiceRow(
                    service=service.id,
                    name=service.name.as_dict(),
                    target_wait_s=service.target_wait_min * 60,
                    **dict(t.block(issued, outcome)),
                )
            )
        counter_ids = [c.id for c in config.counters if not f.counter or c.id == f.counter]
        by_counter = [
            CounterRow(counter=cid, name=config.counter(cid).name, **dict(row))  # type: ignore[union-attr]
            for cid, row in self._staff(t, sel, self.counters, p.counter, p.s_counter, p.o_counter, counter_ids)
        ]
        clerk_ids = [k for k in sorted(self.clerks.names) if not f.clerk or k == f.clerk]
        by_clerk = [
            ClerkRow(clerk=k, **dict(row))
            for k, row in self._staff(t, sel, self.clerks, p.clerk, p.s_clerk, p.o_clerk, clerk_ids)
        ]
        return Summary(
            filters=f.as_dict(),
            office=config.office.name,
            time_zone=config.office.timezone,
            totals=t.block(sel.issued, sel.outcome),
            by_service=by_service,
            by_counter=by_counter,
            by_clerk=by_clerk,
            by_day=self._by_day(t, sel, f),
            arrivals_heatmap=self._heatmap(p, sel),
        )

    def _staff(
        self,
        t: _Tickets,
        sel: _Selection,
        codes: Codes,
        ticket_col: np.ndarray,
        segment_col: np.ndarray,
        open_col: np.ndarray,
        ids: list[str],
    ) -> Iterator[tuple[str, StaffFigures]]:
        """Figures per counter (or clerk): served, no-shows, open and busy hours, ratings."""
        p = t.p
        size = max(len(codes.names), 1)
        served = _per_code(ticket_col, sel.outcome & t.finished, size)
        no_show = _per_code(ticket_col, sel.outcome & t.no_show, size)
        busy_s = _per_code(segment_col, sel.segments, size, p.s_seconds)
        open_s = _per_code(open_col, sel.open_time, size, p.o_seconds)
        rated = sel.outcome & t.rated
        ratings = _per_code(ticket_col, rated, size)
        rating_sum = _per_code(ticket_col, rated, size, p.rating.astype(float))
        for ident in ids:
            c = codes.get(ident)
            if c is None or c >= size or not (served[c] or no_show[c] or open_s[c] or busy_s[c]):
                continue
            open_h = open_s[c] / 3600
            yield (
                ident,
                StaffFigures(
                    served=int(served[c]),
                    no_show=int(no_show[c]),
                    open_h=_r(open_h, 2),
                    busy_h=_r(busy_s[c] / 3600, 2),
                    served_per_hour=_r(served[c] / open_h, 2) if open_h > 0 else None,
                    utilisation=_r(min(busy_s[c] / open_s[c], 1.0), 4) if open_s[c] > 0 else None,
                    rating_n=int(ratings[c]),
                    rating_mean=_r(rating_sum[c] / ratings[c], 2) if ratings[c] else None,
                ),
            )

    @staticmethod
    def _by_day(t: _Tickets, sel: _Selection, f: Filters) -> list[DayRow]:
        p = t.p
        if not len(p):
            return []
        first = f.date_from.toordinal()
        span = f.date_to.toordinal() - first + 1
        day = p.day - first

        def per_day(keep: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
            return np.bincount(day[keep], weights=None if weights is None else weights[keep], minlength=span)

        called = sel.issued & t.called
        issued, served = per_day(sel.issued), per_day(sel.outcome & t.finished)
        no_show = per_day(sel.outcome & t.no_show)
        n_called, wait_sum = per_day(called), per_day(called, t.wait_s)
        within = per_day(sel.issued & t.within)
        return [
            DayRow(
                day=date.fromordinal(first + int(i)),
                issued=int(issued[i]),
                served=int(served[i]),
                no_show=int(no_show[i]),
                wait_mean_s=_r(wait_sum[i] / n_called[i]) if n_called[i] else None,
                within_target_share=_share(within[i], n_called[i]),
            )
            for i in np.nonzero(issued + served)[0]
        ]

    @staticmethod
    def _heatmap(p: Part, sel: _Selection) -> Heatmap:
        counts = np.zeros((7, 24), int)
        days = np.zeros(7, int)
        if len(p):
            np.add.at(counts, (p.weekday[sel.issued], p.hour[sel.issued]), 1)
            open_days = np.unique(p.day[sel.issued])
            np.add.at(days, (open_days + 6) % 7, 1)  # ordinal 1 (0001-01-01) was a Monday
        return Heatmap(counts=counts.tolist(), days=days.tolist())

    # ------------------------------------------------------------------ raw tickets

    RAW_COLUMNS = (
        "day",
        "number",
        "issued_service",
        "service",
        "priority",
        "status",
        "issued_at",
        "first_called_at",
        "started_at",
        "finished_at",
        "wait_s",
        "service_s",
        "counter",
        "clerk",
        "recalls",
        "transfers",
        "estimated_wait_s",
        "rating",
    )

    def raw_tickets(self, f: Filters) -> Iterator[tuple[Any, ...]]:
        """Rows of the raw-ticket export (no token, nothing about the client), in :data:`RAW_COLUMNS`
        order: the office day as a date, times as aware datetimes in the office's zone."""
        cond = ["day >= ?", "day <= ?"]
        args: list[Any] = [f.date_from.isoformat(), f.date_to.isoformat()]
        if f.service:
            cond.append("(service = ? OR issued_service = ?)")
            args += [f.service, f.service]
        if f.counter:
            cond.append("counter = ?")
            args.append(f.counter)
        if f.clerk:
            cond.append("clerk = ?")
            args.append(f.clerk)
        conn = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True)
        tz = self.tz
        days: dict[str, date] = {}

        def local(v: float | None) -> datetime | None:
            return None if v is None else datetime.fromtimestamp(round(v), tz)

        try:
            for r in conn.execute(
                "SELECT day, number, issued_service, service, priority, status, issued_at, first_called_at, "
                "started_at, finished_at, counter, clerk, recalls, transfers, estimated_wait_s, rating "
                f"FROM tickets WHERE {' AND '.join(cond)} ORDER BY id",
                args,
            ):
                wait = r[7] - r[6] if r[7] is not None else None
                serv = r[9] - r[8] if r[5] == "finished" and r[8] is not None and r[9] is not None else None
                day = days.get(r[0]) or days.setdefault(r[0], date.fromisoformat(r[0]))
                yield (
                    day,
                    r[1],
                    r[2],
                    r[3],
                    bool(r[4]),
                    r[5],
                    local(r[6]),
                    local(r[7]),
                    local(r[8]),
                    local(r[9]),
                    None if wait is None else round(wait, 1),
                    None if serv is None else round(serv, 1),
                    r[10],
                    r[11],
                    r[12] or 0,
                    r[13] or 0,
                    r[14],
                    r[15],
                )
        finally:
            conn.close()


def event_data(raw: str | None) -> dict[str, Any]:
    return json.loads(raw) if raw else {}
