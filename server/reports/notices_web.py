"""The managers' notification report: ``/reports/notices`` (page), ``/reports/api/notices`` (JSON),
``/reports/notices/export/<table>.csv`` and ``/reports/notices/export/all.xlsx``.

A manager (or admin) login, like every report. The figures are server/reports/notices.py's:
counts by outcome, kind, channel and day, SMS parts and their price, the share of tickets
whose holder asked to be notified, pick-up notices per week. No phone number or address
in any of them. Mounted with ``[notify]`` only (server/http.py): without it the tables
do not exist.

The page's texts live here, in Polish and English, until they move into the reports'
gettext catalogue (server/locale/reports.pot; another change was editing it at the time).
"""

from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates

from server.catalogue import table
from server.reports import exports
from server.reports import notices as figures
from server.reports.i18n import labels
from server.web_auth import WebAuth

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
LANGS = ("pl", "en")
MAX_DAYS = 400
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

TEXTS: dict[str, dict[str, str]] = {
    lang: {
        key.removeprefix("notices."): row[lang] for key, row in table("reports").items() if key.startswith("notices.")
    }
    for lang in ("pl", "en")
}
"""The page's texts from the reports catalogue (server/locale/reports.pot, ``notices.*``)."""


def build_notices_report_router(server: Any, auth: WebAuth) -> APIRouter:
    r = APIRouter(tags=["reports"])
    office = server.office
    price = server.config.notify.sms_part_price if server.config.notify else 0.0

    def period(since: str | None, until: str | None) -> tuple[date, date]:
        today = office.now().date()
        try:
            last = date.fromisoformat(until) if until else today
            first = date.fromisoformat(since) if since else last - timedelta(days=29)
        except ValueError:
            raise HTTPException(422, "since and until are dates YYYY-MM-DD") from None
        if first > last:
            raise HTTPException(422, "since must not be after until")
        if (last - first).days >= MAX_DAYS:
            raise HTTPException(422, f"at most {MAX_DAYS} days at once")
        return first, last

    def load(since: str | None, until: str | None) -> figures.NoticeFigures:
        first, last = period(since, until)
        return figures.load(server.path, first, last, office.config.office.tz, price)

    Day = Annotated[str | None, Query(max_length=10, description="YYYY-MM-DD")]

    @r.get("/reports/notices", response_class=HTMLResponse, include_in_schema=False)
    def notices_page(request: Request, since: Day = None, until: Day = None, lang: str = "pl") -> Response:
        user = auth.page(request, "manager")
        lang = lang if lang in LANGS else "pl"
        f = load(since, until)
        totals = f.totals()
        t = TEXTS[lang]
        cost = t["cost"].format(cost=labels(lang).number(f.cost, 2)) if price else ""
        context = {
            "user": user,
            "lang": lang,
            "other_lang": "en" if lang == "pl" else "pl",
            "L": labels(lang),
            "T": t,
            "f": f,
            "tables": figures.tables(f, lang),
            "summary": t["summary"].format(cost=cost, **totals),
            "has_pickup_times": any(w.picked_up for w in f.pickups),
        }
        return TEMPLATES.TemplateResponse(request, "notices.html", context)

    @r.get("/reports/api/notices")
    def api_notices(request: Request, since: Day = None, until: Day = None) -> dict[str, Any]:
        """Notices by outcome, kind, channel and day; subscriptions; pick-up notices per week (docs/reports.md)."""
        auth.api(request, "manager")
        return figures.as_json(load(since, until))

    @r.get("/reports/notices/export/{name}.{fmt}")
    def export_notices(
        request: Request,
        name: str,
        fmt: str,
        since: Day = None,
        until: Day = None,
        lang: str = "pl",
        excel: bool = False,
    ) -> Response:
        """One table as CSV (``excel=1``: Polish Excel's dialect), or ``all.xlsx``."""
        auth.api(request, "manager")
        lang = lang if lang in LANGS else "pl"
        if (fmt, name) != ("xlsx", "all") and not (fmt == "csv" and name in figures.TABLES):
            raise HTTPException(404, f"exports: {', '.join(n + '.csv' for n in figures.TABLES)}, all.xlsx")
        f = load(since, until)
        tables = figures.tables(f, lang)
        stem = f"numerek-{name}-{f.since}-{f.until}"
        if fmt == "csv":
            return StreamingResponse(
                exports.csv_stream(tables[name], excel=excel, lang=lang),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="{stem}.csv"'},
            )
        body = exports.xlsx(list(tables.values()), lang)
        return Response(
            body,
            media_type=XLSX,
            headers={"Content-Disposition": f'attachment; filename="numerek-notices-{f.since}-{f.until}.xlsx"'},
        )

    return r
