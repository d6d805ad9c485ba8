"""The server's own notification tables (store migration 6); the outbox keeps its own (notify/outbox.py).

Why apart from server/notices.py: server/store.py imports this at start-up, and the store
must not depend on the notification machinery (gateways, threads) to open its file.
"""

from __future__ import annotations

from typing import Any


def migration(db: Any) -> None:
    """Contacts residents left on their ticket page, and the pick-up notices clerks sent.

    ``notify_contacts`` holds personal data: one row per ticket, erased ``retention_hours``
    after the ticket ended (server/notices.py, ``NoticeSender``). ``notify_pickups`` is the
    clerk's record of "document ready" (who, which case, which service): no phone number or
    address, those are only in the outbox's row.
    """
    db.execute(
        """
        CREATE TABLE notify_contacts (
            ticket_id  INTEGER PRIMARY KEY,
            day        TEXT NOT NULL,
            token      TEXT NOT NULL,
            channel    TEXT NOT NULL CHECK (channel IN ('sms', 'email')),
            recipient  TEXT NOT NULL,
            lang       TEXT NOT NULL,
            consent_at REAL NOT NULL,   -- the resident ticked the consent sentence (its version: consent)
            consent    TEXT NOT NULL,
            near_at    REAL,            -- "your turn is near" was enqueued
            ended_at   REAL             -- the ticket ended (finished, no-show, cancelled, day over)
        )
        """
    )
    db.execute("CREATE INDEX notify_contacts_ended ON notify_contacts (ended_at)")
    db.execute(
        """
        CREATE TABLE notify_pickups (
            id        INTEGER PRIMARY KEY,
            at        REAL NOT NULL,
            user      TEXT NOT NULL,
            source    TEXT NOT NULL,    -- 'panel' or 'csv:<file name>'
            reference TEXT NOT NULL,
            service   TEXT NOT NULL,
            document  TEXT NOT NULL,
            channel   TEXT NOT NULL,
            notice    TEXT NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX notify_pickups_at ON notify_pickups (at)")
