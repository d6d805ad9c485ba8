"""Everything the kiosk says, in Polish, English and Ukrainian.

Short, plain sentences: the readers include elderly residents and people who are
learning Polish. Each refusal says what happened *and* what to do next.
"""

from __future__ import annotations

from datetime import date, datetime

from protocol.waits import wait_text

LANGUAGES = ("pl", "en", "uk")
LANGUAGE_NAMES = {"pl": "Polski", "en": "English", "uk": "Українська"}

TEXTS: dict[str, dict[str, str]] = {
    "choose": {
        "pl": "Wybierz sprawę, aby pobrać bilet",
        "en": "Choose a service to take a ticket",
        "uk": "Оберіть послугу, щоб отримати талон",
    },
    "waiting": {"pl": "Czeka: {n}", "en": "Waiting: {n}", "uk": "Очікують: {n}"},
    "ahead_priority": {"pl": "Przed Tobą: {n}", "en": "Ahead of you: {n}", "uk": "Перед вами: {n}"},
    "wait_min": {"pl": "ok. {m} min", "en": "about {m} min", "uk": "бл. {m} хв"},
    "priority_off": {
        "pl": "Kolejka uprzywilejowana\n(ciąża, niepełnosprawność)",
        "en": "Priority queue\n(pregnancy, disability)",
        "uk": "Пріоритетна черга\n(вагітність, інвалідність)",
    },
    "priority_on": {
        "pl": "WŁĄCZONA: bilet uprzywilejowany\nDotknij, aby wyłączyć",
        "en": "ON: priority ticket\nTouch to turn off",
        "uk": "УВІМКНЕНО: пріоритетний талон\nТоркніться, щоб вимкнути",
    },
    "priority_hint": {
        "pl": "Wybierz sprawę – otrzymasz bilet uprzywilejowany",
        "en": "Choose a service – you will get a priority ticket",
        "uk": "Оберіть послугу – ви отримаєте пріоритетний талон",
    },
    "service_closed": {"pl": "Nieczynne", "en": "Closed", "uk": "Зачинено"},
    "service_closed_opens": {
        "pl": "Nieczynne – otwarcie o {t}",
        "en": "Closed – opens at {t}",
        "uk": "Зачинено – відкриття о {t}",
    },
    "cut_off": {
        "pl": "Dziś już nie wydajemy biletów",
        "en": "No more tickets today",
        "uk": "Сьогодні талонів більше немає",
    },
    "cut_off_back": {
        "pl": "Dziś już nie wydajemy biletów – zapraszamy {when}",
        "en": "No more tickets today – please come back {when}",
        "uk": "Сьогодні талонів більше немає – приходьте {when}",
    },
    "come_back_tomorrow": {"pl": "jutro od {t}", "en": "tomorrow from {t}", "uk": "завтра з {t}"},
    "come_back_on": {"pl": "{day} od {t}", "en": "{day} from {t}", "uk": "{day} з {t}"},
    "limit_reached": {
        "pl": "Limit biletów na dziś wyczerpany",
        "en": "Today's tickets are all taken",
        "uk": "Ліміт талонів на сьогодні вичерпано",
    },
    "unavailable": {"pl": "Niedostępne", "en": "Unavailable", "uk": "Недоступно"},
    "system_down_short": {
        "pl": "Chwilowo niedostępne",
        "en": "Not available right now",
        "uk": "Тимчасово недоступно",
    },
    "please_wait": {
        "pl": "Chwileczkę, drukujemy bilet…",
        "en": "One moment, printing your ticket…",
        "uk": "Хвилинку, друкуємо талон…",
    },
    "connecting": {
        "pl": "Łączenie z systemem kolejkowym…",
        "en": "Connecting to the queue system…",
        "uk": "З'єднання з системою черги…",
    },
    "system_down": {
        "pl": "System kolejkowy chwilowo nie działa.\nProsimy zgłosić się do informacji.",
        "en": "The queue system is not working right now.\nPlease ask at the information desk.",
        "uk": "Система черги тимчасово не працює.\nЗверніться, будь ласка, до довідки.",
    },
    "unreachable": {
        "pl": "Nie udało się pobrać biletu.\nSystem kolejkowy nie odpowiada.\nBilet NIE został wydany.\nSpróbuj za chwilę lub zgłoś się do informacji.",
        "en": "We could not get a ticket.\nThe queue system is not answering.\nNo ticket was issued.\nTry again in a moment or ask at the information desk.",
        "uk": "Не вдалося отримати талон.\nСистема черги не відповідає.\nТалон НЕ видано.\nСпробуйте пізніше або зверніться до довідки.",
    },
    "refused": {
        "pl": "Nie można pobrać biletu do tej sprawy.",
        "en": "A ticket for this service cannot be taken.",
        "uk": "Неможливо отримати талон на цю послугу.",
    },
    "your_number": {"pl": "Twój numer", "en": "Your number", "uk": "Ваш номер"},
    "priority_ticket": {"pl": "Bilet uprzywilejowany", "en": "Priority ticket", "uk": "Пріоритетний талон"},
    "people_ahead": {"pl": "Osób przed Tobą: {n}", "en": "People ahead of you: {n}", "uk": "Перед вами: {n}"},
    "est_wait": {
        "pl": "Szacowany czas oczekiwania: {w}",
        "en": "Estimated wait: {w}",
        "uk": "Орієнтовне очікування: {w}",
    },
    "est_wait_unknown": {
        "pl": "Czas oczekiwania: nieznany",
        "en": "Estimated wait: unknown",
        "uk": "Очікування: невідомо",
    },
    "wait_unknown_short": {"pl": "czas nieznany", "en": "wait unknown", "uk": "час невідомий"},
    "issued": {"pl": "Wydano: {t}", "en": "Issued: {t}", "uk": "Видано: {t}"},
    "go_to": {"pl": "Zapraszamy: {place}", "en": "Please go to: {place}", "uk": "Куди йти: {place}"},
    "printed": {
        "pl": "Weź bilet z drukarki poniżej.",
        "en": "Take your ticket from the printer below.",
        "uk": "Візьміть талон із принтера внизу.",
    },
    "printer_fault": {
        "pl": "Drukarka nie działa ({why}).\nZapamiętaj lub sfotografuj numer i kod QR.\nObsługa została powiadomiona.",
        "en": "The printer is not working ({why}).\nRemember or photograph the number and QR code.\nStaff have been told.",
        "uk": "Принтер не працює ({why}).\nЗапам'ятайте або сфотографуйте номер і QR-код.\nПерсонал повідомлено.",
    },
    "fault_offline": {"pl": "brak połączenia", "en": "not connected", "uk": "немає зв'язку"},
    "fault_paper_out": {"pl": "brak papieru", "en": "out of paper", "uk": "немає паперу"},
    "fault_cover_open": {"pl": "otwarta pokrywa", "en": "cover open", "uk": "відкрита кришка"},
    "fault_error": {"pl": "błąd drukarki", "en": "printer error", "uk": "помилка принтера"},
    "scan": {
        "pl": "Zeskanuj telefonem,\naby śledzić kolejkę",
        "en": "Scan with your phone\nto follow the queue",
        "uk": "Скануйте телефоном,\nщоб стежити за чергою",
    },
    "printer_down_home": {
        "pl": "Drukarka nie działa – numer i kod QR pokażemy na ekranie.",
        "en": "The printer is not working – we will show your number and QR code on screen.",
        "uk": "Принтер не працює – номер і QR-код покажемо на екрані.",
    },
    "booking_button": {"pl": "Mam rezerwację", "en": "I have a booking", "uk": "Маю бронювання"},
    "booking_title": {
        "pl": "Wpisz kod rezerwacji (6 znaków)\nlub zeskanuj kod QR z potwierdzenia",
        "en": "Type your booking code (6 characters)\nor scan the QR code from your confirmation",
        "uk": "Введіть код бронювання (6 знаків)\nабо відскануйте QR-код із підтвердження",
    },
    "booking_send": {"pl": "Potwierdź", "en": "Confirm", "uk": "Підтвердити"},
    "erase": {"pl": "Usuń", "en": "Delete", "uk": "Стерти"},
    "booking_short": {
        "pl": "Kod ma 6 znaków. Wpisz brakujące.",
        "en": "The code has 6 characters. Type the rest.",
        "uk": "Код має 6 знаків. Введіть решту.",
    },
    "booking_bad_scan": {
        "pl": "Nie rozpoznano kodu. Wpisz go na klawiaturze.",
        "en": "The code was not recognised. Type it on the keypad.",
        "uk": "Код не розпізнано. Введіть його на клавіатурі.",
    },
    "booking_unknown": {
        "pl": "Nie ma rezerwacji z tym kodem.\nSprawdź kod w potwierdzeniu i wpisz go ponownie\nalbo zgłoś się do informacji.",
        "en": "There is no booking with this code.\nCheck the code in your confirmation and type it again,\nor ask at the information desk.",
        "uk": "Бронювання з цим кодом немає.\nПеревірте код у підтвердженні та введіть його знову\nабо зверніться до довідки.",
    },
    "booking_too_early": {
        "pl": "Na tę wizytę jest jeszcze za wcześnie.\nZgłoś się bliżej godziny rezerwacji\nalbo pobierz zwykły bilet.",
        "en": "It is too early to check in for this appointment.\nCome back closer to your booked time\nor take a regular ticket.",
        "uk": "Для цього запису ще зарано.\nПоверніться ближче до часу бронювання\nабо візьміть звичайний талон.",
    },
    "booking_too_late": {
        "pl": "Czas tej rezerwacji już minął.\nPobierz zwykły bilet\nalbo zgłoś się do informacji.",
        "en": "The time of this booking has passed.\nTake a regular ticket\nor ask at the information desk.",
        "uk": "Час цього бронювання минув.\nВізьміть звичайний талон\nабо зверніться до довідки.",
    },
    "booking_other_day": {
        "pl": "Ta rezerwacja jest na inny dzień.\nSprawdź datę w potwierdzeniu\nalbo pobierz zwykły bilet.",
        "en": "This booking is for another day.\nCheck the date in your confirmation\nor take a regular ticket.",
        "uk": "Це бронювання на інший день.\nПеревірте дату в підтвердженні\nабо візьміть звичайний талон.",
    },
    "booking_cancelled": {
        "pl": "Ta rezerwacja została odwołana.\nPobierz zwykły bilet\nalbo zarezerwuj nową wizytę.",
        "en": "This booking was cancelled.\nTake a regular ticket\nor book a new appointment.",
        "uk": "Це бронювання скасовано.\nВізьміть звичайний талон\nабо забронюйте новий візит.",
    },
    "booking_failed": {
        "pl": "Nie udało się potwierdzić rezerwacji.\nZgłoś się do informacji.",
        "en": "We could not check in your booking.\nPlease ask at the information desk.",
        "uk": "Не вдалося підтвердити бронювання.\nЗверніться, будь ласка, до довідки.",
    },
    "appointment_ticket": {"pl": "Wizyta umówiona", "en": "Your appointment", "uk": "Ваш запис"},
    "sms_title": {
        "pl": "Chcesz SMS, gdy zbliży się Twoja kolej?\nWpisz numer komórki albo pobierz bilet bez SMS.",
        "en": "Want a text message when your turn is near?\nType your mobile number or take the ticket without it.",
        "uk": "Хочете SMS, коли наближатиметься ваша черга?\nВведіть номер мобільного або візьміть талон без SMS.",
    },
    "sms_consent": {
        "pl": "Wysyłając numer, zgadzasz się na 2 SMS-y o tym bilecie. Usuniemy numer po wizycie.",
        "en": "By sending the number you agree to 2 text messages about this ticket. We erase it after the visit.",
        "uk": "Надсилаючи номер, ви погоджуєтеся на 2 SMS щодо цього талона. Ми видалимо номер після візиту.",
    },
    "sms_skip": {"pl": "Bilet bez SMS", "en": "Ticket without SMS", "uk": "Талон без SMS"},
    "sms_send": {"pl": "Bilet i SMS", "en": "Ticket and SMS", "uk": "Талон і SMS"},
    "sms_bad_number": {
        "pl": "To nie jest numer komórkowy. Popraw go albo wybierz „Bilet bez SMS”.",
        "en": "This is not a mobile number. Correct it or choose “Ticket without SMS”.",
        "uk": "Це не мобільний номер. Виправте його або оберіть «Талон без SMS».",
    },
    "sms_subscribed": {
        "pl": "Wyślemy SMS, gdy zbliży się Twoja kolej.",
        "en": "We will text you when your turn is near.",
        "uk": "Ми надішлемо SMS, коли наближатиметься ваша черга.",
    },
    "sms_not_sent": {
        "pl": "SMS-a nie będzie: numer nie jest numerem komórkowym. Obserwuj ekran w poczekalni.",
        "en": "No text message: the number is not a mobile number. Watch the screen in the hall.",
        "uk": "SMS не буде: номер не є мобільним. Стежте за екраном у залі.",
    },
    "sms_unavailable": {
        "pl": "Nie możemy teraz wysłać SMS-a. Obserwuj ekran w poczekalni.",
        "en": "We cannot send a text message now. Watch the screen in the hall.",
        "uk": "Зараз ми не можемо надіслати SMS. Стежте за екраном у залі.",
    },
    "pickup_button": {"pl": "Odbiór dokumentu", "en": "Document pick-up", "uk": "Отримання документа"},
    "pickup_title": {
        "pl": "Wpisz sygnaturę sprawy z wiadomości\nlub zeskanuj jej kod",
        "en": "Type the case reference from the message\nor scan its code",
        "uk": "Введіть номер справи з повідомлення\nабо відскануйте його код",
    },
    "pickup_short": {
        "pl": "Wpisz sygnaturę, np. KM.1/2026.",
        "en": "Type the reference, e.g. KM.1/2026.",
        "uk": "Введіть номер, напр. KM.1/2026.",
    },
    "pickup_unknown": {
        "pl": "Nie ma dokumentu do odbioru z tą sygnaturą.\nSprawdź sygnaturę w wiadomości i wpisz ją ponownie\nalbo zgłoś się do informacji.",
        "en": "No document is ready under this reference.\nCheck the reference in the message and type it again,\nor ask at the information desk.",
        "uk": "Документа з цим номером немає.\nПеревірте номер у повідомленні та введіть його знову\nабо зверніться до довідки.",
    },
    "pickup_collected": {
        "pl": "Bilet do odbioru tego dokumentu został już wydany.\nZgłoś się do informacji.",
        "en": "A ticket to collect this document was issued already.\nPlease ask at the information desk.",
        "uk": "Талон на отримання цього документа вже видано.\nЗверніться, будь ласка, до довідки.",
    },
    "pickup_ticket": {"pl": "Odbiór dokumentu", "en": "Document pick-up", "uk": "Отримання документа"},
    "done": {"pl": "Gotowe", "en": "Done", "uk": "Готово"},
    "back": {"pl": "Wróć", "en": "Back", "uk": "Назад"},
    "no_services": {
        "pl": "Brak spraw do wyboru.",
        "en": "No services to choose from.",
        "uk": "Немає послуг для вибору.",
    },
}

