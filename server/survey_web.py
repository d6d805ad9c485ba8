"""The after-visit survey's pages: the resident's form on the ticket's own address and the
managers' results beside the reports.

* ``GET/POST /t/<token>/ankieta`` — no login (the ticket's token is the key, as for the
  ticket page); offered on the ticket page once the visit is finished, for ``[survey] days``.
  A second answer set for the same ticket, a missing answer or an unfinished visit answers
  with a sentence and stores nothing.
* ``GET /reports/survey?month=YYYY-MM`` — a manager login: per service, the number of answer
  sets, the mean of each 1–5 question and the share of settled matters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from server.office import Office, TicketStatusOut
from server.survey import QUESTIONS, SCALE, Survey, SurveyError, month_bounds
from server.web_auth import WebAuth

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
LANGS = ("pl", "en", "uk")

TEXTS: dict[str, dict[str, str]] = {
    "pl": {
        "title": "Ankieta po wizycie",
        "intro": "Cztery pytania, anonimowo: odpowiedzi nie są łączone z biletem ani z Tobą.",
        "low": "źle",
        "high": "bardzo dobrze",
        "yes": "tak",
        "no": "nie",
        "send": "Wyślij odpowiedzi",
        "thanks": "Dziękujemy za odpowiedzi.",
        "offer": "Oceń wizytę (4 pytania, anonimowo)",
        "not_finished": "Ankieta będzie dostępna po zakończeniu wizyty.",
        "too_late": "Na ankietę do tej wizyty minął już czas.",
        "answered": "Odpowiedzi do tej wizyty zostały już wysłane. Dziękujemy.",
        "invalid": "Odpowiedz na wszystkie pytania.",
        "unknown": "Nie znaleziono biletu.",
        "back": "Wróć do biletu",
    },
    "en": {
        "title": "After-visit survey",
        "intro": "Four questions, anonymous: the answers are not linked to your ticket or to you.",
        "low": "poor",
        "high": "very good",
        "yes": "yes",
        "no": "no",
        "send": "Send the answers",
        "thanks": "Thank you for your answers.",
        "offer": "Rate your visit (4 questions, anonymous)",
        "not_finished": "The survey opens once your visit is finished.",
        "too_late": "The survey for this visit has closed.",
        "answered": "The answers for this visit have been sent already. Thank you.",
        "invalid": "Please answer every question.",
        "unknown": "Ticket not found.",
        "back": "Back to the ticket",
    },
    "uk": {
        "title": "Опитування після візиту",
        "intro": "Чотири запитання, анонімно: відповіді не пов'язуються з талоном чи з вами.",
        "low": "погано",
        "high": "дуже добре",
        "yes": "так",
        "no": "ні",
        "send": "Надіслати відповіді",
        "thanks": "Дякуємо за відповіді.",
        "offer": "Оцініть візит (4 запитання, анонімно)",
        "not_finished": "Опитування стане доступним після завершення візиту.",
        "too_late": "Час на опитування щодо цього візиту минув.",
        "answered": "Відповіді щодо цього візиту вже надіслано. Дякуємо.",
        "invalid": "Дайте відповідь на всі запитання.",
        "unknown": "Талон не знайдено.",
        "back": "Повернутися до талона",
    },
}


def survey_context(
    survey: Survey | None, ticket: TicketStatusOut | None, token: str, lang: str
) -> dict[str, Any] | None:
    """The ticket page's survey link, or None (no [survey], not finished, too late, answered)."""
    if survey is None or ticket is None or survey.open_for(ticket.status, ticket.issued_at) is not None:
        return None
    if survey.answered(token):
        return None
    return {"offer": TEXTS[lang if lang in LANGS else "pl"]["offer"]}


def build_survey_router(survey: Survey, office: Office, auth: WebAuth) -> APIRouter:
    r = APIRouter(include_in_schema=False)

    def page(request: Request, token: str, lang: str, status: int, message: str = "", form: bool = False) -> Response:
        texts = TEXTS[lang]
        context = {
            "T": texts,
            "lang": lang,
            "token": token,
            "office": office.config.office.name,
            "questions": {q: v[lang] for q, v in QUESTIONS.items()},
            "scale": SCALE,
            "message": message,
            "form": form,
        }
        return TEMPLATES.TemplateResponse(request, "survey.html", context, status_code=status)

    def ticket(token: str) -> TicketStatusOut | None:
        return office.ticket_status(token) if len(token) <= 64 else None

    @r.get("/t/{token}/ankieta", response_class=HTMLResponse)
    def survey_form(request: Request, token: str, lang: str = "pl") -> Response:
        lang = lang if lang in LANGS else "pl"
        t = ticket(token)
        if t is None:
            return page(request, token, lang, 404, TEXTS[lang]["unknown"])
        why = survey.open_for(t.status, t.issued_at) or ("answered" if survey.answered(token) else None)
        if why is not None:
            return page(request, token, lang, 200, TEXTS[lang][why])
        return page(request, token, lang, 200, form=True)

    @r.post("/t/{token}/ankieta", response_class=HTMLResponse)
    async def survey_answer(request: Request, token: str) -> Response:
        form = {k: str(v)[:10] for k, v in (await request.form()).items()}
        lang = form.get("lang", "pl")
        lang = lang if lang in LANGS else "pl"
        t = ticket(token)
        if t is None:
            return page(request, token, lang, 404, TEXTS[lang]["unknown"])
        try:
            survey.answer(token, t.status, t.issued_at, t.service, form)
        except SurveyError as exc:
            retry = exc.code == "invalid"
            return page(request, token, lang, 422 if retry else 409, TEXTS[lang][exc.code], form=retry)
        return page(request, token, lang, 200, TEXTS[lang]["thanks"])

    @r.get("/reports/survey", response_class=HTMLResponse)
    def survey_results(request: Request, month: str = "") -> Response:
        auth.page(request, "manager")
        first, last = month_bounds(month, office.now().date())
        names = {s.id: s.name.pl for s in office.config.services}
        rows = survey.results(first, last)
        context = {"month": first.strftime("%Y-%m"), "rows": rows, "names": names, "office": office.config.office.name}
        return TEMPLATES.TemplateResponse(request, "survey_results.html", context)

    return r
