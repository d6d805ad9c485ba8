"""The report figures: one implementation behind the dashboard, the JSON API, the exports and the PDF.

Definitions are in docs/reports.md and are the only ones used anywhere.

Why a columnar cache: a busy office writes a million tickets a year, and the dashboard
must answer in under a second for any date range. Reading a million rows from SQLite on
every request takes seconds, but past office days never change (a ticket's last change,
a rating, happens the same day, and the day roll cancels leftovers before the next day's
first event). So every day before the latest one is loaded once into numpy arrays sorted
by day, and only the latest day is read from SQLite on each request. A date range is then
a slice (binary search on the day column) and every figure is a vectorised pass over it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time as _time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np

from server.config import SiteConfig

STATUSES = ("waiting", "called", "serving", "finished", "no_show", "transferred", "cancelled")
ST = {s: i for i, s in enumerate(STATUSES)}
COUNTER_KINDS = ("counter_open", "counter_pause", "counter_close", "sign_in", "sign_out")
MAX_RANGE_DAYS = 3660


class FilterError(ValueError):
    """A filter value that makes no sense (message says which)."""


@dataclass(frozen=True)
class Filters:
    date_from: date
    date_to: date
    service: str | None = None
    counter: str | None = None
    clerk: str | None = None

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
        table = {**self.index, None: -1}
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


def _pct(values: np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def _r(value: float | None, digits: int = 1) -> float | None:
    return None if value is None or value != value else round(float(value), digits)


def _stats(values: np.ndarray, with_max: bool = True) -> dict[str, Any]:
    out = {
        "n": int(len(values)),
        "mean_s": _r(values.mean()) if len(values) else None,
        "median_s": _r(_pct(values, 50)),
        "p90_s": _r(_pct(values, 90)),
    }
    if with_max:
        out["max_s"] = _r(values.max()) if len(values) else None
    return out


class ReportData:
    """Reads the store's ``tickets`` and ``events`` tables and computes the figures."""

    def __init__(self, database: str, config: SiteConfig | Callable[[], SiteConfig], now=None) -> None:
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
        self._memo: dict[Any, tuple[float, SiteConfig, Any]] = {}

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

    def refresh(self) -> Part:
        """Bring the cache up to the day before the latest one; return the latest day's part."""
        with self.lock:
            last = self.last_day()
            if last is None:
                return Part()
            if self.cut is None or last > self.cut:
                start = self.cut or "0000-00-00"
                self.cached.extend(self._load(start, last))
                self.cut = last
            return self._load(self.cut, None)

    def warm(self) -> None:
        """Load the cache now (the server calls this in the background at start)."""
        try:
            self.refresh()
        except sqlite3.Error:
            pass

    # ------------------------------------------------------------------ filters

    def default_range(self) -> tuple[date, date]:
        last = self.last_day()
        end = date.fromisoformat(last) if last else self.now().astimezone(self.tz).date()
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

    def _part(self, f: Filters) -> Part:
        live = self.refresh()
        a, b = f.date_from.toordinal(), f.date_to.toordinal()
        with self.lock:
            cached = self.cached.slice(a, b)
        return Part.join([cached, live.slice(a, b)])

    def summary(self, f: Filters) -> dict[str, Any]:
        """Every figure of the dashboard for these filters (memoised briefly per data version)."""
        key = (f, self.version())
        config = self.config  # an admin edit replaces it: figures of the old one are stale
        hit = self._memo.get(key)
        if hit and hit[1] is config and _time.monotonic() - hit[0] < 30:
            return hit[2]
        result = self._summary(f)
        if len(self._memo) > 64:
            self._memo.clear()
        self._memo[key] = (_time.monotonic(), config, result)
        return result

    def _summary(self, f: Filters) -> dict[str, Any]:
        p = self._part(f)
        sv, co, cl = self.services.get(f.service), self.counters.get(f.counter), self.clerks.get(f.clerk)
        n = len(p)
        base = np.ones(n, bool)
        if f.counter:
            base &= p.counter == (co if co is not None else -2)
        if f.clerk:
            base &= p.clerk == (cl if cl is not None else -2)
        m_issue = base & (p.isvc == sv) if f.service else base  # issue and wait figures: issued service
        m_out = base & (p.svc == sv) if f.service else base  # outcome figures: the service that served
        targets = np.array(
            [
                (self.config.service(s).target_wait_min * 60 if self.config.service(s) else np.inf)  # type: ignore[union-attr]
                for s in self.services.names
            ]
            or [0.0]
        )
        called = m_issue & ~np.isnan(p.first_call)
        wait = p.first_call - p.issued
        finished = m_out & (p.status == ST["finished"])
        service_s = p.finished - p.started
        rated = m_out & (p.rating > 0)

        def block(mi: np.ndarray, mo: np.ndarray) -> dict[str, Any]:
            c = mi & ~np.isnan(p.first_call)
            w = wait[c]
            fin = mo & (p.status == ST["finished"])
            within = int((w <= targets[p.isvc[c]]).sum()) if len(w) else 0
            r = mo & (p.rating > 0)
            ratings = p.rating[r]
            return {
                "issued": int(mi.sum()),
                "served": int(fin.sum()),
                "no_show": int((mo & (p.status == ST["no_show"])).sum()),
                "transferred": int((mi & (p.transfers > 0)).sum()),
                "not_called": int((mi & (p.status == ST["cancelled"]) & np.isnan(p.first_call)).sum()),
                "wait": {
                    **_stats(w),
                    "within_target": within,
                    "within_target_share": _r(within / len(w), 4) if len(w) else None,
                },
                "service_time": _stats(service_s[fin & ~np.isnan(service_s)], with_max=False),
                "rating": {
                    "n": int(len(ratings)),
                    "mean": _r(ratings.mean(), 2) if len(ratings) else None,
                    "counts": {str(k): int((ratings == k).sum()) for k in range(1, 6)},
                },
            }

        totals = block(m_issue, m_out)
        by_service = []
        for s in self.config.services:
            if f.service and s.id != f.service:
                continue
            code = self.services.get(s.id)
            row = block(base & (p.isvc == code), base & (p.svc == code))
            by_service.append(
                {"service": s.id, "name": s.name.as_dict(), "target_wait_s": s.target_wait_min * 60, **row}
            )

        # per counter and per clerk: served, open hours, busy hours, utilisation, rating
        seg = np.ones(len(p.s_day), bool)
        if f.service:
            seg &= p.s_svc == sv
        if f.counter:
            seg &= p.s_counter == (co if co is not None else -2)
        if f.clerk:
            seg &= p.s_clerk == (cl if cl is not None else -2)
        om = np.ones(len(p.o_day), bool)
        if f.counter:
            om &= p.o_counter == (co if co is not None else -2)
        if f.clerk:
            om &= p.o_clerk == (cl if cl is not None else -2)

        def per(codes: Codes, t_col, s_col, o_col, ids: list[str]) -> list[dict[str, Any]]:
            size = max(len(codes.names), 1)
            served = np.bincount(t_col[finished & (t_col >= 0)], minlength=size)
            no_show = np.bincount(t_col[m_out & (p.status == ST["no_show"]) & (t_col >= 0)], minlength=size)
            busy = np.bincount(s_col[seg & (s_col >= 0)], weights=p.s_seconds[seg & (s_col >= 0)], minlength=size)
            opened = np.bincount(o_col[om & (o_col >= 0)], weights=p.o_seconds[om & (o_col >= 0)], minlength=size)
            r_n = np.bincount(t_col[rated & (t_col >= 0)], minlength=size)
            r_sum = np.bincount(t_col[rated & (t_col >= 0)], weights=p.rating[rated & (t_col >= 0)], minlength=size)
            out = []
            for name in ids:
                c = codes.get(name)
                if c is None or c >= size:
                    continue
                if not (served[c] or no_show[c] or opened[c] or busy[c]):
                    continue
                open_h = opened[c] / 3600
                out.append(
                    {
                        "served": int(served[c]),
                        "no_show": int(no_show[c]),
                        "open_h": _r(open_h, 2),
                        "busy_h": _r(busy[c] / 3600, 2),
                        "served_per_hour": _r(served[c] / open_h, 2) if open_h > 0 else None,
                        "utilisation": _r(min(busy[c] / opened[c], 1.0), 4) if opened[c] > 0 else None,
                        "rating_n": int(r_n[c]),
                        "rating_mean": _r(r_sum[c] / r_n[c], 2) if r_n[c] else None,
                        "_id": name,
                    }
                )
            return out

        by_counter = [
            {"counter": r["_id"], "name": self.config.counter(r.pop("_id")).name, **r}  # type: ignore[union-attr]
            for r in per(
                self.counters,
                p.counter,
                p.s_counter,
                p.o_counter,
                [c.id for c in self.config.counters if not f.counter or c.id == f.counter],
            )
        ]
        by_clerk = [
            {"clerk": r.pop("_id"), **r}
            for r in per(self.clerks, p.clerk, p.s_clerk, p.o_clerk, sorted(self.clerks.names))
            if not f.clerk or r["_id"] == f.clerk
        ]

        # per day
        by_day = []
        if n:
            days = p.day
            first = f.date_from.toordinal()
            span = f.date_to.toordinal() - first + 1
            issued_d = np.bincount(days[m_issue] - first, minlength=span)
            served_d = np.bincount(days[finished] - first, minlength=span)
            noshow_d = np.bincount(days[m_out & (p.status == ST["no_show"])] - first, minlength=span)
            called_d = np.bincount(days[called] - first, minlength=span)
            wsum_d = np.bincount(days[called] - first, weights=wait[called], minlength=span)
            within_mask = np.zeros(n, bool)
            within_mask[called] = wait[called] <= targets[p.isvc[called]]
            within_d = np.bincount(days[within_mask] - first, minlength=span)
            for i in np.nonzero(issued_d + served_d)[0]:
                by_day.append(
                    {
                        "day": date.fromordinal(first + int(i)).isoformat(),
                        "issued": int(issued_d[i]),
                        "served": int(served_d[i]),
                        "no_show": int(noshow_d[i]),
                        "wait_mean_s": _r(wsum_d[i] / called_d[i]) if called_d[i] else None,
                        "within_target_share": _r(within_d[i] / called_d[i], 4) if called_d[i] else None,
                    }
                )

        heat = np.zeros((7, 24), int)
        if n:
            np.add.at(heat, (p.weekday[m_issue], p.hour[m_issue]), 1)
        return {
            "filters": f.as_dict(),
            "office": self.config.office.name,
            "time_zone": self.config.office.timezone,
            "totals": totals,
            "by_service": by_service,
            "by_counter": by_counter,
            "by_clerk": by_clerk,
            "by_day": by_day,
            "arrivals_heatmap": {"rows": "weekday (0 = Monday)", "columns": "local hour", "counts": heat.tolist()},
        }

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

    def raw_tickets(self, f: Filters):
        """Rows of the raw-ticket export (no token, nothing about the client), local times."""
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

        def local(v: float | None) -> str | None:
            return datetime.fromtimestamp(v, tz).isoformat(timespec="seconds") if v is not None else None

        try:
            for r in conn.execute(
                "SELECT day, number, issued_service, service, priority, status, issued_at, first_called_at, "
                "started_at, finished_at, counter, clerk, recalls, transfers, estimated_wait_s, rating "
                f"FROM tickets WHERE {' AND '.join(cond)} ORDER BY id",
                args,
            ):
                wait = r[7] - r[6] if r[7] is not None else None
                serv = r[9] - r[8] if r[5] == "finished" and r[8] is not None and r[9] is not None else None
                yield (
                    r[0],
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
