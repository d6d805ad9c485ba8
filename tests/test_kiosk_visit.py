"""The kiosk's visit rules without a screen, a broker or a server (kiosk/visit.py).

Each test is a resident's (or the system's) sequence of events and asserts what the kiosk
would then show or do: the screen, its texts, the request it sends, the ticket it prints.
The end-to-end path (Kivy under Xvfb, the real broker and server) stays in tests/test_kiosk.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hardware.printer import Fault, PrinterSettings, PrinterStatus, TicketPrinter
from kiosk.config import KioskSection
from kiosk.visit import CONNECT_GRACE_S, PRINTER_CHECK_S, TOUCH_GUARD_S, Screen, Visit
from protocol.messages import ErrorInfo, ServiceInfo, ServicesMessage, TicketIssued, TicketResponse

T0 = datetime(2031, 5, 6, 9, 30, tzinfo=timezone(timedelta(hours=2)))
OFFICE = "Urząd Testowy w Łodzi"


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def service(sid: str = "rej", prefix: str = "A", **kw) -> ServiceInfo:
    names = {
        "rej": {"pl": "Rejestracja pojazdów", "en": "Vehicle registration", "uk": "Реєстрація"},
        "pasz": {"pl": "Paszporty", "en": "Passports", "uk": "Паспорти"},
    }
    fields = dict(
        id=sid,
        prefix=prefix,
        name=names.get(sid, {"pl": sid, "en": sid}),
        zone="hall",
        available=True,
        waiting=2,
        estimated_wait_min=10,
        open_counters=1,
        priority_ahead=0,
        priority_estimated_wait_min=1,
    )
    fields.update(kw)
    return ServiceInfo(**fields)


def services(*items: ServiceInfo) -> ServicesMessage:
    return ServicesMessage(office=OFFICE, services=list(items or [service()]), server_time=T0)


def issued(
    number: str = "A001", priority: bool = False, sid: str = "rej", ahead: int = 0, at: datetime | None = None
) -> TicketIssued:
    return TicketIssued(
        number=number,
        service=sid,
        service_name={"pl": "Rejestracja pojazdów", "en": "Vehicle registration", "uk": "Реєстрація"},
        priority=priority,
        issued_at=T0,
        people_ahead=ahead,
        estimated_wait_min=7,
        token="tok",
        status_path="/t/tok",
        appointment_at=at,
    )


def answer(rid: str | None, ticket: TicketIssued | None = None, error: str | None = None) -> TicketResponse:
    return TicketResponse(
        id=rid,
        ok=error is None,
        ticket=ticket,
        error=ErrorInfo(code=error, message="x") if error else None,
        server_time=T0,
    )


def kiosk(**settings) -> Visit:
    """A kiosk connected to a running server, its services known, on the home screen."""
    clock = FakeMonotonic()
    v = Visit(
        KioskSection(id="k1", public_url="http://numerek.local:8080", idle_timeout_s=20, **settings), monotonic=clock
    )
    v.connection(True, True, server_known=True)
    v.services_arrived(services(service(), service("pasz", "P")))
    return v


def later(v: Visit, seconds: float) -> None:
    v.monotonic.now += seconds  # type: ignore[attr-defined]


def tap_service(v: Visit, sid: str = "rej", rid: str = "k1-r1"):
    step = v.take(sid)
    if step.ask is not None:
        v.sent(rid)
    return step


def test_a_tap_asks_for_a_ticket_then_shows_and_prints_it():
    v = kiosk()
    step = tap_service(v)
    assert v.screen == Screen.BUSY and step.guard
    assert (step.ask.service, step.ask.priority, step.ask.lang) == ("rej", False, "pl")
    step = v.answered(answer("k1-r1", issued()))
    assert v.screen == Screen.TICKET
    view = v.ticket_view()
    assert (view.head, view.number, view.service) == ("Twój numer", "A001", "Rejestracja pojazdów")
    assert view.issued == "Wydano: 06.05.2031 09:30" and view.ahead == "Osób przed Tobą: 0"
    assert view.status == "Chwileczkę, drukujemy bilet…"
    assert step.layout is not None and step.layout.number == "A001"
    assert step.layout.qr_url == "http://numerek.local:8080/t/tok"
    v.printed("A001", PrinterStatus(Fault.OK))
    assert v.ticket_view().status == "Weź bilet z drukarki poniżej."


def test_a_print_that_ends_before_the_answer_is_taken_is_shown_with_the_ticket():
    """The link starts the printer as the ticket arrives (network thread); a fast printer can
    report before the UI thread takes the answer. The ticket screen still says how it went."""
    v = kiosk()
    tap_service(v)
    plan = v.print_plan()
    response = answer("k1-r1", issued())
    assert plan.layout(response.ticket, response.phone) == v.layout_for_print(response.ticket)
    v.printed("A001", PrinterStatus(Fault.PAPER_OUT))
    assert v.screen == Screen.BUSY
    v.answered(response)
    assert v.screen == Screen.TICKET and v.print_outcome is not None and v.print_outcome.fault == Fault.PAPER_OUT
    v.go_home(reset=True)
    tap_service(v, rid="k1-r2")
    v.answered(answer("k1-r2", issued(number="A002")))
    assert v.print_outcome is None, "an earlier ticket's outcome is not this one's"


def test_a_second_tap_while_the_request_is_out_sends_nothing():
    v = kiosk()
    assert tap_service(v).ask is not None
    assert v.take("rej").ask is None and v.take("pasz").ask is None
    assert v.screen == Screen.BUSY


def test_touches_right_after_a_screen_change_are_ignored_then_count_again():
    v = kiosk()
    v.answered(answer("x"))  # not busy: nothing
    tap_service(v)
    v.answered(answer("k1-r1", issued()))
    v.showing(guard=True)
    later(v, TOUCH_GUARD_S / 2)
    assert v.touched(), "the double tap's second touch lands on nothing"
    later(v, TOUCH_GUARD_S)
    assert not v.touched()


def test_the_touch_guard_counts_from_the_screens_first_frame_not_from_its_build():
    """A busy kiosk took longer than the guard to draw the home screen after "Gotowe": the second
    touch of a double tap then pressed the priority button drawn under the finger."""
    v = kiosk()
    v.showing(guard=True)  # "Gotowe" tapped: the home screen is being built
    later(v, TOUCH_GUARD_S * 2)  # building and drawing it took this long
    v.drawn()
    later(v, TOUCH_GUARD_S / 2)
    assert v.touched(), "a touch half a guard after the screen appeared must be swallowed"
    later(v, TOUCH_GUARD_S)
    assert not v.touched()
    v.drawn()  # later frames of the same screen start nothing
    later(v, TOUCH_GUARD_S / 2)
    assert not v.touched()


def test_a_rebuild_nobody_tapped_for_starts_no_guard_when_drawn():
    v = kiosk()
    v.showing(guard=False)  # the server's news, a resized window
    v.drawn()
    assert not v.touched()


def test_done_gives_the_next_visitor_the_default_language_and_no_priority():
    v = kiosk()
    v.set_lang("en")
    v.toggle_priority()
    step = tap_service(v)
    assert (step.ask.priority, step.ask.lang) == (True, "en")
    v.answered(answer("k1-r1", issued(priority=True)))
    assert v.ticket_view().head == "Priority ticket" and v.ticket_view().head_style == "accent"
    v.go_home(reset=True)
    assert (v.screen, v.lang, v.priority) == (Screen.HOME, "pl", False)
    assert v.title()[0] == "Wybierz sprawę, aby pobrać bilet"


def test_back_after_a_failure_keeps_the_language_but_not_the_priority():
    v = kiosk()
    v.set_lang("uk")
    v.toggle_priority()
    tap_service(v)
    v.answered(None)
    assert v.screen == Screen.MESSAGE and "Талон НЕ видано." in v.message
    v.go_home()
    assert (v.lang, v.priority) == ("uk", False)


def test_no_answer_and_an_expired_refusal_both_say_no_ticket_was_issued():
    for response in (None, answer("k1-r1", error="expired")):
        v = kiosk()
        tap_service(v)
        v.answered(response)
        assert v.screen == Screen.MESSAGE and "Bilet NIE został wydany." in v.message


def test_a_refusal_says_why_in_the_residents_language():
    v = kiosk()
    v.set_lang("en")
    tap_service(v)
    v.answered(answer("k1-r1", error="limit_reached"))
    assert v.message == "A ticket for this service cannot be taken.\nToday's tickets are all taken"


def test_a_broker_that_is_down_at_the_tap_gives_the_message_at_once():
    v = kiosk()
    v.take("rej")
    v.sent(None)
    assert v.screen == Screen.MESSAGE and "Bilet NIE został wydany." in v.message


def test_a_server_that_said_goodbye_gets_no_request():
    v = kiosk()
    v.connection(True, False)
    assert v.take("rej").ask is None
    assert v.screen == Screen.MESSAGE


def test_a_late_ticket_is_shown_while_the_resident_reads_the_failure_but_not_after():
    v = kiosk()
    tap_service(v, rid="k1-r1")
    v.answered(None)
    assert v.late_response(answer("k1-other", issued())).layout is None, "someone else's answer"
    step = v.late_response(answer("k1-r1", issued()))
    assert v.screen == Screen.TICKET and step.layout is not None
    v2 = kiosk()
    tap_service(v2, rid="k1-r1")
    v2.answered(None)
    v2.go_home()
    assert v2.late_response(answer("k1-r1", issued())).layout is None and v2.screen == Screen.HOME


def test_the_idle_timeout_brings_home_and_resets_the_language():
    v = kiosk()
    v.set_lang("en")
    later(v, 19)
    assert not v.tick().redraw
    later(v, 2)
    assert v.tick().redraw and (v.screen, v.lang) == (Screen.HOME, "pl")
    assert not v.tick().redraw, "home in the default language stays as it is"


def test_nothing_goes_home_while_a_request_is_out():
    v = kiosk()
    tap_service(v)
    later(v, 100)
    assert not v.tick().redraw and v.screen == Screen.BUSY


def test_the_printer_fault_screen_stays_longer_than_the_idle_timeout_then_goes_home():
    v = kiosk(fault_timeout_s=90)
    tap_service(v)
    v.answered(answer("k1-r1", issued()))
    v.printed("A001", PrinterStatus(Fault.PAPER_OUT, "out of paper"))
    view = v.ticket_view()
    assert view.fault and view.status.startswith("Drukarka nie działa (brak papieru).")
    later(v, 60)
    v.tick()
    assert v.screen == Screen.TICKET, "the number the resident must note went away"
    later(v, 31)
    v.tick()
    assert v.screen == Screen.HOME


def test_done_tapped_before_the_print_result_still_brings_the_printer_warning_home():
    v = kiosk()
    tap_service(v)
    v.answered(answer("k1-r1", issued()))
    v.go_home(reset=True)
    assert v.printer_warning() is None, "the fault is not known yet"
    step = v.printed("A001", PrinterStatus(Fault.PAPER_OUT))
    assert step.redraw and not step.guard, "home is rebuilt, and a tap on it still counts"
    assert v.printer_warning() == "Drukarka nie działa – numer i kod QR pokażemy na ekranie."


def test_the_idle_printer_check_is_skipped_right_after_a_ticket_and_while_one_is_out():
    v = kiosk()
    assert not v.check_due(), "the start-up check is still out"
    v.printer_checked(PrinterStatus(Fault.OK))
    v.checking = False
    tap_service(v)
    v.answered(answer("k1-r1", issued()))
    v.printed("A001", PrinterStatus(Fault.OK))
    v.go_home(reset=True)
    later(v, PRINTER_CHECK_S - 1)
    assert not v.check_due(), "the ticket's own status round is fresher"
    later(v, 2)
    assert v.check_due() and not v.check_due()


def test_connecting_is_said_briefly_then_the_system_is_not_working():
    clock = FakeMonotonic()
    v = Visit(KioskSection(id="k1", public_url="http://numerek.local"), monotonic=clock)
    assert v.problem() == "Łączenie z systemem kolejkowym…"
    clock.now += CONNECT_GRACE_S - 1
    assert not v.tick().redraw
    clock.now += 1
    assert v.tick().redraw, "home is rebuilt once the grace period is over"
    assert v.problem().startswith("System kolejkowy chwilowo nie działa.")
    assert not v.tick().redraw


def test_services_are_greyed_out_and_say_why_when_they_cannot_be_taken():
    v = kiosk()
    closed = service("pasz", "P", available=False, reason="service_closed", opens_at="08:00")
    limit = service(available=False, reason="limit_reached")
    assert v.service_view(closed) == v.service_view(closed).__class__(
        "Paszporty", "Nieczynne – otwarcie o 08:00", False, "disabled"
    )
    assert v.service_view(limit).detail == "Limit biletów na dziś wyczerpany"
    assert v.take("pasz").ask is not None, "available in the last services message"
    v2 = kiosk()
    v2.services_arrived(services(limit, closed))
    assert v2.take("rej").ask is None and v2.take("pasz").ask is None and v2.screen == Screen.HOME
    v2.connection(True, False)
    assert v2.service_view(service()).detail == "Chwilowo niedostępne"


def test_priority_mode_shows_the_priority_queues_own_figures_in_its_own_colour():
    v = kiosk()
    s = service(waiting=4, priority_ahead=1, priority_estimated_wait_min=3)
    assert v.service_view(s).detail == "Czeka: 4   •   ok. 10 min"
    v.toggle_priority()
    view = v.service_view(s)
    assert view.detail == "Przed Tobą: 1   •   ok. 3 min" and view.style == "service_priority"
    assert v.priority_button() == ("WŁĄCZONA: bilet uprzywilejowany\nDotknij, aby wyłączyć", "priority_on")


def test_a_services_update_refreshes_home_in_place_and_a_new_service_rebuilds_it():
    v = kiosk()
    step = v.services_arrived(services(service(waiting=5), service("pasz", "P")))
    assert step.refresh and not step.redraw
    assert v.services_arrived(services(service())).redraw


def test_the_printed_ticket_is_polish_first_then_the_residents_language_on_the_dummy_printer():
    v = kiosk()
    v.set_lang("uk")
    tap_service(v)
    layout = v.answered(answer("k1-r1", issued(priority=True, ahead=3))).layout
    assert layout.qr_url == "http://numerek.local:8080/t/tok?lang=uk"
    printer = TicketPrinter(PrinterSettings(kind="dummy"))
    assert printer.print_ticket(layout).fault == Fault.OK
    out = printer.last_job
    for text in ("BILET UPRZYWILEJOWANY", OFFICE, "Rejestracja pojazdów", "Osób przed Tobą: 3"):
        assert text.encode("cp852") in out, text
    for text in ("ПРІОРИТЕТНИЙ ТАЛОН", "Перед вами: 3", "Реєстрація"):
        assert text.replace("і", "i").replace("І", "I").encode("cp866") in out, text
    assert out.index("Osób".encode("cp852")) < out.index("Перед".encode("cp866")), "Polish first"
    assert b"A001" in out and layout.qr_url.encode() in out


def test_every_ticket_names_the_place_on_screen_and_on_paper_in_both_languages():
    upstairs = {"pl": "I piętro, pokój 112", "en": "First floor, room 112", "uk": "1 поверх, кімната 112"}
    v = kiosk()
    v.services_arrived(services(service(place=upstairs)))
    v.set_lang("en")
    tap_service(v)
    layout = v.answered(answer("k1-r1", issued())).layout
    assert v.ticket_view().place == "Please go to: First floor, room 112"
    names = layout.lines.index("Rejestracja pojazdów")
    assert layout.lines[names + 2 : names + 4] == [
        "Zapraszamy: I piętro, pokój 112",
        "Please go to: First floor, room 112",
    ]
    printer = TicketPrinter(PrinterSettings(kind="dummy"))
    printer.print_ticket(layout)
    assert "Zapraszamy: I piętro, pokój 112".encode("cp852") in printer.last_job


def test_a_service_without_a_named_place_prints_no_place_line():
    v = kiosk()
    tap_service(v)
    layout = v.answered(answer("k1-r1", issued())).layout
    assert v.ticket_view().place is None
    assert not any(line.startswith("Zapraszamy") for line in layout.lines)


# ---------------------------------------------------------------------- a booking's check-in


def booking_kiosk() -> Visit:
    v = kiosk(bookings=True)
    assert v.start_booking().guard and v.screen == Screen.BOOKING
    return v


def test_the_booking_button_is_offered_only_where_the_office_takes_bookings_and_the_system_is_up():
    assert kiosk().start_booking().redraw is False and not kiosk().bookings_open
    v = kiosk(bookings=True)
    v.connection(True, False)
    assert not v.bookings_open and v.start_booking().redraw is False


def test_a_code_typed_on_the_keypad_checks_in_and_shows_the_appointment_ticket():
    # Each key refreshes the code line, never a guarded rebuild: fast typing is not swallowed.
    v2 = booking_kiosk()
    for ch in "YTXR":
        step = v2.key(ch)
        assert step.refresh and not step.guard and not step.redraw
    assert v2.code_text() == "YTX-R__"
    v2.key("4")
    v2.key("9")
    assert v2.key("7").refresh is False, "six characters at most"
    step = v2.submit()
    assert v2.screen == Screen.BUSY and step.ask.booking == "YTXR49" and step.ask.service is None
    booked_at = T0.replace(hour=10, minute=45)
    step = v2.answered(answer("k1-r1", issued("R001", ahead=0, at=booked_at)))
    view = v2.ticket_view()
    assert v2.screen == Screen.TICKET and view.head == "Wizyta umówiona na 10:45" and view.head_style == "accent"
    assert step.layout.lines[:2] == ["WIZYTA UMÓWIONA", "Godzina wizyty: 10:45"]
    v2.go_home(reset=True)
    assert (v2.code, v2.booked) == ("", False)


def test_keys_outside_the_codes_alphabet_are_not_typed_and_erase_takes_back_one():
    v = booking_kiosk()
    for ch in "O0I1L":  # look-alikes are not in the alphabet
        assert not v.key(ch).refresh
    v.key("A")
    v.key("C")
    v.erase()
    assert v.code == "A"


def test_a_short_code_is_not_sent_and_says_why():
    v = booking_kiosk()
    v.key("A")
    step = v.submit()
    assert step.ask is None and v.screen == Screen.BOOKING
    assert v.code_note == "Kod ma 6 znaków. Wpisz brakujące."
    v.key("C")
    assert v.code_note is None


def test_a_scanner_typing_the_code_and_enter_checks_in_from_the_home_screen():
    v = kiosk(bookings=True)
    v.typed("ytx-r")
    v.typed("y5")
    step = v.entered()
    assert v.screen == Screen.BUSY and step.ask.booking == "YTXRY5"


def test_a_scanned_link_gives_its_code_and_an_unreadable_scan_opens_the_keypad_with_a_note():
    v = kiosk(bookings=True)
    v.typed("https://urzad.example.pl/wizyta/ACE479?lang=pl")
    assert v.entered().ask.booking == "ACE479"
    v = kiosk(bookings=True)
    v.set_lang("en")
    v.typed("HELLO WORLD")
    assert v.entered().ask is None
    assert v.screen == Screen.BOOKING and v.code_note == "The code was not recognised. Type it on the keypad."


def test_characters_typed_long_apart_are_not_one_scan():
    v = kiosk(bookings=True)
    v.typed("ACE")
    later(v, 5)
    v.typed("479")
    assert v.entered().ask is None and v.screen == Screen.BOOKING


def test_scanner_input_is_ignored_where_there_is_no_booking_check_in():
    v = kiosk()  # this office takes no bookings
    v.typed("ACE479")
    assert v.entered().redraw is False and v.screen == Screen.HOME
    v = kiosk(bookings=True)
    tap_service(v)
    v.typed("ACE479")
    assert v.entered().ask is None and v.screen == Screen.BUSY, "not while a request is out"


def test_each_booking_refusal_says_what_happened_and_what_to_do_in_each_language():
    expected = {
        "booking_unknown": ("Nie ma rezerwacji z tym kodem.", "information desk", "довідки"),
        "booking_too_early": ("za wcześnie", "Come back closer", "Поверніться ближче"),
        "booking_too_late": ("minął", "Take a regular ticket", "звичайний талон"),
        "booking_other_day": ("inny dzień", "Check the date", "Перевірте дату"),
        "booking_cancelled": ("odwołana", "book a new appointment", "скасовано"),
    }
    for code, phrases in expected.items():
        for lang, phrase in zip(("pl", "en", "uk"), phrases, strict=True):
            v = kiosk(bookings=True)
            v.set_lang(lang)
            v.typed("ACE479")
            v.entered()
            v.sent("k1-r1")
            v.answered(answer("k1-r1", error=code))
            assert v.screen == Screen.MESSAGE and phrase in v.message, (code, lang, v.message)
            assert v.go_home().redraw and v.lang == lang, "Back keeps the resident's language"


def test_a_server_that_does_not_take_check_ins_gets_a_clear_message_not_a_service_refusal():
    v = booking_kiosk()
    for ch in "ACE479":
        v.key(ch)
    v.submit()
    v.answered(answer("k1-r1", error="unknown_service"))
    assert v.message == "Nie udało się potwierdzić rezerwacji.\nZgłoś się do informacji."


def test_the_home_screen_shows_the_servers_wait_range_in_words_not_one_number():
    """Issue 15: one number ("ok. 10 min") promises what nobody knows; the server sends a range."""
    v = kiosk()
    s = service(
        waiting=4,
        estimated_wait_range_min=(10, 20),
        priority_ahead=1,
        priority_estimated_wait_range_min=(0, 5),
    )
    assert v.service_view(s).detail == "Czeka: 4   •   10–20 min"
    v.toggle_priority()
    assert v.service_view(s).detail == "Przed Tobą: 1   •   do 5 min"
    v.toggle_priority()
    v.set_lang("en")
    unknown = service(waiting=4, estimated_wait_range_min=None)
    assert v.service_view(unknown).detail == "Waiting: 4   •   wait unknown"


def test_the_ticket_shows_and_prints_its_range_polish_first_then_the_residents_language():
    v = kiosk()
    v.set_lang("en")
    tap_service(v)
    ticket = issued(ahead=12).model_copy(update={"estimated_wait_range_min": (120, 180)})
    ticket = TicketIssued.model_validate(ticket.model_dump())  # as parsed from the server's JSON
    layout = v.answered(answer("k1-r1", ticket)).layout
    assert v.ticket_view().wait == "Estimated wait: 2–3 h"
    assert "Czas oczekiwania: 2–3 godz." in layout.lines and "Estimated wait: 2–3 h" in layout.lines
    printer = TicketPrinter(PrinterSettings(kind="dummy"))
    printer.print_ticket(layout)
    assert b"Czas oczekiwania: 2-3 godz." in printer.last_job  # the printer's code page has no en dash
    assert b"7 min" not in printer.last_job, "the single number is for devices written before ranges"


def test_a_server_reported_offline_right_after_connecting_is_said_at_once_not_after_the_grace():
    clock = FakeMonotonic()
    v = Visit(KioskSection(id="k1", public_url="http://numerek.local"), monotonic=clock)
    v.services_arrived(services())
    v.connection(True, False, server_known=False)
    assert v.problem() == "Łączenie z systemem kolejkowym…", "no false alarm before the server's state is read"
    assert v.connection(True, False, server_known=True).redraw, "the retained 'offline' is news"
    assert v.problem().startswith("System kolejkowy chwilowo nie działa.")


def test_a_ticket_the_server_cannot_estimate_says_so_in_one_short_line():
    v = kiosk()
    v.set_lang("uk")
    tap_service(v)
    ticket = TicketIssued.model_validate({**issued().model_dump(), "estimated_wait_range_min": None})
    layout = v.answered(answer("k1-r1", ticket)).layout
    assert v.ticket_view().wait == "Очікування: невідомо"
    assert "Czas oczekiwania: nieznany" in layout.lines
    assert not any("7 min" in line for line in layout.lines)


def test_a_service_cut_off_for_today_says_when_to_come_back():
    tomorrow_8 = datetime(2031, 5, 7, 8, 0, tzinfo=T0.tzinfo)  # T0 is Tuesday 9:30
    monday_8 = datetime(2031, 5, 12, 8, 0, tzinfo=T0.tzinfo)
    v = kiosk()
    v.services_arrived(
        services(
            service(available=False, reason="cut_off", next_opening=tomorrow_8),
            service("pasz", "P", available=False, reason="cut_off", next_opening=monday_8),
        )
    )
    assert v.service_view(v.service("rej")).detail == "Dziś już nie wydajemy biletów – zapraszamy jutro od 8:00"
    assert (
        v.service_view(v.service("pasz")).detail == "Dziś już nie wydajemy biletów – zapraszamy w poniedziałek od 8:00"
    )
    v.set_lang("uk")
    assert v.service_view(v.service("pasz")).detail == "Сьогодні талонів більше немає – приходьте у понеділок з 8:00"
    without = service(available=False, reason="cut_off")  # a server written before next_opening
    assert v.service_view(without).detail == "Сьогодні талонів більше немає"


def test_a_ticket_refused_at_the_cut_off_says_when_to_come_back():
    v = kiosk()
    v.set_lang("en")
    v.services_arrived(services(service(next_opening=datetime(2031, 5, 7, 8, 0, tzinfo=T0.tzinfo))))
    tap_service(v)  # still available in the list; the queue filled up meanwhile
    v.answered(answer("k1-r1", error="cut_off"))
    assert (
        v.message
        == "A ticket for this service cannot be taken.\nNo more tickets today – please come back tomorrow from 8:00"
    )
