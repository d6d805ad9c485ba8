"""The durable store: SQLite through sqlite-utils.

Tables (docs/storage.md has the full schema):

* ``events`` — append-only log of everything that happened, with server time stamps.
  Reports read it; nothing ever updates or deletes a row.
* ``tickets`` — one row per ticket, its latest state (a projection of the events, written
  in the same transaction, so the two never disagree).
* ``counters`` — each counter's status, clerk and current ticket.
* ``commands`` — the reply given to each device request id, so a redelivered request gets
  the same answer without acting twice, also across a restart.

Durability: WAL journal with ``synchronous=FULL`` — every commit is fsynced to the WAL
before :meth:`Store.commit` returns, and the server acknowledges nothing before that. A
``kill -9`` or a power cut therefore loses nothing that was acknowledged. The schema
version is SQLite's ``user_version``; :data:`MIGRATIONS` brings older files up to date.

Who uses which connection: the worker thread owns :class:`Store`'s connection alone (every
write of the running server goes through it, in the worker's batches). Web threads read
through :class:`ReadStore`, one read-only connection per thread: WAL lets them read while
the worker writes, and no web request can start, end or interleave with the worker's
transaction. Why it matters: web threads once shared the worker's connection, and residents
reloading ticket pages made the worker's ``BEGIN IMMEDIATE`` fail and the server exit.

A file that cannot be used (damaged, not a database, in a folder the service cannot write)
raises :class:`StoreError` naming the path, the problem and what to do. The server runs
``PRAGMA quick_check`` at every start, so a damaged file is found then, not by a write.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlite_utils

from protocol.messages import CounterStatus
from server.domain import ConfigChange, CounterRuntime, Event, EventKind, Ticket, TicketStatus
from server.engine import Changes, QueueEngine, Restored
from server.notices_schema import migration as _migration_6

OPEN_STATUSES = ("waiting", "called", "serving")


def ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def dt(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if value is not None else None


def _table(db: sqlite_utils.Database, name: str) -> sqlite_utils.db.Table:
    """A table (sqlite_utils types ``db[name]`` as table-or-view)."""
    return db.table(name)


def _migration_1(db: sqlite_utils.Database) -> None:
    _table(db, "events").create(
        {
            "id": int,
            "at": float,
            "day": str,
            "kind": str,
            "ticket_id": int,
            "ticket": str,
            "service": str,
            "counter": str,
            "clerk": str,
            "data": str,
        },
        pk="id",
    )
    _table(db, "events").create_index(["day", "kind"])
    _table(db, "events").create_index(["ticket_id"])
    _table(db, "tickets").create(
        {
            "id": int,
            "day": str,
            "number": str,
            "seq": int,
            "prefix": str,
            "issued_service": str,
            "service": str,
            "priority": int,
            "token": str,
            "status": str,
            "issued_at": float,
            "queued_at": float,
            "first_called_at": float,
            "called_at": float,
            "started_at": float,
            "finished_at": float,
            "counter": str,
            "target_counter": str,
            "clerk": str,
            "recalls": int,
            "transfers": int,
            "estimated_wait_s": int,
            "origin": str,
            "rating": int,
        },
        pk="id",
    )
    _table(db, "tickets").create_index(["token"], unique=True)
    _table(db, "tickets").create_index(["day", "status"])
    _table(db, "tickets").create_index(["day", "number"], unique=True)
    _table(db, "counters").create(
        {"id": str, "status": str, "clerk": str, "current": int, "last_finished": int, "updated_at": float},
        pk="id",
    )
    _table(db, "commands").create(
        {"device": str, "id": str, "at": float, "reply": str},
        pk=("device", "id"),
    )
    _table(db, "commands").create_index(["at"])


def _migration_2(db: sqlite_utils.Database) -> None:
    """Manager logins (server/auth.py) and the indexes the reports need (docs/reports.md)."""
    import secrets

    _table(db, "users").create({"name": str, "role": str, "password_hash": str, "created_at": float}, pk="name")
    _table(db, "settings").create({"key": str, "value": str}, pk="key")
    # The key that signs session cookies: random per installation, never a default.
    _table(db, "settings").insert({"key": "session_secret", "value": secrets.token_hex(32)})
    _table(db, "events").create_index(["kind", "day"])  # counter open/pause/close periods over a date range


def _migration_3(db: sqlite_utils.Database) -> None:
    """Admin edits on top of the site config file (server/admin.py) and their audit log."""
    _table(db, "config_overrides").create({"target": str, "field": str, "value": str}, pk=("target", "field"))
    _table(db, "admin_changes").create(
        {"id": int, "at": float, "user": str, "target": str, "field": str, "old": str, "new": str}, pk="id"
    )


def _migration_4(db: sqlite_utils.Database) -> None:
    """A floor under a day's numbering, written by ``numerek-server restore``.

    Why: a backup taken at 11:00 and restored at 14:00 does not know the numbers handed out
    in between; the floor makes the day's numbering continue above them, never re-issue them.
    """
    _table(db, "numbering_floor").create({"day": str, "prefix": str, "seq": int}, pk=("day", "prefix"))


def _migration_5(db: sqlite_utils.Database) -> None:
    """Web sessions kept on the server (server/auth.py), and no cookie-signing key any more.

    Why: a signed cookie stayed valid until it expired, whatever the user did (signing out
    did not end it), and the key that signed it sat in this file, so a copy of a backup could
    forge a session. A session row holds only the SHA-256 of the cookie's random token.
    """
    _table(db, "sessions").create(
        {"token_hash": str, "user": str, "created_at": float, "seen_at": float}, pk="token_hash"
    )
    _table(db, "sessions").create_index(["user"])
    db.execute("DELETE FROM settings WHERE key = 'session_secret'")


def _migration_7(db: sqlite_utils.Database) -> None:
    """Bookings (server/booking/store.py, docs/booking.md) and the tickets' booked time and code."""
    from server.booking.store import migration

    migration(db)
    db.execute("ALTER TABLE tickets ADD COLUMN appointment_at REAL")
    db.execute("ALTER TABLE tickets ADD COLUMN booking TEXT")


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _migration_1,
    _migration_2,
    _migration_3,
    _migration_4,
    _migration_5,
    _migration_6,  # notification contacts and pick-up records (server/notices_schema.py)
    _migration_7,
]
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(RuntimeError):
    """The database file cannot be used. The message names the file, the problem and what to do."""

    def __init__(self, path: str, problem: str, advice: str) -> None:
        super().__init__(f"{path}: {problem}. {advice}")
        self.path = path
        self.problem = problem
        self.advice = advice


