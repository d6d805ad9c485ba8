"""What a kiosk's ticket request may carry besides the service: a phone number for SMS notices,
or a case reference for collecting a ready document (issue 17, the kiosk's side).

Both run on the worker's thread, inside its batch, and write with the batch's transaction
(:class:`KioskStaging`, written by ``Worker._listeners_write``): the ticket, the resident's
contact and the case's arrival are on disk together or not at all, and the kiosk's answer
leaves only after that commit (acknowledged = on disk).

* **A phone number** (``TicketRequest.phone``) is checked exactly as the ticket page's form
  checks it (:func:`server.notices.parse_contact`, ``notify.phone``), counted against
  ``[notify] subscribe_rate`` per number and ``kiosk_subscribe_rate`` per kiosk, and stored in
  ``notify_contacts`` with the kiosk's consent sentence (``kiosk-v1``). Whatever becomes of it,
  the ticket is issued: the answer's ``phone`` says what happened (docs/protocol.md). The
  number is never logged: the rate limits count its SHA-256, not the number.
* **A case reference** (``TicketRequest.pickup``) is looked up among the cases announced
  ready (``notify_pickups``, server/pickups.py); the ticket is an ordinary ticket of the case's
  service, and ``pickup_arrivals`` records when the case was announced and when its holder
  came, for the "ready → picked up" time. Unknown or already collected → a refusal, nothing
  changed.

``pickup_arrivals`` has its own schema version (``pickup_schema``), like the outbox's and the
survey's: not a store migration, so it does not compete with other work on the store's.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from notify.message import Channel
from protocol.messages import ErrorCode, PhoneOutcome
from server.domain import Refusal, Ticket, TicketStatus
from server.engine import QueueEngine
from server.notices import Contact, ContactError, Notices, parse_contact
from server.ratelimit import SlidingWindow

log = logging.getLogger(__name__)

KIOSK_CONSENT = "kiosk-v1"
"""The kiosk's consent sentence (kiosk/texts.py, ``sms_consent``); a new wording gets a new id."""
SCHEMA_VERSION = 1


def migrate(conn: sqlite3.Connection) -> None:
    """Create ``pickup_arrivals`` once (its own version table: not a store migration)."""
    conn.execute("CREATE TABLE IF NOT EXISTS pickup_schema (version INTEGER NOT NULL)")
    row = conn.execute("SELECT MAX(version) FROM pickup_schema").fetchone()
    if row is not None and row[0] is not None and row[0] >= SCHEMA_VERSION:
        return
    conn.execute(
        """
        CREATE TABLE IF NOT EXISTS pickup_arrivals (
            reference  TEXT PRIMARY KEY,  -- the case as the clerk or the list wrote it
            service    TEXT NOT NULL,
            document   TEXT NOT NULL,
            ready_at   REAL NOT NULL,     -- the first "document ready" announcement
            arrived_at REAL NOT NULL,     -- the pick-up ticket was issued
            ticket_id  INTEGER NOT NULL,
            ticket     TEXT NOT NULL,
            kiosk      TEXT
        )
        """
    )
    conn.execute("INSERT INTO pickup_schema (version) VALUES (?)", (SCHEMA_VERSION,))
    conn.commit()


def case_key(text: str) -> str:
    """A reference as compared: case and spaces do not matter (``km.1 / 2026`` = ``KM.1/2026``)."""
    return re.sub(r"\s+", "", text).upper()


@dataclass
class KioskStaging:
    """What one batch's kiosk requests add to its transaction, and what follows its commit."""

    writes: list[Callable[[sqlite3.Connection], None]] = field(default_factory=list)
    after: list[Callable[[], None]] = field(default_factory=list)
    cases: set[str] = field(default_factory=set)  # references collected in this batch


