"""What residents and the office's web site see without a login: the live queue page, the
open-data feeds (Numerek's own, versioned, and one with the Warsaw district offices' field
names), the embeddable widget and the published monthly statistics (docs/public-status.md).

Why everything here is a read of a snapshot: thousands of phones may poll these pages at
an office's peak, on the same machine (a Raspberry Pi) whose worker issues tickets and
calls clients. The worker takes a :class:`~server.office.PublicSnapshot` when it publishes
the services list (at most every 0.1 s, server/worker.py); this module turns each snapshot
into bytes once per language and answers every request from those bytes, with an ETag so
an unchanged page costs a ``304 Not Modified``. No request takes the engine lock, writes,
or reaches the worker, and there is no route here that is not GET (or a CORS preflight).

No personal data: tickets are numbers, counters are places; no clerk, token or time of a
person's visit is shown. The statistics are aggregates with a minimum count
(:func:`publish_statistics`).

Live updates are polled, not pushed (server-sent events): docs/performance.md, "Public
status", has the measurements behind that choice.
"""

from __future__ import annotations

import asyncio
import calendar
import csv
import hashlib
import io
import secrets
import time as _time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from protocol.messages import ServiceInfo
from server.catalogue import languages, texts
from server.config import Hours, Public, SiteConfig
from server.office import Office, PublicSnapshot

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
LANGS = languages("public")
SCHEMA_VERSION: Literal["1.0"] = "1.0"
"""The open-data feed's schema version: a new optional field raises the minor number, a
renamed or removed one the major number and the URL (/api/public/v2/...)."""
TYPICAL_REFRESH_S = 60.0
"""How often the typical service times (one small read of today's finished tickets) are re-read."""


# --------------------------------------------------------------------------- the open-data feed (v1)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Names(_Out):
    pl: str
    en: str
    uk: str | None = Field(default=None, description="Ukrainian, when the office gave one")


class Zone(_Out):
    id: str = Field(description="the hall's id, as in the site config")
    name: Names


class NowCalled(_Out):
    number: str = Field(description="the ticket number called last today, e.g. A012", examples=["A012"])
    counter: str = Field(description="where it was called to, e.g. Stanowisko 3 (a place, never a person)")
    at: datetime = Field(description="when, in the office's time zone")


class WaitRange(_Out):
    low_min: int = Field(ge=0, description="the estimated wait, at least (minutes)")
    high_min: int = Field(
        ge=0, description="the estimated wait, at most (minutes); equal to low_min for a point estimate"
    )


class Tickets(_Out):
    issued_now: bool = Field(description="a ticket for this service can be taken now")
    reason: Literal["service_closed", "cut_off", "limit_reached"] | None = Field(
        description="why not: closed now, past today's last ticket time, or today's tickets all taken"
    )
    opens_at: str | None = Field(description="today's opening time HH:MM (null: closed all day)")
    closes_at: str | None = Field(description="today's closing time HH:MM (24:00: midnight)")
    last_ticket_at: str | None = Field(description="today's last time a ticket is issued (closing minus the cut-off)")
    daily_limit: int | None = Field(description="tickets issued at most per day (null: no limit)")
    left_today: int | None = Field(description="tickets still to be had today under the daily limit (null: no limit)")


class ServiceStatus(_Out):
    id: str
    letter: str = Field(description="the ticket numbers' prefix (A for A012)")
    name: Names
    zone: str = Field(description="the id of the hall where it is called (see zones)")
    waiting: int = Field(ge=0, description="people waiting for this service now")
    now_called: NowCalled | None = Field(description="the number called last today (null: none yet)")
    open_counters: int = Field(ge=0, description="counters open now that serve it")
    estimated_wait_min: WaitRange | None = Field(
        description="for someone who takes a ticket now (null: no ticket can be taken now, or no estimate)"
    )
    typical_service_min: int | None = Field(
        description="the median of today's last 25 visits, in whole minutes (null: none finished yet today)"
    )
    tickets: Tickets


