"""Helpers for engine tests: a settable clock and a small office config."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from server.config import parse_config

OFFICE = """
[office]
name = "Urząd Testowy"
timezone = "Europe/Warsaw"
day_starts = "05:00"

[[services]]
id = "rej"
prefix = "A"
name = { pl = "Rejestracja", en = "Registration" }
hours = { mon = "08:00-16:00", tue = "08:00-16:00", wed = "08:00-16:00", thu = "08:00-16:00", fri = "08:00-16:00" }
daily_limit = 50
cutoff_min = 30
target_wait_min = 20

[[services]]
id = "pj"
prefix = "B"
name = { pl = "Prawo jazdy", en = "Driving licences" }
hours = { mon = "08:00-16:00", tue = "08:00-16:00", wed = "08:00-16:00", thu = "08:00-16:00", fri = "08:00-16:00" }
target_wait_min = 15
priority = 1

[[services]]
id = "kasa"
prefix = "K"
name = { pl = "Kasa", en = "Cash desk" }
hours = { mon = "08:00-16:00", tue = "08:00-16:00", wed = "08:00-16:00", thu = "08:00-16:00", fri = "08:00-16:00" }
target_wait_min = 10

[[counters]]
id = "1"
name = "Stanowisko 1"
services = ["rej", "pj"]

[[counters]]
id = "2"
name = "Stanowisko 2"
services = ["pj", "rej"]

[[counters]]
id = "3"
name = "Kasa"
services = ["kasa"]
"""

# Monday 2026-11-23, 09:00 in Warsaw (UTC+1 in November).
MONDAY_9AM = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


class FakeClock:
    def __init__(self, start: datetime = MONDAY_9AM) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def office_config():
    return parse_config(OFFICE)


class Tokens:
    """Deterministic but unique tokens for tests."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"tok{self.n:06d}xxxxxxxxxx"
