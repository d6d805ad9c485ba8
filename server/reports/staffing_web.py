"""The manager's staffing page: ``/reports/staffing`` (and its figures at ``/reports/api/staffing``).

Per service and weekday, the counters each hour needs for the service's target wait
(server/staffing.py: Erlang C checked by simulation with the office's own service times)
beside last week's reality, and a what-if: last week's counters with more counters at one
hour, and the share of residents expected to be called in time.

The figures come from the weeks *before* the chosen week's end, which no longer change, so
an answer is kept per (service, weekday, week, target, the span's event count and last id):
an advice takes about half a second to simulate. The store is read through a read-only
connection of the page's own, like the reports' (server/reports/figures.py); the office
façade gives the config and the server's clock.
"""

import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from server.auth import User
from server.reports.i18n import LANGS, labels
from server.staffing import GOAL, DayOutcome, ServiceAdvice, advise_from_record, load_record, what_if
from server.web_auth import WebAuth

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
WEEKS = 4
"""Recorded weeks the advice is computed from: the chosen "last week" and the three before it."""
MAX_ADDED = 5


@dataclass(frozen=True)
class WhatIf:
    hour: int
    added: int
    plan: dict[int, int]  # the plan it starts from: last week's counters per hour, rounded (at least 1)
    before: DayOutcome
    after: DayOutcome


@dataclass(frozen=True)
class Staffing:
    service: str
    weekday: int
    week: date  # Monday of "last week"
    since: date  # the first recorded day the advice is made from
    advice: ServiceAdvice | None  # None: nothing recorded for the service on that weekday
    service_times: tuple[float, ...] = field(default=(), repr=False)  # recorded, what the what-if draws from

    def as_json(self) -> dict[str, Any]:
        a = self.advice
        return {
            "service": self.service,
            "weekday": self.weekday,
            "week": self.week.isoformat(),
            "since": self.since.isoformat(),
            "goal": GOAL,
            "target_min": a.target_min if a else None,
            "mean_service_s": round(a.mean_service_s, 1) if a else None,
            "expected_share": a.expected_share if a else None,
            "erlang_share": a.erlang_share if a else None,
            "hours": [
                {
                    "hour": h.hour,
                    "arrivals_per_hour": round(h.arrivals_per_hour, 2),
                    "erlang_c": h.erlang_c,
                    "advised": h.advised,
                    "expected_share": h.expected_share,
                    "last_week_counters": h.last_week_counters,
                    "last_week_share": h.last_week_share,
                }
                for h in (a.hours if a else [])
            ],
        }


class StaffingData:
    """The advice from a Numerek database, read only, kept per state of the recorded weeks."""

    def __init__(self, database: Path | str) -> None:
        self.database = database
        self._lock = threading.Lock()
        self._cache: dict[tuple, Staffing] = {}

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.database}?mode=ro", uri=True)

    def staffing(self, service: str, weekday: int, week: date, targets: dict[str, int], tz: Any) -> Staffing:
        since, until = week - timedelta(days=7 * (WEEKS - 1)), week + timedelta(days=7)
        conn = self._connect()
        try:
            stamp = conn.execute(
                "SELECT count(*), coalesce(max(id), 0) FROM events WHERE day >= ? AND day < ?",
                (since.isoformat(), until.isoformat()),
            ).fetchone()
            key = (service, weekday, week, targets.get(service), tuple(stamp))
            with self._lock:
                hit = self._cache.get(key)
            if hit is not None:
                return hit
            weeks = load_record(conn, since, until, tz, targets)
            last_week = load_record(conn, week, until, tz, targets)
        finally:
            conn.close()
        has_data = any(s == service and wd == weekday for (s, wd, _h) in weeks.arrivals) and bool(
            weeks.service_times.get(service)
        )
        advice = (
            advise_from_record(weeks, service, weekday, targets[service], last_week=last_week) if has_data else None
        )
        result = Staffing(service, weekday, week, since, advice, tuple(weeks.service_times.get(service, [])))
        with self._lock:
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[key] = result
        return result

    def what_if(self, s: Staffing, hour: int, added: int) -> WhatIf:
        """Last week's counters (rounded, at least one in an hour with arrivals) and the same with ``added`` at ``hour``."""
        a = s.advice
        assert a is not None
        if hour not in {h.hour for h in a.hours}:
            hours = ", ".join(str(h.hour) for h in a.hours)
            raise HTTPException(422, f"add_hour must be an hour with arrivals: {hours}")
        plan = {
            h.hour: max(1, round(h.last_week_counters)) if h.last_week_counters is not None else h.advised
            for h in a.hours
        }
        rates = {h.hour: h.arrivals_per_hour for h in a.hours}
        before, after = what_if(rates, plan, {hour: added}, s.service_times, a.target_min)
        return WhatIf(hour, added, plan, before, after)