RESTORE_ADVICE = (
    "Stop the server and restore the latest backup: numerek-db --config <site config> restore <backup file> "
    "(docs/storage.md, 'Backups and restore')"
)


def folder_problem(path: str) -> StoreError | None:
    """Why the service cannot create or write ``path`` and its -wal/-shm files, or None.

    Checked before anything is opened, so an installation mistake is one clear sentence
    with the path and the fix, not ``unable to open database file``.
    """
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return StoreError(path, f"the folder {folder} does not exist", "Create it, owned by the service's user")
    if not os.access(folder, os.W_OK | os.X_OK) or (os.path.exists(path) and not os.access(path, os.R_OK | os.W_OK)):
        return StoreError(
            path,
            f"the file or its folder {folder} is not writable by this user (uid {os.getuid()}); SQLite writes the "
            "file and its -wal and -shm files beside it",
            "Give the folder and the file to the service's user (chown numerek: ...) or change [storage] database",
        )
    return None


def _open_problem(path: str, exc: sqlite3.Error) -> StoreError:
    """Turn SQLite's terse open errors into something an operator can act on."""
    text = str(exc)
    if "unable to open" in text or "readonly" in text or "read-only" in text:
        return folder_problem(path) or StoreError(
            path, f"the file cannot be opened ({text})", "Check [storage] database in the site config"
        )
    return StoreError(path, f"the file is damaged or not a Numerek database ({text})", RESTORE_ADVICE)


