"""Typed results of the report figures (docs/reports.md): what the dashboard, the JSON API,
the charts, the exports and the monthly report all read.

Why pydantic models rather than nested dicts: every consumer names the same fields, a typo
is a type error instead of a ``KeyError`` at a manager's click, and ``model_dump(mode="json")``
gives the JSON API exactly the shape it always had (seconds, shares 0..1, ISO dates).
The models are frozen: a computed summary is shared by the memo, the chart cache and the
exports, so nothing may change it after the fact.
"""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, PrivateAttr


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class TimeStats(_Frozen):
    """Seconds: count, mean, median, 90th percentile (``None`` for an empty set)."""

    n: int
    mean_s: float | None
    median_s: float | None
    p90_s: float | None


class WaitStats(TimeStats):
    """Wait from issue to first call, and how many called tickets waited no longer than their target."""

    max_s: float | None
    within_target: int
    within_target_share: float | None


class Ratings(_Frozen):
    """Client ratings 1..5: how many, their mean and the count of each grade ("1".."5")."""

    n: int
    mean: float | None
    counts: dict[str, int]


class Block(_Frozen):
    """The ticket figures of a set of tickets (the totals, or one service's row)."""

    issued: int
    served: int
    no_show: int
    transferred: int
    not_called: int
    wait: WaitStats
    service_time: TimeStats
    rating: Ratings


class ServiceRow(Block):
    service: str
    name: dict[str, str]
    target_wait_s: int


class StaffFigures(_Frozen):
    """A counter's or a clerk's figures: work done, open and busy hours, ratings."""

    served: int
    no_show: int
    open_h: float | None
    busy_h: float | None
    served_per_hour: float | None
    utilisation: float | None
    rating_n: int
    rating_mean: float | None


class CounterRow(StaffFigures):
    counter: str
    name: str


class ClerkRow(StaffFigures):
    clerk: str


class DayRow(_Frozen):
    day: date
    issued: int
    served: int
    no_show: int
    wait_mean_s: float | None
    within_target_share: float | None


class Heatmap(_Frozen):
    """Tickets issued in the whole period (totals, not averages) by local weekday × local hour.

    ``days`` counts the office days with tickets for each weekday, so a reader can turn a
    total into a per-day average without guessing how many Mondays the period had.
    """

    rows: str = "weekday (0 = Monday)"
    columns: str = "local hour"
    measure: str = "total tickets issued in the period"
    counts: list[list[int]]
    days: list[int]


class Summary(_Frozen):
    """Every figure of the dashboard for one set of filters."""

    filters: dict[str, str | None]
    office: str
    time_zone: str
    totals: Block
    by_service: list[ServiceRow]
    by_counter: list[CounterRow]
    by_clerk: list[ClerkRow]
    by_day: list[DayRow]
    arrivals_heatmap: Heatmap
    _digest: str | None = PrivateAttr(default=None)

    @property
    def date_from(self) -> date:
        return date.fromisoformat(self.filters["from"] or "")

    @property
    def date_to(self) -> date:
        return date.fromisoformat(self.filters["to"] or "")

    def digest(self) -> str:
        """A short fingerprint of the figures: the key of everything drawn from them (charts)."""
        if self._digest is None:
            self._digest = hashlib.blake2b(self.model_dump_json().encode(), digest_size=12).hexdigest()
        return self._digest

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