def _lang(value: str | None) -> str:
    return value if value in LANGS else "pl"


def build_staffing_router(server: Any, auth: WebAuth) -> APIRouter:
    """``/reports/staffing`` and ``/reports/api/staffing``; mounted by server.reports.web.mount."""
    r = APIRouter(tags=["reports"])
    office = server.office
    data = StaffingData(server.path)

    def page_user(request: Request) -> User:
        return auth.page(request, "manager")

    def api_user(request: Request) -> User:
        return auth.api(request, "manager")

    def last_monday() -> date:
        today = office.now().date()
        return today - timedelta(days=today.weekday() + 7)

    def pick(service: str | None, weekday: int | None, week: str | None) -> Staffing:
        config = office.config
        ids = [s.id for s in config.services]
        if service is None:
            service = ids[0]
        if service not in ids:
            raise HTTPException(422, f"no service {service!r}; services: {', '.join(ids)}")
        if week is None:
            monday = last_monday()
        else:
            try:
                monday = date.fromisoformat(week)
            except ValueError:
                raise HTTPException(422, "week must be a date YYYY-MM-DD (the Monday of the week)") from None
            monday -= timedelta(days=monday.weekday())
        if weekday is None:
            weekday = 0
        targets = {s.id: s.target_wait_min for s in config.services}
        return data.staffing(service, weekday, monday, targets, config.office.tz)

    Weekday = Annotated[int | None, Query(ge=0, le=6, description="0 = Monday")]
    Service = Annotated[str | None, Query(max_length=32)]
    Week = Annotated[str | None, Query(max_length=10, description="a day of the week called 'last week' (YYYY-MM-DD)")]

    @r.get("/reports/api/staffing")
    def api_staffing(
        user: Annotated[User, Depends(api_user)],
        service: Service = None,
        weekday: Weekday = None,
        week: Week = None,
        add_hour: Annotated[int | None, Query(ge=0, le=23)] = None,
        add: Annotated[int, Query(ge=1, le=MAX_ADDED)] = 1,
    ) -> dict[str, Any]:
        """Counters advised per hour for one service and weekday, last week's counters and share in time;
        with ``add_hour``, the what-if of ``add`` more counters then (docs/reports.md, "Staffing")."""
        s = pick(service, weekday, week)
        out = s.as_json()
        if add_hour is not None and s.advice is not None:
            w = data.what_if(s, add_hour, add)
            out["what_if"] = {
                "hour": w.hour,
                "added": w.added,
                "plan": {str(h): n for h, n in w.plan.items()},
                "share_before": w.before.share_within,
                "share_after": w.after.share_within,
                "mean_wait_before_s": round(w.before.mean_wait_s, 1),
                "mean_wait_after_s": round(w.after.mean_wait_s, 1),
            }
        return out

    @r.get("/reports/staffing", response_class=HTMLResponse, include_in_schema=False)
    def staffing_page(
        request: Request,
        user: Annotated[User, Depends(page_user)],
        service: Service = None,
        weekday: Weekday = None,
        week: Week = None,
        add_hour: Annotated[int | None, Query(ge=0, le=23)] = None,
        add: Annotated[int, Query(ge=1, le=MAX_ADDED)] = 1,
        lang: str = "pl",
    ) -> HTMLResponse:
        lang = _lang(lang)
        L = labels(lang)
        s = pick(service, weekday, week)
        w = data.what_if(s, add_hour, add) if add_hour is not None and s.advice is not None else None
        config = office.config
        return TEMPLATES.TemplateResponse(
            request,
            "staffing.html",
            {
                "L": L,
                "lang": lang,
                "user": user,
                "s": s,
                "w": w,
                "add": add,
                "max_added": MAX_ADDED,
                "services": [(x.id, x.name.as_dict().get(lang) or x.name.pl) for x in config.services],
                "weekdays": L["weekday_names"].split(),
                "last_day": s.week + timedelta(days=6),
                "other_lang": "en" if lang == "pl" else "pl",
                "other_qs": urlencode(
                    {
                        "service": s.service,
                        "weekday": s.weekday,
                        "week": s.week.isoformat(),
                        "lang": "en" if lang == "pl" else "pl",
                    }
                ),
            },
        )

    r.staffing_data = data  # type: ignore[attr-defined]  # for tests and the bench
    return r
