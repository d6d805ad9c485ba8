"""A small office that takes bookings, for the booking tests."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from server.booking.desk import BookingDesk
from server.booking.store import BookingStore
from server.config import SiteConfig, parse_config
from tests.engine_support import OFFICE, FakeClock

BOOKING = """
[booking]
retention_days = 14
per_contact = 2
closures = ["2026-11-27"]

[booking.plans.rej]
slot_min = 15
per_hour = 6
days_ahead = 14
notice_min = 60

[booking.plans.pj]
slot_min = 20
per_hour = 3
days_ahead = 7
notice_min = 0
"""

BOOKING_OFFICE = OFFICE + BOOKING


def booking_config(extra: str = "") -> SiteConfig:
    return parse_config(BOOKING_OFFICE + extra)


def make_desk(path: Path, clock: FakeClock | None = None, cfg: SiteConfig | None = None) -> BookingDesk:
    clock = clock or FakeClock()
    config = cfg or booking_config()
    return BookingDesk(BookingStore(str(path)), lambda: config, clock)


def local(cfg: SiteConfig, text: str) -> datetime:
    """``"2026-11-24 10:00"`` in the office's zone."""
    return datetime.fromisoformat(text).replace(tzinfo=cfg.office.tz)
