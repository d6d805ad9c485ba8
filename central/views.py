"""What the centre's pages show, read from PostgreSQL: plain rows, no web code.

The live view: per branch, the tickets waiting, the longest wait, the open counters, the
devices offline (as the branch's broker holds their availability), the newest event and how long ago the branch was last heard from (its replicator sends a
heartbeat every few seconds, so silence means the link or the branch is down).

The report: per branch and service, and for each branch and all branches together, the
visits (tickets issued), the visits served and the median and 90th-percentile wait (issue to
first call), the figures a branch's own report starts with (docs/reports.md), computed the
same way from the same events.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import psycopg

from central import rollup

LINK_SILENT_S = 20.0
"""A branch not heard from this long is shown as out of contact (heartbeats come every 5 s)."""


@dataclass(frozen=True)
class BranchLive:
    branch: str
    name: str
    waiting: int
    longest_wait_s: float | None
    open_counters: int
    last_event_at: datetime | None
    last_heard_s: float | None
    behind: int
    conflicts: int = 0
    """Events that came again with other content (a branch restored from an old backup)."""
    devices_offline: tuple[str, ...] | None = None
    """The branch's devices offline (kiosks, counters, displays: their last will), as its
    server's broker holds them, from the replicator's last message; None: not reported."""

    @property
    def in_contact(self) -> bool:
        return self.last_heard_s is not None and self.last_heard_s < LINK_SILENT_S


@dataclass(frozen=True)
class ReportRow:
    branch: str | None  # None: all branches
    service: str | None  # None: all services of the branch (or of all branches)
    visits: int
    served: int
    median_wait_s: float | None
    p90_wait_s: float | None
    binned: bool = False
    """Median and p90 read from the daily roll-up's 30-second bins (a long period, central/rollup.py)."""


def _branch_now(now: datetime, last_heard: datetime | None, last_sent_at: datetime | None) -> datetime:
    """The branch's clock now: its last message's send time plus what has passed here since.

    Why not the centre's clock: waits are differences of the branch's own times (its server
    clock, docs/storage.md); a branch clock a few minutes off would otherwise show every
    resident of that branch waiting a few minutes more or less."""
    if last_heard is None or last_sent_at is None:
        return now
    return last_sent_at + (now - last_heard)


def live(conn: psycopg.Connection[Any], names: dict[str, str], now: datetime | None = None) -> list[BranchLive]:
    now = now or datetime.now(UTC)
    rows = conn.execute(
        """
        SELECT b.branch, b.last_event_at, b.last_heard, b.head - b.contiguous, b.last_sent_at, b.conflicts,
               b.devices_offline,
               (SELECT count(*) FROM tickets t WHERE t.branch = b.branch AND t.status = 'waiting'),
               (SELECT min(issued_at) FROM tickets t WHERE t.branch = b.branch AND t.status = 'waiting'),
               (SELECT count(*) FROM counters c WHERE c.branch = b.branch AND c.status = 'open')
        FROM branches b ORDER BY b.branch
        """
    ).fetchall()
    seen = {r[0] for r in rows}
    out = [
        BranchLive(
            branch=r[0],
            name=names.get(r[0], r[0]),
            waiting=int(r[7]),
            longest_wait_s=(_branch_now(now, r[2], r[4]) - r[8]).total_seconds() if r[8] else None,
            open_counters=int(r[9]),
            devices_offline=None if r[6] is None else tuple(r[6]),
            conflicts=int(r[5]),
            last_event_at=r[1],
            last_heard_s=(now - r[2]).total_seconds() if r[2] else None,
            behind=int(r[3]),
        )
        for r in rows
    ]
    # A branch in the config that has never replicated is shown too: that is news.
    out += [BranchLive(b, n, 0, None, 0, None, None, 0) for b, n in names.items() if b not in seen]
    return out


def report(conn: psycopg.Connection[Any], first: date, last: date, branch: str | None = None) -> list[ReportRow]:
    """Rows per (branch, service), then per branch, then all branches (when no branch is picked).

    Exact from the tickets up to ``rollup.EXACT_UP_TO`` tickets; a longer period from the
    daily roll-up (same visits and served, median and p90 within a bin's width)."""
    if rollup.period_size(conn, first, last, branch) > rollup.EXACT_UP_TO:
        return _report_binned(conn, first, last, branch)
    return report_exact(conn, first, last, branch)


