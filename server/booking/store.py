"""The ``bookings`` table: no double booking, limits per contact, erasure on a schedule.

Why a connection of its own (like the logins' ``Users``, server/auth.py) and not the worker:
a booking is not queue state; the engine sees it only when the resident checks in at the
kiosk. Each write is one short ``BEGIN IMMEDIATE`` transaction, so SQLite itself orders
concurrent bookings, from this server's threads or from another process (a clerk's
command-line tool): the slot's free seats are counted and the new row takes a free seat in
the same transaction, and a partial unique index on (service, start, seat) of the bookings
not cancelled makes a second row in the same seat impossible even for code that forgot the
transaction. ``busy_timeout`` lets the worker's commit wait the few milliseconds one takes.

Personal data (``name``, ``contact``) is set to NULL when a booking is cancelled and
``retention_days`` after the visit day (:meth:`BookingStore.erase_due`, run at start and
hourly by the server); nothing here logs it.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Protocol

from server.booking.codes import new_code, new_token
from server.booking.contact import Contact

BOOKED = "booked"
CHECKED_IN = "checked_in"
CANCELLED = "cancelled"


def migration(db: Any) -> None:
    """Schema migration 7 (``server/store.py`` ``MIGRATIONS``): the bookings table."""
    db.execute(
        """CREATE TABLE bookings (
            id INTEGER PRIMARY KEY,
            code TEXT NOT NULL UNIQUE,
            token TEXT NOT NULL UNIQUE,
            service TEXT NOT NULL,
            day TEXT NOT NULL,
            starts_at REAL NOT NULL,
            ends_at REAL NOT NULL,
            seat INTEGER NOT NULL CHECK (seat >= 0),
            status TEXT NOT NULL CHECK (status IN ('booked', 'checked_in', 'cancelled')),
            channel TEXT NOT NULL,
            lang TEXT NOT NULL DEFAULT 'pl',
            name TEXT,
            contact TEXT,
            contact_kind TEXT,
            created_at REAL NOT NULL,
            changed_at REAL,
            checked_in_at REAL,
            ticket TEXT,
            erased_at REAL
        )"""
    )
    db.execute(
        "CREATE UNIQUE INDEX bookings_one_per_seat ON bookings (service, starts_at, seat) WHERE status != 'cancelled'"
    )
    db.execute("CREATE INDEX bookings_day ON bookings (day, service)")
    db.execute("CREATE INDEX bookings_contact ON bookings (contact) WHERE contact IS NOT NULL")


class BookingError(Exception):
    """A booking refused; ``code`` for programs and tests, the message for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Booking:
    id: int
    code: str
    token: str = field(repr=False)
    service: str
    day: date
    starts_at: datetime
    ends_at: datetime
    status: str
    channel: str
    lang: str
    name: str | None = field(repr=False)
    contact: str | None = field(repr=False)
    contact_kind: str | None
    created_at: datetime
    checked_in_at: datetime | None
    ticket: str | None

    @classmethod
    def from_row(cls, r: sqlite3.Row) -> Booking:
        def at(v: float | None) -> datetime | None:
            return datetime.fromtimestamp(v, UTC) if v is not None else None

        return cls(
            id=r["id"],
            code=r["code"],
            token=r["token"],
            service=r["service"],
            day=date.fromisoformat(r["day"]),
            starts_at=datetime.fromtimestamp(r["starts_at"], UTC),
            ends_at=datetime.fromtimestamp(r["ends_at"], UTC),
            status=r["status"],
            channel=r["channel"],
            lang=r["lang"],
            name=r["name"],
            contact=r["contact"],
            contact_kind=r["contact_kind"],
            created_at=datetime.fromtimestamp(r["created_at"], UTC),
            checked_in_at=at(r["checked_in_at"]),
            ticket=r["ticket"],
        )


class BookingHooks(Protocol):
    """Writes that belong with a booking's change, in its transaction (server/booking/messages.py:
    the confirmation and the reminder in the notification outbox)."""

    def booked(self, conn: sqlite3.Connection, row: sqlite3.Row, now: datetime) -> None: ...
    def moved(self, conn: sqlite3.Connection, old: sqlite3.Row, new: sqlite3.Row, now: datetime) -> None: ...
    def cancelled(self, conn: sqlite3.Connection, old: sqlite3.Row, now: datetime) -> None: ...
    def committed(self) -> None: ...


