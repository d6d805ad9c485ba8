"""Report periods a manager asks for by name, and the period each is compared with.

Why here and not in the page's script: the dashboard, the JSON API and the monthly report
must agree on what "last month" and "the previous period" are, and the office's "today"
comes from the server clock in the office's zone, never from the browser.

Comparison rules (docs/reports.md, "Periods and comparison"):

* whole calendar months (1st to last day) are compared with as many months just before
  (November with October, a quarter with the quarter before);
* a month so far (the 1st to day *d*) with the same days of the month before (1st to *d*,
  shortened to that month's length);
* a week or less with the same weekdays of the week before (Monday to today with last
  Monday to the same weekday: offices have busy Mondays);
* any other range with as many days just before it;
* "a year earlier" shifts both ends by one year (29 February becomes the 28th).
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

Compare = Literal["previous", "year", "none"]
COMPARE: tuple[Compare, ...] = ("previous", "year", "none")
PRESETS = ("this_week", "last_week", "this_month", "last_month", "same_month_last_year")


def month_end(d: date) -> date:
    return d.replace(day=calendar.monthrange(d.year, d.month)[1])


def add_months(d: date, months: int) -> date:
    """The same day ``months`` later (or earlier), shortened to the target month's length."""
    index = d.year * 12 + d.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(d.day, calendar.monthrange(year, month + 1)[1]))


def year_earlier(d: date) -> date:
    return add_months(d, -12)


@dataclass(frozen=True)
class Period:
    first: date
    last: date

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def whole_months(self) -> int:
        """How many calendar months the period covers exactly (0: not whole months)."""
        if self.first.day != 1 or self.last != month_end(self.last):
            return 0
        return (self.last.year - self.first.year) * 12 + self.last.month - self.first.month + 1


def preset(name: str, today: date) -> Period:
    """A named period relative to the office's ``today``; KeyError for an unknown name."""
    monday = today - timedelta(days=today.weekday())
    first_of_month = today.replace(day=1)
    last_month = add_months(first_of_month, -1)
    builders: dict[str, Callable[[], Period]] = {
        "this_week": lambda: Period(monday, today),
        "last_week": lambda: Period(monday - timedelta(days=7), monday - timedelta(days=1)),
        "this_month": lambda: Period(first_of_month, today),
        "last_month": lambda: Period(last_month, month_end(last_month)),
        "same_month_last_year": lambda: Period(year_earlier(first_of_month), month_end(year_earlier(first_of_month))),
    }
    return builders[name]()


def previous(p: Period) -> Period:
    """The period just before ``p`` that a manager compares it with (rules in the module docstring)."""
    months = p.whole_months()
    if months:
        first = add_months(p.first, -months)
        return Period(first, month_end(add_months(first, months - 1)))
    if p.first.day == 1 and p.first.year == p.last.year and p.first.month == p.last.month:
        return Period(add_months(p.first, -1), add_months(p.last, -1))
    shift = timedelta(days=7 if p.days <= 7 else p.days)  # a week or less: the same weekdays a week before
    return Period(p.first - shift, p.last - shift)


def compared(p: Period, how: Compare) -> Period | None:
    if how == "previous":
        return previous(p)
    if how == "year":
        return Period(year_earlier(p.first), year_earlier(p.last))
    return None