class StatusFeed(_Out):
    """The live state of the office's queues: Numerek's open-data feed, version 1."""

    schema_version: Literal["1.0"] = "1.0"
    office: str
    time_zone: str = Field(description="IANA zone of every time here, e.g. Europe/Warsaw")
    generated_at: datetime = Field(description="the moment these figures describe (server time)")
    refresh_s: int = Field(description="the office asks clients to poll no more often than this")
    zones: list[Zone]
    services: list[ServiceStatus]


# --------------------------------------------------------------------------- the Warsaw-compatible feed


class Grupa(BaseModel):
    """One service ("grupa"), with the field names and JSON types of the Warsaw district
    offices' queue feed, so an app written for it reads a Numerek office unchanged."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    status: Literal["0", "1"] = Field(description='"1": tickets are issued now; "0": not now')
    czasObslugi: str = Field(pattern=r"^\d{1,3}$", description="typical service time, whole minutes, as a string")
    lp: str = Field(pattern=r"^[1-9]\d*$", description="ordinal of the group on the office's list, as a string")
    idGrupy: str = Field(
        pattern=r"^[1-9]\d*$", description="the group's number, as a string (its place in the site config)"
    )
    liczbaCzynnychStan: int = Field(ge=0, description="counters open now")
    nazwaGrupy: str = Field(description="the service's Polish name")
    literaGrupy: str = Field(description="the ticket letter(s)")
    liczbaKlwKolejce: int = Field(ge=0, description="people waiting")
    aktualnyNumer: str = Field(description='the number called last today, e.g. "A012"; "" if none yet')


class WynikWarszawa(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$", description="YYYY-MM-DD, office time")
    time: str = Field(pattern=r"^\d{2}:\d{2}$", description="HH:MM, office time")
    grupy: list[Grupa]


class FeedWarszawa(BaseModel):
    """The whole answer: ``{"result": {"date": ..., "time": ..., "grupy": [...]}}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    result: WynikWarszawa


WARSAW_FIELDS: dict[str, type] = {
    "status": str,
    "czasObslugi": str,
    "lp": str,
    "idGrupy": str,
    "liczbaCzynnychStan": int,
    "nazwaGrupy": str,
    "literaGrupy": str,
    "liczbaKlwKolejce": int,
    "aktualnyNumer": str,
}
"""The documented field names and JSON types of one ``grupy`` entry (docs/public-status.md)."""


# --------------------------------------------------------------------------- building them


def public_services(config: SiteConfig) -> list[str]:
    """The ids of the services shown publicly, in the order the manager chose."""
    chosen = config.public.services
    return list(chosen) if chosen is not None else [s.id for s in config.services]


def zone_names(config: SiteConfig, zone: str) -> Names:
    named = config.public.zone_names.get(zone)
    if named is not None:
        return Names(**named.model_dump())
    return Names(pl=zone, en=zone)


def _wait(info: ServiceInfo) -> WaitRange | None:
    """The range when the server sends one (``estimated_wait_range_min``, null: cannot estimate),
    else the single estimate as a range of one point."""
    if not info.available:
        return None
    if "estimated_wait_range_min" in type(info).model_fields:
        pair = getattr(info, "estimated_wait_range_min", None)
        return WaitRange(low_min=int(pair[0]), high_min=int(pair[1])) if pair is not None else None
    return WaitRange(low_min=info.estimated_wait_min, high_min=info.estimated_wait_min)


