"""HTTP face of the server (FastAPI): health, services, live queues, ticket status.

Every route asks the office façade (server/office.py), never the engine or the database
directly: reads answer from memory or from read-only connections, and the one write (the
clerk panel's counter commands) goes through the worker's inbox, the same path as MQTT, so
a click and a button press are one implementation. Errors are 4xx with a JSON ``detail``;
OpenAPI docs are at /docs.

Public: health, services, queues and a resident's ticket page. Everything about the
counters (their state, their waiting lists, their commands) and the devices needs a clerk
login or better (server/web_auth.py): the ticket page's QR code brings residents' phones to
this same port, and a counter command over HTTP must not bypass the broker's per-device
accounts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel

from protocol.messages import CounterReply, ServiceInfo
from protocol.waits import wait_text
from server.admin import build_admin_router
from server.auth import User, Users
from server.booking.web import mount as mount_booking
from server.clerk_panel import COMMAND_TIMEOUT_S, build_clerk_router
from server.notify_web import build_notify_router, ticket_context
from server.office import Office, QueueStatus, TicketStatusOut
from server.pickup_web import build_pickup_router
from server.public import mount as mount_public
from server.reports import mount as mount_reports
from server.reports.notices_web import build_notices_report_router
from server.service import NumerekServer
from server.survey_web import build_survey_router, survey_context
from server.web_auth import WebAuth
from server.web_security import BodyLimit, CrossOriginGuard, SecurityHeaders

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


class Health(BaseModel):
    status: str  # "ok", or "degraded" when the broker, the database, the disk or the worker is not right
    broker_connected: bool
    database: str  # "ok", or what is wrong with it (a full disk, a damaged file)
    database_advice: str | None = None  # what the operator should do about it
    disk_free_mb: int
    disk_low: bool  # under [storage] min_free_mb: writes will soon fail
    schema_version: int | None
    clock_synchronized: bool | None = None  # the kernel says NTP has set the clock (None: cannot tell)
    clock_step_pending_s: int | None = None  # the system clock stepped by this much; taken over when idle
    server_time: datetime
    office: str


def _http_status(reply: dict[str, Any]) -> int:
    """200 for a carried-out command; 422 for one we could not read; 404 for an unknown
    ticket or service; 409 for a valid command the queue's state refuses (stale, …)."""
    if reply.get("ok"):
        return 200
    code = (reply.get("error") or {}).get("code")
    if code in ("invalid_request", "unsupported_version"):
        return 422
    if code in ("unknown_counter", "unknown_service", "unknown_ticket"):
        return 404
    return 409