class BookingStore:
    """Bookings in the server's SQLite file; safe to share between threads (one lock, short SQL)."""

    hooks: BookingHooks | None = None
    """Set by the server when [notify] is configured; called inside each write's transaction."""

    def __init__(self, path: str, *, migrate: bool = True, conn: sqlite3.Connection | None = None) -> None:
        """``conn``: read through a connection its owner opened instead (the replicator's
        read-only one, rows as ``sqlite3.Row``): nothing is migrated or opened here."""
        if conn is None:
            if migrate:
                from server.store import Store

                Store(path).close()  # bring the schema up to date
            conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout=10000")
        self.path = path
        self.conn = conn
        self._lock = threading.Lock()

    def close(self) -> None:
        self.conn.close()

    # ------------------------------------------------------------------ reading

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self.conn.execute(sql, args).fetchall()

    def by_code(self, code: str) -> Booking | None:
        rows = self._rows("SELECT * FROM bookings WHERE code = ?", (code,))
        return Booking.from_row(rows[0]) if rows else None

    def by_token(self, token: str) -> Booking | None:
        rows = self._rows("SELECT * FROM bookings WHERE token = ?", (token,))
        return Booking.from_row(rows[0]) if rows else None

    def taken(self, service: str, day: date) -> dict[float, int]:
        """Start time stamp → bookings not cancelled, for one service and day."""
        rows = self._rows(
            "SELECT starts_at, COUNT(*) FROM bookings WHERE service = ? AND day = ? AND status != 'cancelled' "
            "GROUP BY starts_at",
            (service, day.isoformat()),
        )
        return {r[0]: r[1] for r in rows}

    def on_day(self, day: date) -> list[Booking]:
        rows = self._rows("SELECT * FROM bookings WHERE day = ? ORDER BY starts_at, service, seat", (day.isoformat(),))
        return [Booking.from_row(r) for r in rows]

    # ------------------------------------------------------------------ writing

    def _write(self, fn: Any) -> Any:
        """Run ``fn(conn)`` in one ``BEGIN IMMEDIATE`` transaction (SQLite orders all writers)."""
        with self._lock:
            conn = self.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            if self.hooks is not None:
                self.hooks.committed()
            return result

    @staticmethod
    def _free_seat(conn: sqlite3.Connection, service: str, start: datetime, capacity: int, skip: int = 0) -> int:
        taken = {
            r[0]
            for r in conn.execute(
                "SELECT seat FROM bookings WHERE service = ? AND starts_at = ? AND status != 'cancelled' AND id != ?",
                (service, start.timestamp(), skip),
            )
        }
        free = [s for s in range(capacity) if s not in taken]
        if not free:
            raise BookingError("slot_full", "this time is already fully booked; please choose another")
        return free[0]

    def book(
        self,
        *,
        service: str,
        start: datetime,
        end: datetime,
        day: date,
        capacity: int,
        who: Contact,
        now: datetime,
        per_contact: int,
        channel: str = "online",
        lang: str = "pl",
    ) -> Booking:
        """Book a seat in the slot, or raise :class:`BookingError` (``slot_full``, ``contact_limit``)."""

        def write(conn: sqlite3.Connection) -> int:
            upcoming = conn.execute(
                "SELECT COUNT(*) FROM bookings WHERE contact = ? AND status = 'booked' AND starts_at >= ?",
                (who.value, now.timestamp()),
            ).fetchone()[0]
            if upcoming >= per_contact:
                raise BookingError(
                    "contact_limit",
                    f"this phone number or e-mail already holds {upcoming} upcoming bookings (the limit is {per_contact})",
                )
            seat = self._free_seat(conn, service, start, capacity)
            for _ in range(20):  # a code already in use (1 in ~10^5): draw again
                try:
                    cur = conn.execute(
                        "INSERT INTO bookings (code, token, service, day, starts_at, ends_at, seat, status, channel,"
                        " lang, name, contact, contact_kind, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (
                            new_code(),
                            new_token(),
                            service,
                            day.isoformat(),
                            start.timestamp(),
                            end.timestamp(),
                            seat,
                            BOOKED,
                            channel,
                            lang,
                            who.name,
                            who.value,
                            who.kind,
                            now.timestamp(),
                        ),
                    )
                    booking_id = int(cur.lastrowid or 0)
                    if self.hooks is not None:
                        row = conn.execute("SELECT * FROM bookings WHERE id = ?", (booking_id,)).fetchone()
                        self.hooks.booked(conn, row, now)
                    return booking_id
                except sqlite3.IntegrityError as exc:
                    if "code" not in str(exc) and "token" not in str(exc):
                        raise
            raise BookingError("unavailable", "could not make a booking code; please try again")

        booking_id = self._write(write)
        rows = self._rows("SELECT * FROM bookings WHERE id = ?", (booking_id,))
        return Booking.from_row(rows[0])

    def cancel(self, token: str, now: datetime) -> Booking:
        """Cancel a booking not yet checked in; its name and contact are erased at once."""

        def write(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT * FROM bookings WHERE token = ?", (token,)).fetchone()
            if row is None:
                raise BookingError("unknown", "no such booking")
            if row["status"] != BOOKED:
                status = row["status"]
                raise BookingError(status, f"this booking is {status.replace('_', ' ')} and cannot be cancelled")
            conn.execute(
                "UPDATE bookings SET status = 'cancelled', changed_at = ?, name = NULL, contact = NULL, "
                "erased_at = ? WHERE token = ?",
                (now.timestamp(), now.timestamp(), token),
            )
            if self.hooks is not None:
                self.hooks.cancelled(conn, row, now)

        self._write(write)
        found = self.by_token(token)
        assert found is not None
        return found

    def move(self, token: str, *, start: datetime, end: datetime, day: date, capacity: int, now: datetime) -> Booking:
        """Move a booking to another slot of its service (same code), if that slot has room."""

        def write(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT * FROM bookings WHERE token = ?", (token,)).fetchone()
            if row is None:
                raise BookingError("unknown", "no such booking")
            if row["status"] != BOOKED:
                raise BookingError(row["status"], "this booking cannot be moved any more")
            seat = self._free_seat(conn, row["service"], start, capacity, skip=row["id"])
            conn.execute(
                "UPDATE bookings SET day = ?, starts_at = ?, ends_at = ?, seat = ?, changed_at = ? WHERE id = ?",
                (day.isoformat(), start.timestamp(), end.timestamp(), seat, now.timestamp(), row["id"]),
            )
            if self.hooks is not None:
                new = conn.execute("SELECT * FROM bookings WHERE id = ?", (row["id"],)).fetchone()
                self.hooks.moved(conn, row, new, now)

        self._write(write)
        found = self.by_token(token)
        assert found is not None
        return found

    def erase_due(self, before: date, now: datetime) -> int:
        """Erase the name and contact of bookings for days before ``before``; how many were erased."""

        def write(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "UPDATE bookings SET name = NULL, contact = NULL, erased_at = ? WHERE day < ? AND erased_at IS NULL",
                (now.timestamp(), before.isoformat()),
            )
            return cur.rowcount

        result: int = self._write(write)
        return result