def build_status(snapshot: PublicSnapshot, config: SiteConfig, typical_s: dict[str, float]) -> StatusFeed:
    """The v1 feed from one snapshot: pure (the same inputs give the same feed)."""
    msg = snapshot.services
    now = msg.server_time
    infos = {s.id: s for s in msg.services}
    services = []
    for sid in public_services(config):
        info, svc = infos.get(sid), config.service(sid)
        if info is None or svc is None:
            continue
        hours = svc.hours_on(now.weekday())
        last = None
        if hours is not None:
            cut = datetime.combine(now.date(), hours.closes) - timedelta(minutes=svc.cutoff_min)
            last = Hours.clock(cut.time()) if svc.cutoff_min else Hours.clock(hours.closes)
        issued = snapshot.issued_today.get(sid, 0)
        call = snapshot.last_called.get(sid)
        typical = typical_s.get(sid)
        services.append(
            ServiceStatus(
                id=sid,
                letter=svc.prefix,
                name=Names(**svc.name.model_dump()),
                zone=svc.zone,
                waiting=info.waiting,
                now_called=NowCalled(number=call.number, counter=call.counter_name, at=call.at) if call else None,
                open_counters=info.open_counters,
                estimated_wait_min=_wait(info),
                typical_service_min=max(1, round(typical / 60)) if typical is not None else None,
                tickets=Tickets(
                    issued_now=info.available,
                    reason=info.reason.value if info.reason is not None else None,
                    opens_at=Hours.clock(hours.opens) if hours else None,
                    closes_at=Hours.clock(hours.closes) if hours else None,
                    last_ticket_at=last,
                    daily_limit=svc.daily_limit,
                    left_today=max(0, svc.daily_limit - issued) if svc.daily_limit is not None else None,
                ),
            )
        )
    zones = list(dict.fromkeys(s.zone for s in services))
    return StatusFeed(
        office=config.office.name,
        time_zone=config.office.timezone,
        generated_at=now,
        refresh_s=config.public.refresh_s,
        zones=[Zone(id=z, name=zone_names(config, z)) for z in zones],
        services=services,
    )


def build_warszawa(feed: StatusFeed, config: SiteConfig) -> FeedWarszawa:
    """The same moment with the Warsaw feed's names and types (docs/public-status.md has the mapping)."""
    number = {s.id: i for i, s in enumerate(config.services, start=1)}
    groups = [
        Grupa(
            status="1" if s.tickets.issued_now else "0",
            czasObslugi=str(min(999, s.typical_service_min or 0)),
            lp=str(i),
            idGrupy=str(number[s.id]),
            liczbaCzynnychStan=s.open_counters,
            nazwaGrupy=s.name.pl,
            literaGrupy=s.letter,
            liczbaKlwKolejce=s.waiting,
            aktualnyNumer=s.now_called.number if s.now_called else "",
        )
        for i, s in enumerate(feed.services, start=1)
    ]
    at = feed.generated_at
    return FeedWarszawa(result=WynikWarszawa(date=at.date().isoformat(), time=at.strftime("%H:%M"), grupy=groups))


# --------------------------------------------------------------------------- texts


TEXTS: dict[str, dict[str, str]] = {lang: texts("public", lang) for lang in LANGS}
"""Language -> key -> text, from the gettext catalogues in server/locale (server/catalogue.py)."""


def _lang(value: str | None) -> str:
    return value if value in LANGS else "pl"


def name_in(names: Names, lang: str) -> str:
    """The name in ``lang``; English where the office gave no Ukrainian one."""
    if lang == "pl":
        return names.pl
    return str(getattr(names, lang, None) or names.en)


class Words:
    """The page's sentences for one language (used by the templates; plain, testable)."""

    def __init__(self, lang: str, now: datetime | None = None) -> None:
        self.lang = lang
        self.t = TEXTS[lang]
        self.now = now

    def __getitem__(self, key: str) -> str:
        return self.t[key]

    def name(self, names: Names) -> str:
        return name_in(names, self.lang)

    def wait(self, s: ServiceStatus) -> str:
        r = s.estimated_wait_min
        if not s.tickets.issued_now:
            return self.t["wait_na"]
        if r is None:
            return self.t["wait_unknown"]
        if r.low_min == r.high_min:
            return self.t["about"].format(lo=r.low_min)
        if r.low_min == 0:
            return self.t["up_to"].format(hi=r.high_min)
        return self.t["between"].format(lo=r.low_min, hi=r.high_min)

    def tickets(self, s: ServiceStatus) -> str:
        k = s.tickets
        if k.issued_now:
            text = self.t["issued_now"].format(last=k.last_ticket_at)
        elif k.opens_at is None:
            return self.t["closed_all_day"]
        elif k.reason == "service_closed" and k.opens_at and k.last_ticket_at and self._before(k.opens_at):
            text = self.t["opens_at"].format(opens=k.opens_at)
        elif k.reason == "cut_off":
            text = self.t["cut_off"].format(last=k.last_ticket_at)
        elif k.reason == "limit_reached":
            text = self.t["limit_reached"]
        else:
            text = self.t["service_closed"].format(opens=k.opens_at, closes=k.closes_at)
        if k.daily_limit is not None and k.left_today is not None and k.reason != "limit_reached":
            text += " · " + self.t["left_today"].format(left=k.left_today, limit=k.daily_limit)
        return text

    def _before(self, hhmm: str) -> bool:
        return self.now is not None and self.now.strftime("%H:%M") < hhmm


