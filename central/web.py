"""The centre's pages (``numerek-central-web``): every branch live, and the report per branch
and across branches with a CSV export (docs/multi-branch.md). A thin shell over
:mod:`central.views`.

Access: a ``manager`` (or ``admin``) login of the centre's own users file, with the branch
server's login machinery reused as it is (server/web_auth.py: Argon2id behind budgets per
address and per account, server-side sessions, HttpOnly SameSite cookies), and its guards
(server/web_security.py: Origin/Fetch-Metadata CSRF check, security headers, no-store on
signed-in pages, body limits). Accounts: ``numerek-users --database <users file> add NAME
--role manager``.
"""

# No "from __future__ import annotations": FastAPI reads the routes' Annotated dependencies, made inside create_app.

import argparse
import dataclasses
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import psycopg
from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from pydantic import TypeAdapter, ValidationError

from central import configpush, summary, views
from central.config import CentralConfig, load_config
from protocol.config import ConfigError
from protocol.replica import ConfigEdit
from protocol.topics import _ID, Topics
from server.auth import SESSION_COOKIE, User, Users
from server.web_auth import LoginRequired, WebAuth, has_role
from server.web_security import BodyLimit, CrossOriginGuard, SecurityHeaders

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
BOOKING_TZ = ZoneInfo(summary.TIME_ZONE)
"""The offices' time zone: the booking entry shows the branches' times as their residents read them."""
MAX_REPORT_DAYS = 366


def _minutes(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds / 60:.1f}".replace(".", ",")


def _clock(at: datetime | None) -> str:
    return "—" if at is None else at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


TEMPLATES.env.globals.update(minutes=_minutes, clock=_clock)


