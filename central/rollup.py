"""The daily roll-up: what makes a year of 50 branches (~25 M tickets) report in under a second.

Why: the report's median and p90 wait need every wait of the period, and a year of a city
is 25 M rows; PostgreSQL scans them in tens of seconds (docs/performance.md). Past office
days never change (the same reason the branch keeps them in memory, server/reports/figures.py),
so the ingester sums each closed day once into ``ticket_days``: per branch, day and service,
the visits, visits served, tickets called and a histogram of the waits. A long report reads
those rows (62,500 for a city's year) instead of the tickets.

The histogram: waits in 30-second bins up to an hour, 2-minute bins up to 12 hours, one
bin beyond; a percentile is read from it with linear interpolation inside its bin, so a
median from the roll-up is within a bin's width of the exact one (in practice a few
seconds; the report shows minutes with one decimal). Periods of fewer than
``EXACT_UP_TO`` tickets (a branch's month, a week of the city) are computed exactly from the
tickets, as before; only longer ones use the bins, and the page says so.

The exports (central/summary.py) need every figure exact, so each row also keeps the day's
no-shows, transfers, tickets never called, every wait and service time (microseconds) and
the arrivals per hour: their sums, means, maxima and percentiles are the tickets' own.

Days not yet rolled up (today, a day whose events are still arriving, a day a late event
touched) are listed in ``ticket_days_dirty``; the report reads those from ``tickets`` into
the same bins, so a report is always complete.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

import numpy as np
import psycopg

FINE_S, FINE_UP_TO_S = 30, 3600
COARSE_S, COARSE_UP_TO_S = 120, 12 * 3600
N_FINE = FINE_UP_TO_S // FINE_S
N_BINS = N_FINE + (COARSE_UP_TO_S - FINE_UP_TO_S) // COARSE_S + 1  # the last: longer than 12 h
EDGES = np.concatenate(
    [
        np.arange(0, FINE_UP_TO_S, FINE_S),
        np.arange(FINE_UP_TO_S, COARSE_UP_TO_S + 1, COARSE_S),
        [COARSE_UP_TO_S + COARSE_S],
    ]
).astype(float)
"""Bin i holds waits in [EDGES[i], EDGES[i+1])."""
assert len(EDGES) == N_BINS + 1

EXACT_UP_TO = 100_000
"""Up to this many tickets a report is computed exactly from the tickets (well under a second)."""

_BIN_SQL = (
    f"CASE WHEN w < {FINE_UP_TO_S} THEN floor(greatest(w, 0) / {FINE_S}) "
    f"WHEN w < {COARSE_UP_TO_S} THEN {N_FINE} + floor((w - {FINE_UP_TO_S}) / {COARSE_S}) "
    f"ELSE {N_BINS - 1} END"
)

TIME_ZONE = "Europe/Warsaw"
"""The arrivals' hours (the exports' heatmap) are local to the office (central/summary.py)."""

# One row per (branch, day, service) of the tickets ``{source}`` yields as ``t``: what the
# roll-up stores, and what a day not rolled up is read as. Besides the visits, served and the
# waits' bins (the on-screen report): the exports' counts (no-shows, transferred, never
# called), every wait and service time in microseconds (exact integers, big-endian int8:
# their mean, max, median and p90 are then those of the tickets themselves, not of bins),
# and the arrivals per local (weekday, hour) as (slot, count) pairs.
_DAY_ROWS = f"""
WITH x AS (
    SELECT t.branch, t.day, t.issued_service AS service, t.finished_at IS NOT NULL AS served,
           t.status = 'no_show' AS no_show, t.service IS DISTINCT FROM t.issued_service AS transferred,
           date_part('epoch', t.first_called_at - t.issued_at) AS w,
           (extract(epoch FROM t.first_called_at - t.issued_at) * 1000000)::int8 AS w_us,
           (extract(epoch FROM t.finished_at - coalesce(t.started_at, t.first_called_at)) * 1000000)::int8 AS st_us,
           ((extract(isodow FROM t.issued_at AT TIME ZONE '{TIME_ZONE}')::int - 1) * 24
            + extract(hour FROM t.issued_at AT TIME ZONE '{TIME_ZONE}')::int) AS slot
    FROM {{source}}
), b AS (
    SELECT branch, day, service, CASE WHEN w IS NOT NULL THEN ({_BIN_SQL})::int END AS bin, count(*) AS n
    FROM x GROUP BY 1, 2, 3, 4
), h AS (
    SELECT branch, day, service, slot, count(*) AS n FROM x GROUP BY 1, 2, 3, 4
), e AS (
    SELECT branch, day, service, count(*) AS issued, count(*) FILTER (WHERE served) AS served,
           count(w) AS called, count(*) FILTER (WHERE no_show) AS no_show,
           count(*) FILTER (WHERE transferred) AS transferred, count(*) FILTER (WHERE w IS NULL) AS not_called,
           coalesce(string_agg(int8send(w_us), ''::bytea) FILTER (WHERE w_us IS NOT NULL), ''::bytea) AS waits,
           coalesce(string_agg(int8send(st_us), ''::bytea) FILTER (WHERE st_us IS NOT NULL), ''::bytea) AS service_times
    FROM x GROUP BY 1, 2, 3
), bb AS (
    SELECT branch, day, service,
           coalesce(string_agg(int2send(bin::int2) || int4send(n::int4), ''::bytea ORDER BY bin)
                    FILTER (WHERE bin IS NOT NULL), ''::bytea) AS wait_bins
    FROM b GROUP BY 1, 2, 3
), hh AS (
    SELECT branch, day, service, string_agg(int2send(slot::int2) || int4send(n::int4), ''::bytea ORDER BY slot) AS arrivals
    FROM h GROUP BY 1, 2, 3
)
SELECT branch, day, service, e.issued, e.served, e.called, bb.wait_bins, e.no_show, e.transferred, e.not_called,
       e.waits, e.service_times, hh.arrivals
