"""The adapter from the centre's PostgreSQL to the branch report's figures (server/reports/models.py).

Why an adapter and not a second report layer: a branch's XLSX and its printable PDF (charts,
tables, the month compared with the month before) are made from a ``Summary`` by
server/reports/exports.py and server/reports/monthly.py. The centre builds the same
``Summary`` for one branch or for all branches from its ``tickets`` table, and hands it to
that code unchanged; what only the centre has, the branches side by side on the same
figures, is one more ``Table`` (XLSX sheet, PDF table) of the same columns.

What the centre cannot know is left empty, not guessed: clerks (their logins are not
replicated), counters' open hours, ratings, and each service's target wait (in the
branch's config). Service time is from the start of service (the ``start`` event) to its
end, or from the first call when a ticket has no start.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import psycopg

from central import rollup
from server.reports import exports
from server.reports.exports import Column, Table
from server.reports.i18n import labels
from server.reports.models import Block, DayRow, Heatmap, Ratings, ServiceRow, Summary, TimeStats, WaitStats

TIME_ZONE = rollup.TIME_ZONE

_FIGURES = """
SELECT {keys}, count(*), count(finished_at), count(*) FILTER (WHERE status = 'no_show'),
       count(*) FILTER (WHERE service IS DISTINCT FROM issued_service), count(*) FILTER (WHERE first_called_at IS NULL),
       count(w), avg(w), percentile_cont(0.5) WITHIN GROUP (ORDER BY w), percentile_cont(0.9) WITHIN GROUP (ORDER BY w),
       max(w),
       count(st), avg(st), percentile_cont(0.5) WITHIN GROUP (ORDER BY st),
       percentile_cont(0.9) WITHIN GROUP (ORDER BY st),
       {grouping}
FROM (
    SELECT branch, issued_service, service, status, finished_at, first_called_at, day, issued_at,
           date_part('epoch', first_called_at - issued_at) AS w,
           date_part('epoch', finished_at - coalesce(started_at, first_called_at)) AS st
    FROM tickets WHERE day BETWEEN %(first)s AND %(last)s {branch}
) t
GROUP BY GROUPING SETS ({sets})
"""


def _block(r: tuple[Any, ...]) -> Block:
    issued, served, no_show, transferred, not_called, wn, wmean, wmed, wp90, wmax, sn, smean, smed, sp90 = r
    f = lambda v: None if v is None else float(v)  # noqa: E731
    return Block(
        issued=int(issued),
        served=int(served),
        no_show=int(no_show),
        transferred=int(transferred),
        not_called=int(not_called),
        wait=WaitStats(
            n=int(wn),
            mean_s=f(wmean),
            median_s=f(wmed),
            p90_s=f(wp90),
            max_s=f(wmax),
            within_target=0,
            within_target_share=None,
        ),
        service_time=TimeStats(n=int(sn), mean_s=f(smean), median_s=f(smed), p90_s=f(sp90)),
        rating=Ratings(n=0, mean=None, counts={str(k): 0 for k in range(1, 6)}),
    )


@dataclass(frozen=True)
class CentralFigures:
    """The period's ``Summary`` (one branch or all) and each branch's figures for comparison."""

    summary: Summary
    branches: list[tuple[str, str, Block]]  # (id, name, figures)


def figures_exact(
    conn: psycopg.Connection[Any], first: date, last: date, branch: str | None, names: dict[str, str]
) -> CentralFigures:
    """The figures computed from every ticket of the period (what the exports ran before the
    roll-up carried their figures; the reference the tests compare :func:`figures` with)."""
    q = {"first": first, "last": last, "branch": branch, "tz": TIME_ZONE}
    where = "" if branch is None else "AND branch = %(branch)s"
    rows = conn.execute(
        _FIGURES.format(
            keys="branch, issued_service",
            grouping="GROUPING(branch, issued_service)",
            branch=where,
            sets="(issued_service), (branch), ()",
        ),
        q,
    ).fetchall()
    totals = _block((0,) * 14)
    by_service: list[ServiceRow] = []
    by_branch: list[tuple[str, str, Block]] = []
    for r in rows:
        b, service, grouping = r[0], r[1], r[-1]
        block = _block(r[2:-1])
        if grouping == 3:
            totals = block
        elif grouping == 2:  # by service (the branch summed over)
            by_service.append(
                ServiceRow(**block.model_dump(), service=service, name={"pl": service, "en": service}, target_wait_s=0)
            )
        else:
            by_branch.append((b, names.get(b, b), block))
    by_service.sort(key=lambda s: s.service)
    by_branch.sort()
    days = conn.execute(
        "SELECT day, count(*), count(finished_at), count(*) FILTER (WHERE status = 'no_show'), "
        "avg(date_part('epoch', first_called_at - issued_at)) FROM tickets "
        f"WHERE day BETWEEN %(first)s AND %(last)s {where} GROUP BY day ORDER BY day",
        q,
    ).fetchall()
    heat = [[0] * 24 for _ in range(7)]
    for dow, hour, n in conn.execute(
        "SELECT extract(isodow FROM issued_at AT TIME ZONE %(tz)s)::int - 1, "
        "extract(hour FROM issued_at AT TIME ZONE %(tz)s)::int, count(*) FROM tickets "
        f"WHERE day BETWEEN %(first)s AND %(last)s {where} GROUP BY 1, 2",
        q,
    ):
        heat[dow][hour] = int(n)
    weekdays = [0] * 7
    for (d,) in conn.execute(f"SELECT DISTINCT day FROM tickets WHERE day BETWEEN %(first)s AND %(last)s {where}", q):
        weekdays[d.weekday()] += 1
    office = names.get(branch, branch) if branch else "Wszystkie oddziały / All branches"
    summary = Summary(
        filters={"from": first.isoformat(), "to": last.isoformat(), "service": None, "counter": None, "clerk": None},
        office=office,
        time_zone=TIME_ZONE,
        totals=totals,
        by_service=by_service,
        by_counter=[],
        by_clerk=[],
        by_day=[
            DayRow(
                day=d,
                issued=int(i),
                served=int(s),
                no_show=int(ns),
                wait_mean_s=None if w is None else float(w),
                within_target_share=None,
            )
            for d, i, s, ns, w in days
        ],
        arrivals_heatmap=Heatmap(counts=heat, days=weekdays),
    )
    return CentralFigures(summary, by_branch)


def _percentile_cont(values: np.ndarray, q: float) -> float | None:
    """PostgreSQL's ``percentile_cont(q)``: the same two neighbours, the same interpolation."""
    n = len(values)
    if n == 0:
        return None
    rank = q * (n - 1)
    lo, hi = int(np.floor(rank)), int(np.ceil(rank))
    part = np.partition(values, [lo, hi])
    first, second = float(part[lo]), float(part[hi])
    return first + (second - first) * (rank - lo)