# --------------------------------------------------------------------------- the snapshot's bytes


@dataclass(frozen=True)
class Rendered:
    """One snapshot's answers, built once and served to everyone until the next snapshot."""

    key: tuple[int, tuple[tuple[str, float], ...]]
    etag: str
    feed: StatusFeed
    status_json: bytes
    warszawa_json: bytes
    pages: dict[tuple[str, str], bytes]  # (template, lang) -> HTML, filled on first use


class PublicFeeds:
    """The current snapshot as bytes, rebuilt when the worker published a new one.

    Why a cache keyed on the snapshot's version: rendering costs a millisecond or so; a
    crowd asks hundreds of times a second for the same thing. Requests during a rebuild get
    the previous answer (never wait), and one rebuild runs at a time.

    Why the key holds the typical service times themselves, not the moment they were re-read:
    they are re-read every minute, and usually come back the same. A key (and so an ETag) that
    changed with every re-read would make every phone and the office's proxy fetch the whole
    answer again each minute although nothing they show changed.
    """

    def __init__(self, office: Office) -> None:
        self.office = office
        self.boot = secrets.token_hex(4)  # a restart starts versions again: ETags must differ
        self._current: Rendered | None = None
        self._typical: dict[str, float] = {}
        self._typical_at = -1e9
        self._typical_day: date | None = None
        self._lock = asyncio.Lock()

    @property
    def config(self) -> SiteConfig:
        return self.office.config

    def _fresh(self) -> Rendered | None:
        snapshot = self.office.public_snapshot()
        current = self._current
        due = _time.monotonic() - self._typical_at >= TYPICAL_REFRESH_S
        if current is not None and current.key[0] == snapshot.version and not due:
            return current
        return None

    async def get(self) -> Rendered:
        fresh = self._fresh()
        if fresh is not None:
            return fresh
        async with self._lock:
            fresh = self._fresh()
            if fresh is None:
                fresh = await run_in_threadpool(self.rebuild)
        return fresh

    def rebuild(self) -> Rendered:
        snapshot = self.office.public_snapshot()
        today = snapshot.services.server_time.date()
        if _time.monotonic() - self._typical_at >= TYPICAL_REFRESH_S or today != self._typical_day:
            try:
                self._typical = self.office.typical_service_s(today)
            except Exception:  # noqa: BLE001  # a damaged file: show the queues without this figure
                self._typical = {}
            self._typical_at, self._typical_day = _time.monotonic(), today
        typical = tuple(sorted(self._typical.items()))
        key = (snapshot.version, typical)
        current = self._current
        if current is not None and current.key == key:
            return current  # re-read, nothing changed: the same bytes under the same ETag
        config = self.config
        feed = build_status(snapshot, config, self._typical)
        digest = hashlib.blake2b(repr(typical).encode(), digest_size=4).hexdigest()
        rendered = Rendered(
            key=key,
            etag=f'"{self.boot}-{snapshot.version}-{digest}"',
            feed=feed,
            status_json=feed.model_dump_json().encode(),
            warszawa_json=build_warszawa(feed, config).model_dump_json().encode(),
            pages={},
        )
        self._current = rendered
        return rendered


def _not_modified(request: Request, etag: str) -> bool:
    sent = request.headers.get("if-none-match")
    return sent is not None and etag in {t.strip() for t in sent.split(",")}