def describe_write_error(exc: BaseException) -> str:
    """A failed write, in words for the journal, /health and the managers' live view."""
    text = str(exc)
    if "full" in text:
        return "the disk is full"
    if "readonly" in text or "read-only" in text:
        return "the database became read-only"
    if "malformed" in text or "corrupt" in text or "not a database" in text:
        return "the database file is damaged"
    if "disk I/O" in text:
        return "the disk reported an input/output error"
    return f"the write failed ({type(exc).__name__}: {text})"


_TICKET_COLUMNS = (
    "id",
    "day",
    "number",
    "seq",
    "prefix",
    "issued_service",
    "service",
    "priority",
    "token",
    "status",
    "issued_at",
    "queued_at",
    "first_called_at",
    "called_at",
    "started_at",
    "finished_at",
    "counter",
    "target_counter",
    "clerk",
    "recalls",
    "transfers",
    "estimated_wait_s",
    "origin",
    "rating",
    "appointment_at",
    "booking",
)
_UPSERT_TICKET = (
    f"INSERT INTO tickets ({', '.join(_TICKET_COLUMNS)}) VALUES ({', '.join('?' * len(_TICKET_COLUMNS))}) "
    "ON CONFLICT(id) DO UPDATE SET "
    + ", ".join(f"{c}=excluded.{c}" for c in _TICKET_COLUMNS if c not in ("id", "issued_service"))
)
_INSERT_EVENT = (
    "INSERT INTO events (id, at, day, kind, ticket_id, ticket, service, counter, clerk, data) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPSERT_COUNTER = (
    "INSERT INTO counters (id, status, clerk, current, last_finished, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT(id) DO UPDATE SET status=excluded.status, clerk=excluded.clerk, current=excluded.current, "
    "last_finished=excluded.last_finished, updated_at=excluded.updated_at"
)