def build_router(server: NumerekServer, office: Office, auth: WebAuth) -> APIRouter:
    r = APIRouter()

    def clerk(request: Request) -> User:
        return auth.api(request, "clerk")

    @r.get("/health", response_model=Health, tags=["status"])
    def health() -> Health:
        return Health(**server.health())

    @r.get("/api/services", response_model=list[ServiceInfo], tags=["queues"])
    def services() -> list[ServiceInfo]:
        return office.services()

    @r.get("/api/queues", response_model=list[QueueStatus], tags=["queues"])
    def queues() -> list[QueueStatus]:
        return office.queues()

    @r.get("/api/devices", tags=["status"], dependencies=[Depends(clerk)])
    def devices() -> dict[str, dict[str, str]]:
        return server.device_status()

    @r.get("/api/tickets/{token}", response_model=TicketStatusOut, tags=["tickets"])
    def ticket(token: str) -> TicketStatusOut:
        found = office.ticket_status(token) if len(token) <= 64 else None
        if found is None:
            raise HTTPException(404, "no ticket with this token")
        return found

    @r.get("/t/{token}", response_class=HTMLResponse, tags=["tickets"], include_in_schema=False)
    def ticket_page(request: Request, token: str, lang: str = "pl") -> HTMLResponse:
        found = office.ticket_status(token) if len(token) <= 64 else None
        lang = lang if lang in ("pl", "en", "uk") else "pl"
        return TEMPLATES.TemplateResponse(
            request,
            "ticket.html",
            {
                "t": found,
                "lang": lang,
                "office": office.config.office.name,
                "token": token,
                "wait_text": wait_text,
                "notify": ticket_context(server.notices, token, lang),  # SMS/e-mail ([notify]), or None
                "survey": survey_context(server.survey, found, token, lang),  # after-visit survey ([survey])
            },
            status_code=200 if found else 404,
        )

    @r.post(
        "/api/counters/{counter_id}/commands",
        response_model=CounterReply,
        tags=["counters"],
        dependencies=[Depends(clerk)],
    )
    async def counter_command(counter_id: str, command: dict[str, Any]) -> JSONResponse:
        """Send a counter command (the clerk panel; needs a clerk login). Same body and reply as over MQTT."""
        if not office.has_counter(counter_id):
            raise HTTPException(404, f"no counter {counter_id!r}")
        if command.get("action") == "rate":
            # A rating is the client's, from the rating buttons at the counter (MQTT), never the
            # clerk's own browser: a clerk login must not be able to rate its own service.
            raise HTTPException(403, "ratings come from the client's rating buttons at the counter, not over HTTP")
        future = office.counter_command(counter_id, command)
        try:
            reply = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), COMMAND_TIMEOUT_S)
        except TimeoutError:
            # The worker is stuck (a disk that does not answer): say so. The clerk panel's commands
            # carry ``expires_at`` (now + COMMAND_TIMEOUT_S), so the worker refuses them if it gets
            # to them later; a script's command without one may still be carried out.
            raise HTTPException(
                503, "the server did not carry out the command in time; check the counter's state"
            ) from None
        payload = reply.model_dump(mode="json") if isinstance(reply, BaseModel) else reply
        return JSONResponse(payload, status_code=_http_status(payload))

    @r.get("/api/counters/{counter_id}", tags=["counters"], dependencies=[Depends(clerk)])
    def counter_state(counter_id: str) -> dict[str, Any]:
        state = office.counter_state(counter_id)
        if state is None:
            raise HTTPException(404, f"no counter {counter_id!r}")
        return state.model_dump(mode="json")

    return r


def build_app(server: NumerekServer, manage_lifecycle: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if manage_lifecycle:
            server.start()
        try:
            yield
        finally:
            if manage_lifecycle:
                server.stop()

    app = FastAPI(
        title="Numerek",
        summary="Queue management for public offices",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.numerek = server
    http = server.config.http
    users = Users(server.path, idle_min=http.session_idle_min, max_h=http.session_max_h, migrate=False)
    app.state.web_auth = auth = WebAuth(users, http)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    office = server.office
    app.include_router(build_router(server, office, auth))
    app.include_router(build_clerk_router(office, auth))
    app.include_router(build_admin_router(office, auth))
    mount_reports(app, server)
    app.state.report_pages = []  # the managers' pages this office has, linked from the reports' header
    app.state.clerk_pages = [("/recepcja", "nav_reception")]  # and the clerks', from the clerk panel
    if server.notices is not None:
        app.state.report_pages += [("/reports/notices", "nav_notices"), ("/reports/pickups", "nav_pickups")]
        app.state.clerk_pages.append(("/clerk/pickup", "nav_pickup"))
        app.include_router(build_notify_router(server.notices, office))  # /t/<token>/notify (server/notify_web.py)
        app.include_router(build_pickup_router(server.notices, office, auth))  # document ready (server/pickup_web.py)
        app.include_router(
            build_notices_report_router(server, auth)
        )  # /reports/notices (server/reports/notices_web.py)
    mount_booking(app, server)  # /rezerwacja: residents book a visit (server/booking/web.py, docs/booking.md)
    if server.survey is not None:
        app.state.report_pages.append(("/reports/survey", "nav_survey"))
        app.include_router(
            build_survey_router(server.survey, office, auth)
        )  # /t/<token>/ankieta (server/survey_web.py)
    mount_public(app, server)  # /kolejka, /widget/, /api/public: read-only, no login (server/public.py)
    app.add_middleware(BodyLimit)  # 413 before a body over its route's limit is read
    app.add_middleware(CrossOriginGuard, trusted_origins=[http.public_url])  # CSRF: other sites' forms and calls
    widget = (
        " ".join(["'self'", *server.config.public.allowed_origins])
        if server.config.public.allowed_origins
        else "'self'"
    )
    # outermost: on every answer, the two above's too; only the public widget may be framed (docs/public-status.md)
    app.add_middleware(SecurityHeaders, frameable={"/widget/": widget})
    return app