def _cached(request: Request, body: Callable[[], bytes], etag: str, media: str, cache: str) -> Response:
    headers = {"ETag": etag, "Cache-Control": cache}
    if _not_modified(request, etag):
        return Response(status_code=304, headers=headers)
    return Response(body(), media_type=media, headers=headers)


# --------------------------------------------------------------------------- statistics


class StatRow(_Out):
    service: str | None = Field(description="the service's id; null for the 'other services' and total rows")
    name: Names
    visits: int | None = Field(description="tickets issued in the month (null: not published)")
    served: int | None = Field(description="visits that ended served")
    wait_median_min: float | None = Field(description="median wait from the ticket to the first call, minutes")
    wait_p90_min: float | None = Field(description="90% of the called waited no longer than this, minutes")
    target_wait_min: int | None = None
    within_target_share: float | None = Field(description="share of called visits called within the target wait, 0–1")
    satisfaction_mean: float | None = Field(description="mean rating 1–5 at the counter's buttons")
    ratings: int | None = None


class MonthlyStatistics(_Out):
    """A month's published figures (docs/public-status.md, "Statistics")."""

    schema_version: Literal["1.0"] = "1.0"
    office: str
    month: str = Field(pattern=r"^\d{4}-\d{2}$")
    min_visits: int = Field(description="no figure from fewer visits (or ratings) than this is published")
    figures: list[str] = Field(description="the figures the office publishes")
    services: list[StatRow]
    other: StatRow | None = Field(description="services under min_visits, together (null: none)")
    total: StatRow = Field(description="visits and served for all services (the other figures are per service)")


def _minutes(seconds: float | None) -> float | None:
    return round(seconds / 60, 1) if seconds is not None else None


def publish_statistics(summary: dict[str, Any], config: SiteConfig, month: str) -> MonthlyStatistics:
    """The public part of a month's report figures (server/reports/figures.py's ``summary``).

    The rule: a service with fewer than ``statistics_min_visits`` visits in the month is not
    broken down: it joins "other services", whose counts are published only if together
    they reach the minimum, and never with medians (those would need the group's own
    visits). Any figure is published only if it comes from at least that many values: a
    median of waits needs that many called visits, satisfaction that many ratings. The
    total row carries counts only, so subtracting the published rows from it tells nothing
    but a count of visits. Figures the manager did not choose are left out (null).
    """
    pub: Public = config.public
    n_min, chosen = pub.statistics_min_visits, set(pub.statistics_figures)
    shown = set(public_services(config))
    rows: list[StatRow] = []
    small: list[dict[str, Any]] = []
    for r in summary["by_service"]:
        if r["service"] not in shown:
            continue
        if r["issued"] < n_min:
            small.append(r)
            continue
        wait, rating = r["wait"], r["rating"]
        rows.append(
            StatRow(
                service=r["service"],
                name=Names(**r["name"]) if "uk" in r["name"] else Names(pl=r["name"]["pl"], en=r["name"]["en"]),
                visits=r["issued"] if "visits" in chosen else None,
                served=r["served"] if "served" in chosen else None,
                wait_median_min=_minutes(wait["median_s"]) if "wait" in chosen and wait["n"] >= n_min else None,
                wait_p90_min=_minutes(wait["p90_s"]) if "wait" in chosen and wait["n"] >= n_min else None,
                target_wait_min=r["target_wait_s"] // 60,
                within_target_share=wait["within_target_share"]
                if "within_target" in chosen and wait["n"] >= n_min
                else None,
                satisfaction_mean=rating["mean"] if "satisfaction" in chosen and rating["n"] >= n_min else None,
                ratings=rating["n"] if "satisfaction" in chosen and rating["n"] >= n_min else None,
            )
        )
    other = None
    if small:
        visits = sum(r["issued"] for r in small)
        ok = visits >= n_min
        called = sum(r["wait"]["n"] for r in small)
        within = sum(r["wait"]["within_target"] for r in small)
        rated = sum(r["rating"]["n"] for r in small)
        stars = sum((r["rating"]["mean"] or 0) * r["rating"]["n"] for r in small)
        other = StatRow(
            service=None,
            name=Names(**{lang: TEXTS[lang]["other"].format(n=n_min) for lang in LANGS}),
            visits=visits if ok and "visits" in chosen else None,
            served=sum(r["served"] for r in small) if ok and "served" in chosen else None,
            wait_median_min=None,
            wait_p90_min=None,
            within_target_share=round(within / called, 4)
            if ok and called >= n_min and "within_target" in chosen
            else None,
            satisfaction_mean=round(stars / rated, 2) if ok and rated >= n_min and "satisfaction" in chosen else None,
            ratings=rated if ok and rated >= n_min and "satisfaction" in chosen else None,
        )
    counted = [r for r in summary["by_service"] if r["service"] in shown]
    visits_all = sum(r["issued"] for r in counted)
    total = StatRow(
        service=None,
        name=Names(**{lang: TEXTS[lang]["all"] for lang in LANGS}),
        visits=visits_all if "visits" in chosen and visits_all >= n_min else None,
        served=sum(r["served"] for r in counted) if "served" in chosen and visits_all >= n_min else None,
        wait_median_min=None,
        wait_p90_min=None,
        within_target_share=None,
        satisfaction_mean=None,
    )
    return MonthlyStatistics(
        office=config.office.name,
        month=month,
        min_visits=n_min,
        figures=[f for f in pub.statistics_figures],
        services=rows,
        other=other,
        total=total,
    )


