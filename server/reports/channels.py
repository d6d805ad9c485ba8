"""Tickets by channel and the appointments' figures, for the dashboard and the exports.

Definitions (docs/reports.md, "Channels and appointments"):

* **channel** of a ticket: ``booking`` when it was checked in with a booking code (at the
  kiosk or the reception), else ``reception`` when the reception desk issued it (origin
  ``reception``), else ``kiosk`` (a kiosk, or a program over MQTT/HTTP). Per channel:
  issued, served (finished), no-shows. Appointments vs walk-ins is ``booking`` vs the rest.
* **bookings** of the period's days: booked (not cancelled), cancelled, checked in, and
  **no-shows**: still only booked when the check-in window closed (booked time + ``late_min``);
  the no-show rate is no-shows / (checked in + no-shows).
* **punctuality**: appointment tickets first called at most ``PUNCTUAL_MIN`` minutes after
  their booked time, out of those called.

Why SQL here and not the columnar cache of figures.py: these are a few GROUP BYs over
indexed days, and the bookings are not in that cache at all; a year of a busy office is
~250,000 tickets, a few tens of milliseconds. The service filter applies to the ticket's
service at issue and to the booking's service; counter and clerk apply to tickets only
(a booking has no counter).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from server.reports.exports import Column, Table
from server.reports.figures import Filters

CHANNELS = ("kiosk", "reception", "booking")
PUNCTUAL_MIN = 10
"""An appointment called within this many minutes after its booked time counts as on time."""

LABELS: dict[str, dict[str, str]] = {
    "title": {"pl": "Kanały i wizyty umówione", "en": "Channels and appointments"},
    "channel": {"pl": "Kanał", "en": "Channel"},
    "kiosk": {"pl": "Biletomat", "en": "Kiosk"},
    "reception": {"pl": "Recepcja", "en": "Reception"},
    "booking": {"pl": "Wizyta umówiona", "en": "Appointment"},
    "issued": {"pl": "Wydane bilety", "en": "Tickets issued"},
    "share": {"pl": "Udział", "en": "Share"},
    "served": {"pl": "Obsłużeni", "en": "Served"},
    "no_show": {"pl": "Nieobecni", "en": "No-shows"},
    "figure": {"pl": "Wskaźnik", "en": "Figure"},
    "value": {"pl": "Wartość", "en": "Value"},
    "walk_ins": {"pl": "Bez rezerwacji (bilety)", "en": "Walk-ins (tickets)"},
    "appointments": {"pl": "Wizyty umówione (bilety)", "en": "Appointments (tickets)"},
    "booked": {"pl": "Rezerwacje", "en": "Bookings"},
    "cancelled": {"pl": "Odwołane rezerwacje", "en": "Bookings cancelled"},
    "checked_in": {"pl": "Zgłoszeni z rezerwacją", "en": "Bookings checked in"},
    "booking_no_show": {"pl": "Niestawienia z rezerwacją", "en": "Booking no-shows"},
    "no_show_share": {"pl": "Odsetek niestawień", "en": "Booking no-show rate"},
    "called": {"pl": "Wizyty wywołane", "en": "Appointments called"},
    "punctual": {
        "pl": f"Wywołane do {PUNCTUAL_MIN} min po umówionej godzinie",
        "en": f"Called within {PUNCTUAL_MIN} min of the booked time",
    },
    "punctual_share": {"pl": "Punktualność wizyt", "en": "Appointment punctuality"},
}


@dataclass(frozen=True)
class ChannelRow:
    channel: str
    issued: int
    served: int
    no_show: int


@dataclass(frozen=True)
class ChannelFigures:
    rows: list[ChannelRow]
    booked: int
    cancelled: int
    checked_in: int
    booking_no_show: int
    called: int
    punctual: int

    @property
    def issued(self) -> int:
        return sum(r.issued for r in self.rows)

    def share(self, row: ChannelRow) -> float | None:
        return round(row.issued / self.issued, 4) if self.issued else None

    @property
    def walk_ins(self) -> int:
        return sum(r.issued for r in self.rows if r.channel != "booking")

    @property
    def appointments(self) -> int:
        return sum(r.issued for r in self.rows if r.channel == "booking")

    @property
    def no_show_share(self) -> float | None:
        came_or_not = self.checked_in + self.booking_no_show
        return round(self.booking_no_show / came_or_not, 4) if came_or_not else None

    @property
    def punctual_share(self) -> float | None:
        return round(self.punctual / self.called, 4) if self.called else None

    def figures(self) -> list[tuple[str, int | float | None, str]]:
        """(id, value, kind) of the appointments' table, in the page's and the export's order."""
        return [
            ("walk_ins", self.walk_ins, "int"),
            ("appointments", self.appointments, "int"),
            ("booked", self.booked, "int"),
            ("cancelled", self.cancelled, "int"),
            ("checked_in", self.checked_in, "int"),
            ("booking_no_show", self.booking_no_show, "int"),
            ("no_show_share", self.no_show_share, "share"),
            ("called", self.called, "int"),
            ("punctual", self.punctual, "int"),
            ("punctual_share", self.punctual_share, "share"),
        ]

    def as_json(self) -> dict[str, Any]:
        return {
            "channels": {r.channel: {"issued": r.issued, "served": r.served, "no_show": r.no_show} for r in self.rows},
            "appointments": {key: value for key, value, _ in self.figures()},
            "punctual_min": PUNCTUAL_MIN,
        }


