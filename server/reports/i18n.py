"""Labels of the reports in Polish (first) and English, and numbers and dates written the way
each reader expects (Babel's CLDR data: "12,5" and "7 gru 2026, 10:15" in Polish, "12.5" and
"7 Dec 2026, 10:15" in English). Figures never depend on the language.
"""

from __future__ import annotations

from datetime import date, datetime

from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal

LANGS = ("pl", "en")
LOCALES = {"pl": "pl_PL", "en": "en_GB"}  # en_GB: a 24-hour clock and day-month order, as in the office

LABELS: dict[str, dict[str, str]] = {
    "title": {"pl": "Raporty", "en": "Reports"},
    "live": {"pl": "Teraz", "en": "Live"},
    "login": {"pl": "Logowanie do Numerka", "en": "Sign in to Numerek"},
    "name": {"pl": "Login", "en": "Login name"},
    "password": {"pl": "Hasło", "en": "Password"},
    "sign_in": {"pl": "Zaloguj", "en": "Sign in"},
    "sign_out": {"pl": "Wyloguj", "en": "Sign out"},
    "bad_login": {"pl": "Nieprawidłowy login lub hasło.", "en": "Wrong login name or password."},
    "from": {"pl": "Od", "en": "From"},
    "to": {"pl": "Do", "en": "To"},
    "service": {"pl": "Sprawa", "en": "Service"},
    "counter": {"pl": "Stanowisko", "en": "Counter"},
    "clerk": {"pl": "Urzędnik", "en": "Clerk"},
    "all": {"pl": "wszystkie", "en": "all"},
    "show": {"pl": "Pokaż", "en": "Show"},
    "issued": {"pl": "Wydane bilety", "en": "Tickets issued"},
    "served": {"pl": "Obsłużeni", "en": "Served"},
    "no_show": {"pl": "Nieobecni", "en": "No-shows"},
    "transferred": {"pl": "Przekierowani", "en": "Transferred"},
    "not_called": {"pl": "Niewywołani", "en": "Never called"},
    "wait": {"pl": "Czas oczekiwania", "en": "Wait time"},
    "service_time": {"pl": "Czas obsługi", "en": "Service time"},
    "mean": {"pl": "średnia", "en": "mean"},
    "median": {"pl": "mediana", "en": "median"},
    "p90": {"pl": "90. percentyl", "en": "90th percentile"},
    "max": {"pl": "maks.", "en": "max"},
    "within_target": {"pl": "W czasie docelowym", "en": "Within target"},
    "target": {"pl": "cel", "en": "target"},
    "satisfaction": {"pl": "Zadowolenie", "en": "Satisfaction"},
    "ratings": {"pl": "ocen", "en": "ratings"},
    "by_service": {"pl": "Według spraw", "en": "By service"},
    "by_counter": {"pl": "Według stanowisk", "en": "By counter"},
    "by_clerk": {"pl": "Według urzędników", "en": "By clerk"},
    "by_day": {"pl": "Według dni", "en": "By day"},
    "heatmap": {"pl": "Przybycia: dzień tygodnia × godzina", "en": "Arrivals: weekday × hour"},
    "heatmap_title": {
        "pl": "Przybycia {start}–{end}: suma biletów wg dnia tygodnia i godziny",
        "en": "Arrivals {start}–{end}: tickets issued by weekday and hour, totals",
    },
    "heatmap_note": {
        "pl": "Sumy z całego okresu (nie średnie); w nawiasie: liczba dni z biletami.",
        "en": "Totals over the whole period (not averages); in brackets: days with tickets.",
    },
    "hour_local": {"pl": "godzina (czas lokalny)", "en": "hour (local time)"},
    "tickets": {"pl": "bilety", "en": "tickets"},
    "grade": {"pl": "ocena (1 = źle, 5 = bardzo dobrze)", "en": "rating (1 = bad, 5 = very good)"},
    "wait_mean_min": {"pl": "średni czas oczekiwania [min]", "en": "mean wait [min]"},
    "period": {"pl": "Okres", "en": "Period"},
    "compare": {"pl": "Porównaj z", "en": "Compare with"},
    "compare_previous": {"pl": "poprzednim okresem", "en": "previous period"},
    "compare_year": {"pl": "tym samym okresem rok wcześniej", "en": "same period a year earlier"},
    "compare_none": {"pl": "bez porównania", "en": "no comparison"},
    "compared_with": {"pl": "Porównanie z okresem", "en": "Compared with"},
    "compare_empty": {"pl": "brak danych w okresie porównawczym", "en": "no data in the comparison period"},
    "preset_this_week": {"pl": "ten tydzień", "en": "this week"},
    "preset_last_week": {"pl": "poprzedni tydzień", "en": "last week"},
    "preset_this_month": {"pl": "ten miesiąc", "en": "this month"},
    "preset_last_month": {"pl": "poprzedni miesiąc", "en": "last month"},
    "preset_same_month_last_year": {"pl": "ten miesiąc rok temu", "en": "same month last year"},
    "chart_loading": {"pl": "Rysuję wykres…", "en": "Drawing the chart…"},
    "csv_plain": {"pl": "CSV", "en": "CSV"},
    "csv_excel": {"pl": "CSV (Excel)", "en": "CSV (Excel)"},
    "pp": {"pl": "p.p.", "en": "pp"},
    "previously": {"pl": "poprzednio", "en": "previously"},
    "better": {"pl": "lepiej", "en": "better"},
    "worse": {"pl": "gorzej", "en": "worse"},
    "monthly_xlsx": {"pl": "Podsumowanie miesiąca (XLSX)", "en": "Monthly summary (XLSX)"},
    "page": {"pl": "strona", "en": "page"},
    "generated": {"pl": "Wygenerowano", "en": "Generated"},
    "headline": {"pl": "Najważniejsze liczby", "en": "Headline figures"},
    "figure": {"pl": "Wskaźnik", "en": "Figure"},
    "value": {"pl": "Wartość", "en": "Value"},
    "change": {"pl": "Zmiana", "en": "Change"},
    "s": {"pl": "s", "en": "s"},
    "open_h": {"pl": "Godz. otwarcia", "en": "Open hours"},
    "busy_h": {"pl": "Godz. obsługi", "en": "Busy hours"},
    "served_per_hour": {"pl": "Obsł./godz.", "en": "Served/hour"},
    "utilisation": {"pl": "Wykorzystanie", "en": "Utilisation"},
    "rating": {"pl": "Ocena", "en": "Rating"},
    "day": {"pl": "Dzień", "en": "Day"},
    "exports": {"pl": "Eksport", "en": "Export"},
    "raw_tickets": {"pl": "bilety (surowe)", "en": "raw tickets"},
    "monthly_pdf": {"pl": "Podsumowanie miesiąca (PDF)", "en": "Monthly summary (PDF)"},
    "definitions": {"pl": "Definicje: docs/reports.md", "en": "Definitions: docs/reports.md"},
    "waiting": {"pl": "Czeka", "en": "Waiting"},
    "longest": {"pl": "Najdłużej czeka", "en": "Longest wait"},
    "open_counters": {"pl": "Otwarte stanowiska", "en": "Open counters"},
    "being_served": {"pl": "W obsłudze", "en": "Being served"},
    "over_target": {"pl": "PRZEKROCZONY CEL", "en": "OVER TARGET"},
    "ok": {"pl": "w normie", "en": "ok"},
    "min": {"pl": "min", "en": "min"},
    "no_data": {"pl": "Brak danych w wybranym okresie.", "en": "No data in the chosen period."},
    "daily": {"pl": "Bilety i obsłużeni dziennie", "en": "Tickets and served per day"},
    "wait_by_service": {"pl": "Czas oczekiwania według spraw", "en": "Wait time by service"},
    "util_by_counter": {"pl": "Wykorzystanie stanowisk", "en": "Counter utilisation"},
    "rating_dist": {"pl": "Rozkład ocen", "en": "Ratings"},
    "weekdays": {"pl": "Pn Wt Śr Cz Pt So Nd", "en": "Mon Tue Wed Thu Fri Sat Sun"},
    "hour": {"pl": "godzina", "en": "hour"},
    "month_summary": {"pl": "Podsumowanie miesiąca", "en": "Monthly summary"},
    "updated": {"pl": "Odświeżono", "en": "Updated"},
    "state": {"pl": "Stan", "en": "State"},
    "devices": {"pl": "Urządzenia", "en": "Devices"},
    "device": {"pl": "Urządzenie", "en": "Device"},
    "connection": {"pl": "Połączenie", "en": "Connection"},
    "printer": {"pl": "Drukarka", "en": "Printer"},
    "no_devices": {"pl": "Żadne urządzenie się jeszcze nie zgłosiło.", "en": "No device has reported yet."},
    "avail_online": {"pl": "połączone", "en": "online"},
    "avail_offline": {"pl": "BRAK POŁĄCZENIA", "en": "OFFLINE"},
    "avail_unknown": {"pl": "nieznane", "en": "unknown"},
    "fault_ok": {"pl": "sprawna", "en": "working"},
    "fault_offline": {"pl": "NIE ODPOWIADA", "en": "NOT RESPONDING"},
    "fault_paper_out": {"pl": "BRAK PAPIERU", "en": "OUT OF PAPER"},
    "fault_paper_low": {"pl": "mało papieru", "en": "paper low"},
    "fault_cover_open": {"pl": "OTWARTA POKRYWA", "en": "COVER OPEN"},
    "fault_error": {"pl": "BŁĄD", "en": "ERROR"},
    "status_open": {"pl": "otwarte", "en": "open"},
    "status_paused": {"pl": "przerwa", "en": "paused"},
    "status_closed": {"pl": "zamknięte", "en": "closed"},
}


