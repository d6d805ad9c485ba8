"""The server's side of notifications: who asked to be told, what the queue's events mean for
them, and the thread that hands the outbox's messages to the gateways.

Parts (docs/notifications.md, "What the server does"):

* :class:`NoticeListener` — a ``BatchListener`` (server/worker.py): inside the worker's batch
  transaction it enqueues "your turn is near" when a subscribed ticket has at most N people
  ahead or at most M minutes to wait, "you are called" on its call, and cancels what became
  pointless when the ticket ends. Acknowledged means on disk: a notice is committed exactly
  when the event that caused it is.
* :class:`NoticeSender` — a thread with its own SQLite connection running
  ``notify.outbox.Outbox``: ``recover()`` at start, ``run_once()`` when a batch enqueued
  something (woken by ``committed``) and every few seconds, delivery polls, and the scheduled
  erasure of contact data. Gateways block (an SMTP dialogue, an HTTP request, an inject
  process): never on the worker's thread or the web's event loop.
* :class:`Notices` — what the web pages use: leave or withdraw a contact on a ticket page,
  mark a document ready (clerk panel, a manager's list).

Why a thread in the server and not a separate ``numerek-notify`` service: the worker wakes
it the moment a call is committed (no polling delay, no second process watching the file),
it shares the server's clock and config, and a Pi runs one unit fewer. The outbox's
record-before-send makes a ``kill -9`` of the server harmless either way.

Writers of the notification tables besides the worker: the sender (its own rows' states) and
:meth:`Notices.subscribe` (one contact row). Both use their own connection with a busy
timeout; a subscription takes the engine lock, so it is never interleaved with a batch (the
listener's memory and the table agree).

Personal data: phone numbers and addresses are in ``notify_contacts`` and the outbox's
``notices`` only, never in a log line (a phone number is logged as ``+48…00`` at most) and
never in a report or export (those read ``tickets`` and ``events``).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from notify import optout
from notify import outbox as ob
from notify.config import NotifyConfig
from notify.gateways import Gateway, open_gateway
from notify.gateways.gammu import GammuGateway
from notify.message import Channel, NoticeKind
from notify.phone import InvalidPhoneNumber, normalise
from protocol import config as config_loader
from server.config import Names, Notifications, SiteConfig
from server.domain import EventKind, Ticket, TicketStatus
from server.engine import Changes, QueueEngine

log = logging.getLogger(__name__)

CONSENT_VERSION = "ticket-v1"
"""Which consent sentence the resident ticked (the page's text; a new wording gets a new id)."""
CALLED_VALID = timedelta(minutes=15)
"""A "you are called" older than this is pointless (the call is over): it expires instead."""
NEAR_VALID = timedelta(hours=12)
"""A safe bound for "your turn is near"; it is cancelled anyway when the ticket is called or ends."""
PICKUP_VALID = timedelta(days=14)
"""A pick-up notice not sent in two weeks (a gateway down that long) is pointless: it expires."""
ENDS = (EventKind.FINISH, EventKind.NO_SHOW, EventKind.CANCEL)
SEND_EVERY_S = 5.0
POLL_EVERY_S = 60.0
ERASE_EVERY_S = 300.0


PHONE_REASONS: dict[str, dict[str, str]] = {
    # notify/phone.py's reasons (English) in Polish and Ukrainian (resident's form, clerk's pages)
    "no number given": {"pl": "brak numeru", "uk": "номер не вказано"},
    "too long for a phone number": {"pl": "za długi jak na numer telefonu", "uk": "задовгий для номера телефону"},
    "not a phone number": {"pl": "to nie jest numer telefonu", "uk": "це не номер телефону"},
    "wrong number of digits": {"pl": "zła liczba cyfr", "uk": "неправильна кількість цифр"},
    "no such number in its country's numbering plan": {
        "pl": "takiego numeru nie ma w planie numeracji",
        "uk": "такого номера немає в плані нумерації",
    },
    "not a mobile number: text messages cannot reach it": {
        "pl": "to nie jest numer komórkowy",
        "uk": "це не мобільний номер",
    },
}


class ContactError(ValueError):
    """Why a contact was not accepted: ``code`` picks the resident's sentence (server/notify_web.py)."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(code if not detail else f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass
class Contact:
    ticket_id: int
    token: str
    channel: Channel
    recipient: str
    lang: str
    near: bool = False

    def shown(self) -> str:
        """For the resident's own page: enough to recognise, not enough to read off a screen."""
        return shown(self.channel, self.recipient)


def shown(channel: Channel, recipient: str) -> str:
    if channel is Channel.SMS:
        return f"{recipient[:3]} … {recipient[-3:]}"
    user, _, domain = recipient.partition("@")
    return f"{user[:1]}…@{domain}"


def parse_contact(raw: str, config: NotifyConfig) -> tuple[Channel, str]:
    """A phone number or an e-mail address as typed → (channel, normalised recipient).

    Raises :class:`ContactError` ("empty", "email", "phone", "no_sms", "no_email")."""
    text = raw.strip()
    if not text:
        raise ContactError("empty")
    if "@" in text:
        if len(text) > 254 or not ob.EMAIL.match(text):
            raise ContactError("email")
        if config.email is None:
            raise ContactError("no_email")
        return Channel.EMAIL, text
    try:
        number = normalise(text, config.notify.default_region)
    except InvalidPhoneNumber as exc:
        raise ContactError("phone", str(exc)) from None
    if config.sms is None:
        raise ContactError("no_sms")
    return Channel.SMS, number


def _name(value: Names | str, lang: str) -> str:
    if isinstance(value, str):
        return value
    return getattr(value, lang, None) or value.pl


def _names(value: Names) -> dict[str, str]:
    return value.as_dict()


# ---------------------------------------------------------------------- in the batch


class NoticeListener:
    """Keeps the outbox in step with the queue, in the worker's batch transaction."""

    def __init__(self, settings: Notifications, site: Callable[[], SiteConfig], wake: Callable[[], None]) -> None:
        self.settings = settings
        self.site = site
        self.wake = wake
        self.contacts: dict[int, Contact] = {}
        self.by_token: dict[str, Contact] = {}
        self._staged: list[Callable[[], None]] = []  # memory changes, applied once the batch is on disk
        self._enqueued = False

    def load(self, conn: sqlite3.Connection) -> None:
        rows = conn.execute(
            "SELECT ticket_id, token, channel, recipient, lang, near_at FROM notify_contacts WHERE ended_at IS NULL"
        )
        for tid, token, channel, recipient, lang, near_at in rows:
            self._add(Contact(tid, token, Channel(channel), recipient, lang, near_at is not None))

    def _add(self, c: Contact) -> None:
        self.contacts[c.ticket_id] = c
        self.by_token[c.token] = c

    def _drop(self, tid: int) -> None:
        c = self.contacts.pop(tid, None)
        if c is not None:
            self.by_token.pop(c.token, None)

    # -- BatchListener
    def write(self, conn: sqlite3.Connection, changes: Changes, engine: QueueEngine) -> None:
        self._staged = []
        self._enqueued = False
        if not self.contacts:
            return
        now = engine.now()
        for ev in changes.events:
            c = self.contacts.get(ev.ticket_id or -1)
            if c is None:
                continue
            if ev.kind in (EventKind.CALL, EventKind.RECALL):
                self._called(conn, c, ev.counter or "", engine, now)
            elif ev.kind in ENDS:
                self._ended(conn, c, now)
        waiting: dict[str, list[tuple[int, Contact, Ticket]]] = {}
        for c in list(self.contacts.values()):
            ticket = engine.tickets.get(c.ticket_id)
            if ticket is None:  # ended without an event of its own (the office day rolled over)
                self._ended(conn, c, now)
            elif not c.near and ticket.status == TicketStatus.WAITING:
                ahead = engine.people_ahead_of(ticket)
                if ahead is not None:
                    waiting.setdefault(ticket.service, []).append((ahead, c, ticket))
        # Front to back per service, stopping at the first ticket that is not near yet: the
        # ones behind it are not either (more people ahead, a longer estimate). Why: the
        # estimate costs ~1 ms a ticket, and this runs on the worker's thread in every batch
        # (bench/notify_server_bench.py: 200 subscribed tickets cost 140 ms a batch without it).
        for group in waiting.values():
            group.sort(key=lambda item: item[0])
            for ahead, c, ticket in group:
                if not self.maybe_near(conn, c, ticket, engine, now, ahead):
                    break

    def committed(self, changes: Changes) -> None:
        for step in self._staged:
            step()
        self._staged = []
        if self._enqueued:
            self.wake()

    # -- rules
    def maybe_near(
        self,
        conn: sqlite3.Connection,
        c: Contact,
        ticket: Ticket,
        engine: QueueEngine,
        now: datetime,
        ahead: int | None = None,
    ) -> bool:
        """Enqueue "your turn is near" if the ticket crossed its service's threshold."""
        ahead = engine.people_ahead_of(ticket) if ahead is None else ahead
        if ahead is None:
            return False
        rule = self.settings.threshold(ticket.service)
        if ahead > rule.people and rule.minutes == 0:
            return False  # the estimate is not asked for: it costs more than the count on the worker's thread
        estimate = engine.estimate_for(ticket)
        minutes = round(estimate.point_s / 60) if estimate is not None else None
        if ahead > rule.people and (minutes is None or minutes > rule.minutes):
            return False
        payload = {"ticket": ticket.number, "ahead": ahead, "minutes": "?" if minutes is None else minutes}
        self._enqueue(conn, c, "near", NoticeKind.TURN_NEAR, payload, now, now + NEAR_VALID)
        at = now.timestamp()
        conn.execute("UPDATE notify_contacts SET near_at = ? WHERE ticket_id = ?", (at, c.ticket_id))
        self._staged.append(lambda: setattr(c, "near", True))
        return True

    def _called(self, conn: sqlite3.Connection, c: Contact, counter: str, engine: QueueEngine, now: datetime) -> None:
        cfg = engine.counter_config.get(counter)
        ticket = engine.tickets.get(c.ticket_id)
        number = ticket.number if ticket is not None else ""
        payload: dict[str, Any] = {
            "ticket": number,
            "counter": cfg.name if cfg else counter,
            "place": self.place(counter, cfg.zone if cfg else ""),
        }
        at = now.timestamp()
        ob.cancel(conn, f"ticket:{c.ticket_id}:near", at, "called before it went out")
        self._enqueue(conn, c, "called", NoticeKind.CALLED, payload, now, now + CALLED_VALID)

    def place(self, counter: str, zone: str) -> dict[str, str] | str:
        places = self.settings.places
        if counter in places:
            return _names(places[counter])
        own = self.site().counter(counter)  # the place the hall display shows ([[counters]] place)
        if own is not None and own.place is not None:
            return _names(own.place)
        if zone in places:
            return _names(places[zone])
        public = self.site().public.zone_names
        return _names(public[zone]) if zone in public else zone

    def _ended(self, conn: sqlite3.Connection, c: Contact, now: datetime) -> None:
        at = now.timestamp()
        for what in ("near", "called"):  # not sent yet: pointless now
            ob.cancel(conn, f"ticket:{c.ticket_id}:{what}", at, "the ticket ended")
        if self.settings.retention_hours == 0:
            conn.execute("DELETE FROM notify_contacts WHERE ticket_id = ?", (c.ticket_id,))
        else:
            conn.execute("UPDATE notify_contacts SET ended_at = ? WHERE ticket_id = ?", (at, c.ticket_id))
        tid = c.ticket_id
        self._staged.append(lambda: self._drop(tid))

    def _enqueue(
        self,
        conn: sqlite3.Connection,
        c: Contact,
        what: str,
        kind: NoticeKind,
        payload: Mapping[str, Any],
        now: datetime,
        expires: datetime,
    ) -> None:
        added = ob.enqueue(
            conn,
            notice=f"ticket:{c.ticket_id}:{what}",
            recipient=c.recipient,
            channel=c.channel,
            kind=kind,
            lang=c.lang,
            payload=payload,
            now=now.timestamp(),
            expires_at=expires.timestamp(),
        )
        self._enqueued = self._enqueued or added is not None


# ---------------------------------------------------------------------- the sender thread


class NoticeSender:
    """The outbox's loop on its own thread and connection (see the module's docstring)."""

    def __init__(
        self,
        path: str,
        config: NotifyConfig,
        settings: Notifications,
        clock: Callable[[], datetime],
        gateways: Mapping[str, Gateway] | None = None,
        optout_key: bytes | None = None,
    ) -> None:
        self.path = path
        self.config = config
        self.settings = settings
        self.clock = clock
        self.optout_key = optout_key
        self.words = optout.Words(tuple(settings.optout_words))
        self._gateways = dict(gateways) if gateways is not None else None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="notify-sender", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _now(self) -> float:
        return self.clock().timestamp()

    def _routes(self) -> dict[Channel, ob.Route]:
        gateways = self._gateways
        if gateways is None:
            names = {n for n in (self.config.sms, self.config.email) if n}
            gateways = {name: open_gateway(self.config.gateways[name]) for name in names}
            self._gateways = gateways
        routes: dict[Channel, ob.Route] = {}
        if self.config.sms:
            routes[Channel.SMS] = ob.Route(self.config.sms, gateways[self.config.sms])
        if self.config.email:
            routes[Channel.EMAIL] = ob.Route(self.config.email, gateways[self.config.email])
        return routes

    def _run(self) -> None:
        conn = ob.connect(self.path)
        outbox: ob.Outbox | None = None
        next_poll = next_erase = 0.0
        try:
            while not self._stop.is_set():
                try:
                    if outbox is None:
                        outbox = ob.Outbox(
                            conn, self.config.notify, self._routes(), clock=self._now, optout_key=self.optout_key
                        )
                        recovered = outbox.recover()
                        if recovered:
                            log.warning("notify: %d message(s) were being sent when the server stopped", recovered)
                    try:
                        self.read_replies(conn, outbox)
                    except sqlite3.Error:  # a reply waits for the next loop; the sending below goes on
                        log.warning("notify: could not record an SMS reply; trying again", exc_info=True)
                    while outbox.run_once() and not self._stop.is_set():
                        pass
                    mono = time.monotonic()
                    if mono >= next_poll:
                        outbox.poll_deliveries()
                        next_poll = mono + POLL_EVERY_S
                    if mono >= next_erase:
                        self.erase(conn, outbox)
                        next_erase = mono + ERASE_EVERY_S
                    self.last_error = None
                except Exception as exc:  # noqa: BLE001 - a disk or gateway problem: say so, try again later
                    if self.last_error != type(exc).__name__:
                        log.error("notify: the sender failed (%s); retrying", type(exc).__name__, exc_info=True)
                    self.last_error = type(exc).__name__
                self._wake.wait(SEND_EVERY_S)
                self._wake.clear()
        finally:
            for gateway in (self._gateways or {}).values():
                try:
                    gateway.close()
                except Exception:  # noqa: BLE001
                    log.debug("closing a gateway failed", exc_info=True)
            conn.close()

    def read_replies(self, conn: sqlite3.Connection, outbox: ob.Outbox) -> int:
        """Replies gammu-smsd received (its inbox folder): an opt-out word acts, the file goes."""
        route = outbox.routes.get(Channel.SMS)
        if route is None or self.optout_key is None or not isinstance(route.gateway, GammuGateway):
            return 0
        handled = 0
        for incoming in route.gateway.take_inbox():
            with ob.transaction(conn):
                reply = optout.record(
                    conn,
                    self.optout_key,
                    self.words,
                    incoming.sender,
                    incoming.text,
                    route.name,
                    self._now(),
                    self.config.notify.default_region,
                )
            incoming.forget()
            handled += 1
            log.info("notify: an SMS reply through %s: %s", route.name, reply.value)  # never the number
        return handled

    def erase(self, conn: sqlite3.Connection, outbox: ob.Outbox) -> tuple[int, int]:
        """Erase contact data ``retention_hours`` after use: contacts of ended tickets (and of
        tickets a day past their last day), and recipients of finished notices."""
        before = self._now() - self.settings.retention_hours * 3600.0
        with ob.transaction(conn):
            cur = conn.execute(
                "DELETE FROM notify_contacts WHERE ended_at < ? OR (ended_at IS NULL AND consent_at < ?)",
                (before, before - 86400.0),
            )
        contacts = cur.rowcount
        notices = outbox.erase_personal_data(before)
        if contacts or notices:
            log.info("notify: erased %d contact(s) and %d notice recipient(s)", contacts, notices)
        return contacts, notices


# ---------------------------------------------------------------------- what web pages use


@dataclass
class PageState:
    """What the ticket page shows about notifications."""

    subscribed: str | None  # "+48 … 200" / "j…@example.pl", or None
    channels: list[str] = field(default_factory=list)  # what may be left: "sms", "email"
    can_subscribe: bool = False


class Notices:
    def __init__(
        self,
        path: str,
        settings: Notifications,
        config: NotifyConfig,
        engine: QueueEngine,
        lock: threading.RLock,
        clock: Callable[[], datetime],
        gateways: Mapping[str, Gateway] | None = None,
    ) -> None:
        self.path = path
        self.settings = settings
        self.config = config
        self.engine = engine
        self.lock = lock
        self.clock = clock
        conn = ob.connect(path)
        ob.migrate(conn)
        self.conn = conn
        self._conn_lock = threading.Lock()
        key_file = Path(settings.optout_key_file) if settings.optout_key_file else Path(f"{path}.optout-key")
        self.optout_key = optout.load_key(key_file)
        self.words = optout.Words(tuple(settings.optout_words))
        self.sender = NoticeSender(path, config, settings, clock, gateways, self.optout_key)
        self.listener = NoticeListener(settings, lambda: engine.config, self.sender.wake)
        self.listener.load(conn)

    @classmethod
    def from_site(
        cls, site: SiteConfig, engine: QueueEngine, lock: threading.RLock, clock: Callable[[], datetime]
    ) -> Notices | None:
        if site.notify is None:
            return None
        config = config_loader.load(site.notify.config, NotifyConfig)  # ConfigError names the file and field
        return cls(site.storage.database, site.notify, config, engine, lock, clock)

    def start(self) -> None:
        self.sender.start()

    def stop(self) -> None:
        self.sender.stop()
        self.conn.close()

    @property
    def channels(self) -> list[str]:
        return [c for c in ("sms", "email") if getattr(self.config, c)]

    def page(self, token: str) -> PageState:
        c = self.listener.by_token.get(token)
        if c is not None:
            return PageState(c.shown(), self.channels, False)
        with self.lock:
            t = self.engine.ticket_by_token(token)
            waiting = t is not None and t.status == TicketStatus.WAITING
        return PageState(None, self.channels, waiting)

    def opted_out(self, channel: Channel, recipient: str) -> bool:
        """Did this number reply STOP (notify/optout.py)? E-mail addresses never are."""
        if channel is not Channel.SMS:
            return False
        with self._conn_lock:
            return optout.is_opted_out(self.conn, self.optout_key, recipient)

    def refuse_opted_out(self, channel: Channel, recipient: str) -> None:
        """The subscription path's check, for every form that takes a number (the ticket page,
        the kiosk's keypad): :class:`ContactError` "opted_out" if the number said STOP, so the
        resident reads why instead of waiting for messages that will never come."""
        if self.opted_out(channel, recipient):
            raise ContactError("opted_out")

    def incoming(self, sender: str, text: str, via: str) -> optout.Reply:
        """A reply a provider's webhook delivered (server/notify_web.py): acted on at once."""
        now = self.clock().timestamp()
        with self._conn_lock, ob.transaction(self.conn):
            reply = optout.record(
                self.conn, self.optout_key, self.words, sender, text, via, now, self.config.notify.default_region
            )
        if reply is optout.Reply.OPTED_OUT:
            self.sender.wake()
        return reply

    def subscribe(self, token: str, raw: str, lang: str, consent: bool, via: str = "page") -> Contact:
        """Leave a phone number or an address on a waiting ticket. Nothing is stored on a
        :class:`ContactError` ("consent", "empty", "email", "phone", "no_sms", "no_email",
        "opted_out", "not_waiting"). Replaces the ticket's earlier contact (a typo fixed).
        ``via``: "page" or "kiosk", kept (without the contact) for the managers' reports."""
        if not consent:
            raise ContactError("consent")
        channel, recipient = parse_contact(raw, self.config)
        self.refuse_opted_out(channel, recipient)
        with self.lock:  # not interleaved with a batch: the listener's memory and the table agree
            ticket = self.engine.ticket_by_token(token)
            if ticket is None or ticket.status != TicketStatus.WAITING:
                raise ContactError("not_waiting")
            now = self.engine.now()
            old = self.listener.contacts.get(ticket.id)
            contact = Contact(ticket.id, token, channel, recipient, lang, near=old.near if old else False)
            with self._conn_lock, ob.transaction(self.conn):
                self.conn.execute(
                    """INSERT INTO notify_contacts (ticket_id, day, token, channel, recipient, lang, consent_at, consent)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT (ticket_id) DO UPDATE SET channel = excluded.channel,
                         recipient = excluded.recipient, lang = excluded.lang, consent_at = excluded.consent_at,
                         consent = excluded.consent""",
                    (
                        ticket.id,
                        ticket.day.isoformat(),
                        token,
                        channel.value,
                        recipient,
                        lang,
                        now.timestamp(),
                        CONSENT_VERSION,
                    ),
                )
                self.conn.execute(
                    """INSERT INTO notify_subscriptions (ticket_id, day, channel, via) VALUES (?, ?, ?, ?)
                       ON CONFLICT (ticket_id) DO UPDATE SET channel = excluded.channel""",
                    (ticket.id, ticket.day.isoformat(), channel.value, via),
                )
                if old is not None and old.recipient != recipient:
                    ob.cancel(self.conn, f"ticket:{ticket.id}:near", now.timestamp(), "contact replaced")
                listener = self.listener
                listener._staged = []
                listener._enqueued = False
                if not contact.near:
                    listener.maybe_near(self.conn, contact, ticket, self.engine, now)
            listener._add(contact)
            listener.committed(Changes())
        return contact

    def document_ready(self, user: str, source: str, rows: list[Any], payloads: list[dict[str, Any]]) -> int:
        """Enqueue "your document is ready" for checked rows (server/pickups.py), all or none,
        with the clerk's record; returns how many are new (a case already announced to the
        same contact is not announced twice)."""
        now = self.clock().timestamp()
        added = 0
        with self._conn_lock, ob.transaction(self.conn):
            for row, values in zip(rows, payloads, strict=True):
                notice = f"case:{row.reference}:ready"
                new = ob.enqueue(
                    self.conn,
                    notice=notice,
                    recipient=row.recipient,
                    channel=row.channel,
                    kind=NoticeKind.DOCUMENT_READY,
                    lang=row.lang,
                    payload=values,
                    now=now,
                    expires_at=now + PICKUP_VALID.total_seconds(),
                )
                if new is None:
                    continue
                added += 1
                self.conn.execute(
                    """INSERT INTO notify_pickups (at, user, source, reference, service, document, channel, notice)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                    (now, user, source, row.reference, row.service, row.document, row.channel.value, notice),
                )
        if added:
            self.sender.wake()
        return added

    def unsubscribe(self, token: str) -> bool:
        """The resident withdraws: the contact and its pending notices go at once."""
        with self.lock:
            c = self.listener.by_token.get(token)
            if c is None:
                return False
            now = self.engine.now().timestamp()
            with self._conn_lock, ob.transaction(self.conn):
                for what in ("near", "called"):
                    ob.cancel(self.conn, f"ticket:{c.ticket_id}:{what}", now, "withdrawn by the resident")
                self.conn.execute("DELETE FROM notify_contacts WHERE ticket_id = ?", (c.ticket_id,))
            self.listener._drop(c.ticket_id)
        return True
