"""Today's bookings, handed to the engine as plain values for the walk-ins' wait estimate.

Why here and not in the engine: the engine is pure (no SQL, an injected clock), yet the
walk-ins' estimate must leave room for the appointments still to come today (rule 1a,
server/estimates/appointments.py). So the worker calls :meth:`BookingFeed.refresh` at the
start of each batch, on its own connection: when the bookings may have changed (another
connection wrote to the file, SQLite's ``data_version`` says so: a booking, a move, a
cancellation on the web threads) or the office day rolled, it reads the day's bookings not
checked in and each service's show rate, and gives them to the engine
(``QueueEngine.set_booked_visits``). A check-in needs no reading: the engine drops that
visit itself when it issues the appointment ticket. Only service, time and code are read:
never a name or a contact.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import UTC, date, datetime, timedelta

from server.engine import QueueEngine
from server.estimates.appointments import BookedVisit, show_rate

log = logging.getLogger(__name__)

HISTORY_DAYS = 56
"""The no-show rate of a service is learned from its bookings of the last eight weeks."""


def booked_visits(conn: sqlite3.Connection, day: date) -> list[BookedVisit]:
    """The bookings of ``day`` not checked in nor cancelled, each with its service's show rate."""
    since = (day - timedelta(days=HISTORY_DAYS)).isoformat()
    past = {
        service: show_rate(int(came or 0), int(absent or 0))
        for service, came, absent in conn.execute(
            "SELECT service, SUM(status = 'checked_in'), SUM(status = 'booked') FROM bookings "
            "WHERE day >= ? AND day < ? GROUP BY service",
            (since, day.isoformat()),
        )
    }
    return [
        BookedVisit(service, datetime.fromtimestamp(at, UTC), code, past.get(service, show_rate(0, 0)))
        for service, at, code in conn.execute(
            "SELECT service, starts_at, code FROM bookings WHERE day = ? AND status = 'booked' ORDER BY starts_at",
            (day.isoformat(),),
        )
    ]


class BookingFeed:
    """Keeps ``engine.booked_visits`` in step with the bookings table (called on the worker thread)."""

    def __init__(self, conn: sqlite3.Connection, engine: QueueEngine) -> None:
        self.conn = conn
        self.engine = engine
        self._seen: tuple[int, date | None] | None = None

    def refresh(self) -> None:
        """Reread today's bookings if they may have changed; a failure keeps the last ones (logged)."""
        try:
            version = self.conn.execute("PRAGMA data_version").fetchone()[0]
            day = self.engine.office_day(self.engine.now())
            if self._seen == (version, day):
                return
            visits = booked_visits(self.conn, day)
            self.engine.set_booked_visits(visits)
            self._seen = (version, day)
        except sqlite3.Error:
            log.warning("could not read today's bookings for the wait estimate", exc_info=True)
