"""A simulated office in one TOML file: who comes when, how long they take, who works.

Why a file: the estimate printed on tickets must be judged on many different offices and
bad days (a Monday rush, a bus at 11:00, three clerks on a break at once, a counter that
opens late), and on offices the estimator was never tuned on. Each of those is a scenario
file in ``scenarios/``; docs/estimates.md documents every field. Validated with pydantic
like the site config, so a typo names its field instead of quietly simulating something else.

The office itself (services, hours, counters and their preferences) is an ordinary site
config, inline under ``[site]`` or named by ``site_config`` (relative to the scenario file).
"""

from __future__ import annotations

import math
import random
import tomllib
from datetime import date, time, timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from protocol.config import ConfigError, problem
from server.config import WEEKDAYS, SiteConfig, load_config

Share = Annotated[float, Field(ge=0, le=1)]
Minutes = Annotated[float, Field(ge=0, le=24 * 60)]
Weekday = Annotated[str, Field(pattern=r"^(mon|tue|wed|thu|fri|sat|sun)$")]

DEFAULT_HOUR_SHAPE = {7: 0.3, 8: 0.8, 9: 1.0, 10: 0.95, 11: 0.8, 12: 0.6, 13: 0.65, 14: 0.7, 15: 0.5, 16: 0.4}
DEFAULT_WEEKDAYS = {"mon": 1.25, "tue": 1.0, "wed": 1.05, "thu": 0.95, "fri": 0.75, "sat": 0.4, "sun": 0.3}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _ordered(value: tuple[float, float]) -> tuple[float, float]:
    if value[0] > value[1]:
        raise ValueError(f"a range is [low, high], got {list(value)}")
    return value


Range = Annotated[tuple[float, float], AfterValidator(_ordered)]
"""``[low, high]``: a value drawn uniformly between them."""


def _hour_table(value: dict[str, float]) -> dict[int, float]:
    out: dict[int, float] = {}
    for key, share in value.items():
        if not key.isdigit() or not 0 <= int(key) <= 23:
            raise ValueError(f"hour keys are '0'..'23', got {key!r}")
        if share < 0:
            raise ValueError(f"hour {key}: a share cannot be negative")
        out[int(key)] = float(share)
    return out


class ServiceTime(_Strict):
    """Minutes a client of the service takes at the counter: lognormal with this mean and CV."""

    mean_min: Annotated[float, Field(gt=0, le=240)]
    cv: Annotated[float, Field(ge=0, le=3)] = 0.8
    min_s: Annotated[float, Field(ge=0, le=600)] = 20.0

    def draw(self, rng: random.Random) -> float:
        mean = self.mean_min * 60
        if self.cv == 0:
            return max(self.min_s, mean)
        sigma2 = math.log(1 + self.cv**2)
        mu = math.log(mean) - sigma2 / 2
        return max(self.min_s, rng.lognormvariate(mu, math.sqrt(sigma2)))


class ServiceArrivals(_Strict):
    per_hour: Annotated[float, Field(ge=0, le=1000)]
    """Arrivals per hour at the day's peak (hour share 1.0) on a weekday with factor 1.0."""
    priority: Share = 0.03
    """Share of tickets taken on the priority path."""
    hours: dict[str, float] | None = None
    """This service's own day shape (hour -> share of ``per_hour``), instead of the office's."""

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is not None:
            _hour_table(value)
        return value


class MonthStart(_Strict):
    days: Annotated[int, Field(ge=1, le=10)] = 3
    """The first this many office days of a month are busier..."""
    factor: Annotated[float, Field(gt=0, le=10)] = 1.3
    """...by this factor."""


