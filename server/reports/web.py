"""The manager's web reports: login, dashboard, live view, JSON API, CSV/XLSX/PDF exports.

Everything under ``/reports`` needs a manager or admin login (server/auth.py): pages
redirect to ``/login``, the API and exports answer 401. All figures come from
:meth:`ReportData.summary` (computed once per filter and data state), so the page, the
API, the charts and every export agree by construction.

Why the dashboard sends its page before its charts: the page needs only the figures (tens
of milliseconds); the five charts take seconds to draw on a busy Pi. The page therefore
asks for the charts to be drawn in the background (:class:`RenderCache`) and the browser
loads them as images afterwards; a chart already drawn for the same figures is sent from
memory, and its URL carries the figures' digest so the browser keeps it too.
"""

import dataclasses
import functools
import threading
from datetime import date, datetime
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates
from starlette.background import BackgroundTask

from server.auth import SESSION_COOKIE, User
from server.reports import channels, exports, slots
from server.reports.cache import RenderCache, chart_key
from server.reports.figures import FilterError, Filters, ReportData
from server.reports.headline import headlines
from server.reports.i18n import LANGS, labels
from server.reports.models import Summary
from server.reports.periods import COMPARE, PRESETS, Period, compared, preset
from server.reports.staffing_web import build_staffing_router
from server.web_auth import LoginRequired, WebAuth, has_role

CHARTS = ("heatmap", "daily", "wait", "utilisation", "ratings")  # server.reports.charts draws them
TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def _lang(value: str | None) -> str:
    return value if value in LANGS else "pl"


def _charts() -> ModuleType:
    """matplotlib is imported on first use (in the background at start), never by the page."""
    from server.reports import charts

    return charts


def _svg(name: str, s: Summary, lang: str) -> bytes:
    return _charts().svg(name, s, lang)


def _monthly() -> ModuleType:
    from server.reports import monthly

    return monthly


def live_status(office) -> dict[str, Any]:
    """Per service now: waiting, longest wait, being served, open counters, alert over target;
    per device: connection and printer state (a kiosk out of paper is the manager's to fix).
    The office façade computes it (server/office.py), the same figures as /api/queues."""
    return office.live()


CHANNEL_TABLES = ("channels", "appointments")
SLOT_TABLE = "slots"
EXPORTS = (*exports.TABLES, *CHANNEL_TABLES, SLOT_TABLE)
"""Every exported table: the figures' (server/reports/exports.py), the channels' (server/reports/channels.py)
and the booking slots' utilisation (server/reports/slots.py)."""


