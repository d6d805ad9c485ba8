"""The durable outbox over SQLite: notices written with their cause, sent at most once.

How the server uses it (see docs/notifications.md):

* :func:`enqueue` in the **same transaction** as the event that causes the notice (a ticket
  issued with a phone number, a call, a case marked ready). It only INSERTs: the caller's
  COMMIT makes the event and its notice durable together. ``UNIQUE(notice, recipient)``
  makes a second enqueue of the same notice for the same person a no-op.
* :func:`cancel` in the same transaction as an event that makes a pending notice pointless
  (the ticket was called before "your turn is near" went out, or was cancelled).
* One :class:`Outbox` (a worker thread, or its own process) calls :meth:`Outbox.recover` at
  start and :meth:`Outbox.run_once` in a loop.

Record before send: a row is committed as ``sending`` before the gateway sees it, and its
answer is committed right after (together with the next row's ``sending``, so one fsync per
message). A crash in between leaves one row ``sending`` (a group of them for a gateway with
idempotency keys, see :meth:`Outbox.run_once`); :meth:`Outbox.recover` applies
notify.policy's rule to them. Times are epoch seconds from the injected clock.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from notify import optout
from notify.config import NotifySettings
from notify.gateways import Gateway
from notify.message import Channel, Delivery, Message, NoticeKind, SendResult
from notify.policy import MAY_HAVE_GONE_OUT, Action, Policy, Row, State, Transition
from notify.sms_text import TextTooLong, prepare
from notify.templates import LANGUAGES, TemplateError, render

SCHEMA_VERSION = 3
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")


def _migration_1(conn: sqlite3.Connection) -> None:
    conn.execute(
        """
        CREATE TABLE notices (
            id              INTEGER PRIMARY KEY,
            notice          TEXT NOT NULL,     -- the cause: 'ticket:<id>:near', 'case:<ref>:ready'
            recipient       TEXT NOT NULL,     -- E.164 or an e-mail address; 'erased:<id>' after retention
            channel         TEXT NOT NULL CHECK (channel IN ('sms', 'email')),
            kind            TEXT NOT NULL,
            lang            TEXT NOT NULL,
            payload         TEXT NOT NULL,     -- JSON: the template's values
            key             TEXT NOT NULL UNIQUE,  -- idempotency key handed to the gateway
            created_at      REAL NOT NULL,
            not_before      REAL NOT NULL,
            expires_at      REAL,              -- NULL: never pointless
            state           TEXT NOT NULL CHECK (state IN
                            ('pending', 'sending', 'sent', 'failed', 'unknown', 'expired', 'cancelled')),
            attempts        INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL,
            claimed_at      REAL,              -- the last hand-over to a gateway (rate limits count it)
            finished_at     REAL,
            gateway         TEXT,              -- the configured gateway's name
            gateway_id      TEXT,
            parts           INTEGER,           -- SMS parts of the text sent
            delivery        TEXT,              -- queued / sent / delivered / failed / unknown, learnt later
            delivery_at     REAL,
            reason          TEXT,              -- why deferred / failed / unknown; never personal data
            UNIQUE (notice, recipient)
        )
        """
    )
    conn.execute("CREATE INDEX notices_due ON notices (state, next_attempt_at)")
    conn.execute("CREATE INDEX notices_recipient ON notices (recipient, claimed_at)")
    conn.execute("CREATE INDEX notices_gateway_id ON notices (gateway_id)")


def _migration_3(conn: sqlite3.Connection) -> None:
    """Who asked to be notified, without the contact: the managers' "share of tickets that
    subscribed" (server/reports/notices.py) must outlive the contacts' erasure."""
    conn.execute(
        """CREATE TABLE notify_subscriptions (
               ticket_id INTEGER PRIMARY KEY,
               day       TEXT NOT NULL,      -- the ticket's office day
               channel   TEXT NOT NULL CHECK (channel IN ('sms', 'email')),
               via       TEXT NOT NULL       -- 'page' (the ticket page's form) or 'kiosk'
           )"""
    )
    conn.execute("CREATE INDEX notify_subscriptions_day ON notify_subscriptions (day)")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_migration_1, optout.migration, _migration_3]
