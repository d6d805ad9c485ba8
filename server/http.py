"""HTTP face of the server (FastAPI): health, services, live queues, ticket status.

Reads take the engine lock briefly and answer from memory; the one write (the clerk
panel's counter commands) goes through the worker's inbox, the same path as MQTT, so a
click and a button press are one implementation. Errors are 4xx with a JSON ``detail``;
OpenAPI docs are at /docs.

Public: health, services, queues and a resident's ticket page. Everything about the
counters (their state, their waiting lists, their commands) and the devices needs a clerk
login or better (server/web_auth.py): the ticket page's QR code brings residents' phones to
this same port, and a counter command over HTTP must not bypass the broker's per-device
accounts.
"""

from __future__ import annotations

import asyncio
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
from server.admin import mount as mount_admin
from server.auth import User, Users
from server.clerk_panel import COMMAND_TIMEOUT_S, build_clerk_router
from server.domain import TicketStatus
from server.reports import mount as mount_reports
from server.service import NumerekServer
from server.web_auth import WebAuth

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


class Health(BaseModel):
    status: str
    broker_connected: bool
    schema_version: int
    server_time: datetime
    office: str


class QueueStatus(BaseModel):
    service: str
    name: dict[str, str]
    waiting: int
    being_served: int
    open_counters: int
    longest_wait_s: int
    target_wait_s: int
    over_target: bool


class TicketStatusOut(BaseModel):
    number: str
    service: str
    service_name: dict[str, str]
    status: str
    people_ahead: int | None
    estimated_wait_min: int | None
    counter: str | None
    counter_name: str | None
    issued_at: datetime
    called_at: datetime | None


def ticket_status(server: NumerekServer, token: str) -> TicketStatusOut | None:
    e = server.engine
    with server.lock:
        ticket = next((t for t in e.tickets.values() if t.token == token), None)
        if ticket is not None and ticket.status == TicketStatus.WAITING and ticket.target_counter is None:
            ahead = sum(
                1
                for t in e.tickets.values()
                if t.status == TicketStatus.WAITING
                and t.service == ticket.service
                and t.target_counter is None
                and (t.priority or not ticket.priority)
                and (t.queued_at, t.id) < (ticket.queued_at, ticket.id)
            )
            estimate: int | None = round(e.estimator.estimate(ticket.service, ahead, e.capacity(ticket.service)) / 60)
        else:
            ahead, estimate = None, None
    if ticket is None:
        ticket = server.store.ticket_by_token(token)
        if ticket is None:
            return None
    counter = e.counter_config.get(ticket.counter or "")
    return TicketStatusOut(
        number=ticket.number,
        service=ticket.service,
        service_name=e.services[ticket.service].name.as_dict(),
        status=ticket.status.value,
        people_ahead=ahead,
        estimated_wait_min=estimate,
        counter=ticket.counter,
        counter_name=counter.name if counter else None,
        issued_at=server.local(ticket.issued_at),
        called_at=server.local(ticket.called_at) if ticket.called_at else None,
    )


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


def build_router(server: NumerekServer, auth: WebAuth) -> APIRouter:
    r = APIRouter()

    def clerk(request: Request) -> User:
        return auth.api(request, "clerk")

    @r.get("/health", response_model=Health, tags=["status"])
    def health() -> Health:
        return Health(
            status="ok" if server.online else "degraded",
            broker_connected=server.online,
            schema_version=server.store.schema_version(),
            server_time=server.local(server.engine.now()),
            office=server.config.office.name,
        )

    @r.get("/api/services", response_model=list[ServiceInfo], tags=["queues"])
    def services() -> list[ServiceInfo]:
        with server.lock:
            return server.services_message().services

    @r.get("/api/queues", response_model=list[QueueStatus], tags=["queues"])
    def queues() -> list[QueueStatus]:
        e = server.engine
        with server.lock:
            now = e.now()
            out = []
            for s in e.services.values():
                waiting = [t for t in e.tickets.values() if t.service == s.id and t.status == TicketStatus.WAITING]
                longest = max((int((now - t.queued_at).total_seconds()) for t in waiting), default=0)
                out.append(
                    QueueStatus(
                        service=s.id,
                        name=s.name.as_dict(),
                        waiting=len(waiting),
                        being_served=sum(
                            1
                            for t in e.tickets.values()
                            if t.service == s.id and t.status in (TicketStatus.CALLED, TicketStatus.SERVING)
                        ),
                        open_counters=len(e.open_counters(s.id)),
                        longest_wait_s=longest,
                        target_wait_s=s.target_wait_min * 60,
                        over_target=longest > s.target_wait_min * 60,
                    )
                )
            return out

    @r.get("/api/devices", tags=["status"], dependencies=[Depends(clerk)])
    def devices() -> dict[str, dict[str, str]]:
        return server.device_status()

    @r.get("/api/tickets/{token}", response_model=TicketStatusOut, tags=["tickets"])
    def ticket(token: str) -> TicketStatusOut:
        found = ticket_status(server, token) if len(token) <= 64 else None
        if found is None:
            raise HTTPException(404, "no ticket with this token")
        return found

    @r.get("/t/{token}", response_class=HTMLResponse, tags=["tickets"], include_in_schema=False)
    def ticket_page(request: Request, token: str, lang: str = "pl") -> HTMLResponse:
        found = ticket_status(server, token) if len(token) <= 64 else None
        lang = lang if lang in ("pl", "en", "uk") else "pl"
        return TEMPLATES.TemplateResponse(
            request,
            "ticket.html",
            {"t": found, "lang": lang, "office": server.config.office.name, "token": token},
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
        if counter_id not in server.engine.counters:
            raise HTTPException(404, f"no counter {counter_id!r}")
        if command.get("action") == "rate":
            # A rating is the client's, from the rating buttons at the counter (MQTT), never the
            # clerk's own browser: a clerk login must not be able to rate its own service.
            raise HTTPException(403, "ratings come from the client's rating buttons at the counter, not over HTTP")
        future = server.submit_counter_command(counter_id, command)
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
        if counter_id not in server.engine.counters:
            raise HTTPException(404, f"no counter {counter_id!r}")
        with server.lock:
            return server.counter_state(counter_id).model_dump(mode="json")

    return r


def build_app(server: NumerekServer, manage_lifecycle: bool = True) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI):
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
    app.state.web_auth = auth = WebAuth(Users(server.store.path))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    app.include_router(build_router(server, auth))
    app.include_router(build_clerk_router(server, auth))
    mount_admin(app, server)  # first: lays the stored admin changes over the file config
    mount_reports(app, server)
    return app