def create_app(cfg: CentralConfig, users_database: str) -> FastAPI:
    app = FastAPI(title="Numerek centre", docs_url=None, redoc_url=None, openapi_url=None)
    users = Users(users_database)
    auth = WebAuth(users)
    names = cfg.branch_names()

    def db() -> Iterator[psycopg.Connection[Any]]:
        try:
            conn = psycopg.connect(cfg.database.dsn, autocommit=True, connect_timeout=5)
        except psycopg.OperationalError:
            raise HTTPException(503, "the central database is unavailable / baza centrali niedostępna") from None
        with conn:
            yield conn

    def page_user(request: Request) -> User:
        return auth.page(request, "manager")

    Db = Annotated[psycopg.Connection[Any], Depends(db)]
    PageUser = Annotated[User, Depends(page_user)]

    @app.exception_handler(LoginRequired)
    def _login_required(_request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse("/login?" + urlencode({"next": exc.path}), status_code=303)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = Query("/", max_length=500)) -> Response:  # noqa: A002
        return TEMPLATES.TemplateResponse(request, "login.html", {"user": None, "next": next, "error": False})

    @app.post("/login")
    def login(
        request: Request,
        name: str = Form("", max_length=64),
        password: str = Form("", max_length=256),
        next: str = Form("/", max_length=500),  # noqa: A002
    ) -> Response:
        signed_in = auth.login(request, name.strip(), password)  # 429/503 before any hashing
        if signed_in is None or signed_in[0].role not in ("manager", "admin"):
            return TEMPLATES.TemplateResponse(
                request, "login.html", {"user": None, "next": next, "error": True}, status_code=401
            )
        # Only back to our own pages (no open redirect).
        target = next if next.startswith("/") and not next.startswith("//") and "\\" not in next else "/"
        resp = RedirectResponse(target, status_code=303)
        auth.set_session(request, resp, signed_in[1])
        return resp

    @app.post("/logout")
    def logout(request: Request) -> Response:
        auth.logout(request)
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(SESSION_COOKIE)
        return resp

    # --- the public list of branches (no login; nothing personal) ---------------------------
    urls = cfg.public_urls()

    def public_rows(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
        """Only the configured branches, with what a resident needs: how many wait, whether
        the figure is live, and where the branch's own status page and booking are."""
        live = {b.branch: b for b in views.live(conn, names)}
        rows = []
        for branch, name in sorted(names.items(), key=lambda kv: kv[1]):
            b = live.get(branch)
            url = urls.get(branch)
            rows.append(
                {
                    "branch": branch,
                    "name": name,
                    "waiting": b.waiting if b is not None and b.in_contact else None,
                    "status_url": f"{url}/kolejka" if url else None,
                    "booking_url": f"{url}/rezerwacja" if url else None,
                }
            )
        return rows

    @app.get("/kolejka", response_class=HTMLResponse)
    def public_page(request: Request, conn: Db) -> Response:
        resp = TEMPLATES.TemplateResponse(request, "public.html", {"user": None, "rows": public_rows(conn)})
        resp.headers["Cache-Control"] = "public, max-age=10"
        return resp

    # --- one booking entry for every branch (no login): pick a branch and a service, see
    # its next free times, continue to that branch's own booking (its rules, its form) -------
    def booking_rows(conn: psycopg.Connection[Any], branch: str, service: str) -> list[dict[str, Any]]:
        rows = []
        for r in views.booking(conn, names):
            url = urls.get(r.branch)
            if url is None or (branch and r.branch != branch) or (service and r.service != service):
                continue
            first = r.next_free[0].astimezone(BOOKING_TZ).date() if r.next_free else None
            rows.append(
                {
                    "branch": r.branch,
                    "branch_name": r.branch_name,
                    "service": r.service,
                    "name": r.name,
                    "next_free": [t.astimezone(BOOKING_TZ).isoformat() for t in r.next_free],
                    "booking_url": f"{url}/rezerwacja/{r.service}" + (f"/{first.isoformat()}" if first else ""),
                }
            )
        return rows

    @app.get("/rezerwacja", response_class=HTMLResponse)
    def booking_page(
        request: Request,
        conn: Db,
        branch: str = Query("", max_length=32),
        service: str = Query("", max_length=32),
    ) -> Response:
        every = booking_rows(conn, "", "")
        rows = [r for r in every if (not branch or r["branch"] == branch) and (not service or r["service"] == service)]
        services = sorted({(r["service"], r["name"].get("pl", r["service"])) for r in every})
        branches = sorted({(r["branch"], r["branch_name"]) for r in every}, key=lambda b: b[1])
        resp = TEMPLATES.TemplateResponse(
            request,
            "booking.html",
            {
                "user": None,
                "rows": rows,
                "branches": branches,
                "services": services,
                "branch": branch,
                "service": service,
                "local": lambda iso: datetime.fromisoformat(iso).strftime("%d.%m %H:%M"),
            },
        )
        resp.headers["Cache-Control"] = "public, max-age=30"
        return resp

    @app.get("/api/public/booking")
    def booking_api(
        conn: Db, branch: str = Query("", max_length=32), service: str = Query("", max_length=32)
    ) -> JSONResponse:
        return JSONResponse(booking_rows(conn, branch, service), headers={"Cache-Control": "public, max-age=30"})

    @app.get("/api/public/branches")
    def public_api(conn: Db) -> JSONResponse:
        return JSONResponse(public_rows(conn), headers={"Cache-Control": "public, max-age=10"})

    @app.get("/", response_class=HTMLResponse)
    def live_page(request: Request, user: PageUser, conn: Db) -> Response:
        return TEMPLATES.TemplateResponse(request, "live.html", {"user": user, "branches": views.live(conn, names)})

    @app.get("/api/live")
    def live_api(request: Request, conn: Db) -> JSONResponse:
        auth.api(request, "manager")
        return JSONResponse(
            [
                {
                    "branch": b.branch,
                    "name": b.name,
                    "waiting": b.waiting,
                    "longest_wait_s": b.longest_wait_s,
                    "open_counters": b.open_counters,
                    "last_event_at": b.last_event_at.isoformat() if b.last_event_at else None,
                    "last_heard_s": b.last_heard_s,
                    "behind": b.behind,
                    "conflicts": b.conflicts,
                    "devices_offline": None if b.devices_offline is None else list(b.devices_offline),
                    "in_contact": b.in_contact,
                }
                for b in views.live(conn, names)
            ]
        )

    def period(
        date_from: str | None = Query(None, alias="from", max_length=10),
        date_to: str | None = Query(None, alias="to", max_length=10),
        branch: str | None = Query(None, max_length=32),
    ) -> tuple[date, date, str | None]:
        today = datetime.now(UTC).date()
        try:
            last = date.fromisoformat(date_to) if date_to else today
            first = date.fromisoformat(date_from) if date_from else last - timedelta(days=6)
        except ValueError:
            raise HTTPException(422, "dates are YYYY-MM-DD / daty w formacie RRRR-MM-DD") from None
        if first > last or (last - first).days >= MAX_REPORT_DAYS:
            raise HTTPException(422, f"'from' must be before 'to', at most {MAX_REPORT_DAYS} days")
        if branch and not _ID.match(branch):
            raise HTTPException(422, "no such branch / nie ma takiego oddziału")
        return first, last, branch or None

    Period = Annotated[tuple[date, date, str | None], Depends(period)]

    @app.get("/report", response_class=HTMLResponse)
    def report_page(request: Request, user: PageUser, conn: Db, p: Period) -> Response:
        first, last, branch = p
        q = urlencode({"from": first.isoformat(), "to": last.isoformat(), "branch": branch or ""})
        return TEMPLATES.TemplateResponse(
            request,
            "report.html",
            {
                "user": user,
                "rows": views.report(conn, first, last, branch),
                "first": first,
                "last": last,
                "branch": branch,
                "names": sorted(names.items()),
                "query": q,
                "label": lambda b: "wszystkie / all" if b is None else names.get(b, b),
            },
        )

    @app.get("/api/report")
    def report_api(request: Request, conn: Db, p: Period) -> JSONResponse:
        auth.api(request, "manager")
        first, last, branch = p
        return JSONResponse([dataclasses.asdict(r) for r in views.report(conn, first, last, branch)])

    @app.get("/report.csv")
    def report_csv(request: Request, user: PageUser, conn: Db, p: Period) -> Response:
        first, last, branch = p
        body = views.report_csv(views.report(conn, first, last, branch))
        name = f"numerek-{branch or 'all'}-{first}-{last}.csv"
        return Response(
            body,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    # --- configuration pushed to branches (central/configpush.py) -------------------------
    topics = Topics(cfg.mqtt.topic_base)

    def config_page(
        request: Request, user: User, conn: psycopg.Connection[Any], status: int = 200, **extra: Any
    ) -> Response:
        return TEMPLATES.TemplateResponse(
            request,
            "config.html",
            {
                "user": user,
                "pushes": configpush.history(conn),
                "names": sorted(names.items()),
                "label": lambda b: names.get(b, b),
                "can_push": has_role(user, "admin"),
                "error": None,
                "sent": None,
                **extra,
            },
            status_code=status,
        )

    @app.get("/config", response_class=HTMLResponse)
    def config_view(request: Request, user: PageUser, conn: Db) -> Response:
        return config_page(request, user, conn)

    @app.post("/config", response_class=HTMLResponse)
    def config_push(
        request: Request,
        conn: Db,
        branch: str = Form("", max_length=32),
        changes: str = Form(..., max_length=20_000),
    ) -> Response:
        """An admin pushes a configuration to a branch or every configured branch."""
        user = auth.page(request, "admin")
        if branch and branch not in names:
            return config_page(request, user, conn, 422, error="no such branch / nie ma takiego oddziału")
        targets = [branch] if branch else sorted(names)
        try:
            edits = TypeAdapter(list[ConfigEdit]).validate_json(changes)
            if not edits:
                raise ValueError("no changes / brak zmian")
        except (ValidationError, ValueError) as exc:
            why = exc.errors()[0] if isinstance(exc, ValidationError) else None
            text = f"{'.'.join(map(str, why['loc']))}: {why['msg']}" if why else str(exc)
            return config_page(request, user, conn, 422, error=f"changes: {text}")
        try:
            ids = configpush.push(conn, cfg.mqtt, topics, targets, edits, user.name)
        except configpush.PushError as exc:
            return config_page(request, user, conn, 503, error=str(exc))
        return config_page(request, user, conn, sent=", ".join(f"{b} ({i})" for b, i in zip(targets, ids, strict=True)))

    @app.get("/api/config-pushes")
    def config_pushes_api(request: Request, conn: Db) -> JSONResponse:
        auth.api(request, "manager")
        return JSONResponse(
            [
                {
                    **dataclasses.asdict(p),
                    "pushed_at": p.pushed_at.isoformat(),
                    "answered_at": p.answered_at.isoformat() if p.answered_at else None,
                }
                for p in configpush.history(conn)
            ]
        )

    XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

    def lang_of(lang: str) -> str:
        return "en" if lang == "en" else "pl"

    @app.get("/report.xlsx")
    def report_xlsx(
        request: Request, user: PageUser, conn: Db, p: Period, lang: str = Query("pl", max_length=2)
    ) -> Response:
        """The branch report's workbook for the period: the branches compared, totals, services, days, hours."""
        first, last, branch = p
        body = summary.xlsx(summary.figures(conn, first, last, branch, names), lang_of(lang))
        name = f"numerek-{branch or 'all'}-{first}-{last}.xlsx"
        return Response(body, media_type=XLSX, headers={"Content-Disposition": f'attachment; filename="{name}"'})

    @app.get("/report.pdf")
    def report_pdf(
        request: Request,
        user: PageUser,
        conn: Db,
        month: str = Query(..., pattern=r"^\d{4}-\d{2}$"),
        branch: str | None = Query(None, max_length=32),
        lang: str = Query("pl", max_length=2),
    ) -> Response:
        """The branch's printable monthly report for a month (one branch or all), compared with the month before."""
        try:
            first = date.fromisoformat(month + "-01")
        except ValueError:
            raise HTTPException(422, "month is YYYY-MM / miesiąc w formacie RRRR-MM") from None
        if branch and not _ID.match(branch):
            raise HTTPException(422, "no such branch / nie ma takiego oddziału")
        last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
        before_last = first - timedelta(days=1)
        now = summary.figures(conn, first, last, branch or None, names)
        before = summary.figures(conn, before_last.replace(day=1), before_last, branch or None, names)
        body = summary.pdf(now, before, lang_of(lang))
        name = f"numerek-{branch or 'all'}-{month}.pdf"
        return Response(
            body, media_type="application/pdf", headers={"Content-Disposition": f'attachment; filename="{name}"'}
        )

    app.add_middleware(BodyLimit)
    app.add_middleware(CrossOriginGuard, trusted_origins=[])
    app.add_middleware(SecurityHeaders)
    return app


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    p = argparse.ArgumentParser(prog="numerek-central-web", description="the centre's live view and reports")
    p.add_argument("--config", required=True, help="central.toml")
    args = p.parse_args(argv)
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"numerek-central-web: {exc}", file=sys.stderr)
        return 2
    users_db = cfg.http.users_database
    if not Path(users_db).is_absolute():
        users_db = str(Path(args.config).parent / users_db)
    uvicorn.run(create_app(cfg, users_db), host=cfg.http.host, port=cfg.http.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
