"""Pages for "your document is ready for pick-up": the clerk's form and the managers' list.

* ``/clerk/pickup`` (a clerk login): case reference, phone or e-mail, document kind, service,
  language → one notice with the service's pick-up place and opening hours; the page says
  what was sent and how many SMS parts it costs.
* ``/reports/pickups`` (a manager login, beside the reports): upload the domain system's CSV.
  Every row is checked (server/pickups.py); if any is bad the page lists each by its line
  number and nothing is imported by itself: the manager fixes the file, or sends only the good
  rows with a button of their own. A good list is shown first — messages, SMS parts and the
  price — and is sent only when the manager confirms (``/reports/pickups/send``).

The phone numbers and addresses of an upload wait in this process's memory between the
preview and the confirmation (at most :data:`PREVIEW_TTL_S`), never in a file or a log.
"""

from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from server.notices import Notices
from server.office import Office
from server.pickups import MAX_ROWS, PickupRow, Problem, check_row, parse_csv, payload, preview
from server.web_auth import WebAuth

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
PREVIEW_TTL_S = 15 * 60
MAX_UPLOAD = 256 * 1024  # the route's body limit (server/web_security.py, BODY_LIMITS)


class _Previews:
    """Checked uploads waiting for the manager's confirmation: id -> (user, file name, rows, until)."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[str, str, list[PickupRow], float]] = {}
        self._lock = threading.Lock()

    def put(self, user: str, name: str, rows: list[PickupRow]) -> str:
        key = secrets.token_urlsafe(16)
        now = time.monotonic()
        with self._lock:
            self._items = {k: v for k, v in self._items.items() if v[3] > now}
            self._items[key] = (user, name, rows, now + PREVIEW_TTL_S)
        return key

    def take(self, key: str, user: str) -> tuple[str, list[PickupRow]] | None:
        with self._lock:
            item = self._items.get(key)
            if item is None or item[0] != user or item[3] < time.monotonic():
                return None
            del self._items[key]
        return item[1], item[2]


def build_pickup_router(notices: Notices, office: Office, auth: WebAuth) -> APIRouter:
    r = APIRouter(include_in_schema=False)
    previews = _Previews()
    settings, notify = notices.settings, notices.config

    def choices() -> dict[str, Any]:
        site = office.config
        return {
            "documents": {k: v.pl for k, v in settings.documents.items()},
            "services": {s.id: s.name.pl for s in site.services if s.id in settings.pickup},
            "office": site.office.name,
        }

    def send(user: str, source: str, rows: list[PickupRow]) -> int:
        site = office.config
        return notices.document_ready(user, source, rows, [payload(row, settings, site) for row in rows])

    @r.get("/clerk/pickup", response_class=HTMLResponse)
    def clerk_form(request: Request) -> Response:
        auth.page(request, "clerk")
        return TEMPLATES.TemplateResponse(request, "pickup_clerk.html", {**choices(), "form": {}, "problems": []})

    @r.post("/clerk/pickup", response_class=HTMLResponse)
    async def clerk_send(request: Request) -> Response:
        user = auth.page(request, "clerk")
        form = {k: str(v)[:300] for k, v in (await request.form()).items()}
        row, problems = check_row(form, settings, notify, office.config)
        context: dict[str, Any] = {**choices(), "form": form, "problems": problems}
        if row is None:
            return TEMPLATES.TemplateResponse(request, "pickup_clerk.html", context, status_code=422)
        cost = preview([row], settings, notify, office.config)
        added = send(user.name, "panel", [row])
        context.update(form={}, sent=cost, added=added, reference=row.reference)
        return TEMPLATES.TemplateResponse(request, "pickup_clerk.html", context)

    @r.get("/reports/pickups", response_class=HTMLResponse)
    def list_form(request: Request) -> Response:
        auth.page(request, "manager")
        return TEMPLATES.TemplateResponse(request, "pickup_list.html", {**choices(), "problems": []})

    @r.post("/reports/pickups", response_class=HTMLResponse)
    async def list_check(request: Request) -> Response:
        user = auth.page(request, "manager")
        form = await request.form()
        upload = form.get("file")
        name = getattr(upload, "filename", None) or "lista.csv"
        data = await upload.read() if upload is not None and hasattr(upload, "read") else b""
        rows, problems = parse_csv(data, settings, notify, office.config)
        context: dict[str, Any] = {**choices(), "problems": problems, "name": name, "rows": len(rows)}
        # With bad rows nothing is sent by itself; the good ones may be sent on the manager's
        # explicit choice (the domain system's export is fixed tomorrow, the ready cases wait
        # today). Not for a list cut short at MAX_ROWS: its tail was never checked.
        if problems and (not rows or len(rows) + len(problems) >= MAX_ROWS):
            return TEMPLATES.TemplateResponse(request, "pickup_list.html", context, status_code=422)
        context["cost"] = preview(rows, settings, notify, office.config)
        context["key"] = previews.put(user.name, name, rows)
        return TEMPLATES.TemplateResponse(request, "pickup_list.html", context, status_code=422 if problems else 200)

    @r.post("/reports/pickups/send", response_class=HTMLResponse)
    async def list_send(request: Request) -> Response:
        user = auth.page(request, "manager")
        key = str((await request.form()).get("key", ""))
        taken = previews.take(key, user.name)
        if taken is None:
            expired = [Problem(0, "podgląd wygasł lub został już wysłany: wgraj listę ponownie")]
            context = {**choices(), "problems": expired}
            return TEMPLATES.TemplateResponse(request, "pickup_list.html", context, status_code=409)
        name, rows = taken
        added = send(user.name, f"csv:{name[:80]}", rows)
        context = {**choices(), "problems": [], "done": added, "rows": len(rows), "name": name}
        return TEMPLATES.TemplateResponse(request, "pickup_list.html", context)

    return r