class KioskCases:
    """The worker's helper for phone numbers and pick-ups in kiosk requests."""

    def __init__(self, notices: Notices | None, conn: sqlite3.Connection | None) -> None:
        self.notices = notices
        self.per_number: SlidingWindow | None = None
        self.per_kiosk: SlidingWindow | None = None
        if notices is not None:
            self.per_number = SlidingWindow(notices.settings.subscribe_rate)
            self.per_kiosk = SlidingWindow(notices.settings.kiosk_subscribe_rate)
        if conn is not None:
            try:
                migrate(conn)
            except sqlite3.Error as exc:  # a damaged or read-only file: the server says so elsewhere
                log.warning("pick-up arrivals table not ready: %s", exc)

    # ------------------------------------------------------------------ a phone number

    def subscribe(self, staging: KioskStaging, ticket: Ticket, raw: str, lang: str, kiosk: str) -> PhoneOutcome:
        """Stage the ticket's SMS contact (written with the batch) and say what became of the number."""
        notices = self.notices
        if notices is None or self.per_number is None or self.per_kiosk is None:
            return "unavailable"
        if "@" in raw:
            return "invalid"  # the kiosk's keypad has digits only; anything else is not from it
        try:
            channel, number = parse_contact(raw, notices.config)
        except ContactError as exc:
            if exc.code == "phone":
                return "not_mobile" if exc.detail.startswith("not a mobile") else "invalid"
            return "unavailable" if exc.code == "no_sms" else "invalid"
        if channel is not Channel.SMS or ticket.status != TicketStatus.WAITING:
            return "unavailable"
        if notices.opted_out(channel, number):  # it replied STOP: say so rather than promise an SMS
            return "opted_out"
        # Both budgets are spent on every valid number, as the web form counts before checking.
        kiosk_ok = self.per_kiosk.hit(kiosk)
        number_ok = self.per_number.hit(hashlib.sha256(number.encode()).hexdigest())
        if not (kiosk_ok and number_ok):
            log.info("kiosk %s: an SMS contact refused by the rate limit (ticket %s)", kiosk, ticket.number)
            return "rate_limited"
        contact = Contact(ticket.id, ticket.token, Channel.SMS, number, lang)
        listener = notices.listener

        def write(conn: sqlite3.Connection) -> None:
            now = ticket.issued_at
            conn.execute(  # a left-over row of the same id (never expected) is replaced, not a failed batch
                """INSERT INTO notify_contacts (ticket_id, day, token, channel, recipient, lang, consent_at, consent)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (ticket_id) DO UPDATE SET day = excluded.day, token = excluded.token,
                     channel = excluded.channel, recipient = excluded.recipient, lang = excluded.lang,
                     consent_at = excluded.consent_at, consent = excluded.consent, near_at = NULL, ended_at = NULL""",
                (ticket.id, ticket.day.isoformat(), ticket.token, "sms", number, lang, now.timestamp(), KIOSK_CONSENT),
            )
            engine = notices.engine
            conn.execute("SAVEPOINT kiosk_near")  # as for a listener: a bug here loses the notice, not the ticket
            try:
                listener.maybe_near(conn, contact, ticket, engine, engine.now())  # near already: enqueued at once
            except sqlite3.Error:
                raise
            except Exception:
                log.exception("could not check 'your turn is near' for ticket %s", ticket.number)
                conn.execute("ROLLBACK TO kiosk_near")
            conn.execute("RELEASE kiosk_near")

        staging.writes.append(write)
        staging.after.append(lambda: listener._add(contact))
        log.info("kiosk %s: ticket %s will get SMS notices", kiosk, ticket.number)
        return "subscribed"

    # ------------------------------------------------------------------ a document pick-up

    def pickup(
        self,
        staging: KioskStaging,
        engine: QueueEngine,
        conn: sqlite3.Connection | None,
        text: str,
        kiosk: str,
        expires_at: datetime | None,
    ) -> tuple[Ticket, int]:
        """The pick-up ticket for the case with this reference, or :class:`Refusal` (nothing changed)."""
        key = case_key(text)
        if conn is None or not key:
            raise Refusal(ErrorCode.PICKUP_UNKNOWN, "no document is ready for this case")
        row = conn.execute(
            """SELECT reference, service, document, MIN(at) FROM notify_pickups
               WHERE upper(replace(reference, ' ', '')) = ? GROUP BY reference ORDER BY MIN(at) LIMIT 1""",
            (key,),
        ).fetchone()
        if row is None:
            # not echoed: whatever was typed (a resident may type a phone number here) stays out of replies
            raise Refusal(ErrorCode.PICKUP_UNKNOWN, "no document is ready under this case reference")
        reference, service, document, ready_at = row
        done = conn.execute("SELECT ticket FROM pickup_arrivals WHERE reference = ?", (reference,)).fetchone()
        if done is not None or reference in staging.cases:
            number = done[0] if done is not None else "?"
            raise Refusal(
                ErrorCode.PICKUP_COLLECTED, f"case {reference}: its pick-up ticket {number} was issued already"
            )
        ticket, ahead = engine.issue(service, False, origin=kiosk, expires_at=expires_at)
        staging.cases.add(reference)

        def write(c: sqlite3.Connection) -> None:
            c.execute(
                """INSERT INTO pickup_arrivals (reference, service, document, ready_at, arrived_at, ticket_id, ticket, kiosk)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                (reference, service, document, ready_at, ticket.issued_at.timestamp(), ticket.id, ticket.number, kiosk),
            )

        staging.writes.append(write)
        log.info("kiosk %s: pick-up ticket %s for case %s", kiosk, ticket.number, reference)
        return ticket, ahead