class _Acc:
    """One group's counts and its waits and service times (microseconds), summed over day rows."""

    __slots__ = ("issued", "served", "no_show", "transferred", "not_called", "waits", "times")

    def __init__(self) -> None:
        self.issued = self.served = self.no_show = self.transferred = self.not_called = 0
        self.waits: list[np.ndarray] = []
        self.times: list[np.ndarray] = []

    def add(self, counts: tuple[int, int, int, int, int], waits: np.ndarray, times: np.ndarray) -> None:
        self.issued += counts[0]
        self.served += counts[1]
        self.no_show += counts[2]
        self.transferred += counts[3]
        self.not_called += counts[4]
        self.waits.append(waits)
        self.times.append(times)

    @staticmethod
    def _stats(parts: list[np.ndarray]) -> tuple[int, float | None, float | None, float | None, float | None]:
        us = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        if len(us) == 0:
            return 0, None, None, None, None
        s = us / 1e6  # as PostgreSQL's date_part('epoch', interval): microseconds / 1e6
        return len(us), float(us.sum()) / len(us) / 1e6, _percentile_cont(s, 0.5), _percentile_cont(s, 0.9), s.max()

    def block(self) -> Block:
        wn, wmean, wmed, wp90, wmax = self._stats(self.waits)
        sn, smean, smed, sp90, _ = self._stats(self.times)
        return _block(
            (self.issued, self.served, self.no_show, self.transferred, self.not_called)
            + (wn, wmean, wmed, wp90, wmax, sn, smean, smed, sp90)
        )


_US = np.dtype(">i8")


