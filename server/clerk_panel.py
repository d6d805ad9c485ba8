"""The clerk panel: a web page with the counter unit's buttons, for clerks at a PC.

Why a page and not a second implementation: every click is a ``CounterCommand`` POSTed to
``/api/counters/{id}/commands``, which hands it to the worker's inbox exactly like a button
press over MQTT (``Office.counter_command``); the page reads ``/api/counters/{id}`` for the
truth, and its waiting list is the engine's own order (``Office.counter_queue``), the first
line being the ticket NEXT calls. So panel and buttons produce the same events, and a
double click is refused as ``stale`` the same way a double press is. The page is one
Jinja2 template with its CSS and a little JavaScript inline: no CDN, it works in an office
without internet.

Who may open the panel at all: anyone with a clerk login (or a manager or admin login),
through the same ``/login`` as the reports (server/web_auth.py). Without one the pages
redirect to the login and the JSON endpoints answer 401, so a resident's phone on the
office Wi-Fi cannot call or close a counter.

Sign-in at a counter is a badge number (or PIN) typed or scanned into the page; it becomes
the counter's ``clerk`` so reports can be per clerk, as at a button-only unit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from server import catalogue
from server.auth import User
from server.office import Office, WaitingEntry
from server.web_auth import WebAuth

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

COMMAND_TIMEOUT_S = 10.0
"""How long an HTTP counter command waits for the worker before answering 503. The page
also sends it as the command's deadline (``expires_at``, on the server's clock): a click
the page already reported as unanswered is refused as ``expired`` if the server only gets
to it later, the same rule as for a button press."""


def _nested(flat: dict[str, str]) -> dict[str, Any]:
    """``{"errors.stale": ...}`` -> ``{"errors": {"stale": ...}}``: the shape templates and the page's JavaScript read."""
    out: dict[str, Any] = {}
    for key, text in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = text
    return out


# Every visible string of the clerk pages comes from the ``clerk`` catalogue (server/locale/clerk.pot, a PO file per
# language; docs/translating.md): the templates read ``t.*`` and the page's JavaScript gets the same dictionary as
# JSON (``errors.stale`` in the catalogue is ``t.errors.stale``). ``{n}`` / ``{t}`` / ``{counter}`` are filled in by
# the page. Polish first, English always; a PO file added by a translator is a new language on the switch.
TEXTS: dict[str, dict[str, Any]] = {
    lang: _nested({k: v for k, v in texts.items() if k != "language_name"})
    for lang, texts in ((lang, catalogue.texts("clerk", lang)) for lang in catalogue.languages("clerk"))
}

LANGUAGES = {lang: catalogue.texts("clerk", lang)["language_name"] for lang in catalogue.languages("clerk")}
"""The panel's languages, each named in itself (the switch link reads the same in every language)."""


def page_language(lang: str | None) -> str:
    """``?lang=en`` gives English; anything else (missing, unknown, garbage) is Polish, never an error."""
    lang = (lang or "").strip().lower()
    return lang if lang in TEXTS else "pl"


def language_context(path: str, lang: str) -> dict[str, Any]:
    """What both pages need for their language: the texts, ``<html lang>`` and the switch links.

    The switch links point at the same page (``path``), so switching keeps the counter."""
    links = [
        {"code": code, "name": name, "href": path if code == "pl" else f"{path}?lang={code}", "current": code == lang}
        for code, name in LANGUAGES.items()
    ]
    return {"lang": lang, "t": TEXTS[lang], "languages": links, "lang_query": "" if lang == "pl" else f"?lang={lang}"}


def build_clerk_router(office: Office, auth: WebAuth) -> APIRouter:
    r = APIRouter(tags=["clerk panel"])

    def page_clerk(request: Request) -> User:
        return auth.page(request, "clerk")

    def api_clerk(request: Request) -> User:
        return auth.api(request, "clerk")

    def known(counter_id: str) -> None:
        if not office.has_counter(counter_id):
            raise HTTPException(404, f"no counter {counter_id!r}")

    @r.get("/clerk", response_class=HTMLResponse, include_in_schema=False)
    def clerk_index(request: Request, lang: str | None = None) -> HTMLResponse:
        user = page_clerk(request)
        return TEMPLATES.TemplateResponse(
            request,
            "clerk_index.html",
            {
                "office": office.config.office.name,
                "counters": list(office.config.counters),
                "user": user,
                **language_context("/clerk", page_language(lang)),
            },
        )

    @r.get("/clerk/{counter_id}", response_class=HTMLResponse, include_in_schema=False)
    def clerk_panel(request: Request, counter_id: str, lang: str | None = None) -> HTMLResponse:
        user = page_clerk(request)
        language = language_context(f"/clerk/{quote(counter_id, safe='')}", page_language(lang))
        cfg = office.config.counter(counter_id)
        if cfg is None:
            return TEMPLATES.TemplateResponse(
                request,
                "clerk_index.html",
                {
                    "office": office.config.office.name,
                    "counters": list(office.config.counters),
                    "missing": counter_id,
                    "user": user,
                    **language,
                },
                status_code=404,
            )
        # Service names come from the site config, which has both languages (Names.pl / Names.en).
        names = {s.id: getattr(s.name, language["lang"]) for s in office.config.services}
        return TEMPLATES.TemplateResponse(
            request,
            "clerk_panel.html",
            {
                "office": office.config.office.name,
                "counter": cfg,
                "service_names": names,
                "transfer_services": list(names.items()),
                "transfer_counters": [(c.id, c.name) for c in office.config.counters if c.id != counter_id],
                "user": user,
                "deadline_ms": int(COMMAND_TIMEOUT_S * 1000),
                **language,
            },
        )

    @r.get("/api/counters/{counter_id}/waiting", tags=["counters"], dependencies=[Depends(api_clerk)])
    def counter_waiting(counter_id: str) -> list[WaitingEntry]:
        """Tickets the counter may call, in the order NEXT takes them (``next`` marks the first)."""
        known(counter_id)
        return office.counter_queue(counter_id)

    @r.get("/api/counters/{counter_id}/appointments", tags=["counters"], dependencies=[Depends(api_clerk)])
    def counter_appointments(counter_id: str) -> dict[str, str]:
        """Ticket number → booked time ("10:30") for the appointment tickets the counter serves or may call."""
        known(counter_id)
        return office.appointment_times(counter_id)

    return r