"""Index i brings the notify tables from version i to i + 1; versions live in notify_schema,
not in PRAGMA user_version, which belongs to the server's store."""


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE … COMMIT (ROLLBACK on error); the connection must be in autocommit mode."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def connect(path: str) -> sqlite3.Connection:
    """A connection set up like the server's store: WAL, fsync at every commit, autocommit mode."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Create or upgrade the notify tables; returns the schema version. Safe to call at every start."""
    with transaction(conn):
        conn.execute("CREATE TABLE IF NOT EXISTS notify_schema (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM notify_schema").fetchone()
        version = row[0] if row else 0
        if row is None:
            conn.execute("INSERT INTO notify_schema (version) VALUES (0)")
        for number in range(version, len(MIGRATIONS)):
            MIGRATIONS[number](conn)
        conn.execute("UPDATE notify_schema SET version = ?", (len(MIGRATIONS),))
    return len(MIGRATIONS)


def enqueue(
    conn: sqlite3.Connection,
    *,
    notice: str,
    recipient: str,
    channel: Channel,
    kind: NoticeKind,
    lang: str,
    payload: Mapping[str, Any],
    now: float,
    not_before: float | None = None,
    expires_at: float | None = None,
) -> int | None:
    """Add a notice for one recipient; its id, or None if this (notice, recipient) exists already.

    Only INSERTs: call it inside the transaction of the event that causes the notice. The
    recipient must already be normalised (notify.phone.normalise for SMS); anything else is
    refused with ValueError before the database is touched.
    """
    if channel is Channel.SMS and not E164.match(recipient):
        raise ValueError("an SMS recipient must be a normalised phone number (E.164)")
    if channel is Channel.EMAIL and not EMAIL.match(recipient):
        raise ValueError("not an e-mail address")
    if lang not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}")
    if expires_at is not None and expires_at <= now:
        raise ValueError("the notice would expire before it is written")
    start = now if not_before is None else not_before
    cur = conn.execute(
        """
        INSERT INTO notices (notice, recipient, channel, kind, lang, payload, key, created_at,
                             not_before, expires_at, state, next_attempt_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)
        ON CONFLICT (notice, recipient) DO NOTHING
        """,
        (
            notice,
            recipient,
            channel.value,
            kind.value,
            lang,
            json.dumps(dict(payload), ensure_ascii=False, sort_keys=True),
            uuid.uuid4().hex[:24],
            now,
            start,
            expires_at,
            start,
        ),
    )
    return cur.lastrowid if cur.rowcount == 1 else None


def cancel(conn: sqlite3.Connection, notice: str, now: float, reason: str) -> int:
    """Cancel a notice's pending rows (its cause went away); rows already sending or sent are left."""
    cur = conn.execute(
        "UPDATE notices SET state = 'cancelled', finished_at = ?, reason = ? WHERE notice = ? AND state = 'pending'",
        (now, reason, notice),
    )
    return cur.rowcount


COLUMNS = (
    "id, notice, recipient, channel, kind, lang, key, not_before, expires_at, state, attempts, next_attempt_at, payload"
)


def _row(r: tuple[Any, ...]) -> Row:
    return Row(
        id=r[0],
        notice=r[1],
        recipient=r[2],
        channel=Channel(r[3]),
        kind=NoticeKind(r[4]),
        lang=r[5],
        key=r[6],
        not_before=r[7],
        expires_at=r[8],
        state=State(r[9]),
        attempts=r[10],
        next_attempt_at=r[11],
        payload=json.loads(r[12]),
    )


@dataclass(frozen=True)
class Route:
    """The gateway serving one channel, under its configured name."""

    name: str
    gateway: Gateway


