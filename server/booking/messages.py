"""A booking's confirmation and reminder, written to the notification outbox with the booking.

Why here and in the booking's own transaction: :class:`BookingStore` writes each booking in
one ``BEGIN IMMEDIATE`` transaction on its connection; it calls these hooks inside it, so the
booking row and its messages (``notify.outbox.enqueue``, only INSERTs into the same SQLite
file) are committed together — a booking is never without its confirmation, a confirmation
never without its booking, and a cancelled booking never keeps a pending reminder. The
server's ``notify-sender`` thread (server/notices.py) sends them like every other notice.

Notices (one row per notice and recipient, ``UNIQUE`` in the outbox):

* ``booking:<id>:confirmed:<start>`` at once (a moved booking is confirmed again, for its new time);
* ``booking:<id>:reminder:<start>`` not before ``remind_hours`` before the visit (not written
  when that moment has passed already: the confirmation says the same), cancelled with the
  booking or when it moves (a new one is written for the new time).

Both expire at the visit's start. A contact the office cannot reach (a landline for SMS, a
channel without a gateway) gets no message; the booking stands (its page shows everything).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta

from notify import outbox as ob
from notify.config import NotifyConfig
from notify.message import Channel, NoticeKind
from notify.phone import InvalidPhoneNumber, normalise
from server.config import SiteConfig

log = logging.getLogger(__name__)


def _names(value: object) -> dict[str, str] | str:
    as_dict = getattr(value, "as_dict", None)
    return as_dict() if as_dict is not None else str(value)


class BookingMessages:
    """The store's hooks (``booked``, ``moved``, ``cancelled``, ``committed``) for one server."""

    def __init__(self, config: Callable[[], SiteConfig], notify: NotifyConfig, wake: Callable[[], None]) -> None:
        self._config = config
        self.notify = notify
        self.wake = wake
        self._wrote = False

    # -- what to send
    def _recipient(self, row: sqlite3.Row) -> tuple[Channel, str] | None:
        contact, kind = row["contact"], row["contact_kind"]
        if not contact:
            return None
        if kind == "email":
            return (Channel.EMAIL, contact) if self.notify.email else None
        if not self.notify.sms:
            return None
        try:
            return Channel.SMS, normalise(contact, self.notify.notify.default_region)
        except InvalidPhoneNumber:
            return None  # a landline: the booking stands, without messages

    def _payload(self, row: sqlite3.Row) -> dict[str, object]:
        cfg = self._config()
        service = cfg.service(row["service"])
        start = datetime.fromtimestamp(row["starts_at"], cfg.office.tz)
        zone = service.zone if service is not None else ""
        where: object = cfg.office.name
        if cfg.notify is not None and zone in cfg.notify.places:
            where = cfg.notify.places[zone]
        elif zone in cfg.public.zone_names:
            where = cfg.public.zone_names[zone]
        code = row["code"]
        return {
            "service": _names(service.name) if service is not None else row["service"],
            "at": start.isoformat(),
            "where": _names(where),
            "code": f"{code[:3]}-{code[3:]}",
            "link": f"{cfg.http.public_url.rstrip('/')}/wizyta/{row['token']}?lang={row['lang']}",
        }

    def _write(self, conn: sqlite3.Connection, row: sqlite3.Row, now: datetime) -> None:
        to = self._recipient(row)
        if to is None:
            log.info("booking %s: no confirmation (no gateway for this contact)", row["id"])
            return
        channel, recipient = to
        at, start = now.timestamp(), float(row["starts_at"])
        if start <= at:
            return
        payload = self._payload(row)
        lang = row["lang"] if row["lang"] in ("pl", "en", "uk") else "pl"
        base, stamp = f"booking:{row['id']}", int(start)

        def enqueue(what: str, kind: NoticeKind, not_before: float | None = None) -> None:
            ob.enqueue(
                conn,
                notice=f"{base}:{what}:{stamp}",
                recipient=recipient,
                channel=channel,
                kind=kind,
                lang=lang,
                payload=payload,
                now=at,
                not_before=not_before,
                expires_at=start,
            )

        enqueue("confirmed", NoticeKind.BOOKING_CONFIRMED)
        hours = self._config().booking.remind_hours
        remind = start - timedelta(hours=hours).total_seconds()
        if hours and remind > at:
            enqueue("reminder", NoticeKind.BOOKING_REMINDER, remind)
        self._wrote = True

    # -- the store's hooks, inside its transaction
    def booked(self, conn: sqlite3.Connection, row: sqlite3.Row, now: datetime) -> None:
        self._write(conn, row, now)

    def moved(self, conn: sqlite3.Connection, old: sqlite3.Row, new: sqlite3.Row, now: datetime) -> None:
        self.cancelled(conn, old, now, "the booking moved")
        self._write(conn, new, now)

    def cancelled(
        self, conn: sqlite3.Connection, old: sqlite3.Row, now: datetime, why: str = "the booking was cancelled"
    ) -> None:
        stamp = int(old["starts_at"])
        for what in ("confirmed", "reminder"):
            ob.cancel(conn, f"booking:{old['id']}:{what}:{stamp}", now.timestamp(), why)

    def committed(self) -> None:
        """After the store's COMMIT: wake the sender for the confirmation."""
        if self._wrote:
            self._wrote = False
            self.wake()
