"""The manager's web reports: login, dashboard, live view, JSON API, CSV/XLSX/PDF exports.

Everything under ``/reports`` needs a manager or admin login (server/auth.py): pages
redirect to ``/login``, the API and exports answer 401. All figures come from
:meth:`ReportData.summary`, so the page, the API and every export agree by construction.
"""

import calendar
import threading
from datetime import date
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates

from server.auth import SESSION_COOKIE, User
from server.reports import exports
from server.reports.figures import FilterError, Filters, ReportData
from server.reports.i18n import LANGS, labels
from server.web_auth import LoginRequired, WebAuth, has_role

CHARTS = ("heatmap", "daily", "wait", "utilisation", "ratings")  # server.reports.charts draws them
TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def _lang(value: str | None) -> str:
    return value if value in LANGS else "pl"


def live_status(office) -> dict[str, Any]:
    """Per service now: waiting, longest wait, being served, open counters, alert over target;
    per device: connection and printer state (a kiosk out of paper is the manager's to fix).
    The office façade computes it (server/office.py), the same figures as /api/queues."""
    return office.live()


def build_reports_router(server, auth: WebAuth) -> APIRouter:
    """Routes for ``/login``, ``/logout`` and ``/reports/...``; mounted by server.http.build_app."""
    r = APIRouter(include_in_schema=True, tags=["reports"])
    office = server.office
    data = ReportData(server.path, lambda: office.config, now=office.now)
    threading.Thread(target=data.warm, name="reports-warm", daemon=True).start()

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
    ) -> Filters:
        try:
            return data.parse_filters(date_from, date_to, service, counter, clerk)
        except FilterError as exc:
            raise HTTPException(422, str(exc)) from None

    PageUser = Annotated[User, Depends(page_user)]
    ApiUser = Annotated[User, Depends(api_user)]
    Picked = Annotated[Filters, Depends(filters)]

    def query_string(f: Filters, lang: str, **extra) -> str:
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
    def dashboard(request: Request, f: Picked, user: PageUser, lang: str = "pl") -> HTMLResponse:
        lang = _lang(lang)
        s = data.summary(f)
        qs = query_string(f, lang)
        return TEMPLATES.TemplateResponse(
            request,
            "dashboard.html",
            {
                "L": labels(lang),
                "lang": lang,
                "s": s,
                "f": f,
                "user": user,
                "qs": qs,
                "services": server.config.services,
                "counters": server.config.counters,
                "clerks": data.clerk_ids(),
                "charts": CHARTS,
                "tables": exports.TABLES,
                "month": f.date_to.strftime("%Y-%m"),
                "other_lang": "en" if lang == "pl" else "pl",
                "other_qs": query_string(f, "en" if lang == "pl" else "pl"),
            },
        )

    @r.get("/reports/live", response_class=HTMLResponse, include_in_schema=False)
    def live_page(request: Request, user: PageUser, lang: str = "pl") -> HTMLResponse:
        lang = _lang(lang)
        return TEMPLATES.TemplateResponse(
            request, "live.html", {"L": labels(lang), "lang": lang, "user": user, "live": live_status(office)}
        )

    # ------------------------------------------------------------------ JSON API

    @r.get("/reports/api/summary")
    def api_summary(f: Picked, user: ApiUser) -> dict[str, Any]:
        """Every dashboard figure for the filters (definitions: docs/reports.md)."""
        return data.summary(f)

    @r.get("/reports/api/live")
    def api_live(user: ApiUser) -> dict[str, Any]:
        """Per service now: waiting, longest wait, open counters, over-target alert."""
        return live_status(office)

    # ------------------------------------------------------------------ charts and exports

    @r.get("/reports/chart/{name}.svg", include_in_schema=False)
    def chart(name: str, f: Picked, user: ApiUser, lang: str = "pl") -> Response:
        if name not in CHARTS:
            raise HTTPException(404, f"no chart {name!r}; charts: {', '.join(CHARTS)}")
        from server.reports import charts  # matplotlib: imported on first use, not at server start

        return Response(
            charts.svg(name, data.summary(f), _lang(lang)),
            media_type="image/svg+xml",
            headers={"Cache-Control": "private, max-age=30"},
        )

    def _filename(f: Filters, name: str, ext: str) -> dict[str, str]:
        return {"Content-Disposition": f'attachment; filename="numerek-{name}-{f.date_from}-{f.date_to}.{ext}"'}

    @r.get("/reports/export/{name}.{fmt}")
    def export(name: str, fmt: str, f: Picked, user: ApiUser) -> Response:
        """CSV or XLSX of one table (totals, by_service, by_counter, by_clerk, by_day, heatmap, tickets) or all.xlsx."""
        if fmt not in ("csv", "xlsx"):
            raise HTTPException(404, "exports are .csv or .xlsx")
        if name not in (*exports.TABLES, "all") or (name == "all" and fmt != "xlsx"):
            raise HTTPException(404, f"no table {name!r}; tables: {', '.join(exports.TABLES)} (or all.xlsx)")
        names = exports.TABLES if name == "all" else (name,)
        sheets = []
        for n in names:
            if n == "tickets":
                sheets.append((n, list(data.RAW_COLUMNS), data.raw_tickets(f)))
            else:
                sheets.append((n, *exports.table(n, data.summary(f))))
        if fmt == "csv":
            _, header, rows = sheets[0]
            return StreamingResponse(
                exports.csv_stream(header, rows),
                media_type="text/csv; charset=utf-8",
                headers=_filename(f, name, "csv"),
            )
        try:
            body = exports.xlsx(sheets)
        except OverflowError as exc:
            raise HTTPException(413, str(exc)) from None
        return Response(
            body,
            headers=_filename(f, name, "xlsx"),
            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )

    @r.get("/reports/monthly.pdf")
    def monthly(user: ApiUser, month: Annotated[str | None, Query(max_length=7)] = None, lang: str = "pl") -> Response:
        """The printable monthly summary (month = YYYY-MM; default: the month of the latest data)."""
        try:
            if month:
                y, m = (int(x) for x in month.split("-"))
                first = date(y, m, 1)
            else:
                first = data.default_range()[1].replace(day=1)
        except ValueError:
            raise HTTPException(422, "month must be YYYY-MM") from None
        last = first.replace(day=calendar.monthrange(first.year, first.month)[1])
        f = Filters(first, last)
        lang = _lang(lang)
        from server.reports import charts

        body = charts.monthly_pdf(data.summary(f), lang, first.strftime("%m/%Y"))
        return Response(
            body,
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="numerek-{first:%Y-%m}.pdf"'},
        )

    r.report_data = data  # type: ignore[attr-defined]  # for tests and the bench
    return r


async def login_required_handler(request: Request, exc: LoginRequired) -> Response:
    return RedirectResponse("/login?" + urlencode({"next": exc.path}), status_code=303)


def mount(app, server) -> None:
    """Add the reports to the app (one line in server.http.build_app)."""
    app.add_exception_handler(LoginRequired, login_required_handler)
    router = build_reports_router(server, app.state.web_auth)
    app.state.report_data = router.report_data  # type: ignore[attr-defined]
    app.include_router(router)