CSV_COLUMNS = (
    "month",
    "service",
    "name_pl",
    "name_en",
    "visits",
    "served",
    "wait_median_min",
    "wait_p90_min",
    "target_wait_min",
    "within_target_share",
    "satisfaction_mean",
    "ratings",
)


def statistics_csv(stats: MonthlyStatistics) -> str:
    """One row per published service, then "other services" and the total (empty cell: not published)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    rows = [*stats.services, *([stats.other] if stats.other else []), stats.total]
    for r in rows:
        w.writerow(
            [
                stats.month,
                r.service or "",
                _csv_text(r.name.pl),
                _csv_text(r.name.en),
                *("" if v is None else v for v in (r.visits, r.served, r.wait_median_min, r.wait_p90_min)),
                *("" if v is None else v for v in (r.target_wait_min, r.within_target_share)),
                *("" if v is None else v for v in (r.satisfaction_mean, r.ratings)),
            ]
        )
    return buf.getvalue()


def _csv_text(value: str) -> str:
    """A name that a spreadsheet would run as a formula is quoted as text (CSV injection)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _month_bounds(month: str) -> tuple[date, date]:
    y, m = (int(x) for x in month.split("-"))
    first = date(y, m, 1)
    return first, first.replace(day=calendar.monthrange(y, m)[1])


def published_months(office: Office) -> list[str]:
    """Whole months with tickets, newest first: the current month is published once it is over."""
    this_month = office.now().date().replace(day=1)
    return [m.strftime("%Y-%m") for m in office.months_with_tickets(before=this_month)]


# --------------------------------------------------------------------------- routes


Lang = Annotated[str, Query(max_length=5)]


