"""Slot utilisation of the booking plans, per service and day and over the period.

Definitions (docs/reports.md, "Slot utilisation"):

* **offered**: the seats the service's booking plan gives that day (``server/booking/plan.py``:
  the slots' capacities; none on holidays, closures and days the service is closed). From the
  plan in force now: a plan changed since is not replayed for past days;
* **booked**: bookings of the day not cancelled; **cancelled**; **checked in** (attended: on
  time as an appointment or late as a walk-in); **no-shows**: still only booked when the
  check-in window closed (booked time + ``late_min``), as in server/reports/channels.py;
* **booked %** = booked / offered, **attended %** = checked in / offered (empty with nothing offered).

Only counts: no code, name or contact of any booking. The counter and clerk filters do not
apply (a booking has neither); the service filter does.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from server.booking.plan import slots_on
from server.config import SiteConfig
from server.reports.exports import Column, Table
from server.reports.figures import Filters

MAX_PAGE_DAYS = 62
"""The dashboard lists days up to this many; the export always has every day."""

LABELS: dict[str, dict[str, str]] = {
    "slots_title": {"pl": "Wykorzystanie terminów rezerwacji", "en": "Booking slot utilisation"},
    "day": {"pl": "Dzień", "en": "Day"},
    "service": {"pl": "Sprawa", "en": "Service"},
    "offered": {"pl": "Miejsca w planie", "en": "Seats offered"},
    "booked": {"pl": "Zarezerwowane", "en": "Booked"},
    "checked_in": {"pl": "Zgłoszeni", "en": "Checked in"},
    "no_show": {"pl": "Niestawienia", "en": "No-shows"},
    "cancelled": {"pl": "Odwołane", "en": "Cancelled"},
    "booked_share": {"pl": "Zarezerwowane / w planie", "en": "Booked / offered"},
    "attended_share": {"pl": "Zgłoszeni / w planie", "en": "Attended / offered"},
    "period": {"pl": "Cały okres", "en": "Whole period"},
    "all": {"pl": "Wszystkie sprawy", "en": "All services"},
    "days_left_out": {
        "pl": f"Dni pokazujemy dla okresu do {MAX_PAGE_DAYS} dni; wszystkie są w eksporcie.",
        "en": f"Days are listed for periods up to {MAX_PAGE_DAYS} days; the export has them all.",
    },
}


@dataclass(frozen=True)
class SlotRow:
    day: date | None  # None: the whole period
    service: str  # "all": every service
    offered: int
    booked: int
    checked_in: int
    no_show: int
    cancelled: int

    @property
    def booked_share(self) -> float | None:
        return round(self.booked / self.offered, 4) if self.offered else None

    @property
    def attended_share(self) -> float | None:
        return round(self.checked_in / self.offered, 4) if self.offered else None

    def values(self) -> list[Any]:
        return [
            self.day,
            self.service,
            self.offered,
            self.booked,
            self.checked_in,
            self.no_show,
            self.cancelled,
            self.booked_share,
            self.attended_share,
        ]

    def as_json(self) -> dict[str, Any]:
        keys = ("day", "service", "offered", "booked", "checked_in", "no_show", "cancelled")
        out = dict(zip(keys, self.values(), strict=False))
        out["day"] = self.day.isoformat() if self.day else None
        return {**out, "booked_share": self.booked_share, "attended_share": self.attended_share}


@dataclass(frozen=True)
class SlotFigures:
    days: list[SlotRow]  # per day and service, by day then service
    services: list[SlotRow]  # per service over the period
    total: SlotRow  # every service over the period

    @property
    def any(self) -> bool:
        return bool(self.services)

    def as_json(self) -> dict[str, Any]:
        return {
            "days": [r.as_json() for r in self.days],
            "services": [r.as_json() for r in self.services],
            "total": self.total.as_json(),
        }


SQL = """
SELECT day, service, SUM(status != 'cancelled'), SUM(status = 'checked_in'),
       SUM(status = 'booked' AND starts_at + ? < ?), SUM(status = 'cancelled')
FROM bookings WHERE day BETWEEN ? AND ? {extra} GROUP BY day, service
"""


def slot_figures(path: str, cfg: SiteConfig, f: Filters, now: datetime) -> SlotFigures:
    """The figures for the filters: the plans from ``cfg``, the bookings read from the database (read-only)."""
    found: dict[tuple[str, str], tuple[int, int, int, int]] = {}
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'bookings'").fetchone():
            for day, service, booked, came, absent, cancelled in conn.execute(
                SQL.format(extra=" AND service = ?" if f.service else ""),
                (
                    cfg.booking.late_min * 60,
                    now.timestamp(),
                    f.date_from.isoformat(),
                    f.date_to.isoformat(),
                    *([f.service] if f.service else []),
                ),
            ):
                found[(day, service)] = (int(booked or 0), int(came or 0), int(absent or 0), int(cancelled or 0))
    finally:
        conn.close()
    services = sorted(s for s in {*cfg.booking.plans, *(k[1] for k in found)} if f.service in (None, s))
    days: list[SlotRow] = []
    d = f.date_from
    while d <= f.date_to:
        for s in services:
            offered = sum(slot.capacity for slot in slots_on(cfg, s, d))
            b = found.get((d.isoformat(), s), (0, 0, 0, 0))
            if offered or any(b):
                days.append(SlotRow(d, s, offered, *b))
        d += timedelta(days=1)
    per_service = [_sum(None, s, [r for r in days if r.service == s]) for s in services]
    return SlotFigures(days, per_service, _sum(None, "all", days))


def _sum(day: date | None, service: str, rows: list[SlotRow]) -> SlotRow:
    return SlotRow(
        day,
        service,
        sum(r.offered for r in rows),
        sum(r.booked for r in rows),
        sum(r.checked_in for r in rows),
        sum(r.no_show for r in rows),
        sum(r.cancelled for r in rows),
    )


def label(key: str, lang: str) -> str:
    words = LABELS.get(key)
    return words["en" if lang == "en" else "pl"] if words else key


def table(s: SlotFigures) -> Table:
    """The ``slots`` export: a row per day and service, then per service and for all over the period (day empty)."""
    return Table(
        "slots",
        [
            Column("day", "Dzień", "Day", "date"),
            Column("service", "Sprawa", "Service", "text"),
            Column("offered", "Miejsca w planie", "Seats offered"),
            Column("booked", "Zarezerwowane", "Booked"),
            Column("checked_in", "Zgłoszeni", "Checked in"),
            Column("no_show", "Niestawienia", "No-shows"),
            Column("cancelled", "Odwołane", "Cancelled"),
            Column("booked_share", "Zarezerwowane / w planie", "Booked / offered", "share"),
            Column("attended_share", "Zgłoszeni / w planie", "Attended / offered", "share"),
        ],
        [r.values() for r in (*s.days, *s.services, s.total)],
    )
