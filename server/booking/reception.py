"""The reception desk (information point) and the managers' day of bookings: /recepcja.

A clerk (any clerk login) issues a ticket on a resident's behalf for any service, a priority
one included, checks in a booking, looks a booking up by its code, and books a visit for a
caller on the phone. Tickets go through the office façade into the worker, the kiosk's own
path (``TicketRequest``), so the numbering, limits and routing are the same; the ticket's
origin is ``reception``.

Why the priority reason is asked but not stored: the clerk confirms the resident is entitled
(pregnancy, disability, …) by choosing one; a record of it would be health data about a
person at a known time (GDPR art. 9), which the office does not need — the ticket records
that it is a priority ticket and that the reception issued it.

A manager sees the day's bookings and downloads them as CSV **without names and contacts**:
the list is for planning the day (who comes when, for what, checked in or not). Contacts stay
in the system, visible to a clerk for one booking at a time (looked up by its code) for the
one reason they were given — to reach the resident if the visit cannot happen — and are
erased on schedule; a copy in a spreadsheet would escape that erasure.
"""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel

from server.auth import User
from server.booking.codes import display, normalize
from server.booking.contact import ContactError
from server.booking.desk import BookingDesk
from server.booking.store import BookingError
from server.booking.web import TEMPLATES, Pages
from server.office import Office
from server.web_auth import WebAuth

REASONS = {
    "pregnancy": "ciąża / pregnancy",
    "disability": "niepełnosprawność / disability",
    "child": "opiekun dziecka do lat 3 / with a child under 3",
    "senior": "osoba starsza / senior",
    "other": "inny uprawniony / other entitlement",
}
TIMEOUT_S = 5.0


def build_reception_router(office: Office, desk: BookingDesk, auth: WebAuth) -> APIRouter:
    r = APIRouter(include_in_schema=False)

    def page(request: Request, user: User, status: int = 200, **ctx: Any) -> HTMLResponse:
        cfg = office.config
        return TEMPLATES.TemplateResponse(
            request,
            "reception.html",
            {
                "user": user,
                "lang": "pl",
                "office": cfg.office.name,
                "services": [(s.id, s.name.pl) for s in cfg.services],
                "bookable": desk.services(),
                "reasons": REASONS,
                "W": Pages(desk, "pl"),
                "today": desk.today(),
                **{"result": None, "error": None, "booking": None, "slots": None, "form": {}, **ctx},
            },
            status_code=status,
            headers={"Cache-Control": "no-store"},
        )

    async def issue(data: dict[str, Any]) -> dict[str, Any]:
        future = office.issue_ticket({"v": 1, "id": f"rcp-{uuid.uuid4().hex[:16]}", **data}, "reception")
        reply = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), TIMEOUT_S)
        return reply.model_dump(mode="json") if isinstance(reply, BaseModel) else dict(reply)

    @r.get("/recepcja", response_class=HTMLResponse)
    def desk_page(request: Request, kod: str = "") -> HTMLResponse:
        user = auth.page(request, "clerk")
        if not kod:
            return page(request, user)
        code = normalize(kod)
        found = desk.by_code(code) if code else None
        if found is None:
            return page(request, user, 404, error=f"Nie ma rezerwacji z kodem {kod[:20]!r} / no booking with this code")
        return page(request, user, booking=found, code=display(found.code))

    @r.post("/recepcja/numerek", response_class=HTMLResponse)
    async def ticket(request: Request) -> HTMLResponse:
        user = auth.page(request, "clerk")
        form = {k: str(v) for k, v in (await request.form()).items()}
        data: dict[str, Any]
        if form.get("booking"):
            data = {"booking": form["booking"]}
        else:
            priority = form.get("priority") == "yes"
            if priority and form.get("reason") not in REASONS:
                return page(request, user, 422, error="Wybierz powód pierwszeństwa / choose the priority reason")
            data = {"service": form.get("service", ""), "priority": priority}
        try:
            reply = await issue(data)
        except TimeoutError:
            return page(request, user, 503, error="Serwer nie odpowiedział na czas / the server did not answer in time")
        if not reply.get("ok"):
            error = reply.get("error") or {}
            return page(request, user, 409, error=f"{error.get('code')}: {error.get('message')}")
        return page(request, user, result=reply["ticket"])

    @r.get("/recepcja/telefon", response_class=HTMLResponse)
    def phone_slots(request: Request, service: str = "", day: date | None = None) -> HTMLResponse:
        user = auth.page(request, "clerk")
        if service not in desk.services() or day is None:
            return page(request, user, 422, error="Wybierz sprawę i dzień / choose a service and a day")
        return page(request, user, slots=desk.slots(service, day), form={"service": service, "day": day.isoformat()})

    @r.post("/recepcja/telefon", response_class=HTMLResponse)
    async def phone_book(request: Request) -> HTMLResponse:
        user = auth.page(request, "clerk")
        form = {k: str(v) for k, v in (await request.form()).items()}
        try:
            if form.get("consent") != "yes":
                raise BookingError("consent", "the caller must agree to the data being kept (read the consent text)")
            start = datetime.fromisoformat(form.get("slot", ""))
            made = desk.book(form.get("service", ""), start, form.get("name", ""), form.get("contact", ""), "phone")
        except (ValueError, BookingError) as exc:  # ContactError is a ValueError
            field = exc.field if isinstance(exc, ContactError) else getattr(exc, "code", "slot")
            return page(request, user, 409, error=f"{field}: {exc}", form=form)
        return page(request, user, booking=made, code=display(made.code), booked=True)

    @r.get("/recepcja/rezerwacje", response_class=HTMLResponse)
    def day_list(request: Request, day: date | None = None) -> HTMLResponse:
        user = auth.page(request, "manager")
        day = day or desk.today()
        return TEMPLATES.TemplateResponse(
            request,
            "reception_day.html",
            {"user": user, "lang": "pl", "office": office.config.office.name, "day": day, "rows": day_rows(day)},
            headers={"Cache-Control": "no-store"},
        )

    @r.get("/recepcja/rezerwacje.csv")
    def day_csv(request: Request, day: date | None = None) -> Response:
        auth.page(request, "manager")
        day = day or desk.today()
        out = io.StringIO()
        writer = csv.writer(out)
        rows = day_rows(day)
        writer.writerow(list(rows[0]) if rows else ["time", "service", "code", "status", "channel", "ticket"])
        for row in rows:
            writer.writerow(row.values())
        return Response(
            out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="rezerwacje-{day.isoformat()}.csv"'},
        )

    def day_rows(day: date) -> list[dict[str, str]]:
        tz = office.config.office.tz
        return [
            {
                "time": b.starts_at.astimezone(tz).strftime("%H:%M"),
                "service": b.service,
                "code": display(b.code),
                "status": b.status,
                "channel": b.channel,
                "ticket": b.ticket or "",
            }
            for b in desk.on_day(day)
        ]

    return r