def build_public_router(feeds: PublicFeeds, statistics: Callable[[str], MonthlyStatistics | None]) -> APIRouter:
    """The pages residents open: /kolejka, /kolejka/statystyki and the widget under /widget/."""
    r = APIRouter(include_in_schema=False)
    office = feeds.office

    def enabled() -> None:
        if not office.config.public.enabled:
            raise HTTPException(404, "the office does not publish its queue status")

    async def page(request: Request, template: str, lang: str, extra_headers: dict[str, str]) -> Response:
        enabled()
        lang = _lang(lang)
        rendered = await feeds.get()
        etag = rendered.etag[:-1] + f'-{template}-{lang}"'

        def body() -> bytes:
            html = rendered.pages.get((template, lang))
            if html is None:
                words = Words(lang, rendered.feed.generated_at)
                html = (
                    TEMPLATES.get_template(template)
                    .render(request=request, feed=rendered.feed, W=words, lang=lang, langs=LANGS, texts=TEXTS)
                    .encode()
                )
                rendered.pages[(template, lang)] = html
            return html

        response = _cached(request, body, etag, "text/html; charset=utf-8", "no-cache")
        response.headers.update(extra_headers)
        return response

    @r.api_route("/kolejka", methods=["GET", "HEAD"], response_class=HTMLResponse)
    async def live_page(request: Request, lang: Lang = "pl") -> Response:
        return await page(request, "public_status.html", lang, {})

    @r.api_route("/widget/kolejka", methods=["GET", "HEAD"], response_class=HTMLResponse)
    async def widget(request: Request, lang: Lang = "pl") -> Response:
        # Framing is allowed here only (docs/public-status.md, "Widget"): the widget changes nothing.
        # The header says who may frame it: server/http.py gives SecurityHeaders `widget_ancestors`.
        return await page(request, "public_widget.html", lang, {})

    @r.api_route("/kolejka/statystyki", methods=["GET", "HEAD"], response_class=HTMLResponse)
    def statistics_page(
        request: Request, lang: Lang = "pl", month: Annotated[str | None, Query(max_length=7)] = None
    ) -> Response:
        enabled()
        if not office.config.public.statistics:
            raise HTTPException(404, "the office does not publish statistics")
        lang = _lang(lang)
        months = published_months(office)
        if month is not None and month not in months:
            raise HTTPException(
                404, f"no published statistics for {month!r}; months: {', '.join(months) or 'none yet'}"
            )
        chosen = month or (months[0] if months else None)
        stats = statistics(chosen) if chosen else None
        return TEMPLATES.TemplateResponse(
            request,
            "public_statistics.html",
            {"stats": stats, "months": months, "W": Words(lang), "lang": lang, "langs": LANGS, "texts": TEXTS},
            headers={"Cache-Control": "public, max-age=3600"},
        )

    return r


def build_open_data_app(feeds: PublicFeeds, statistics: Callable[[str], MonthlyStatistics | None]) -> FastAPI:
    """The open-data API, mounted at /api/public: its own OpenAPI document and CORS.

    Why a sub-application: CORS is for these feeds only (Starlette's CORSMiddleware, the
    office's configured origins, GET only, no credentials), and open-data users get an API
    description of just what is theirs at /api/public/docs.
    """
    office = feeds.office
    pub = office.config.public
    app = FastAPI(
        title="Numerek open data",
        summary="Live queue status and monthly statistics of the office (no personal data)",
        version=SCHEMA_VERSION,
        docs_url="/docs",
        redoc_url=None,
    )
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(pub.allowed_origins),
        allow_methods=["GET"],
        allow_headers=["If-None-Match"],  # a site script revalidating by hand
        allow_credentials=False,
        max_age=86400,
        expose_headers=["ETag"],
    )
    feed_cache = f"public, max-age={min(5, pub.refresh_s)}"

    def enabled() -> None:
        if not office.config.public.enabled:
            raise HTTPException(404, "the office does not publish its queue status")

    @app.api_route("/v1/status", methods=["GET", "HEAD"], response_model=StatusFeed, tags=["live"])
    async def status(request: Request) -> Response:
        """The live state of every public service (schema: /api/public/v1/status.schema.json)."""
        enabled()
        rendered = await feeds.get()
        return _cached(request, lambda: rendered.status_json, rendered.etag, "application/json", feed_cache)

    @app.api_route("/warszawa", methods=["GET", "HEAD"], response_model=FeedWarszawa, tags=["live"])
    async def warszawa(request: Request) -> Response:
        """The same, with the Warsaw district offices' field names (schema: /api/public/warszawa.schema.json)."""
        enabled()
        rendered = await feeds.get()
        etag = rendered.etag[:-1] + '-waw"'
        return _cached(request, lambda: rendered.warszawa_json, etag, "application/json", feed_cache)

    schemas: dict[str, type[BaseModel]] = {
        "/v1/status.schema.json": StatusFeed,
        "/warszawa.schema.json": FeedWarszawa,
        "/v1/statistics.schema.json": MonthlyStatistics,
    }
    for path, model in schemas.items():
        app.add_api_route(path, _schema_route(path, model), methods=["GET"], tags=["schemas"])

    def stats_or_404(month: str) -> MonthlyStatistics:
        enabled()
        if not office.config.public.statistics:
            raise HTTPException(404, "the office does not publish statistics")
        if month not in published_months(office):
            raise HTTPException(404, f"no published statistics for {month!r}")
        found = statistics(month)
        if found is None:
            raise HTTPException(404, f"no published statistics for {month!r}")
        return found

    @app.get("/v1/statistics", tags=["statistics"])
    def months() -> dict[str, list[str]]:
        """The months with published statistics, newest first."""
        enabled()
        return {"months": published_months(office) if office.config.public.statistics else []}

    @app.get("/v1/statistics/{month}.json", response_model=MonthlyStatistics, tags=["statistics"])
    def statistics_json(month: Annotated[str, PathParam(pattern=r"^\d{4}-\d{2}$")]) -> JSONResponse:
        stats = stats_or_404(month)
        return JSONResponse(stats.model_dump(mode="json"), headers={"Cache-Control": "public, max-age=3600"})

    @app.get("/v1/statistics/{month}.csv", tags=["statistics"])
    def statistics_csv_route(month: Annotated[str, PathParam(pattern=r"^\d{4}-\d{2}$")]) -> Response:
        stats = stats_or_404(month)
        return Response(
            statistics_csv(stats),
            media_type="text/csv; charset=utf-8",
            headers={
                "Cache-Control": "public, max-age=3600",
                "Content-Disposition": f'attachment; filename="statystyki-{month}.csv"',
            },
        )

    return app