def build_reports_router(server, auth: WebAuth) -> APIRouter:
    """Routes for ``/login``, ``/logout`` and ``/reports/...``; mounted by server.http.build_app."""
    r = APIRouter(include_in_schema=True, tags=["reports"])
    office = server.office
    data = ReportData(server.path, lambda: office.config, now=office.now)
    cache = RenderCache()

    def draw_charts(s: Summary, lang: str) -> None:
        """Have the page's charts drawn in the background, in the page's order."""
        for name in CHARTS:
            cache.prefetch(chart_key(s, lang, name), functools.partial(_svg, name, s, lang))

    def warm() -> None:
        """At start: load the data cache; with data, import matplotlib and draw the default view's charts."""
        data.warm()
        if data.last_day() is not None:
            f = data.parse_filters(None, None)
            draw_charts(data.summary(f), "pl")

    threading.Thread(target=warm, name="reports-warm", daemon=True).start()

    def page_user(request: Request) -> User:
        return auth.page(request, "manager")

    def api_user(request: Request) -> User:
        return auth.api(request, "manager")

    def filters(
        date_from: str | None = Query(None, alias="from", max_length=10),
        date_to: str | None = Query(None, alias="to", max_length=10),
        service: str | None = Query(None, max_length=32),
        counter: str | None = Query(None, max_length=32),
        clerk: str | None = Query(None, max_length=32),
        period: str | None = Query(None, max_length=32, description=f"a named period: {', '.join(PRESETS)}"),
    ) -> Filters:
        if period and not (date_from or date_to):
            if period not in PRESETS:
                raise HTTPException(422, f"no period {period!r}; periods: {', '.join(PRESETS)}")
            p = preset(period, data.office_today())
            date_from, date_to = p.first.isoformat(), p.last.isoformat()
        try:
            return data.parse_filters(date_from, date_to, service, counter, clerk)
        except FilterError as exc:
            raise HTTPException(422, str(exc)) from None

    def comparison(f: Filters, how: str) -> tuple[Period | None, Summary | None]:
        if how not in COMPARE:
            raise HTTPException(422, f"compare is one of {', '.join(COMPARE)}")
        other = compared(Period(f.date_from, f.date_to), how)
        if other is None:
            return None, None
        return other, data.summary(dataclasses.replace(f, date_from=other.first, date_to=other.last))

    PageUser = Annotated[User, Depends(page_user)]
    ApiUser = Annotated[User, Depends(api_user)]
    Picked = Annotated[Filters, Depends(filters)]

    def figures_by_channel(f: Filters) -> channels.ChannelFigures:
        """Tickets by channel and the bookings' figures (server/reports/channels.py)."""
        return channels.channel_figures(server.path, f, office.now(), office.config.booking.late_min)

    def figures_by_slot(f: Filters) -> slots.SlotFigures:
        """Booking slots offered, booked, attended, per service and day (server/reports/slots.py)."""
        return slots.slot_figures(server.path, office.config, f, office.now())

    def query_string(f: Filters, lang: str, **extra: str) -> str:
        q = {k: v for k, v in f.as_dict().items() if v}
        return urlencode({**q, "lang": lang, **extra})

    # ------------------------------------------------------------------ login

    @r.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(request: Request, next: str = "/reports", lang: str = "pl") -> HTMLResponse:  # noqa: A002
        return TEMPLATES.TemplateResponse(
            request, "login.html", {"L": labels(_lang(lang)), "lang": _lang(lang), "next": next, "error": False}
        )

    @r.post("/login", include_in_schema=False)
    def login(
        request: Request,
        name: str = Form("", max_length=64),
        password: str = Form("", max_length=256),
        next: str = Form("/reports", max_length=500),  # noqa: A002
        lang: str = Form("pl", max_length=5),
    ) -> Response:
        signed_in = auth.login(request, name.strip(), password)  # 429/503 before any hashing
        if signed_in is None:
            return TEMPLATES.TemplateResponse(
                request,
                "login.html",
                {"L": labels(_lang(lang)), "lang": _lang(lang), "next": next, "error": True},
                status_code=401,
            )
        user, token = signed_in
        # Only back to our own pages (no open redirect); a clerk's home is the clerk panel.
        home = "/reports" if has_role(user, "manager") else "/clerk"
        target = next if next.startswith(("/reports", "/admin", "/clerk")) and "//" not in next else home
        if target.startswith("/reports") and not has_role(user, "manager"):
            target = home
        resp = RedirectResponse(target, status_code=303)
        auth.set_session(request, resp, token)
        return resp

    @r.post("/logout", include_in_schema=False)
    def logout(request: Request) -> Response:
        auth.logout(request)  # the session ends on the server: the old cookie stops working at once
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(SESSION_COOKIE)
        return resp

    # ------------------------------------------------------------------ pages

    @r.get("/reports", response_class=HTMLResponse, include_in_schema=False)
    def dashboard(
        request: Request,
        f: Picked,
        user: PageUser,
        lang: str = "pl",
        compare: Annotated[str, Query(max_length=10)] = "previous",
        period: Annotated[str | None, Query(max_length=32)] = None,
    ) -> HTMLResponse:
        lang = _lang(lang)
        L = labels(lang)
        s = data.summary(f)
        other, before = comparison(f, compare)
        today = data.office_today()
        presets = []
        for name in PRESETS:
            p = preset(name, today)
            qs = urlencode({"from": p.first.isoformat(), "to": p.last.isoformat(), "lang": lang, "compare": compare})
            presets.append(
                {
                    "name": name,
                    "label": L[f"preset_{name}"],
                    "qs": qs,
                    "active": (p.first, p.last) == (f.date_from, f.date_to),
                }
            )
        qs = query_string(f, lang)
        return TEMPLATES.TemplateResponse(
            request,
            "dashboard.html",
            {
                "L": L,
                "lang": lang,
                "s": s,
                "f": f,
                "user": user,
                "qs": qs,
                "heads": headlines(s.totals, before.totals if before else None, L),
                "other": other,
                "before": before,
                "compare": compare,
                "compares": COMPARE,
                "presets": presets,
                "chart_qs": query_string(f, lang, v=s.digest()),
                "services": office.config.services,
                "counters": office.config.counters,
                "clerks": data.clerk_ids(),
                "charts": CHARTS,
                "tables": EXPORTS,
                "ch": figures_by_channel(f),
                "CL": channels.label,
                "sl": figures_by_slot(f),
                "SL": slots.label,
                "sl_days": f.span() <= slots.MAX_PAGE_DAYS,
                "month": f.date_to.strftime("%Y-%m"),
                "other_lang": "en" if lang == "pl" else "pl",
                "other_qs": query_string(f, "en" if lang == "pl" else "pl", compare=compare),
            },
            background=BackgroundTask(draw_charts, s, lang),  # after the page is sent: it goes out first
        )

    @r.get("/reports/live", response_class=HTMLResponse, include_in_schema=False)
    def live_page(request: Request, user: PageUser, lang: str = "pl") -> HTMLResponse:
        lang = _lang(lang)
        L = labels(lang)
        live = live_status(office)
        return TEMPLATES.TemplateResponse(
            request,
            "live.html",
            {
                "L": L,
                "lang": lang,
                "user": user,
                "live": live,
                "time_text": L.datetime(datetime.fromisoformat(live["server_time"])),
                "time_zone": office.config.office.timezone,
            },
        )

    # ------------------------------------------------------------------ JSON API

    @r.get("/reports/api/summary")
    def api_summary(f: Picked, user: ApiUser, compare: Annotated[str, Query(max_length=10)] = "none") -> dict[str, Any]:
        """Every dashboard figure for the filters (definitions: docs/reports.md); with
        ``compare=previous|year``, also the comparison period's totals under ``comparison``."""
        out = data.summary(f).as_json()
        out["by_channel"] = figures_by_channel(f).as_json()
        out["slots"] = figures_by_slot(f).as_json()
        other, before = comparison(f, compare)
        if other is not None and before is not None:
            out["comparison"] = {
                "from": other.first.isoformat(),
                "to": other.last.isoformat(),
                "totals": before.totals.model_dump(mode="json"),
            }
        return out

    @r.get("/reports/api/live")
    def api_live(user: ApiUser) -> dict[str, Any]:
        """Per service now: waiting, longest wait, open counters, over-target alert."""
        return live_status(office)

    # ------------------------------------------------------------------ charts and exports

    @r.get("/reports/chart/{name}.svg", include_in_schema=False)
    def chart(name: str, f: Picked, user: ApiUser, lang: str = "pl", v: str | None = None) -> Response:
        if name not in CHARTS:
            raise HTTPException(404, f"no chart {name!r}; charts: {', '.join(CHARTS)}")
        lang = _lang(lang)
        s = data.summary(f)
        body = cache.get(chart_key(s, lang, name), lambda: _charts().svg(name, s, lang))
        # The page's URL names the figures' digest: that URL always means this drawing.
        keep = "private, max-age=86400, immutable" if v == s.digest() else "private, max-age=30"
        return Response(body, media_type="image/svg+xml", headers={"Cache-Control": keep})

    def _filename(f: Filters, name: str, ext: str) -> dict[str, str]:
        return {"Content-Disposition": f'attachment; filename="numerek-{name}-{f.date_from}-{f.date_to}.{ext}"'}

    XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

    @r.get("/reports/export/{name}.{fmt}")
    def export(name: str, fmt: str, f: Picked, user: ApiUser, lang: str = "pl", excel: bool = False) -> Response:
        """CSV or XLSX of one table (totals, by_service, by_counter, by_clerk, by_day, heatmap, tickets) or all.xlsx.

        ``excel=1`` (CSV): Excel in a Polish office — ``;``, UTF-8 with BOM, column names in
        ``lang``, decimal comma. XLSX: typed cells, column names in ``lang``."""
        if fmt not in ("csv", "xlsx"):
            raise HTTPException(404, "exports are .csv or .xlsx")
        if name not in (*EXPORTS, "all") or (name == "all" and fmt != "xlsx"):
            raise HTTPException(404, f"no table {name!r}; tables: {', '.join(EXPORTS)} (or all.xlsx)")
        lang = _lang(lang)
        s = data.summary(f)
        names = EXPORTS if name == "all" else (name,)
        by_channel = figures_by_channel(f) if name in ("all", *CHANNEL_TABLES) else None
        by_slot = figures_by_slot(f) if name in ("all", SLOT_TABLE) else None

        def one(n: str) -> exports.Table:
            if n == "tickets":
                return exports.raw_table(data.raw_tickets(f))
            if n in CHANNEL_TABLES:
                assert by_channel is not None
                return channels.tables(by_channel)[CHANNEL_TABLES.index(n)]
            if n == SLOT_TABLE:
                assert by_slot is not None
                return slots.table(by_slot)
            return exports.table(n, s, lang)

        def tables() -> list[exports.Table]:
            return [one(n) for n in names]

        if fmt == "csv":
            return StreamingResponse(
                exports.csv_stream(tables()[0], excel=excel, lang=lang),
                media_type="text/csv; charset=utf-8",
                headers=_filename(f, name + ("-excel" if excel else ""), "csv"),
            )
        key = ("xlsx", name, lang, s.digest(), f, data.stamp(f), repr(by_channel), repr(by_slot))
        try:
            body = cache.get(key, lambda: exports.xlsx(tables(), lang))
        except OverflowError as exc:
            raise HTTPException(413, str(exc)) from None
        return Response(body, headers=_filename(f, name, "xlsx"), media_type=XLSX)

    def month_of(month: str | None) -> date:
        try:
            if month:
                y, m = (int(x) for x in month.split("-"))
                return date(y, m, 1)
            return data.default_range()[1].replace(day=1)
        except ValueError:
            raise HTTPException(422, "month must be YYYY-MM") from None

    def monthly_file(month: str | None, lang: str, kind: str) -> Response:
        first = month_of(month)
        lang = _lang(lang)
        mod = _monthly()
        f = mod.month_filters(first)
        s = data.summary(f)
        other = compared(Period(f.date_from, f.date_to), "previous")
        assert other is not None
        before = data.summary(dataclasses.replace(f, date_from=other.first, date_to=other.last))
        key = mod.monthly_key(kind, lang, s, before)
        if kind == "pdf":
            body = cache.get(key, lambda: mod.monthly_pdf(s, before, lang))
            disposition = f'inline; filename="numerek-{first:%Y-%m}.pdf"'
            return Response(body, media_type="application/pdf", headers={"Content-Disposition": disposition})
        body = cache.get(key, lambda: mod.monthly_xlsx(s, before, lang))
        disposition = f'attachment; filename="numerek-{first:%Y-%m}.xlsx"'
        return Response(body, media_type=XLSX, headers={"Content-Disposition": disposition})

    @r.get("/reports/monthly.pdf")
    def monthly(user: ApiUser, month: Annotated[str | None, Query(max_length=7)] = None, lang: str = "pl") -> Response:
        """The printable monthly report (month = YYYY-MM; default: the month of the latest data),
        compared with the month before."""
        return monthly_file(month, lang, "pdf")

    @r.get("/reports/monthly.xlsx")
    def monthly_xlsx(
        user: ApiUser, month: Annotated[str | None, Query(max_length=7)] = None, lang: str = "pl"
    ) -> Response:
        """The monthly report's tables as a workbook, the first sheet comparing with the month before."""
        return monthly_file(month, lang, "xlsx")

    r.report_cache = cache  # type: ignore[attr-defined]  # for tests and the bench

    def monthly_report(month: date, lang: str = "pl") -> Any:
        """The month's report for the e-mail job (server.reports.monthly.MonthlyReport)."""
        return _monthly().build_monthly_report(data, month, lang, cache)

    r.monthly_report = monthly_report  # type: ignore[attr-defined]
    r.report_data = data  # type: ignore[attr-defined]  # for tests and the bench
    return r


async def login_required_handler(request: Request, exc: LoginRequired) -> Response:
    return RedirectResponse("/login?" + urlencode({"next": exc.path}), status_code=303)


def mount(app, server) -> None:
    """Add the reports to the app (one line in server.http.build_app)."""
    app.add_exception_handler(LoginRequired, login_required_handler)
    router = build_reports_router(server, app.state.web_auth)
    app.state.report_data = router.report_data  # type: ignore[attr-defined]
    app.state.report_cache = router.report_cache  # type: ignore[attr-defined]
    app.state.monthly_report = router.monthly_report  # type: ignore[attr-defined]  # for the e-mail outbox
    app.include_router(router)
    app.include_router(build_staffing_router(server, app.state.web_auth))  # /reports/staffing