class Outbox:
    def __init__(
        self,
        conn: sqlite3.Connection,
        settings: NotifySettings,
        routes: Mapping[Channel, Route],
        clock: Callable[[], float] = time.time,
        optout_key: bytes | None = None,
    ) -> None:
        """``optout_key``: the server's key for the opt-out list (notify/optout.py); with it, an
        SMS to a number that said STOP is cancelled at hand-over instead of sent."""
        if conn.isolation_level is not None:
            raise ValueError("the outbox needs a connection in autocommit mode (isolation_level=None)")
        self.conn = conn
        self.settings = settings
        self.policy = Policy(settings)
        self.routes = dict(routes)
        self.clock = clock
        self.optout_key = optout_key

    # -- start ----------------------------------------------------------------------------
    def recover(self) -> int:
        """Settle rows left ``sending`` by a crash (see notify.policy.Policy.recover)."""
        now = self.clock()
        with transaction(self.conn):
            rows = [_row(r) for r in self.conn.execute(f"SELECT {COLUMNS} FROM notices WHERE state = 'sending'")]
            for row in rows:
                route = self.routes.get(row.channel)
                self._apply(row, self.policy.recover(row, now, route is not None and route.gateway.idempotent), now)
        return len(rows)

    # -- the loop -------------------------------------------------------------------------
    def run_once(self, limit: int | None = None) -> int:
        """Send what is due now; returns how many rows got a gateway's answer.

        Rows for a gateway without idempotency keys are claimed one at a time: a crash can
        then leave at most one of them ``sending`` (and so ``unknown``) that may really have
        gone out. Rows for an idempotent gateway are claimed in groups — one fsync for many —
        because a recovered row is retried with its key and the gateway answers with the first send.
        """
        handled = 0
        answers: list[tuple[Row, Route, SendResult, int | None]] = []
        candidates = self._due(limit or self.settings.batch)
        i = 0
        while i < len(candidates):
            claimed: list[tuple[Row, Route, Message, int | None]] = []
            with transaction(self.conn):
                for answer in answers:  # the previous answers share this commit with the next claims
                    self._record(*answer)
                answers = []
                while i < len(candidates):
                    row = candidates[i]
                    route = self.routes.get(row.channel)
                    grouped = route is not None and route.gateway.idempotent
                    if claimed and not grouped:
                        break
                    i += 1
                    ready = self._claim(row)
                    if ready is not None:
                        claimed.append((row, *ready))
                    if claimed and (not grouped or len(claimed) >= self.settings.batch):
                        break
            for row, route, message, parts in claimed:
                try:
                    result = route.gateway.send(message)
                except Exception as exc:  # noqa: BLE001 - a gateway's bug must not leave rows unrecorded
                    result = SendResult.unknown(f"the gateway failed: {type(exc).__name__}")
                answers.append((replace(row, attempts=row.attempts + 1), route, result, parts))
                handled += 1
        if answers:
            with transaction(self.conn):
                for answer in answers:
                    self._record(*answer)
        return handled

    def _due(self, limit: int) -> list[Row]:
        rows = self.conn.execute(
            f"""SELECT {COLUMNS} FROM notices WHERE state = 'pending' AND next_attempt_at <= ?
                ORDER BY kind = 'called' DESC, next_attempt_at, id LIMIT ?""",
            (self.clock(), limit),
        )
        return [_row(r) for r in rows]

    def _recent(self, recipient: str, now: float) -> list[float]:
        window = self.settings.rate_limit.per_minutes * 60.0
        marks = ",".join("?" * len(MAY_HAVE_GONE_OUT))
        return [
            r[0]
            for r in self.conn.execute(
                f"SELECT claimed_at FROM notices WHERE recipient = ? AND claimed_at > ? AND state IN ({marks})",
                (recipient, now - window, *MAY_HAVE_GONE_OUT),
            )
        ]

    def _claim(self, row: Row) -> tuple[Route, Message, int | None] | None:
        """Inside a transaction: decide, and mark the row ``sending`` if it goes now."""
        now = self.clock()
        current = self.conn.execute("SELECT state FROM notices WHERE id = ?", (row.id,)).fetchone()
        if current is None or current[0] != State.PENDING:
            return None  # cancelled (or taken) since it was read
        if (
            self.optout_key is not None
            and row.channel is Channel.SMS
            and row.kind is not NoticeKind.OPTOUT_CONFIRMED
            and optout.is_opted_out(self.conn, self.optout_key, row.recipient)
        ):
            self._apply(row, Transition(State.CANCELLED, reason=optout.OPTED_OUT), now)
            return None
        decision = self.policy.decide(row, now, self._recent(row.recipient, now))
        if decision.action is Action.EXPIRE:
            self._apply(row, Transition(State.EXPIRED, reason=decision.reason), now)
            return None
        if decision.action is Action.DEFER:
            self.conn.execute(
                "UPDATE notices SET next_attempt_at = ?, reason = ? WHERE id = ?",
                (decision.at, decision.reason, row.id),
            )
            return None
        route = self.routes.get(row.channel)
        if route is None:
            self._apply(row, Transition(State.FAILED, reason=f"no {row.channel.value} gateway is configured"), now)
            return None
        try:
            message, parts = self.compose(row)
        except (TemplateError, TextTooLong) as exc:
            self._apply(row, Transition(State.FAILED, reason=str(exc)), now)
            return None
        self.conn.execute(
            "UPDATE notices SET state = 'sending', attempts = attempts + 1, claimed_at = ?, gateway = ? WHERE id = ?",
            (now, route.name, row.id),
        )
        return route, message, parts

    def compose(self, row: Row) -> tuple[Message, int | None]:
        rendered = render(row.kind, row.lang, {"office": self.settings.office, **row.payload}, self.settings.zone)
        urgent = row.kind is NoticeKind.CALLED
        if row.channel is Channel.SMS:
            text, cost = prepare(rendered.text, self.settings.transliterate)
            return Message(Channel.SMS, row.recipient, text, key=row.key, urgent=urgent), cost.parts
        return (
            Message(
                Channel.EMAIL,
                row.recipient,
                rendered.text,
                rendered.subject,
                rendered.html(),
                key=row.key,
                urgent=urgent,
            ),
            None,
        )

    def _record(self, row: Row, route: Route, result: SendResult, parts: int | None) -> None:
        now = self.clock()
        transition = self.policy.after(row, result, now, route.gateway.idempotent)
        self._apply(row, transition, now, gateway_id=result.gateway_id, parts=parts)

    def _apply(
        self, row: Row, t: Transition, now: float, gateway_id: str | None = None, parts: int | None = None
    ) -> None:
        final = t.state is not State.PENDING
        self.conn.execute(
            """UPDATE notices SET state = ?, next_attempt_at = COALESCE(?, next_attempt_at), reason = ?,
                   finished_at = ?, gateway_id = COALESCE(?, gateway_id), parts = COALESCE(?, parts),
                   delivery = CASE WHEN ? = 'sent' THEN 'queued' ELSE delivery END
               WHERE id = ?""",
            (
                t.state.value,
                t.next_attempt_at,
                t.reason,
                now if final else None,
                gateway_id,
                parts,
                t.state.value,
                row.id,
            ),
        )

    # -- afterwards -----------------------------------------------------------------------
    def update_delivery(self, gateway: str, gateway_id: str, delivery: Delivery) -> bool:
        """Record a delivery report (a provider's callback, a status poll); False if no such message."""
        with transaction(self.conn):
            cur = self.conn.execute(
                "UPDATE notices SET delivery = ?, delivery_at = ? WHERE gateway = ? AND gateway_id = ? AND state = 'sent'",
                (delivery.value, self.clock(), gateway, gateway_id),
            )
        return cur.rowcount > 0

    def poll_deliveries(self, limit: int = 200) -> int:
        """Ask gateways that can tell (Gammu's sent/error folders) what became of sent messages."""
        changed = 0
        for route in self.routes.values():
            rows = self.conn.execute(
                """SELECT gateway_id, delivery FROM notices WHERE gateway = ? AND state = 'sent'
                   AND delivery IN ('queued', 'sent') ORDER BY id LIMIT ?""",
                (route.name, limit),
            ).fetchall()
            for gateway_id, old in rows:
                new = route.gateway.status(gateway_id)
                if new is None:
                    break  # this gateway only reports by callback
                if new.value != old and new is not Delivery.UNKNOWN:
                    changed += self.update_delivery(route.name, gateway_id, new)
        return changed

    def erase_personal_data(self, before: float) -> int:
        """Forget recipients and template values of notices finished before ``before``."""
        with transaction(self.conn):
            cur = self.conn.execute(
                """UPDATE notices SET recipient = 'erased:' || id, payload = '{}'
                   WHERE finished_at IS NOT NULL AND finished_at < ? AND recipient NOT LIKE 'erased:%'""",
                (before,),
            )
        return cur.rowcount

    def counts(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT state, COUNT(*) FROM notices GROUP BY state").fetchall())
