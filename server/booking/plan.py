"""Which slots a service offers on a day, and how many residents each takes. Pure: no I/O.

Slots follow the service's opening hours (``[[services]] hours``): the first starts at the
opening time, each lasts ``slot_min``, the last ends by the closing time (less
``stop_before_close_min``). ``per_hour`` appointments are spread over the slots of every
hour from the opening, so the counters' time kept for bookings is even through the day
(6 an hour in 15-minute slots: 1, 2, 1, 2; 2 an hour in 20-minute slots: 0, 1, 1 — a slot
with room for nobody is not offered). No slots on public holidays (``[booking] holidays``,
the ``holidays`` package: Polish holidays by default, Easter included) and on the office's
``closures``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache

import holidays

from server.config import BookingPlan, SiteConfig


@dataclass(frozen=True)
class Slot:
    service: str
    start: datetime  # aware, in the office's zone
    end: datetime
    capacity: int

    @property
    def label(self) -> str:
        return self.start.strftime("%H:%M")


@lru_cache(maxsize=32)
def _holidays(country: str, year: int) -> dict[date, str]:
    return dict(holidays.country_holidays(country, years=year, language="pl" if country == "PL" else None).items())


def closed_reason(cfg: SiteConfig, day: date) -> str | None:
    """Why the office takes no bookings on ``day`` (a holiday's name, "closure"), or None."""
    if day in cfg.booking.closures:
        return "closure"
    if cfg.booking.holidays:
        name = _holidays(cfg.booking.holidays, day.year).get(day)
        if name:
            return name
    return None


def slots_on(cfg: SiteConfig, service_id: str, day: date) -> list[Slot]:
    """The slots ``service_id`` offers on ``day`` (empty: no plan, closed, a holiday)."""
    plan = cfg.booking.plans.get(service_id)
    service = cfg.service(service_id)
    if plan is None or service is None or closed_reason(cfg, day):
        return []
    hours = service.hours_on(day.weekday())
    if hours is None:
        return []
    tz = cfg.office.tz
    opens = datetime.combine(day, hours.opens, tz)
    closes = datetime.combine(day, hours.closes, tz) - timedelta(minutes=plan.stop_before_close_min)
    return list(_slots(service_id, plan, opens, closes))


def _slots(service_id: str, plan: BookingPlan, opens: datetime, closes: datetime) -> list[Slot]:
    def due(k: int) -> int:
        # appointments due by the end of slot k-1: a slot takes due(i + 1) - due(i), which
        # spreads per_hour evenly without rounding errors piling up over the day
        return k * plan.slot_min * plan.per_hour // 60

    out = []
    step = timedelta(minutes=plan.slot_min)
    i = 0
    while opens + step * (i + 1) <= closes:
        capacity = due(i + 1) - due(i)
        if capacity > 0:
            out.append(Slot(service_id, opens + step * i, opens + step * (i + 1), capacity))
        i += 1
    return out


def bookable(cfg: SiteConfig, slot: Slot, now: datetime) -> bool:
    """A slot may be booked now: far enough ahead (``notice_min``), not beyond ``days_ahead``."""
    plan = cfg.booking.plans[slot.service]
    today = now.astimezone(cfg.office.tz).date()
    return slot.start >= now + timedelta(minutes=plan.notice_min) and slot.start.date() <= today + timedelta(
        days=plan.days_ahead
    )


def days_open(cfg: SiteConfig, service_id: str, now: datetime) -> list[date]:
    """The days from today to ``days_ahead`` with at least one slot that may still be booked."""
    plan = cfg.booking.plans.get(service_id)
    if plan is None:
        return []
    today = now.astimezone(cfg.office.tz).date()
    out = []
    for n in range(plan.days_ahead + 1):
        day = today + timedelta(days=n)
        if any(bookable(cfg, s, now) for s in slots_on(cfg, service_id, day)):
            out.append(day)
    return out
