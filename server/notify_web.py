"""The resident's notification form on the ticket page: leave a phone number or an e-mail.

Routes (no login: the ticket's unguessable token is the key, as for /t/<token>):

* ``GET /t/<token>/notify`` — the form, with the consent sentence; its own page because
  the ticket page reloads itself every 15 s and would wipe a half-typed number;
* ``POST /t/<token>/notify`` — validate (server/notices.py, notify/phone.py); a mistake
  answers 422 with the form, the sentence saying what is wrong and the typed text, and
  nothing is stored; success answers 303 back to the ticket page;
* ``POST /t/<token>/notify/stop`` — withdraw: the contact is erased at once;
* ``POST /notify/sms/<gateway>`` — an HTTP SMS provider's webhook for replies ("STOP",
  notify/optout.py): the gateway's ``inbound_secret`` in ``X-Numerek-Secret`` or as the basic
  auth password (never in the URL: access logs keep URLs), rate limited per client address
  (``[notify] inbound_rate``); a bad call answers 4xx and changes nothing.

Protection: the CSRF/Origin guard and the body limit are the site's middleware
(server/web_security.py); each client address may send ``[notify] subscribe_rate`` forms
(counted before anything is checked, like the login's budget). The contact itself is never
logged: the access log has the path only, and errors name the kind of mistake.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from notify.config import HttpSmsConfig
from notify.optout import Reply
from server.notices import PHONE_REASONS, ContactError, Notices
from server.office import Office
from server.ratelimit import SlidingWindow
from server.web_auth import client_key

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
LANGS = ("pl", "en", "uk")

TEXTS: dict[str, dict[str, str]] = {
    "pl": {
        "title": "Powiadom mnie",
        "intro": "Wyślemy wiadomość, gdy Twoja kolej będzie blisko, i drugą, gdy zostaniesz wezwany(-a). "
        "Możesz wyjść z poczekalni.",
        "field": "Numer telefonu komórkowego lub adres e-mail",
        "consent": "Zgadzam się na przesłanie powiadomień o tym bilecie. Urząd usunie numer lub adres "
        "po zakończeniu wizyty (najpóźniej po {hours} h) i nie użyje go w innym celu.",
        "send": "Zapisz",
        "back": "Wróć do biletu",
        "only_sms": "Tylko SMS.",
        "only_email": "Tylko e-mail.",
        "consent_missing": "Zaznacz zgodę, abyśmy mogli wysłać powiadomienie.",
        "empty": "Wpisz numer telefonu lub adres e-mail.",
        "email": "To nie wygląda na adres e-mail (np. jan.kowalski@example.pl).",
        "phone": "Nie można wysłać SMS na ten numer: {why}. Wpisz numer komórkowy, np. 600 100 200.",
        "no_sms": "Ten urząd nie wysyła SMS-ów. Podaj adres e-mail.",
        "no_email": "Ten urząd nie wysyła e-maili. Podaj numer telefonu komórkowego.",
        "not_waiting": "Ten bilet już nie czeka w kolejce.",
        "opted_out": "Na ten numer nie wysyłamy wiadomości: odpisano z niego STOP. Podaj adres e-mail albo, "
        "aby znów dostawać SMS-y, odpisz START na dowolną naszą wiadomość.",
        "rate": "Zbyt wiele prób. Spróbuj ponownie za kilka minut.",
        "unknown": "Nie znaleziono biletu.",
    },
    "en": {
        "title": "Notify me",
        "intro": "We will send a message when your turn is near and another when you are called. "
        "You may leave the waiting room.",
        "field": "Mobile phone number or e-mail address",
        "consent": "I agree to receive notifications about this ticket. The office erases the number or "
        "address after the visit (within {hours} h) and uses it for nothing else.",
        "send": "Save",
        "back": "Back to the ticket",
        "only_sms": "SMS only.",
        "only_email": "E-mail only.",
        "consent_missing": "Tick the consent so that we may send the notification.",
        "empty": "Enter a phone number or an e-mail address.",
        "email": "This does not look like an e-mail address (e.g. jan.kowalski@example.pl).",
        "phone": "A text message cannot be sent to this number: {why}. Enter a mobile number, e.g. 600 100 200.",
        "no_sms": "This office sends no text messages. Please give an e-mail address.",
        "no_email": "This office sends no e-mail. Please give a mobile phone number.",
        "not_waiting": "This ticket is no longer waiting.",
        "opted_out": "We send no messages to this number: it replied STOP. Give an e-mail address, or reply "
        "START to any of our messages to get text messages again.",
        "rate": "Too many attempts. Please try again in a few minutes.",
        "unknown": "Ticket not found.",
    },
    "uk": {
        "title": "Повідомте мене",
        "intro": "Ми надішлемо повідомлення, коли ваша черга наближатиметься, і ще одне, коли вас запросять. "
        "Ви можете вийти із зали очікування.",
        "field": "Номер мобільного телефону або адреса e-mail",
        "consent": "Я погоджуюся отримувати повідомлення щодо цього талона. Установа видалить номер або "
        "адресу після візиту (не пізніше ніж через {hours} год) і не використає їх для інших цілей.",
        "send": "Зберегти",
        "back": "Повернутися до талона",
        "only_sms": "Лише SMS.",
        "only_email": "Лише e-mail.",
        "consent_missing": "Позначте згоду, щоб ми могли надіслати повідомлення.",
        "empty": "Введіть номер телефону або адресу e-mail.",
        "email": "Це не схоже на адресу e-mail (напр. jan.kowalski@example.pl).",
        "phone": "На цей номер не можна надіслати SMS: {why}. Введіть мобільний номер, напр. +380 50 123 4567.",
        "no_sms": "Ця установа не надсилає SMS. Вкажіть адресу e-mail.",
        "no_email": "Ця установа не надсилає e-mail. Вкажіть номер мобільного телефону.",
        "not_waiting": "Цей талон уже не очікує в черзі.",
        "opted_out": "На цей номер ми не надсилаємо повідомлень: з нього відповіли STOP. Вкажіть e-mail або "
        "надішліть START у відповідь на будь-яке наше повідомлення, щоб знову отримувати SMS.",
        "rate": "Забагато спроб. Спробуйте ще раз за кілька хвилин.",
        "unknown": "Талон не знайдено.",
    },
}

TICKET_TEXTS: dict[str, dict[str, str]] = {
    # the ticket page's notification line (server/templates/ticket.html)
    "pl": {"offer": "Powiadom mnie SMS-em lub e-mailem", "on": "Powiadomienia wyślemy na", "stop": "Nie wysyłaj"},
    "en": {"offer": "Notify me by text message or e-mail", "on": "Notifications go to", "stop": "Stop"},
    "uk": {"offer": "Повідомити мене SMS або e-mail", "on": "Повідомлення надійдуть на", "stop": "Не надсилати"},
}


def error_text(exc: ContactError, lang: str) -> str:
    texts = TEXTS[lang]
    if exc.code == "consent":
        return texts["consent_missing"]
    if exc.code == "phone":
        why = PHONE_REASONS.get(exc.detail, {}).get(lang, exc.detail)
        return texts["phone"].format(why=why)
    return texts.get(exc.code, texts["empty"])


def ticket_context(notices: Notices | None, token: str, lang: str) -> dict[str, Any] | None:
    """The ticket page's notification line, or None without [notify] (the ticket page's context)."""
    if notices is None or len(token) > 64:
        return None
    state = notices.page(token)
    if state.subscribed is None and not state.can_subscribe:
        return None
    return {"state": state, "T": TICKET_TEXTS[lang if lang in LANGS else "pl"]}


def build_notify_router(notices: Notices, office: Office) -> APIRouter:
    r = APIRouter(include_in_schema=False)
    budget = SlidingWindow(notices.settings.subscribe_rate)

    def form(request: Request, token: str, lang: str, status: int, error: str = "", typed: str = "") -> Response:
        found = office.ticket_status(token) if len(token) <= 64 else None
        texts = TEXTS[lang]
        only = ""
        if notices.channels == ["sms"]:
            only = texts["only_sms"]
        elif notices.channels == ["email"]:
            only = texts["only_email"]
        return TEMPLATES.TemplateResponse(
            request,
            "ticket_notify.html",
            {
                "t": found,
                "T": texts,
                "lang": lang,
                "token": token,
                "office": office.config.office.name,
                "error": error or (texts["unknown"] if found is None else ""),
                "typed": typed,
                "only": only,
                "consent": texts["consent"].format(hours=notices.settings.retention_hours),
            },
            status_code=status if found is not None else 404,
        )

    @r.get("/t/{token}/notify", response_class=HTMLResponse)
    def notify_form(request: Request, token: str, lang: str = "pl") -> Response:
        return form(request, token, lang if lang in LANGS else "pl", 200)

    @r.post("/t/{token}/notify")
    async def notify_subscribe(request: Request, token: str) -> Response:
        data = await request.form()
        lang = str(data.get("lang", "pl"))
        lang = lang if lang in LANGS else "pl"
        typed = str(data.get("contact", ""))[:300]
        if not budget.hit(client_key(request)):
            return form(request, token, lang, 429, TEXTS[lang]["rate"], typed)
        try:
            notices.subscribe(token, typed, lang, consent=data.get("consent") == "yes")
        except ContactError as exc:
            return form(request, token, lang, 422, error_text(exc, lang), typed)
        return RedirectResponse(f"/t/{token}?lang={lang}", status_code=303)

    inbound_budget = SlidingWindow(notices.settings.inbound_rate)

    def _secret(request: Request) -> str:
        given = request.headers.get("x-numerek-secret")
        if given is not None:
            return given
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "basic":
            try:
                return base64.b64decode(value, validate=True).decode("utf-8").partition(":")[2]
            except (binascii.Error, UnicodeDecodeError):
                return ""
        return ""

    @r.post("/notify/sms/{gateway}")
    async def sms_inbound(request: Request, gateway: str) -> Response:
        if not inbound_budget.hit(client_key(request)):
            return PlainTextResponse("too many requests", status_code=429)
        config = notices.config.gateways.get(gateway)
        if not isinstance(config, HttpSmsConfig) or config.inbound_secret is None or notices.config.sms != gateway:
            return PlainTextResponse("no such webhook", status_code=404)
        expected = config.inbound_secret.get_secret_value().encode()
        if not hmac.compare_digest(_secret(request).encode(), expected):
            return PlainTextResponse("wrong or missing secret", status_code=401)
        try:
            if request.headers.get("content-type", "").startswith("application/json"):
                data = json.loads(await request.body())
                fields = {str(k): v for k, v in data.items()} if isinstance(data, dict) else {}
            else:
                fields = dict((await request.form()).items())
        except (ValueError, UnicodeDecodeError):
            return PlainTextResponse("the body is neither a form nor a JSON object", status_code=400)
        sender, text = fields.get(config.inbound_sender_field), fields.get(config.inbound_text_field)
        if not isinstance(sender, str) or not isinstance(text, str) or not sender.strip():
            missing = f"{config.inbound_sender_field} and {config.inbound_text_field}"
            return PlainTextResponse(f"{missing} are required (text)", status_code=400)
        if len(sender) > 40 or len(text) > 1600:
            return PlainTextResponse("sender or text too long", status_code=400)
        reply = notices.incoming(sender, text, gateway)
        if reply is Reply.BAD_SENDER:
            return PlainTextResponse(f"{config.inbound_sender_field} is not a phone number", status_code=400)
        return PlainTextResponse(f"OK {reply.value}")

    @r.post("/t/{token}/notify/stop")
    async def notify_stop(request: Request, token: str) -> Response:
        data = await request.form()
        lang = str(data.get("lang", "pl"))
        notices.unsubscribe(token)
        return RedirectResponse(f"/t/{token}?lang={lang if lang in LANGS else 'pl'}", status_code=303)

    return r