class Store:
    """The writer: one connection, used by one thread (the worker, or a command-line tool)."""

    def __init__(self, path: str, check: bool = False) -> None:
        """Open (creating if needed) and migrate; ``check`` runs ``PRAGMA quick_check`` first.

        Raises :class:`StoreError` for a file that cannot be used, saying what to do.
        """
        self.path = path
        try:
            conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self.db = sqlite_utils.Database(conn)
            conn.execute("PRAGMA busy_timeout=5000")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            if check:
                problems = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
                if problems != ["ok"]:
                    conn.close()
                    raise StoreError(path, "the file is damaged: " + "; ".join(problems), RESTORE_ADVICE)
            self.migrate()
        except sqlite3.Error as exc:
            raise _open_problem(path, exc) from exc

    @property
    def conn(self) -> sqlite3.Connection:
        return self.db.conn

    def close(self) -> None:
        self.conn.close()

    # ------------------------------------------------------------------ schema

    def schema_version(self) -> int:
        version: int = self.conn.execute("PRAGMA user_version").fetchone()[0]
        return version

    def migrate(self) -> None:
        version = self.schema_version()
        if version > SCHEMA_VERSION:
            raise RuntimeError(f"{self.path} has schema version {version}, newer than this server's {SCHEMA_VERSION}")
        for number in range(version, SCHEMA_VERSION):
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                MIGRATIONS[number](self.db)
                self.conn.execute(f"PRAGMA user_version={number + 1}")
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise

    # ------------------------------------------------------------------ writing

    def commit(
        self,
        changes: Changes,
        counters: Iterable[CounterRuntime],
        replies: Iterable[tuple[str, str, float, str]],
        config_changes: Iterable[ConfigChange] = (),
        prune_before: datetime | None = None,
        extra: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        """Write one batch in one transaction, fsynced before returning.

        ``counters`` are the runtime records of the counters the batch touched;
        ``replies`` are (device, request id, time, reply JSON) for the dedupe table;
        ``config_changes`` are admin edits (override + audit row); ``prune_before`` drops
        stored replies older than that (server/requests.py); ``extra`` writes other parts'
        tables in the same transaction (server/worker.py, ``BatchListener``).
        """
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            if changes.events:
                conn.executemany(_INSERT_EVENT, [self._event_row(e) for e in changes.events])
            if changes.tickets:
                conn.executemany(_UPSERT_TICKET, [self._ticket_row(t) for t in changes.tickets.values()])
            rows = [
                (
                    c.id,
                    c.status.value,
                    c.clerk,
                    c.current,
                    c.last_finished,
                    ts(changes.events[-1].at) if changes.events else None,
                )
                for c in counters
            ]
            if rows:
                conn.executemany(_UPSERT_COUNTER, rows)
            replies = list(replies)
            if replies:
                conn.executemany("INSERT OR REPLACE INTO commands (device, id, at, reply) VALUES (?, ?, ?, ?)", replies)
            for c in config_changes:
                conn.execute(
                    "INSERT INTO config_overrides (target, field, value) VALUES (?, ?, ?) "
                    "ON CONFLICT(target, field) DO UPDATE SET value = excluded.value",
                    (c.target, c.field, c.new),
                )
                conn.execute(
                    "INSERT INTO admin_changes (at, user, target, field, old, new) VALUES (?, ?, ?, ?, ?, ?)",
                    (c.at, c.user, c.target, c.field, c.old, c.new),
                )
            if prune_before is not None:
                conn.execute("DELETE FROM commands WHERE at < ?", (prune_before.timestamp(),))
            if extra is not None:
                extra(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _event_row(e: Event) -> tuple[Any, ...]:
        return (
            e.id,
            e.at.timestamp(),
            e.day.isoformat(),
            e.kind.value,
            e.ticket_id,
            e.ticket,
            e.service,
            e.counter,
            e.clerk,
            json.dumps(e.data, ensure_ascii=False) if e.data else None,
        )

    @staticmethod
    def _ticket_row(t: Ticket) -> tuple[Any, ...]:
        prefix = t.number.rstrip("0123456789")
        return (
            t.id,
            t.day.isoformat(),
            t.number,
            int(t.number[len(prefix) :]),
            prefix,
            t.issued_service,
            t.service,
            int(t.priority),
            t.token,
            t.status.value,
            ts(t.issued_at),
            ts(t.queued_at),
            ts(t.first_called_at),
            ts(t.called_at),
            ts(t.started_at),
            ts(t.finished_at),
            t.counter,
            t.target_counter,
            t.clerk,
            t.recalls,
            t.transfers,
            t.estimated_wait_s,
            t.origin,
            t.rating,
            ts(t.appointment_at),
            t.booking,
        )

    # ------------------------------------------------------------------ reading

    def recent_replies(self, since: datetime) -> dict[tuple[str, str], tuple[float, str]]:
        """(device, request id) -> (time stored, reply JSON) for replies since ``since``."""
        rows = self.conn.execute(
            "SELECT device, id, at, reply FROM commands WHERE at >= ? ORDER BY at", (since.timestamp(),)
        )
        return {(d, i): (at, r) for d, i, at, r in rows}

    @staticmethod
    def ticket_from_row(row: dict[str, Any]) -> Ticket:
        return Ticket(
            id=row["id"],
            day=date.fromisoformat(row["day"]),
            number=row["number"],
            service=row["service"],
            priority=bool(row["priority"]),
            token=row["token"],
            issued_at=dt(row["issued_at"]),  # type: ignore[arg-type]
            queued_at=dt(row["queued_at"]),  # type: ignore[arg-type]
            status=TicketStatus(row["status"]),
            counter=row["counter"],
            target_counter=row["target_counter"],
            first_called_at=dt(row["first_called_at"]),
            called_at=dt(row["called_at"]),
            started_at=dt(row["started_at"]),
            finished_at=dt(row["finished_at"]),
            recalls=row["recalls"] or 0,
            clerk=row["clerk"],
            estimated_wait_s=row["estimated_wait_s"],
            origin=row["origin"],
            rating=row["rating"],
            transfers=row["transfers"] or 0,
            issued_service=row["issued_service"],
            appointment_at=dt(row.get("appointment_at")),
            booking=row.get("booking"),
        )

    def device_faults(self) -> list[dict[str, Any]]:
        """Every kiosk's fault reports as recorded, oldest first (a later one wins)."""
        rows = self.db.query("SELECT data FROM events WHERE kind = 'device_fault' ORDER BY id")
        return [json.loads(r["data"]) for r in rows]

    def recent_events(self, before: date, days: int = 42) -> Iterator[Event]:
        """The events of the ``days`` office days before ``before``, oldest first: what the
        wait estimator learns typical breaks, service times and arrivals from at start."""
        since = (before - timedelta(days=days)).isoformat()
        rows = self.db.query(
            "SELECT * FROM events WHERE day >= ? AND day < ? AND kind IN ('issue', 'call', 'finish', "
            "'no_show', 'transfer', 'cancel', 'counter_open', 'counter_pause', 'counter_close') ORDER BY id",
            [since, before.isoformat()],
        )
        for r in rows:
            yield self._event_from_row(r)

    @staticmethod
    def write_audit(conn: sqlite3.Connection, rows: Sequence[ConfigChange]) -> None:
        """Change-log rows without an override (a configuration pushed by the centre: its outcome)."""
        conn.executemany(
            "INSERT INTO admin_changes (at, user, target, field, old, new) VALUES (?, ?, ?, ?, ?, ?)",
            [(c.at, c.user, c.target, c.field, c.old, c.new) for c in rows],
        )

    def pushed_config(self, marker: str) -> tuple[bool, list[str], int] | None:
        """How a pushed configuration was answered, if it was: (applied, reasons, fields changed)."""
        row = self.conn.execute(
            "SELECT field, new FROM admin_changes WHERE target = ? AND field IN ('applied', 'refused') "
            "ORDER BY id DESC LIMIT 1",
            (marker,),
        ).fetchone()
        if row is None:
            return None
        value = json.loads(row[1])
        return (True, [], int(value)) if row[0] == "applied" else (False, list(value), 0)

    def config_overrides(self) -> list[tuple[str, str, object]]:
        """Admin edits to lay over the file config: (target, field, value)."""
        rows = self.conn.execute("SELECT target, field, value FROM config_overrides")
        return [(t, f, json.loads(v)) for t, f, v in rows]

    def load(self) -> Restored:
        """Everything the engine needs to carry on exactly where it stopped."""
        q = self.db.query
        last = next(iter(q("SELECT day, at FROM events ORDER BY id DESC LIMIT 1")), None)
        day = date.fromisoformat(last["day"]) if last else None
        day_s = day.isoformat() if day else ""
        tickets = [
            self.ticket_from_row(r)
            for r in q(f"SELECT * FROM tickets WHERE day = ? AND status IN {OPEN_STATUSES} ORDER BY id", [day_s])
        ]
        counters = [
            CounterRuntime(
                id=r["id"],
                status=CounterStatus(r["status"]),
                clerk=r["clerk"],
                current=r["current"],
                last_finished=r["last_finished"],
            )
            for r in q("SELECT * FROM counters")
        ]
        last_seq = {
            r["prefix"]: r["n"]
            for r in q("SELECT prefix, max(seq) AS n FROM tickets WHERE day = ? GROUP BY prefix", [day_s])
        }
        for r in q("SELECT prefix, seq FROM numbering_floor WHERE day = ?", [day_s]):
            last_seq[r["prefix"]] = max(last_seq.get(r["prefix"], 0), r["seq"])
        issued = {
            r["issued_service"]: r["n"]
            for r in q(
                "SELECT issued_service, count(*) AS n FROM tickets WHERE day = ? AND appointment_at IS NULL "
                "GROUP BY issued_service",  # appointments do not count against the walk-ins' daily limit
                [day_s],
            )
        }
        finished_ids = [c.last_finished for c in counters if c.last_finished is not None]
        last_finished = (
            [
                self.ticket_from_row(r)
                for r in q(f"SELECT * FROM tickets WHERE id IN ({', '.join('?' * len(finished_ids))})", finished_ids)
            ]
            if finished_ids
            else []
        )
        max_ticket = next(iter(q("SELECT coalesce(max(id), 0) AS n FROM tickets")))["n"]
        max_event = next(iter(q("SELECT coalesce(max(id), 0) AS n FROM events")))["n"]
        recent_calls = [
            self._event_from_row(r)
            for r in q(
                # Each zone's latest (QueueEngine.ZONE_CALL_MEMORY), so a quiet hall keeps its
                # board after a restart however busy the others were.
                "SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY json_extract(data, '$.zone') "
                "ORDER BY id DESC) AS nth FROM events WHERE day = ? AND kind IN ('call', 'recall')) "
                "WHERE nth <= ? ORDER BY id",
                [day_s, QueueEngine.ZONE_CALL_MEMORY],
            )
        ]
        service_times = [
            (r["service"], r["finished_at"] - r["started_at"])
            for r in q(
                "SELECT service, started_at, finished_at FROM tickets WHERE status = 'finished' "
                "AND started_at IS NOT NULL ORDER BY finished_at DESC LIMIT 500"
            )
        ][::-1]
        return Restored(
            day=day,
            tickets=tickets,
            counters=counters,
            last_seq=last_seq,
            issued=issued,
            next_ticket_id=max_ticket + 1,
            next_event_id=max_event + 1,
            recent_calls=recent_calls,
            service_times=service_times,
            last_finished=last_finished,
            last_event_at=dt(last["at"]) if last else None,
        )

    @staticmethod
    def _event_from_row(r: dict[str, Any]) -> Event:
        return Event(
            id=r["id"],
            kind=EventKind(r["kind"]),
            at=dt(r["at"]),  # type: ignore[arg-type]
            day=date.fromisoformat(r["day"]),
            ticket_id=r["ticket_id"],
            ticket=r["ticket"],
            service=r["service"],
            counter=r["counter"],
            clerk=r["clerk"],
            data=json.loads(r["data"]) if r["data"] else {},
        )


class ReadStore:
    """Read-only access for web threads: one ``mode=ro`` connection per thread.

    Why per thread and read-only: a web request can then never take part in the worker's
    transaction, and no page can write (least privilege); WAL lets these connections read
    while the worker commits, without waiting for it or making it wait.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            uri = Path(os.path.abspath(self.path)).as_uri() + "?mode=ro"
            conn = sqlite3.connect(uri, uri=True)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout=2000")
            self._local.conn = conn
        return conn

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        return self._conn().execute(sql, args).fetchall()

    def schema_version(self) -> int:
        version: int = self.query("PRAGMA user_version")[0][0]
        return version

    def ticket_by_token(self, token: str) -> Ticket | None:
        rows = self.query("SELECT * FROM tickets WHERE token = ?", (token,))
        return Store.ticket_from_row(dict(rows[0])) if rows else None

    def admin_changes(self, limit: int) -> list[sqlite3.Row]:
        return self.query(
            "SELECT id, at, user, target, field, old, new FROM admin_changes ORDER BY id DESC LIMIT ?", (limit,)
        )


def disk_free_bytes(path: str) -> int:
    """Free bytes on the file system that holds ``path`` (for /health and the live view)."""
    return shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free