class Arrivals(_Strict):
    hours: dict[str, float] = Field(default_factory=lambda: {str(h): s for h, s in DEFAULT_HOUR_SHAPE.items()})
    """Local hour -> share of the peak rate. Hours not listed get nobody."""
    weekdays: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_WEEKDAYS))
    month_start: MonthStart | None = None
    early_min: Minutes = 15.0
    """Residents arrive up to this long before a service opens; they get tickets at opening."""
    services: dict[str, ServiceArrivals]

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: dict[str, float]) -> dict[str, float]:
        _hour_table(value)
        return value

    @field_validator("weekdays")
    @classmethod
    def _weekdays(cls, value: dict[str, float]) -> dict[str, float]:
        for day, factor in value.items():
            if day not in WEEKDAYS or factor < 0:
                raise ValueError(f"weekday factors are mon..sun -> a factor >= 0, got {day!r}: {factor}")
        return value

    def shape(self, service: str) -> dict[int, float]:
        own = self.services[service].hours
        return _hour_table(own if own is not None else self.hours)


class Break(_Strict):
    """A clerk's break: starts at a random moment in [at, at + spread_min], lasts ``minutes``."""

    at: time
    spread_min: Minutes = 0.0
    minutes: Range = (15.0, 15.0)
    share: Share = 1.0
    """Probability the clerk takes this break on a given day."""


class Shift(_Strict):
    """Who works at a counter on which days: the staffing plan, breaks and late openings included."""

    counter: str
    days: list[Weekday] | None = None
    """Weekdays this shift applies to (default: every day one of the counter's services is open)."""
    dates: list[date] | None = None
    """Only these dates (a substitute, a one-off late opening); beats ``days``."""
    except_dates: list[date] = Field(default_factory=list)
    start: time | None = None
    """When the clerk opens the counter (default: when its first service opens)."""
    end: time | None = None
    """When the clerk stops taking new clients (default: when its last service closes)."""
    start_jitter_min: Range = (-5.0, 10.0)
    breaks: list[Break] = Field(default_factory=list)
    absent: Share = 0.0
    """Probability the counter is not staffed at all on a day (sick leave)."""

    def applies(self, day: date) -> bool:
        if day in self.except_dates:
            return False
        if self.dates is not None:
            return day in self.dates
        return self.days is None or WEEKDAYS[day.weekday()] in self.days


class Surge(_Strict):
    """A group arriving at once: a bus of 40 at 11:00."""

    service: str
    at: time
    count: Annotated[int, Field(ge=1, le=1000)]
    spread_min: Minutes = 10.0
    days: list[Weekday] | None = None
    dates: list[date] | None = None
    weeks: list[int] | None = None
    """Only in these weeks of the run (1 = the first week)."""
    priority: Share = 0.03

    def applies(self, day: date, week: int) -> bool:
        if self.weeks is not None and week not in self.weeks:
            return False
        if self.dates is not None:
            return day in self.dates
        return self.days is None or WEEKDAYS[day.weekday()] in self.days


class QuietDay(_Strict):
    date: date
    factor: Annotated[float, Field(ge=0, le=1)] = 0.3


class Transfer(_Strict):
    """After being served, this share of a service's clients is sent on to another service."""

    from_service: str = Field(alias="from")
    to_service: str = Field(alias="to")
    share: Share

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Appointments(_Strict):
    """Residents who booked (the site's ``[booking.plans]`` give the slots; docs/estimates.md, "Appointments").

    Each seat of each slot is booked with probability ``fill``; a booked one is cancelled
    beforehand with ``cancel`` (its time is free), never comes with ``no_show``, else checks
    in at the kiosk at its booked time plus a draw from ``arrive_min`` (negative: early).
    """

    fill: Share = 0.8
    cancel: Share = 0.05
    no_show: Share = 0.15
    arrive_min: tuple[float, float] = (-20.0, 10.0)


class Behaviour(_Strict):
    """How residents and clerks act between the button presses the engine sees."""

    no_show: Share = 0.05
    recall_after_s: Range = (45.0, 90.0)
    """A called resident who does not come is recalled once after this, then marked no-show."""
    walk_s: Range = (15.0, 60.0)
    """From the call to the counter."""
    start_pressed: Share = 0.7
    """Share of clerks who press START when the client arrives (it is optional)."""
    wake_s: Range = (2.0, 20.0)
    """An idle clerk notices a new ticket and presses NEXT after this."""
    turnaround_s: Range = (0.0, 0.0)
    """Paperwork after a client, before the clerk presses NEXT (0: NEXT at once)."""