# The printed ticket is always Polish (the office's language) plus the visitor's language.
PRINT_TEXTS: dict[str, dict[str, str]] = {
    "people_ahead": {"pl": "Osób przed Tobą: {n}", "en": "People ahead: {n}", "uk": "Перед вами: {n}"},
    "est_wait": {"pl": "Czas oczekiwania: {w}", "en": "Estimated wait: {w}", "uk": "Очікування: {w}"},
    "est_wait_unknown": {
        "pl": "Czas oczekiwania: nieznany",
        "en": "Estimated wait: unknown",
        "uk": "Очікування: невідомо",
    },
    "scan": {"pl": "Sprawdź kolejkę w telefonie:", "en": "Follow the queue on your phone:", "uk": "Стежте за чергою:"},
    "priority": {"pl": "BILET UPRZYWILEJOWANY", "en": "PRIORITY TICKET", "uk": "ПРІОРИТЕТНИЙ ТАЛОН"},
    "go_to": {"pl": "Zapraszamy: {place}", "en": "Please go to: {place}", "uk": "Куди йти: {place}"},
    "appointment": {"pl": "WIZYTA UMÓWIONA", "en": "APPOINTMENT", "uk": "ЗАПИС НА ПРИЙОМ"},
    "pickup": {"pl": "ODBIÓR DOKUMENTU", "en": "DOCUMENT PICK-UP", "uk": "ОТРИМАННЯ ДОКУМЕНТА"},
    "case": {"pl": "Sygn. {ref}", "en": "Case {ref}", "uk": "Справа {ref}"},
    "sms": {"pl": "SMS na numer ...{tail}", "en": "SMS to ...{tail}", "uk": "SMS на ...{tail}"},
}