def figures(
    conn: psycopg.Connection[Any], first: date, last: date, branch: str | None, names: dict[str, str]
) -> CentralFigures:
    """The period's figures from the daily roll-up (central/rollup.py), equal to
    :func:`figures_exact`: the counts are sums, and the roll-up keeps every wait and service
    time, so the mean, max, median and p90 are those of the tickets themselves. Days not
    rolled up yet (today, a branch catching up) are read from the tickets in the same shape.
    Why: the city's month is 2 M tickets; its figures from the tickets took 45 s
    (docs/performance.md)."""
    total = _Acc()
    by_service: dict[str, _Acc] = {}
    by_branch: dict[str, _Acc] = {}
    by_day: dict[date, _Acc] = {}
    heat_slots = np.zeros(7 * 24, dtype=np.int64)
    for r in rollup.day_rows(conn, first, last, branch):
        b, day, service, issued, served, _called, _bins, no_show, transferred, not_called, w, st, arrivals = r
        counts = (int(issued), int(served), int(no_show), int(transferred), int(not_called))
        waits = np.frombuffer(w, dtype=_US).astype(np.int64)
        times = np.frombuffer(st, dtype=_US).astype(np.int64)
        for acc in (
            total,
            by_service.setdefault(service, _Acc()),
            by_branch.setdefault(b, _Acc()),
            by_day.setdefault(day, _Acc()),
        ):
            acc.add(counts, waits, times)
        if arrivals:
            pairs = np.frombuffer(arrivals, dtype=rollup.BIN_PAIR)
            heat_slots += np.bincount(pairs["bin"], weights=pairs["n"], minlength=7 * 24).astype(np.int64)
    weekdays = [0] * 7
    for d in by_day:
        weekdays[d.weekday()] += 1
    days = []
    for d in sorted(by_day):
        acc = by_day[d]
        n = sum(len(w) for w in acc.waits)
        mean = float(sum(int(w.sum()) for w in acc.waits)) / n / 1e6 if n else None
        days.append(
            DayRow(
                day=d,
                issued=acc.issued,
                served=acc.served,
                no_show=acc.no_show,
                wait_mean_s=mean,
                within_target_share=None,
            )
        )
    office = names.get(branch, branch) if branch else "Wszystkie oddziały / All branches"
    summary = Summary(
        filters={"from": first.isoformat(), "to": last.isoformat(), "service": None, "counter": None, "clerk": None},
        office=office,
        time_zone=TIME_ZONE,
        totals=total.block(),
        by_service=[
            ServiceRow(**by_service[s].block().model_dump(), service=s, name={"pl": s, "en": s}, target_wait_s=0)
            for s in sorted(by_service)
        ],
        by_counter=[],
        by_clerk=[],
        by_day=days,
        arrivals_heatmap=Heatmap(counts=heat_slots.reshape(7, 24).tolist(), days=weekdays),
    )
    return CentralFigures(summary, [(b, names.get(b, b), by_branch[b].block()) for b in sorted(by_branch)])


BRANCH_COLUMNS = [
    Column("branch", "Oddział (id)", "Branch (id)", "text"),
    Column("name", "Oddział", "Branch", "text"),
    *exports.BLOCK,
]


def branches_table(f: CentralFigures) -> Table:
    """The branches side by side on the branch report's figures (its columns, its names)."""
    rows = []
    for b, name, block in f.branches:
        flat = exports.flatten(block.model_dump())
        rows.append([b, name, *(flat.get(c.key) for c in exports.BLOCK)])
    return Table("branches", BRANCH_COLUMNS, rows)


def xlsx(f: CentralFigures, lang: str = "pl") -> bytes:
    """The centre's report as a workbook: the branches compared, then the branch report's sheets."""
    tables = [branches_table(f)]
    tables += [exports.table(name, f.summary, lang) for name in ("totals", "by_service", "by_day", "heatmap")]
    return exports.xlsx(tables, lang)


def pdf(f: CentralFigures, before: CentralFigures | None, lang: str = "pl") -> bytes:
    """The branch's printable monthly report of these figures, with the branches compared after its tables."""
    from server.reports import monthly  # matplotlib's PDF backend (1.4 s of CPU): on the first PDF only

    L = labels(lang)
    m = L.minutes
    header = [
        "Oddział" if lang == "pl" else "Branch",
        L["issued"],
        L["served"],
        L["no_show"],
        f"{L['wait']} {L['mean']}",
        L["median"],
        L["p90"],
        f"{L['service_time']} {L['mean']}",
    ]
    rows = [
        [
            name,
            L.number(b.issued, 0),
            L.number(b.served, 0),
            L.number(b.no_show, 0),
            m(b.wait.mean_s),
            m(b.wait.median_s),
            m(b.wait.p90_s),
            m(b.service_time.mean_s),
        ]
        for _id, name, b in f.branches
    ]
    title = "Oddziały" if lang == "pl" else "Branches"
    return monthly.monthly_pdf(f.summary, before.summary if before else None, lang, extra=[(title, header, rows)])