class Scenario(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=80)]
    description: str = ""
    site: SiteConfig
    start: date
    """The first simulated day (the run covers whole weeks from it)."""
    weeks: Annotated[int, Field(ge=1, le=104)] = 5
    seed: int = 1
    arrivals: Arrivals
    service_times: dict[str, ServiceTime]
    staff: Annotated[list[Shift], Field(min_length=1)]
    surges: list[Surge] = Field(default_factory=list)
    quiet_days: list[QuietDay] = Field(default_factory=list)
    closed_dates: list[date] = Field(default_factory=list)
    """Holidays: nobody comes, nobody works."""
    transfers: list[Transfer] = Field(default_factory=list)
    behaviour: Behaviour = Behaviour()
    appointments: Appointments | None = None
    """Booked visits checked in at the kiosk, from the site's booking plans (none: walk-ins only)."""

    @model_validator(mode="after")
    def _cross_check(self) -> Scenario:
        services = {s.id for s in self.site.services}
        counters = {c.id for c in self.site.counters}
        for name, used in (
            ("arrivals.services", set(self.arrivals.services)),
            ("service_times", set(self.service_times)),
            ("surges", {s.service for s in self.surges}),
            ("transfers", {t.from_service for t in self.transfers} | {t.to_service for t in self.transfers}),
        ):
            unknown = used - services
            if unknown:
                raise ValueError(f"{name} names services the site does not have: {sorted(unknown)}")
        missing = (set(self.arrivals.services) | {t.to_service for t in self.transfers}) - set(self.service_times)
        if missing:
            raise ValueError(f"service_times needs an entry for {sorted(missing)}")
        if self.appointments is not None:
            if not self.site.booking.plans:
                raise ValueError("appointments need [booking.plans] in the site config")
            missing = set(self.site.booking.plans) - set(self.service_times)
            if missing:
                raise ValueError(f"service_times needs an entry for {sorted(missing)} (booked)")
        unknown_counters = {s.counter for s in self.staff} - counters
        if unknown_counters:
            raise ValueError(f"staff names counters the site does not have: {sorted(unknown_counters)}")
        return self

    # ------------------------------------------------------------------ derived

    def days(self, weeks: int | None = None) -> list[date]:
        n = 7 * (weeks if weeks is not None else self.weeks)
        return [self.start + timedelta(days=i) for i in range(n)]

    def week_of(self, day: date) -> int:
        return (day - self.start).days // 7 + 1

    def shift(self, counter: str, day: date) -> Shift | None:
        return next((s for s in self.staff if s.counter == counter and s.applies(day)), None)

    def day_factor(self, day: date, office_days_before_in_month: int) -> float:
        """Weekday, month start and quiet days multiply every service's arrival rate."""
        factor = self.arrivals.weekdays.get(WEEKDAYS[day.weekday()], 1.0)
        ms = self.arrivals.month_start
        if ms is not None and office_days_before_in_month < ms.days:
            factor *= ms.factor
        for q in self.quiet_days:
            if q.date == day:
                factor *= q.factor
        return factor


def parse_scenario(text: str, base_dir: Path | None = None, source: str = "scenario") -> Scenario:
    try:
        raw: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise problem(source, "", f"not valid TOML: {exc}") from exc
    site_path = raw.pop("site_config", None)
    if site_path is not None:
        if "site" in raw:
            raise problem(source, "site_config", "a scenario has either [site] or site_config, not both")
        path = Path(site_path)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        raw["site"] = load_config(path)
    try:
        return Scenario.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(source, [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()]) from None


def load_scenario(path: str | Path) -> Scenario:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise problem(p, "", f"cannot read it: {exc.strerror}") from exc
    return parse_scenario(text, base_dir=p.resolve().parent, source=str(p))