FROM e JOIN bb USING (branch, day, service) JOIN hh USING (branch, day, service)
"""
DAY_COLUMNS = (
    "branch, day, service, issued, served, called, wait_bins, no_show, transferred, not_called, waits, "
    "service_times, arrivals"
)

ROLL_UP = f"INSERT INTO ticket_days ({DAY_COLUMNS})" + _DAY_ROWS.format(
    source="tickets t WHERE t.branch = %(branch)s AND t.day = ANY(%(days)s)"
)

# The days not rolled up, in the same shape (``ticket_days_dirty``: a few, found first), from
# the tickets through their (branch, day) index.
DAYS_LIVE = _DAY_ROWS.format(
    source="unnest(%(branches)s::text[], %(days)s::date[]) AS d(branch, day) "
    "CROSS JOIN LATERAL (SELECT * FROM tickets t WHERE t.branch = d.branch AND t.day = d.day OFFSET 0) t"
)
# The on-screen report's read of the days not rolled up: only the visits, served and bins.
_LIVE = f"""
WITH d AS (SELECT * FROM unnest(%(branches)s::text[], %(days)s::date[]) AS d(branch, day)),
b AS (
    SELECT branch, service, CASE WHEN w IS NOT NULL THEN ({_BIN_SQL})::int END AS bin,
           count(*) AS n, count(*) FILTER (WHERE served) AS served
    FROM (
        SELECT t.branch, t.issued_service AS service, t.finished_at IS NOT NULL AS served,
               date_part('epoch', t.first_called_at - t.issued_at) AS w
        FROM d CROSS JOIN LATERAL (SELECT * FROM tickets t WHERE t.branch = d.branch AND t.day = d.day OFFSET 0) t
    ) x GROUP BY 1, 2, 3
)
SELECT branch, service, sum(n)::int, sum(served)::int,
       coalesce(string_agg(int2send(bin::int2) || int4send(n::int4), ''::bytea ORDER BY bin)
                FILTER (WHERE bin IS NOT NULL), ''::bytea)
FROM b GROUP BY 1, 2
"""
# Summed per (branch, service) by PostgreSQL: the bins of all the days joined into one value,
# counted by numpy in one pass (a city's year is 62,500 rows, 250 groups).
_ROLLED = """
SELECT r.branch, r.service, sum(r.issued)::int, sum(r.served)::int, string_agg(r.wait_bins, ''::bytea)
FROM ticket_days r
WHERE r.day BETWEEN %(first)s AND %(last)s {branch}
  AND NOT EXISTS (SELECT 1 FROM ticket_days_dirty d WHERE d.branch = r.branch AND d.day = r.day)
GROUP BY r.branch, r.service
"""
BIN_PAIR = np.dtype([("bin", ">i2"), ("n", ">i4")])


class Group:
    """One (branch, service) of a period: visits, served, and the waits' histogram."""

    __slots__ = ("visits", "served", "bins")

    def __init__(self) -> None:
        self.visits = 0
        self.served = 0
        self.bins = np.zeros(N_BINS, dtype=np.int64)

    def add(self, other: Group) -> None:
        self.visits += other.visits
        self.served += other.served
        self.bins += other.bins