def report_exact(conn: psycopg.Connection[Any], first: date, last: date, branch: str | None = None) -> list[ReportRow]:
    """The report from every ticket of the period: exact, and as slow as the period is long."""
    rows = conn.execute(
        """
        SELECT branch, issued_service, count(*), count(finished_at),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY date_part('epoch', first_called_at - issued_at))
                   FILTER (WHERE first_called_at IS NOT NULL),
               percentile_cont(0.9) WITHIN GROUP (ORDER BY date_part('epoch', first_called_at - issued_at))
                   FILTER (WHERE first_called_at IS NOT NULL),
               GROUPING(branch, issued_service)
        FROM tickets
        WHERE day BETWEEN %(first)s AND %(last)s {branch}
        GROUP BY GROUPING SETS ((branch, issued_service), (branch), ())
        ORDER BY GROUPING(branch, issued_service), branch, issued_service
        """.format(branch="" if branch is None else "AND branch = %(branch)s"),
        {"first": first, "last": last, "branch": branch},
    ).fetchall()
    out = []
    for b, service, visits, served, median, p90, grouping in rows:
        if grouping == 3 and branch is not None:
            continue  # "all branches" of one branch is that branch's total again
        out.append(
            ReportRow(
                branch=b if grouping < 3 else None,
                service=service if grouping == 0 else None,
                visits=int(visits),
                served=int(served),
                median_wait_s=float(median) if median is not None else None,
                p90_wait_s=float(p90) if p90 is not None else None,
            )
        )
    return out


def _binned_row(b: str | None, service: str | None, g: rollup.Group) -> ReportRow:
    return ReportRow(
        b, service, g.visits, g.served, rollup.percentile(g.bins, 0.5), rollup.percentile(g.bins, 0.9), binned=True
    )


def _report_binned(conn: psycopg.Connection[Any], first: date, last: date, branch: str | None) -> list[ReportRow]:
    groups = rollup.groups(conn, first, last, branch)
    keys = sorted(groups)
    out = [_binned_row(b, s, groups[(b, s)]) for b, s in keys]
    branches = sorted({b for b, _s in keys})
    out += [_binned_row(b, None, rollup.total(groups[k] for k in keys if k[0] == b)) for b in branches]
    if branch is None:
        out.append(_binned_row(None, None, rollup.total(groups.values())))
    return out


CSV_HEADER = [
    "oddział / branch",
    "usługa / service",
    "wizyty / visits",
    "obsłużone / served",
    "mediana oczekiwania [min] / median wait [min]",
    "p90 oczekiwania [min] / p90 wait [min]",
]


def _cell(value: str) -> str:
    """A spreadsheet must not run a cell as a formula (CSV injection, OWASP)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _minutes(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds / 60:.1f}".replace(".", ",")


def report_csv(rows: list[ReportRow]) -> str:
    """Semicolon-separated with a decimal comma, as a Polish Excel opens it; UTF-8 with BOM."""
    out = io.StringIO()
    w = csv.writer(out, delimiter=";", lineterminator="\r\n")
    w.writerow(CSV_HEADER)
    for r in rows:
        w.writerow(
            [
                _cell(r.branch or "wszystkie / all"),
                _cell(r.service or "razem / total"),
                r.visits,
                r.served,
                _minutes(r.median_wait_s),
                _minutes(r.p90_wait_s),
            ]
        )
    return "\ufeff" + out.getvalue()


BOOKING_FRESH_S = 600.0
"""A branch's booking offer older than this (its link down for ten minutes) shows no times."""


@dataclass(frozen=True)
class BookingRow:
    """One service of one branch at the centre's booking entry."""

    branch: str
    branch_name: str
    service: str
    name: dict[str, str]
    next_free: list[datetime]  # aware, UTC; only future ones, and none when the offer is stale
    fresh: bool


def booking(conn: psycopg.Connection[Any], names: dict[str, str], now: datetime | None = None) -> list[BookingRow]:
    """Every configured branch's services that take bookings, with their next free times as
    the branch's replicator last reported them (server/replicate.py ``_booking_offer``)."""
    now = now or datetime.now(UTC)
    out = []
    rows = conn.execute(
        "SELECT branch, booking, booking_at, last_heard, last_sent_at FROM branches WHERE booking IS NOT NULL"
    )
    for branch, offer, at, last_heard, last_sent_at in rows:
        if branch not in names:
            continue
        # On the branch's clock (as its times are): the offer's age, and "now" there.
        branch_now = _branch_now(now, last_heard, last_sent_at)
        fresh = (
            last_heard is not None
            and (now - last_heard).total_seconds() < BOOKING_FRESH_S
            and (branch_now - at).total_seconds() < BOOKING_FRESH_S
        )
        for o in offer:
            times = [datetime.fromtimestamp(t, UTC) for t in o.get("next_free", [])]
            out.append(
                BookingRow(
                    branch=branch,
                    branch_name=names[branch],
                    service=o["service"],
                    name=o.get("name") or {},
                    next_free=[t for t in times if t > branch_now] if fresh else [],
                    fresh=fresh,
                )
            )
    out.sort(key=lambda r: (r.branch_name, r.service))
    return out
