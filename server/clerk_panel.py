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

from server.auth import User
from server.office import Office, WaitingEntry
from server.web_auth import WebAuth

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

COMMAND_TIMEOUT_S = 10.0
"""How long an HTTP counter command waits for the worker before answering 503. The page
also sends it as the command's deadline (``expires_at``, on the server's clock): a click
the page already reported as unanswered is refused as ``expired`` if the server only gets
to it later, the same rule as for a button press."""

LANGUAGES = {"pl": "Polski", "en": "English"}
"""The panel's languages, each named in itself (the switch link reads the same in every language)."""

# Every visible string of the clerk pages, one dictionary per language: the templates read ``t.*`` and the
# page's JavaScript gets the same dictionary as JSON, so a missing translation is a missing key here and
# nowhere else. ``{n}`` / ``{t}`` / ``{counter}`` are filled in by the page. Polish first, English always.
TEXTS: dict[str, dict[str, Any]] = {
    "pl": {
        "panel": "Panel urzędnika",
        "panel_title": "panel urzędnika",
        "choose_counter": "Wybierz stanowisko:",
        "no_such_counter": "Nie ma stanowiska „{counter}”. Wybierz swoje stanowisko:",
        "language": "Język",
        "clerk": "Urzędnik:",
        "offline_banner": "Brak połączenia z serwerem — polecenia nie są wysyłane. Ponawiam…",
        "now_serving": "Obsługiwany numer",
        "next": "Następny",
        "next_hint": "Zakończ obsługę i wezwij następny numer",
        "recall": "Wezwij ponownie",
        "recall_hint": "Wezwij ten sam numer ponownie",
        "start": "Klient podszedł",
        "start_hint": "Klient podszedł: obsługa się zaczyna",
        "finish": "Zakończ obsługę",
        "no_show": "Nie przyszedł",
        "no_show_hint": "Wezwany klient nie przyszedł",
        "pause": "Przerwa",
        "open": "Otwórz",
        "close": "Zamknij",
        "close_hint": "Zamknij stanowisko (koniec pracy)",
        "transfer_to": "Przekaż do:",
        "transfer_service": "usługa: {n}",
        "transfer_counter": "stanowisko: {n}",
        "transfer": "Przekaż",
        "queues": "Kolejki",
        "personal_queue": "Przekazane do tego stanowiska",
        "waiting_list": "Oczekujące numery",
        "sign_in_heading": "Logowanie urzędnika",
        "badge": "Identyfikator / PIN",
        "sign_in": "Zaloguj",
        "sign_out": "Wyloguj",
        "web_user": "Konto:",
        "log_out": "Wyjdź z panelu",
        "log_out_hint": "Zakończ sesję w przeglądarce (wylogowanie z konta)",
        # Below: strings the page's JavaScript draws.
        "status": {"open": "Otwarte", "paused": "Przerwa", "closed": "Zamknięte", "offline": "Brak połączenia"},
        "ticket_status": {"called": "wezwany", "serving": "w obsłudze"},
        "recalls": "wezwań ponownych: {n}",
        "nobody_served": "Nikt nie jest obsługiwany",
        "serving_for": "Czas obsługi {t}",
        "since_call": "Od wezwania {t}",
        "nobody_waiting": "Nikt nie czeka.",
        "tag_next": "następny",
        "tag_personal": "przekazany",
        "tag_appointment": "wizyta {t}",
        "call": "Wezwij",
        "called": "Wezwano {n}",
        "queue_empty": "Kolejka jest pusta.",
        "done": "Wykonano.",
        "refused": "Odmowa.",
        "not_sent": "Nie wysłano — brak połączenia z serwerem. Spróbuj ponownie.",
        "too_slow": "Serwer nie odpowiedział na czas — sprawdź stan stanowiska, zanim spróbujesz ponownie.",
        "errors": {
            "stale": "Stan się zmienił (np. podwójne kliknięcie) — pokazuję aktualny.",
            "no_current_ticket": "Nikt nie jest obsługiwany.",
            "queue_empty": "Kolejka jest pusta.",
            "counter_closed": "Stanowisko jest zamknięte — najpierw je otwórz.",
            "counter_paused": "Stanowisko ma przerwę.",
            "not_allowed": "Tego nie można teraz zrobić.",
            "unknown_ticket": "Nie ma takiego numeru.",
            "unknown_service": "Nie ma takiej usługi.",
            "unknown_counter": "Nie ma takiego stanowiska.",
            "service_closed": "Ta usługa jest teraz nieczynna.",
            "cut_off": "Za blisko zamknięcia usługi.",
            "limit_reached": "Dzienny limit numerów wyczerpany.",
            "invalid_request": "Niepoprawne polecenie.",
            "unsupported_version": "Nieobsługiwana wersja polecenia — odśwież stronę.",
            "unknown_topic": "Niepoprawne polecenie.",
            "internal": "Błąd serwera — nic nie zmieniono.",
            "expired": "Polecenie dotarło za późno (serwer nie odpowiadał) — nic nie zrobiono. Spróbuj ponownie.",
            "too_soon": "Ten numer jest właśnie ogłaszany — wezwij ponownie za chwilę.",
            "rate_limited": "Za dużo poleceń naraz — spróbuj za chwilę.",
            "unavailable": "Serwer nie może teraz zapisać zmian (dysk lub baza danych) — nic nie zrobiono. Zgłoś to kierownikowi.",
            "booking_unknown": "Nie ma rezerwacji z tym kodem.",
            "booking_too_early": "Za wcześnie na zgłoszenie tej rezerwacji.",
            "booking_too_late": "Za późno na zgłoszenie tej rezerwacji.",
            "booking_other_day": "Ta rezerwacja jest na inny dzień.",
            "booking_cancelled": "Ta rezerwacja została odwołana.",
        },
    },
    "en": {
        "panel": "Clerk panel",
        "panel_title": "clerk panel",
        "choose_counter": "Choose your counter:",
        "no_such_counter": "There is no counter “{counter}”. Choose your counter:",
        "language": "Language",
        "clerk": "Clerk:",
        "offline_banner": "No connection to the server — commands are not being sent. Retrying…",
        "now_serving": "Now serving",
        "next": "Next",
        "next_hint": "Finish this client and call the next number",
        "recall": "Recall",
        "recall_hint": "Call the same number again",
        "start": "Client arrived",
        "start_hint": "The client has come to the counter: service starts",
        "finish": "Finish",
        "no_show": "No-show",
        "no_show_hint": "The called client did not come",
        "pause": "Pause",
        "open": "Open",
        "close": "Close",
        "close_hint": "Close the counter (end of work)",
        "transfer_to": "Transfer to:",
        "transfer_service": "service: {n}",
        "transfer_counter": "counter: {n}",
        "transfer": "Transfer",
        "queues": "Queues",
        "personal_queue": "Transferred to this counter",
        "waiting_list": "Waiting numbers",
        "sign_in_heading": "Clerk sign-in",
        "badge": "Badge / PIN",
        "sign_in": "Sign in",
        "sign_out": "Sign out",
        "web_user": "Account:",
        "log_out": "Leave the panel",
        "log_out_hint": "End this browser session (log out of the account)",
        "status": {"open": "Open", "paused": "Paused", "closed": "Closed", "offline": "Offline"},
        "ticket_status": {"called": "called", "serving": "being served"},
        "recalls": "recalls: {n}",
        "nobody_served": "Nobody is being served",
        "serving_for": "Serving for {t}",
        "since_call": "Called {t} ago",
        "nobody_waiting": "Nobody is waiting.",
        "tag_next": "next",
        "tag_personal": "transferred",
        "tag_appointment": "appointment {t}",
        "call": "Call",
        "called": "Called {n}",
        "queue_empty": "The queue is empty.",
        "done": "Done.",
        "refused": "Refused.",
        "not_sent": "Not sent — no connection to the server. Try again.",
        "too_slow": "The server did not answer in time — check the counter's state before trying again.",
        "errors": {
            "stale": "Things changed (a double click?) — showing the current state.",
            "no_current_ticket": "There is no client at this counter.",
            "queue_empty": "The queue is empty.",
            "counter_closed": "The counter is closed — open it first.",
            "counter_paused": "The counter is on a break.",
            "not_allowed": "That cannot be done now.",
            "unknown_ticket": "There is no such number.",
            "unknown_service": "There is no such service.",
            "unknown_counter": "There is no such counter.",
            "service_closed": "This service is closed now.",
            "cut_off": "Too close to the service's closing time.",
            "limit_reached": "The daily ticket limit has been reached.",
            "invalid_request": "Invalid command.",
            "unsupported_version": "Unsupported command version — reload the page.",
            "unknown_topic": "Invalid command.",
            "internal": "Server error — nothing was changed.",
            "expired": "The command arrived too late (the server was not answering) — nothing was done. Try again.",
            "too_soon": "This number is being announced right now — recall it in a moment.",
            "rate_limited": "Too many commands at once — try again in a moment.",
            "unavailable": "The server cannot save changes right now (disk or database) — nothing was done. Tell your manager.",
            "booking_unknown": "No booking has this code.",
            "booking_too_early": "Too early to check this booking in.",
            "booking_too_late": "Too late to check this booking in.",
            "booking_other_day": "This booking is for another day.",
            "booking_cancelled": "This booking was cancelled.",
        },
    },
}


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