# "on Monday" as a sentence needs it ("zapraszamy w poniedziałek"), Monday first.
ON_WEEKDAY: dict[str, tuple[str, ...]] = {
    "pl": ("w poniedziałek", "we wtorek", "w środę", "w czwartek", "w piątek", "w sobotę", "w niedzielę"),
    "en": ("on Monday", "on Tuesday", "on Wednesday", "on Thursday", "on Friday", "on Saturday", "on Sunday"),
    "uk": ("у понеділок", "у вівторок", "у середу", "у четвер", "у п'ятницю", "у суботу", "у неділю"),
}


def come_back(when: datetime, today: date, lang: str) -> str:
    """When to come back, as said to a resident: "jutro od 8:00", "w poniedziałek od 8:00",
    "14.12 od 8:00" (a date beyond the coming week). ``when`` and ``today`` in office time."""
    hour = f"{when.hour}:{when.minute:02d}"
    days = (when.date() - today).days
    if days == 1:
        return t("come_back_tomorrow", lang, t=hour)
    if 1 < days < 7:
        day = ON_WEEKDAY.get(lang, ON_WEEKDAY["pl"])[when.weekday()]
    else:
        day = f"{when.day}.{when.month:02d}"
    return t("come_back_on", lang, day=day, t=hour)


def t(key: str, lang: str, **kw: object) -> str:
    entry = TEXTS[key]
    text = entry.get(lang) or entry["pl"]
    return text.format(**kw) if kw else text


def service_name(names: dict[str, str], lang: str) -> str:
    """The service's name in ``lang``; Polish, then English, when the office gave none."""
    return names.get(lang) or names.get("pl") or names.get("en") or "?"


def wait_words(range_min: tuple[int, int] | list[int] | None, minutes: int | None, sent: bool, lang: str) -> str:
    """The wait as a resident reads it: the server's range in words ("15–30 min", "do 5 min",
    "we cannot estimate the wait now"), or "ok. 12 min" from a server written before ranges.

    Why a range: one number promises a precision nobody has (protocol/waits.py); ``sent`` tells
    a server's "cannot estimate" (the range field present and null) from an old server.
    """
    if sent:
        return wait_text(range_min, lang) if range_min is not None else t("wait_unknown_short", lang)
    return t("wait_min", lang, m=minutes if minutes is not None else "?")