CHANNEL_SQL = """
SELECT CASE WHEN booking IS NOT NULL THEN 'booking' WHEN origin = 'reception' THEN 'reception' ELSE 'kiosk' END,
       COUNT(*), SUM(status = 'finished'), SUM(status = 'no_show'),
       SUM(appointment_at IS NOT NULL AND first_called_at IS NOT NULL),
       SUM(appointment_at IS NOT NULL AND first_called_at IS NOT NULL AND first_called_at - appointment_at <= ?)
FROM tickets WHERE day BETWEEN ? AND ? {extra} GROUP BY 1
"""
BOOKING_SQL = """
SELECT SUM(status != 'cancelled'), SUM(status = 'cancelled'), SUM(status = 'checked_in'),
       SUM(status = 'booked' AND starts_at + ? < ?)
FROM bookings WHERE day BETWEEN ? AND ? {extra}
"""


def channel_figures(path: str, f: Filters, now: datetime, late_min: int) -> ChannelFigures:
    """The figures for the filters, read from the database file (read-only)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        extra, args = "", []
        for column, value in (("issued_service", f.service), ("counter", f.counter), ("clerk", f.clerk)):
            if value:
                extra += f" AND {column} = ?"
                args.append(value)
        found = {
            row[0]: row[1:]
            for row in conn.execute(
                CHANNEL_SQL.format(extra=extra),
                (PUNCTUAL_MIN * 60, f.date_from.isoformat(), f.date_to.isoformat(), *args),
            )
        }
        has_bookings = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'bookings'").fetchone()
        booked = [0, 0, 0, 0]
        if has_bookings:
            b = conn.execute(
                BOOKING_SQL.format(extra=" AND service = ?" if f.service else ""),
                (
                    late_min * 60,
                    now.timestamp(),
                    f.date_from.isoformat(),
                    f.date_to.isoformat(),
                    *([f.service] if f.service else []),
                ),
            ).fetchone()
            booked = [int(v or 0) for v in b]
    finally:
        conn.close()
    rows = [ChannelRow(c, *(int(v or 0) for v in found.get(c, (0, 0, 0, 0, 0))[:3])) for c in CHANNELS]
    appointment = found.get("booking", (0, 0, 0, 0, 0))
    return ChannelFigures(
        rows,
        booked=booked[0],
        cancelled=booked[1],
        checked_in=booked[2],
        booking_no_show=booked[3],
        called=int(appointment[3] or 0),
        punctual=int(appointment[4] or 0),
    )


def label(key: str, lang: str) -> str:
    words = LABELS.get(key)
    return words["en" if lang == "en" else "pl"] if words else key


def tables(c: ChannelFigures) -> list[Table]:
    """The two export tables: ``channels`` (one row a channel) and ``appointments`` (figure, value)."""
    channels = Table(
        "channels",
        [
            Column("channel", "Kanał", "Channel", "text"),
            Column("issued", "Wydane bilety", "Tickets issued"),
            Column("share", "Udział", "Share", "share"),
            Column("served", "Obsłużeni", "Served"),
            Column("no_show", "Nieobecni", "No-shows"),
        ],
        [[r.channel, r.issued, c.share(r), r.served, r.no_show] for r in c.rows],
        row_label=label,
    )
    figures = c.figures()
    appointments = Table(
        "appointments",
        [Column("figure", "Wskaźnik", "Figure", "text"), Column("value", "Wartość", "Value", "number")],
        [[key, value] for key, value, _ in figures],
        row_kinds=[kind for _, _, kind in figures],  # type: ignore[misc]
        row_label=label,
    )
    return [channels, appointments]
