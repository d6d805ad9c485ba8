"""The centre's PostgreSQL: every branch's events, once each, and what the views read.

Why (branch, seq) as the primary key and ``ON CONFLICT DO NOTHING``: the bridge delivers at
least once, a replicator re-sends after a crash or a re-send request, an operator replays a
day. Whatever arrives twice is stored once, so no figure counts it twice.

Why the projections (``tickets``, ``counters``) follow only the unbroken run of events
(``branches.contiguous``): events may arrive with a hole (a lost message, re-sent later).
They are stored as they come, but a ticket's state is only moved on by its events in their
order, so a call that arrives before its ticket's issue is applied after it, when the hole
is filled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from protocol.replica import EventBatch

SCHEMA = """
CREATE TABLE IF NOT EXISTS branches (
    branch          text PRIMARY KEY,
    contiguous      bigint NOT NULL DEFAULT 0,   -- every event up to this id is stored and applied
    head            bigint NOT NULL DEFAULT 0,   -- the branch's newest event id, as last heard
    last_heard      timestamptz,                 -- the centre's clock
    last_sent_at    timestamptz,                 -- the branch's clock, when it sent that message
    last_event_at   timestamptz,                 -- the newest applied event's time (branch clock)
    resend_after    bigint,
    resend_asked_at timestamptz,
    conflicts       bigint NOT NULL DEFAULT 0    -- events that came again with other content
);
ALTER TABLE branches ADD COLUMN IF NOT EXISTS conflicts bigint NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS event_conflicts (
    branch      text NOT NULL,
    seq         bigint NOT NULL,
    at          timestamptz NOT NULL,
    kind        text NOT NULL,
    ticket      text,
    received_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (branch, seq, at, kind)
);
CREATE TABLE IF NOT EXISTS events (
    branch      text NOT NULL,
    seq         bigint NOT NULL,
    at          timestamptz NOT NULL,
    day         date NOT NULL,
    kind        text NOT NULL,
    ticket_id   bigint,
    ticket      text,
    service     text,
    counter     text,
    data        jsonb,
    received_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (branch, seq)
);
CREATE TABLE IF NOT EXISTS tickets (
    branch          text NOT NULL,
    ticket_id       bigint NOT NULL,
    day             date NOT NULL,
    number          text,
    issued_service  text,
    service         text,
    status          text NOT NULL,
    issued_at       timestamptz NOT NULL,
    first_called_at timestamptz,
    finished_at     timestamptz,
    PRIMARY KEY (branch, ticket_id)
);
CREATE INDEX IF NOT EXISTS tickets_waiting ON tickets (branch, issued_at) WHERE status = 'waiting';
CREATE INDEX IF NOT EXISTS tickets_day ON tickets (day, branch, issued_service);
CREATE INDEX IF NOT EXISTS tickets_branch_day ON tickets (branch, day);
ALTER TABLE tickets ADD COLUMN IF NOT EXISTS started_at timestamptz;
ALTER TABLE branches ADD COLUMN IF NOT EXISTS last_day date;
-- The branch's devices offline as its replicator last reported them (protocol/replica.py), and when.
ALTER TABLE branches ADD COLUMN IF NOT EXISTS devices_offline text[];
ALTER TABLE branches ADD COLUMN IF NOT EXISTS devices_at timestamptz;
-- Its booking offer (each service's next free times, protocol/replica.py BookingOffer), and when.
ALTER TABLE branches ADD COLUMN IF NOT EXISTS booking jsonb;
ALTER TABLE branches ADD COLUMN IF NOT EXISTS booking_at timestamptz;
-- The daily roll-up (central/rollup.py): one row per branch, office day and service, for
-- the closed days; a day stays in ticket_days_dirty (and is read from tickets) until then.
CREATE TABLE IF NOT EXISTS ticket_days (
    branch      text NOT NULL,
    day         date NOT NULL,
    service     text NOT NULL,
    issued      integer NOT NULL,
    served      integer NOT NULL,
    called      integer NOT NULL,
    wait_bins   bytea NOT NULL,      -- (bin, count) pairs, big-endian int2 each
    PRIMARY KEY (day, branch, service)
);
CREATE INDEX IF NOT EXISTS ticket_days_branch ON ticket_days (branch, day);
-- What the exports need besides (central/summary.py): counts, every wait and service time
-- (big-endian int8 microseconds), arrivals per local (weekday, hour) as (slot, count) pairs.
-- Rows rolled up before these columns existed are marked to be rolled up again.
ALTER TABLE ticket_days ADD COLUMN IF NOT EXISTS no_show integer;
ALTER TABLE ticket_days ADD COLUMN IF NOT EXISTS transferred integer;
ALTER TABLE ticket_days ADD COLUMN IF NOT EXISTS not_called integer;
ALTER TABLE ticket_days ADD COLUMN IF NOT EXISTS waits bytea;
ALTER TABLE ticket_days ADD COLUMN IF NOT EXISTS service_times bytea;
ALTER TABLE ticket_days ADD COLUMN IF NOT EXISTS arrivals bytea;
CREATE TABLE IF NOT EXISTS ticket_days_dirty (
    branch text NOT NULL,
    day    date NOT NULL,
    PRIMARY KEY (branch, day)
);
-- Configurations pushed to branches, and their answers (central/configpush.py): the centre's audit.
INSERT INTO ticket_days_dirty (branch, day)
    SELECT DISTINCT branch, day FROM ticket_days WHERE waits IS NULL ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS config_pushes (
    id          text PRIMARY KEY,
    branch      text NOT NULL,
    pushed_by   text NOT NULL,
    pushed_at   timestamptz NOT NULL,
    changes     jsonb NOT NULL,
    status      text NOT NULL DEFAULT 'sent',   -- sent, applied, refused
    reasons     jsonb,
    changed     integer,
    answered_at timestamptz                     -- the branch's clock
);
CREATE TABLE IF NOT EXISTS counters (
    branch  text NOT NULL,
    counter text NOT NULL,
    status  text NOT NULL,
    since   timestamptz NOT NULL,
    PRIMARY KEY (branch, counter)
);
"""

_INSERT_EVENT = (
    "INSERT INTO events (branch, seq, at, day, kind, ticket_id, ticket, service, counter, data) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (branch, seq) DO NOTHING"
)

# What each event does to the ticket and counter projections, in the branch's order.
_TICKET_STATUS = {
    "call": "called",
    "recall": "called",
    "start": "serving",
    "finish": "done",
    "no_show": "no_show",
    "cancel": "cancelled",
}
_COUNTER_STATUS = {"counter_open": "open", "counter_pause": "paused", "counter_close": "closed"}


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


@dataclass(frozen=True)
class Ingested:
    branch: str
    contiguous: int
    head: int
    new_events: int

    @property
    def gap(self) -> bool:
        return self.contiguous < self.head


class CentralStore:
    """One connection, used by the ingester's writer thread (or a test, a report)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conn = psycopg.connect(dsn, autocommit=True)

    def migrate(self) -> None:
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(4242)")  # two ingesters starting together
            self.conn.execute(SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def ingest(self, batches: Sequence[EventBatch], now: datetime | None = None) -> list[Ingested]:
        """Store the batches' events once each, move the projections on along each branch's
        unbroken run, and record what was heard; one transaction."""
        now = now or datetime.now(UTC)
        out = []
        with self.conn.transaction():
            new = 0
            by_branch: dict[str, list[EventBatch]] = {}
            for b in batches:
                by_branch.setdefault(b.branch, []).append(b)
            for branch, group in by_branch.items():
                rows = [
                    (
                        branch,
                        e.id,
                        utc(e.at),
                        e.day,
                        e.kind,
                        e.ticket_id,
                        e.ticket,
                        e.service,
                        e.counter,
                        Jsonb(e.data) if e.data is not None else None,
                    )
                    for b in group
                    for e in b.events
                ]
                with self.conn.cursor() as cur:
                    conflicts = self._conflicts(cur, branch, rows) if rows else 0
                    if rows:
                        cur.executemany(_INSERT_EVENT, rows)
                        new = cur.rowcount if cur.rowcount >= 0 else 0
                    cur.execute("INSERT INTO branches (branch) VALUES (%s) ON CONFLICT DO NOTHING", (branch,))
                    cur.execute("SELECT contiguous, head FROM branches WHERE branch = %s FOR UPDATE", (branch,))
                    row = cur.fetchone()
                    assert row is not None
                    contiguous, head = row
                    head = max(head, *(b.head for b in group))
                    before = contiguous
                    contiguous, last_at = self._advance(cur, branch, contiguous)
                    if contiguous > before:
                        self._mark_dirty(cur, branch, before, contiguous)
                    last = max(group, key=lambda b: b.sent_at)
                    cur.execute(
                        "UPDATE branches SET contiguous = %s, head = %s, last_heard = %s, "
                        "last_sent_at = greatest(last_sent_at, %s), "
                        "last_event_at = coalesce(%s, last_event_at), conflicts = conflicts + %s WHERE branch = %s",
                        (contiguous, head, now, utc(last.sent_at), last_at, conflicts, branch),
                    )
                    reported = [b for b in group if b.devices_offline is not None]
                    if reported:
                        newest = max(reported, key=lambda b: b.sent_at)
                        # Only a newer report replaces it: a batch sent again later says an old state.
                        cur.execute(
                            "UPDATE branches SET devices_offline = %s::text[], devices_at = %s "
                            "WHERE branch = %s AND (devices_at IS NULL OR devices_at <= %s)",
                            (newest.devices_offline, utc(newest.sent_at), branch, utc(newest.sent_at)),
                        )
                    offered = [b for b in group if b.booking is not None]
                    if offered:
                        newest = max(offered, key=lambda b: b.sent_at)
                        cur.execute(
                            "UPDATE branches SET booking = %s, booking_at = %s "
                            "WHERE branch = %s AND (booking_at IS NULL OR booking_at <= %s)",
                            (
                                Jsonb([o.model_dump() for o in newest.booking or []]),
                                utc(newest.sent_at),
                                branch,
                                utc(newest.sent_at),
                            ),
                        )
                out.append(Ingested(branch, contiguous, head, new))
                new = 0
        return out

    @staticmethod
    def _mark_dirty(cur: psycopg.Cursor[Any], branch: str, after: int, upto: int) -> None:
        """The office days the events (after, upto] touched must be rolled up again: each
        event's own day and its ticket's day (a ticket cancelled after midnight is its
        day's). Same transaction as the events, so a crash never loses a mark."""
        cur.execute(
            "INSERT INTO ticket_days_dirty (branch, day) "
            "SELECT %s, day FROM events WHERE branch = %s AND seq > %s AND seq <= %s "
            "UNION SELECT %s, t.day FROM tickets t WHERE t.branch = %s AND t.ticket_id IN "
            "(SELECT ticket_id FROM events WHERE branch = %s AND seq > %s AND seq <= %s AND ticket_id IS NOT NULL) "
            "ON CONFLICT DO NOTHING",
            (branch, branch, after, upto, branch, branch, branch, after, upto),
        )
        cur.execute(
            "UPDATE branches SET last_day = greatest(last_day, "
            "(SELECT max(day) FROM events WHERE branch = %s AND seq > %s AND seq <= %s)) WHERE branch = %s",
            (branch, after, upto, branch),
        )

    def roll_up(self, limit: int | None = None) -> int:
        """Bring the daily roll-up up to date: every marked day before its branch's newest day
        (a closed office day) is computed again from ``tickets`` and unmarked, in one
        transaction per branch. Idempotent: a day computed twice gives the same rows.
        Returns the branch-days rolled up."""
        from central.rollup import ROLL_UP

        done = 0
        with self.conn.transaction():
            todo = self.conn.execute(
                "SELECT d.branch, array_agg(d.day ORDER BY d.day) FROM ticket_days_dirty d "
                "JOIN branches b USING (branch) WHERE d.day < b.last_day GROUP BY d.branch"
            ).fetchall()
        for branch, days in todo:
            days = days[:limit] if limit else days
            with self.conn.transaction():
                # The ingester takes this row's lock too: no day is marked again meanwhile.
                self.conn.execute("SELECT 1 FROM branches WHERE branch = %s FOR UPDATE", (branch,))
                self.conn.execute("DELETE FROM ticket_days WHERE branch = %s AND day = ANY(%s)", (branch, days))
                self.conn.execute(ROLL_UP, {"branch": branch, "days": days})
                self.conn.execute("DELETE FROM ticket_days_dirty WHERE branch = %s AND day = ANY(%s)", (branch, days))
            done += len(days)
        return done

    @staticmethod
    def _conflicts(cur: psycopg.Cursor[Any], branch: str, rows: list[tuple[Any, ...]]) -> int:
        """Events whose id the centre has with another time or kind: a branch restored from
        an old backup hands out ids again. The first stays (the figures already count it);
        the other is kept aside in ``event_conflicts`` and counted, for someone to look at."""
        cur.execute(
            "SELECT seq, at, kind FROM events WHERE branch = %s AND seq = ANY(%s)",
            (branch, [r[1] for r in rows]),
        )
        have = {seq: (at, kind) for seq, at, kind in cur.fetchall()}
        other = [
            r
            for r in rows
            if r[1] in have and (have[r[1]][1] != r[4] or abs((have[r[1]][0] - r[2]).total_seconds()) > 0.001)
        ]
        found = 0
        for r in other:
            cur.execute(
                "INSERT INTO event_conflicts (branch, seq, at, kind, ticket) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                (branch, r[1], r[2], r[4], r[6]),
            )
            found += max(cur.rowcount, 0)
        return found

    def _advance(self, cur: psycopg.Cursor[Any], branch: str, contiguous: int) -> tuple[int, datetime | None]:
        """Apply the stored events right after ``contiguous``, as far as they run unbroken."""
        last_at = None
        while True:
            cur.execute(
                "SELECT seq, at, day, kind, ticket_id, ticket, service, counter, data FROM events "
                "WHERE branch = %s AND seq > %s ORDER BY seq LIMIT 2000",
                (branch, contiguous),
            )
            rows = cur.fetchall()
            run: list[tuple[Any, ...]] = []
            for r in rows:
                if r[0] != contiguous + 1 + len(run):
                    break
                run.append(r)
            if not run:
                return contiguous, last_at
            with self.conn.pipeline():
                for _seq, at, day, kind, ticket_id, ticket, service, counter, data in run:
                    self._apply(cur, branch, at, day, kind, ticket_id, ticket, service, counter, data)
            contiguous = run[-1][0]
            last_at = run[-1][1]
            if len(run) < len(rows) or len(rows) < 2000:
                return contiguous, last_at

    @staticmethod
    def _apply(
        cur: psycopg.Cursor[Any],
        branch: str,
        at: datetime,
        day: Any,
        kind: str,
        ticket_id: int | None,
        ticket: str | None,
        service: str | None,
        counter: str | None,
        data: dict[str, Any] | None,
    ) -> None:
        if kind == "issue" and ticket_id is not None:
            cur.execute(
                "INSERT INTO tickets (branch, ticket_id, day, number, issued_service, service, status, issued_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, 'waiting', %s) ON CONFLICT DO NOTHING",
                (branch, ticket_id, day, ticket, service, service, at),
            )
        elif kind == "transfer" and ticket_id is not None:
            to = (data or {}).get("to_service") or service
            cur.execute(
                "UPDATE tickets SET status = 'waiting', service = %s WHERE branch = %s AND ticket_id = %s",
                (to, branch, ticket_id),
            )
        elif kind in _TICKET_STATUS and ticket_id is not None:
            status = _TICKET_STATUS[kind]
            cur.execute(
                "UPDATE tickets SET status = %s, "
                "first_called_at = CASE WHEN %s THEN coalesce(first_called_at, %s) ELSE first_called_at END, "
                "started_at = CASE WHEN %s THEN %s ELSE started_at END, "
                "finished_at = CASE WHEN %s THEN %s ELSE finished_at END WHERE branch = %s AND ticket_id = %s",
                (status, kind == "call", at, kind == "start", at, kind == "finish", at, branch, ticket_id),
            )
        elif kind in _COUNTER_STATUS and counter is not None:
            cur.execute(
                "INSERT INTO counters (branch, counter, status, since) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (branch, counter) DO UPDATE SET status = excluded.status, since = excluded.since",
                (branch, counter, _COUNTER_STATUS[kind], at),
            )

    # --- pushed configurations ------------------------------------------------------------
    def config_answered(
        self, branch: str, push_id: str, applied: bool, reasons: list[str], changed: int, at: float
    ) -> bool:
        """Record a branch's answer to a push (only that branch's own push); False if unknown."""
        with self.conn.transaction():
            cur = self.conn.execute(
                "UPDATE config_pushes SET status = %s, reasons = %s, changed = %s, answered_at = %s "
                "WHERE id = %s AND branch = %s",
                ("applied" if applied else "refused", Jsonb(reasons), changed, utc(at), push_id, branch),
            )
            return cur.rowcount == 1

    # --- gaps ---------------------------------------------------------------------------
    def gaps(self, now: datetime, every_s: float) -> list[tuple[str, int]]:
        """(branch, after) for each branch behind its head whose last re-send request is
        older than ``every_s`` (or was for an earlier point); marks them asked."""
        with self.conn.transaction():
            rows = self.conn.execute(
                "UPDATE branches SET resend_after = contiguous, resend_asked_at = %s "
                "WHERE contiguous < head AND (resend_asked_at IS NULL OR resend_after <> contiguous "
                "OR resend_asked_at < %s - make_interval(secs => %s)) RETURNING branch, contiguous",
                (now, now, every_s),
            ).fetchall()
        return [(b, int(c)) for b, c in rows]

    # --- reads (tests, views) -----------------------------------------------------------
    def counts(self, branch: str) -> dict[str, int]:
        with self.conn.transaction():
            rows = self.conn.execute(
                "SELECT kind, count(*) FROM events WHERE branch = %s GROUP BY kind", (branch,)
            ).fetchall()
        return {k: int(n) for k, n in rows}

    def event_ids(self, branch: str) -> list[int]:
        with self.conn.transaction():
            return [r[0] for r in self.conn.execute("SELECT seq FROM events WHERE branch = %s ORDER BY seq", (branch,))]

    def branch_state(self, branch: str) -> dict[str, Any] | None:
        with self.conn.transaction():
            cur = self.conn.execute("SELECT * FROM branches WHERE branch = %s", (branch,))
            row = cur.fetchone()
            if row is None:
                return None
            names = [d.name for d in cur.description or ()]
            return dict(zip(names, row, strict=True))
