"""The public booking site (/rezerwacja): thin pages over :class:`BookingDesk`.

Plain HTML forms, no script needed: a resident on an old phone or with a screen reader
books the same way (step by step: service, day, time and details). Each form POSTs and is
answered with a redirect to the booking's own page (so a reload never books twice).

Security (OWASP ASVS L1): the server's CSRF/Origin guard and body limits apply (server/http.py);
booking attempts are counted per client address before the attempt (``[booking] per_address``)
and unknown booking links per address (``lookups_per_address``); the booking's page is
reached only by its unguessable link (192 bits), is never cached and sends no referrer.
"""

from __future__ import annotations

import io
from datetime import date, datetime
from pathlib import Path
from typing import Any

import qrcode
import qrcode.image.svg
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from limits import parse_many
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from markupsafe import Markup

from server.booking.codes import display
from server.booking.contact import ContactError
from server.booking.desk import BookingDesk
from server.booking.ics import booking_ics
from server.booking.store import Booking, BookingError, BookingStore
from server.booking.texts import LANGS, TEXTS, WEEKDAYS
from server.config import Names
from server.web_auth import client_key

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent.parent / "templates"))
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


class AddressBudget:
    """At most the configured attempts per client address (``limits``' moving window, thread-safe)."""

    def __init__(self, rates: str) -> None:
        self.items = parse_many(rates)
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def hit(self, key: str) -> bool:
        return all(self.limiter.hit(item, "booking", key) for item in self.items)


def _lang(value: str | None) -> str:
    return value if value in LANGS else "pl"


def name_in(names: Names, lang: str) -> str:
    return str(getattr(names, lang, None) or (names.pl if lang == "pl" else names.en))


def qr_svg(code: str, label: str) -> Markup:
    """The code as a QR code, inline SVG (the kiosk's 2D scanner types exactly the code)."""
    img = qrcode.make(code, image_factory=qrcode.image.svg.SvgPathImage, box_size=10, border=2)
    buf = io.BytesIO()
    img.save(buf)
    svg = buf.getvalue().decode()
    svg = svg[svg.index("<svg") :]
    head, rest = svg.split(">", 1)
    head = head.replace('width="', 'data-w="').replace('height="', 'data-h="')
    safe_label = label.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return Markup(f'{head} role="img" aria-label="{safe_label}" class="qr">{rest}')  # noqa: S704  # made here


class Pages:
    """What every booking template gets: words, names, dates in the resident's language."""

    def __init__(self, desk: BookingDesk, lang: str) -> None:
        self.desk = desk
        self.lang = lang
        self.t = TEXTS[lang]

    def __getitem__(self, key: str) -> str:
        return self.t[key]

    def service(self, service_id: str) -> str:
        s = self.desk.config.service(service_id)
        return name_in(s.name, self.lang) if s else service_id

    def day(self, value: date) -> str:
        return f"{WEEKDAYS[self.lang][value.weekday()]} {value.strftime('%d.%m.%Y')}"

    def when(self, b: Booking) -> str:
        tz = self.desk.config.office.tz
        start = b.starts_at.astimezone(tz)
        return f"{self.day(start.date())}, {start.strftime('%H:%M')}–{b.ends_at.astimezone(tz).strftime('%H:%M')}"