def _schema_route(path: str, model: type[BaseModel]) -> Callable[[], JSONResponse]:
    schema = model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"/api/public{path}"

    def route() -> JSONResponse:
        return JSONResponse(
            schema, media_type="application/schema+json", headers={"Cache-Control": "public, max-age=86400"}
        )

    route.__name__ = f"schema_{model.__name__}"
    route.__doc__ = f"The JSON Schema (2020-12) of {model.__name__}."
    return route


def widget_ancestors(origins: list[str]) -> str:
    """``frame-ancestors`` for the widget: the office's own site(s) from ``[public] allowed_origins``."""
    return "*" if "*" in origins else " ".join(["'self'", *origins])


def mount(app: FastAPI, server: Any) -> None:
    """Add the public pages, the open-data API and their static files (one line in server/http.py)."""
    office: Office = server.office
    feeds = PublicFeeds(office)
    memo: dict[tuple[str, int], tuple[float, MonthlyStatistics]] = {}

    def report_data() -> Any:
        data = getattr(app.state, "report_data", None)
        if data is None:  # the reports are not mounted: read the same file the same way
            from server.reports.figures import ReportData

            data = app.state.report_data = ReportData(server.path, lambda: office.config, now=office.now)
        return data

    def statistics(month: str) -> MonthlyStatistics | None:
        """A month's public figures, from the reports' own computation (memoised for an hour)."""
        from server.reports.figures import Filters

        key = (month, id(office.config))
        hit = memo.get(key)
        if hit is not None and _time.monotonic() - hit[0] < 3600:
            return hit[1]
        first, last = _month_bounds(month)
        summary = report_data().summary(Filters(first, last)).as_json()  # the reports' JSON shape
        stats = publish_statistics(summary, office.config, month)
        memo.clear()
        memo[key] = (_time.monotonic(), stats)
        return stats

    app.include_router(build_public_router(feeds, statistics))
    app.mount("/api/public", build_open_data_app(feeds, statistics))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.state.public_feeds = feeds


__all__ = [
    "FeedWarszawa",
    "MonthlyStatistics",
    "PublicFeeds",
    "StatusFeed",
    "WARSAW_FIELDS",
    "build_status",
    "build_warszawa",
    "mount",
    "publish_statistics",
    "statistics_csv",
]
