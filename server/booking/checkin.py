"""Check-in at the kiosk (or the reception): from a typed or scanned code to a ticket.

Runs on the worker thread, inside its batch: the booking is read with the worker's own
connection, the engine decides (on time, too early, too late, another day:
``QueueEngine.check_in``), and :class:`BookingCheckIns` marks the booking checked in within
the batch's transaction, so the booking and its ticket are on disk together or not at all.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

from protocol.messages import ErrorCode
from server.booking.codes import display, normalize
from server.domain import EventKind, Refusal, Ticket
from server.engine import Changes, QueueEngine


def check_in(
    engine: QueueEngine,
    conn: sqlite3.Connection | None,
    code_text: str,
    origin: str | None,
    expires_at: datetime | None = None,
) -> tuple[Ticket, int]:
    """The ticket for the booking with this code, or :class:`Refusal` (nothing changed)."""
    code = normalize(code_text)
    if code is None or conn is None:
        raise Refusal(ErrorCode.BOOKING_UNKNOWN, "this is not a booking code: six letters and digits, e.g. K7M-4PX")
    row = conn.execute("SELECT service, starts_at, status, ticket FROM bookings WHERE code = ?", (code,)).fetchone()
    if row is None:
        raise Refusal(ErrorCode.BOOKING_UNKNOWN, f"no booking has the code {display(code)}; check it and type it again")
    service, starts_at, status, ticket = row
    if status == "cancelled":
        raise Refusal(ErrorCode.BOOKING_CANCELLED, f"booking {display(code)} was cancelled")
    if status == "checked_in" and engine.ticket_by_number(ticket or "") is None:
        raise Refusal(ErrorCode.NOT_ALLOWED, f"booking {display(code)} was already used (ticket {ticket})")
    return engine.check_in(service, datetime.fromtimestamp(starts_at, UTC), code, origin, expires_at)


class BookingCheckIns:
    """A worker batch listener (server/worker.py ``BatchListener``): marks checked-in bookings."""

    def write(self, conn: sqlite3.Connection, changes: Changes, engine: QueueEngine) -> None:
        for ev in changes.events:
            code = ev.data.get("booking") if ev.kind == EventKind.ISSUE else None
            if code:
                conn.execute(
                    "UPDATE bookings SET status = 'checked_in', checked_in_at = ?, ticket = ? "
                    "WHERE code = ? AND status = 'booked'",
                    (ev.at.timestamp(), ev.ticket, code),
                )

    def committed(self, changes: Changes) -> None:
        pass