def build_booking_router(desk: BookingDesk, public_host: str = "numerek") -> APIRouter:
    r = APIRouter(include_in_schema=False)
    attempts = AddressBudget(desk.config.booking.per_address)
    lookups = AddressBudget(desk.config.booking.lookups_per_address)

    def render(request: Request, template: str, lang: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        words = Pages(desk, lang)
        return TEMPLATES.TemplateResponse(
            request,
            template,
            {"W": words, "lang": lang, "langs": LANGS, "texts": TEXTS, "office": desk.config.office.name, **ctx},
            status_code=status,
            headers=NO_STORE if template == "booking_result.html" else None,
        )

    @r.get("/rezerwacja", response_class=HTMLResponse)
    def services(request: Request, lang: str = "pl") -> HTMLResponse:
        return render(request, "booking_services.html", _lang(lang), services=desk.services())

    @r.get("/rezerwacja/{service}", response_class=HTMLResponse)
    def days(request: Request, service: str, lang: str = "pl") -> HTMLResponse:
        lang = _lang(lang)
        if service not in desk.services():
            return render(request, "booking_services.html", lang, 404, services=desk.services())
        return render(request, "booking_days.html", lang, service=service, days=desk.days(service))

    def slot_form(request: Request, service: str, day: date, lang: str, status: int = 200, **ctx: Any) -> Response:
        if service not in desk.services():
            return render(request, "booking_services.html", lang, 404, services=desk.services())
        slots = desk.slots(service, day)
        return render(
            request,
            "booking_slots.html",
            lang,
            status,
            service=service,
            day=day,
            slots=slots,
            retention=desk.config.booking.retention_days,
            **{"errors": {}, "form": {}, **ctx},
        )

    @r.get("/rezerwacja/{service}/{day}", response_class=HTMLResponse)
    def slots(request: Request, service: str, day: date, lang: str = "pl") -> Response:
        return slot_form(request, service, day, _lang(lang))

    @r.post("/rezerwacja/{service}/{day}", response_class=HTMLResponse)
    async def book(request: Request, service: str, day: date, lang: str = "pl") -> Response:
        lang = _lang(lang)
        form = {k: str(v) for k, v in (await request.form()).items()}
        t = TEXTS[lang]
        if not attempts.hit(client_key(request)):
            return slot_form(request, service, day, lang, 429, errors={"form": t["err_rate"]}, form=form)
        errors: dict[str, str] = {}
        start: datetime | None = None
        try:
            start = datetime.fromisoformat(form.get("slot", ""))
            if start.tzinfo is None:
                raise ValueError
        except ValueError:
            errors["slot"] = t["err_slot"]
        if form.get("consent") != "yes":
            errors["consent"] = t["err_consent"]
        if not errors and start is not None:
            try:
                booking = desk.book(service, start, form.get("name", ""), form.get("contact", ""), "online", lang)
            except ContactError as exc:
                errors[exc.field] = t[f"err_{exc.field}"]
            except BookingError as exc:
                key = f"err_{exc.code}" if f"err_{exc.code}" in t else "err_slot_unavailable"
                errors["contact" if exc.code == "contact_limit" else "slot"] = t[key].format(
                    n=desk.config.booking.per_contact
                )
            else:
                return RedirectResponse(f"/wizyta/{booking.token}?lang={lang}", 303)
        else:  # say everything that is wrong at once
            from server.booking.contact import clean_contact, clean_name

            for field, check in (("name", clean_name), ("contact", clean_contact)):
                try:
                    check(form.get(field, ""))
                except ContactError:
                    errors[field] = t[f"err_{field}"]
        status = 409 if errors.get("slot") in (t["err_slot_full"], t["err_slot_unavailable"]) else 422
        return slot_form(request, service, day, lang, status, errors=errors, form=form)

    def found(request: Request, token: str) -> Booking | None:
        key = client_key(request)
        booking = desk.by_token(token)
        if booking is None:
            lookups.hit(key)
        return booking

    def not_found(request: Request, lang: str) -> Response:
        if not lookups.hit(client_key(request)):
            return Response(TEXTS[lang]["err_rate"], 429, media_type="text/plain; charset=utf-8")
        return render(request, "booking_result.html", lang, 404, b=None)

    @r.get("/wizyta/{token}", response_class=HTMLResponse)
    def result(request: Request, token: str, lang: str = "pl", note: str = "") -> Response:
        lang = _lang(lang)
        b = found(request, token)
        if b is None:
            return not_found(request, lang)
        return render(
            request,
            "booking_result.html",
            lang,
            b=b,
            code=display(b.code),
            qr=qr_svg(b.code, TEXTS[lang]["qr"].format(code=display(b.code))) if b.status != "cancelled" else None,
            may_change=desk.may_change(b),
            note=note if note in ("cancelled", "moved") else "",
        )

    @r.get("/wizyta/{token}/ics")
    def ics(request: Request, token: str) -> Response:
        b = found(request, token)
        if b is None or b.status == "cancelled":
            return Response("no such booking", 404, media_type="text/plain")
        body = booking_ics(b, Pages(desk, "pl").service(b.service), desk.config.office.name, desk.now(), public_host)
        return Response(
            body,
            media_type="text/calendar; charset=utf-8",
            headers={**NO_STORE, "Content-Disposition": f'attachment; filename="wizyta-{b.code}.ics"'},
        )

    @r.post("/wizyta/{token}/cancel")
    def cancel(request: Request, token: str, lang: str = "pl") -> Response:
        lang = _lang(lang)
        b = found(request, token)
        if b is None:
            return not_found(request, lang)
        if desk.may_change(b):
            desk.cancel(token)
        return RedirectResponse(f"/wizyta/{token}?lang={lang}&note=cancelled", 303)

    @r.get("/wizyta/{token}/move", response_class=HTMLResponse)
    def move_form(request: Request, token: str, lang: str = "pl", day: date | None = None) -> Response:
        lang = _lang(lang)
        b = found(request, token)
        if b is None:
            return not_found(request, lang)
        return render(
            request,
            "booking_move.html",
            lang,
            b=b,
            token=token,
            days=desk.days(b.service),
            day=day,
            slots=desk.slots(b.service, day) if day else [],
            may_change=desk.may_change(b),
            error="",
        )

    @r.post("/wizyta/{token}/move", response_class=HTMLResponse)
    async def move(request: Request, token: str, lang: str = "pl") -> Response:
        lang = _lang(lang)
        b = found(request, token)
        if b is None:
            return not_found(request, lang)
        form = await request.form()
        start: datetime | None = None
        try:
            start = datetime.fromisoformat(str(form.get("slot", "")))
            if start.tzinfo is None or not desk.may_change(b):
                raise ValueError
            desk.move(token, start)
        except (ValueError, BookingError) as exc:
            code = exc.code if isinstance(exc, BookingError) else "slot"
            key = f"err_{code}" if f"err_{code}" in TEXTS[lang] else "err_slot"
            day = start.date() if start is not None else None
            return render(
                request,
                "booking_move.html",
                lang,
                409,
                b=b,
                token=token,
                days=desk.days(b.service),
                day=day,
                slots=desk.slots(b.service, day) if day else [],
                may_change=desk.may_change(b),
                error=TEXTS[lang][key],
            )
        return RedirectResponse(f"/wizyta/{token}?lang={lang}&note=moved", 303)

    return r


def mount(app: FastAPI, server: Any) -> BookingDesk:
    """The booking site on the server's app (one line in server/http.py); starts the hourly erasure."""
    office = server.office
    store = BookingStore(server.path, migrate=False)
    notices = getattr(server, "notices", None)
    if notices is not None:  # [notify]: confirmation and reminder in the booking's transaction
        from server.booking.messages import BookingMessages

        store.hooks = BookingMessages(lambda: office.config, notices.config, notices.sender.wake)
    desk = BookingDesk(store, lambda: office.config, office.now)
    from urllib.parse import urlsplit

    host = urlsplit(office.config.http.public_url).hostname or "numerek"
    app.include_router(build_booking_router(desk, host))
    from server.booking.reception import build_reception_router

    app.include_router(build_reception_router(office, desk, app.state.web_auth))  # /recepcja: clerk login
    app.state.booking_desk = desk
    desk.start()
    return desk