def _branch(alias: str, branch: str | None) -> str:
    """A branch condition only when a branch is picked: ``(%s IS NULL OR branch = %s)`` would
    keep a prepared statement's generic plan off the (branch, day) index."""
    return "" if branch is None else f"AND {alias}.branch = %(branch)s"


def _dirty(conn: psycopg.Connection[Any], first: date, last: date, branch: str | None) -> tuple[list[str], list[date]]:
    rows = conn.execute(
        "SELECT d.branch, d.day FROM ticket_days_dirty d WHERE d.day BETWEEN %(first)s AND %(last)s "
        + _branch("d", branch),
        {"first": first, "last": last, "branch": branch},
    ).fetchall()
    return [r[0] for r in rows], [r[1] for r in rows]


def period_size(conn: psycopg.Connection[Any], first: date, last: date, branch: str | None) -> int:
    """Tickets in the period, from the roll-up plus the days not rolled up (cheap)."""
    q: dict[str, Any] = {"first": first, "last": last, "branch": branch}
    rolled = conn.execute(
        "SELECT coalesce(sum(r.issued), 0) FROM ticket_days r WHERE r.day BETWEEN %(first)s AND %(last)s "
        + _branch("r", branch)
        + " AND NOT EXISTS (SELECT 1 FROM ticket_days_dirty d WHERE d.branch = r.branch AND d.day = r.day)",
        q,
    ).fetchone()
    q["branches"], q["days"] = _dirty(conn, first, last, branch)
    live = conn.execute(
        "SELECT count(*) FROM unnest(%(branches)s::text[], %(days)s::date[]) AS d(branch, day) "
        "JOIN tickets t ON t.branch = d.branch AND t.day = d.day",
        q,
    ).fetchone()
    return int(rolled[0] if rolled else 0) + int(live[0] if live else 0)


def groups(conn: psycopg.Connection[Any], first: date, last: date, branch: str | None) -> dict[tuple[str, str], Group]:
    """Every (branch, service) of the period from the roll-up and the days not rolled up."""
    q: dict[str, Any] = {"first": first, "last": last, "branch": branch}
    out: dict[tuple[str, str], Group] = {}

    def at(key: tuple[str, str]) -> Group:
        g = out.get(key)
        if g is None:
            g = out[key] = Group()
        return g

    q["branches"], q["days"] = _dirty(conn, first, last, branch)
    with conn.cursor(binary=True) as cur:
        for sql in (_ROLLED.format(branch=_branch("r", branch)), _LIVE if q["branches"] else None):
            if sql is None:
                continue
            cur.execute(sql, q)
            for b, service, issued, served, bins in cur:
                g = at((b, service))
                g.visits += issued
                g.served += served
                if bins:
                    pairs = np.frombuffer(bins, dtype=BIN_PAIR)
                    g.bins += np.bincount(pairs["bin"], weights=pairs["n"], minlength=N_BINS).astype(np.int64)
    return out


def day_rows(conn: psycopg.Connection[Any], first: date, last: date, branch: str | None) -> list[tuple[Any, ...]]:
    """Every (branch, day, service) row of the period in ``DAY_COLUMNS``' order: the rolled-up
    days from ``ticket_days``, the days not rolled up computed from the tickets in the same
    shape (the exports, central/summary.py)."""
    q: dict[str, Any] = {"first": first, "last": last, "branch": branch}
    q["branches"], q["days"] = _dirty(conn, first, last, branch)
    with conn.cursor(binary=True) as cur:
        cur.execute(
            f"SELECT {DAY_COLUMNS} FROM ticket_days r WHERE r.day BETWEEN %(first)s AND %(last)s "
            + _branch("r", branch)
            + " AND NOT EXISTS (SELECT 1 FROM ticket_days_dirty d WHERE d.branch = r.branch AND d.day = r.day)",
            q,
        )
        rows = cur.fetchall()
        if q["branches"]:
            cur.execute(DAYS_LIVE, q)
            rows += cur.fetchall()
    return rows


def percentile(bins: np.ndarray, q: float) -> float | None:
    """``percentile_cont(q)`` of the waits a histogram holds, interpolated inside the bin."""
    n = int(bins.sum())
    if n == 0:
        return None
    rank = q * (n - 1)  # 0-based, as percentile_cont
    cum = np.cumsum(bins)
    i = int(np.searchsorted(cum, rank, side="right"))
    before = int(cum[i - 1]) if i > 0 else 0
    inside = (rank - before + 0.5) / int(bins[i])
    lo, hi = EDGES[i], EDGES[i + 1]
    return float(lo + (hi - lo) * min(1.0, inside))


def total(parts: Iterable[Group]) -> Group:
    g = Group()
    for p in parts:
        g.add(p)
    return g