class Labels(dict[str, str]):
    """The labels of one language, plus that language's way of writing numbers and dates
    (templates call ``L.number(v, 1)``)."""

    def __init__(self, lang: str) -> None:
        super().__init__({k: v[lang] for k, v in LABELS.items()})
        self.lang = lang

    def number(self, value: float | None, digits: int = 1, sign: bool = False) -> str:
        return fmt_number(value, self.lang, digits, sign)

    def minutes(self, seconds: float | None, digits: int = 1) -> str:
        return fmt_number(None if seconds is None else seconds / 60, self.lang, digits)

    def percent(self, share: float | None, digits: int = 1) -> str:
        if share is None:
            return "—"
        return fmt_number(share * 100, self.lang, digits) + (" %" if self.lang == "pl" else "%")  # Polish: "81,2 %"

    def date(self, d: date) -> str:
        return fmt_date(d, self.lang)

    def datetime(self, dt: datetime) -> str:
        return fmt_datetime(dt, self.lang)


def labels(lang: str) -> Labels:
    return Labels(lang if lang in LANGS else "pl")


def fmt_number(value: float | None, lang: str, digits: int = 1, sign: bool = False) -> str:
    """``12,5`` (pl) / ``12.5`` (en); "—" for no value; ``sign``: always show + or −."""
    if value is None:
        return "—"
    pattern = "#,##0" + ("." + "0" * digits if digits else "")
    if sign:
        pattern = f"+{pattern};-{pattern}"
    return format_decimal(value, pattern, locale=LOCALES.get(lang, "pl_PL"))


def fmt_date(d: date, lang: str) -> str:
    """``7.12.2026`` (pl) / ``07/12/2026`` (en): the short date each reader writes."""
    return format_date(d, "short" if lang == "en" else "d.MM.y", locale=LOCALES.get(lang, "pl_PL"))


def fmt_date_short(d: date, lang: str) -> str:
    """Day and month only (chart axes): ``07.12`` (pl) / ``07/12`` (en)."""
    return format_date(d, "dd.MM" if lang != "en" else "dd/MM", locale=LOCALES.get(lang, "pl_PL"))


def fmt_datetime(dt: datetime, lang: str) -> str:
    """A local date and time to the second: ``7 gru 2026, 10:15:03`` / ``7 Dec 2026, 10:15:03``."""
    return format_datetime(dt, "medium", tzinfo=dt.tzinfo, locale=LOCALES.get(lang, "pl_PL"))
