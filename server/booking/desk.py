"""The booking desk: the one interface the booking pages, the reception and tools use.

Why a façade (as server/office.py is for the queue): the site, the clerk's phone booking
and the demo must apply the same rules — the slot exists in the plan, may still be booked
(notice, days ahead), has a free seat, the contact is under its limit. The rules live in
``plan.py`` and ``store.py``; this joins them with the live config and the server's clock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from server.booking import plan
from server.booking.contact import contact
from server.booking.store import BOOKED, Booking, BookingError, BookingStore
from server.config import SiteConfig

log = logging.getLogger(__name__)

ERASE_EVERY_S = 3600


@dataclass(frozen=True)
class FreeSlot:
    start: datetime  # office zone
    end: datetime
    free: int
    capacity: int

    @property
    def label(self) -> str:
        return self.start.strftime("%H:%M")


class BookingDesk:
    def __init__(self, store: BookingStore, config: Callable[[], SiteConfig], now: Callable[[], datetime]) -> None:
        self.store = store
        self._config = config
        self._now = now
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def config(self) -> SiteConfig:
        return self._config()

    def now(self) -> datetime:
        return self._now().astimezone(self.config.office.tz)

    def today(self) -> date:
        return self.now().date()

    # ------------------------------------------------------------------ what may be booked

    def services(self) -> list[str]:
        """Services that take bookings, in the config's order."""
        cfg = self.config
        return [s.id for s in cfg.services if s.id in cfg.booking.plans]

    def days(self, service: str) -> list[date]:
        return plan.days_open(self.config, service, self.now())

    def slots(self, service: str, day: date, include_full: bool = False) -> list[FreeSlot]:
        """The slots of ``day`` that may still be booked, with their free seats."""
        cfg, now = self.config, self.now()
        taken = self.store.taken(service, day)
        out = []
        for s in plan.slots_on(cfg, service, day):
            if not plan.bookable(cfg, s, now):
                continue
            free = max(0, s.capacity - taken.get(s.start.timestamp(), 0))
            if free or include_full:
                out.append(FreeSlot(s.start, s.end, free, s.capacity))
        return out

    def _slot(self, service: str, start: datetime) -> plan.Slot:
        cfg = self.config
        if service not in cfg.booking.plans:
            raise BookingError("unknown_service", "this service takes no bookings")
        local = start.astimezone(cfg.office.tz)
        for s in plan.slots_on(cfg, service, local.date()):
            if s.start == local:
                if not plan.bookable(cfg, s, self.now()):
                    raise BookingError("slot_unavailable", "this time can no longer be booked; please choose another")
                return s
        raise BookingError("slot_unavailable", "there is no such time to book; please choose another")

    # ------------------------------------------------------------------ changes

    def book(
        self, service: str, start: datetime, name: str, contact_text: str, channel: str = "online", lang: str = "pl"
    ) -> Booking:
        """Book, or raise :class:`BookingError` / :class:`ContactError` with nothing changed."""
        who = contact(name, contact_text)
        slot = self._slot(service, start)
        booking = self.store.book(
            service=service,
            start=slot.start,
            end=slot.end,
            day=slot.start.date(),
            capacity=slot.capacity,
            who=who,
            now=self.now(),
            per_contact=self.config.booking.per_contact,
            channel=channel,
            lang=lang,
        )
        log.info("booking %s: %s at %s (%s)", booking.id, service, slot.start.isoformat(), channel)
        return booking

    def cancel(self, token: str) -> Booking:
        booking = self.store.cancel(token, self.now())
        log.info("booking %s cancelled", booking.id)
        return booking

    def move(self, token: str, start: datetime) -> Booking:
        current = self.store.by_token(token)
        if current is None:
            raise BookingError("unknown", "no such booking")
        slot = self._slot(current.service, start)
        return self.store.move(
            token, start=slot.start, end=slot.end, day=slot.start.date(), capacity=slot.capacity, now=self.now()
        )

    def by_code(self, code: str) -> Booking | None:
        return self.store.by_code(code)

    def by_token(self, token: str) -> Booking | None:
        return self.store.by_token(token) if 16 <= len(token) <= 64 else None

    def on_day(self, day: date) -> list[Booking]:
        return self.store.on_day(day)

    def may_change(self, booking: Booking) -> bool:
        """A resident may still cancel or move: booked, and the time has not come."""
        return booking.status == BOOKED and booking.starts_at > self.now()

    # ------------------------------------------------------------------ erasure

    def erase_due(self) -> int:
        """Erase the personal data of visits more than ``retention_days`` ago."""
        before = self.today() - timedelta(days=self.config.booking.retention_days)
        erased = self.store.erase_due(before, self.now())
        if erased:
            log.info("erased the name and contact of %d past bookings (before %s)", erased, before)
        return erased

    def start(self) -> None:
        """Erase now and then every hour, in a daemon thread (stopped by :meth:`stop`)."""

        def run() -> None:
            while True:
                try:
                    self.erase_due()
                except Exception:  # noqa: BLE001  # a busy or full disk: try again next hour
                    log.exception("erasing past bookings' personal data failed; retrying in an hour")
                if self._stop.wait(ERASE_EVERY_S):
                    return

        self._thread = threading.Thread(target=run, name="booking-erase", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
