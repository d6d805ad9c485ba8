"""The kiosk's phone keypad (SMS "your turn is near") and document pick-up, as plain rules
(kiosk/visit.py, no screen, broker or server). End to end: tests/test_kiosk_cases.py."""

from __future__ import annotations

import pytest

from hardware.printer import Fault, PrinterSettings, TicketPrinter
from kiosk.visit import Screen, Visit
from protocol.messages import TicketRequest, TicketResponse
from tests.test_kiosk_visit import T0, answer, issued, kiosk, later

NUMBER = "600100200"


def with_phone(response: TicketResponse, outcome: str) -> TicketResponse:
    return response.model_copy(update={"phone": outcome})


def type_number(v: Visit, digits: str) -> None:
    for ch in digits:
        assert v.phone_key(ch).refresh


def test_without_the_sms_setting_a_tap_asks_for_the_ticket_at_once():
    v = kiosk()
    assert v.take("rej").ask is not None and v.screen == Screen.BUSY


def test_with_sms_a_tap_opens_the_keypad_and_skipping_takes_the_ticket_without_a_number():
    v = kiosk(sms=True)
    step = v.take("rej")
    assert step.ask is None and step.guard and v.screen == Screen.PHONE
    type_number(v, "600")
    step = v.phone_skip()
    assert step.ask is not None and step.ask.service == "rej" and step.ask.phone is None
    assert v.phone == "" and v.screen == Screen.BUSY
    v.sent("k1-r1")
    v.answered(answer("k1-r1", issued()))
    assert v.ticket_view().sms is None


def test_a_valid_number_goes_with_the_request_and_the_ticket_says_sms_will_come_without_the_number():
    v = kiosk(sms=True)
    v.take("rej")
    type_number(v, NUMBER)
    assert v.phone_text() == "600 100 200"
    step = v.phone_submit()
    assert step.ask is not None and step.ask.phone == NUMBER and step.ask.service == "rej"
    assert v.phone == "", "the number is not kept once sent"
    TicketRequest(id="k1-r1", service="rej", phone=step.ask.phone)  # the protocol takes it
    v.sent("k1-r1")
    layout = v.answered(with_phone(answer("k1-r1", issued()), "subscribed")).layout
    view = v.ticket_view()
    assert view.sms == "Wyślemy SMS, gdy zbliży się Twoja kolej."
    assert NUMBER not in repr(view) and "600 100" not in repr(view)
    assert "SMS na numer ...200" in layout.lines
    printer = TicketPrinter(PrinterSettings(kind="dummy"))
    assert printer.print_ticket(layout).fault == Fault.OK
    assert b"SMS na numer ...200" in printer.last_job
    assert NUMBER.encode() not in printer.last_job and b"600100" not in printer.last_job


@pytest.mark.parametrize("typed", ["12345", "426360000", "+"])  # too short, a Łódź landline, nothing
def test_a_number_that_cannot_get_an_sms_is_pointed_out_on_the_keypad_to_correct_or_skip(typed):
    v = kiosk(sms=True)
    v.take("rej")
    type_number(v, typed)
    step = v.phone_submit()
    assert step.ask is None and step.refresh and v.screen == Screen.PHONE
    assert v.phone_note == "To nie jest numer komórkowy. Popraw go albo wybierz „Bilet bez SMS”."
    v.phone_erase()
    assert v.phone_note is None
    assert v.phone_skip().ask is not None, "skipping still gives the ticket"


def test_the_plus_sign_is_only_taken_first_and_a_ukrainian_mobile_is_accepted():
    v = kiosk(sms=True)
    v.set_lang("uk")
    v.take("rej")
    type_number(v, "+380501234567")
    assert v.phone_key("+").ask is None and v.phone == "+380501234567"
    assert v.phone_submit().ask.phone == "+380501234567"
    v.sent("k1-r1")
    v.answered(with_phone(answer("k1-r1", issued()), "subscribed"))
    assert v.ticket_view().sms == "Ми надішлемо SMS, коли наближатиметься ваша черга."


@pytest.mark.parametrize(
    ("outcome", "says"),
    [
        ("not_mobile", "SMS-a nie będzie: numer nie jest numerem komórkowym. Obserwuj ekran w poczekalni."),
        (
            "opted_out",
            "SMS-a nie będzie: z tego numeru odpisano STOP na nasze wiadomości. Obserwuj ekran w poczekalni.",
        ),
        ("rate_limited", "Nie możemy teraz wysłać SMS-a. Obserwuj ekran w poczekalni."),
        ("unavailable", "Nie możemy teraz wysłać SMS-a. Obserwuj ekran w poczekalni."),
    ],
)
def test_a_number_the_server_refuses_still_gives_the_ticket_and_says_no_sms_will_come(outcome, says):
    v = kiosk(sms=True)
    v.take("rej")
    type_number(v, NUMBER)
    v.phone_submit()
    v.sent("k1-r1")
    layout = v.answered(with_phone(answer("k1-r1", issued()), outcome)).layout
    assert v.screen == Screen.TICKET and v.ticket_view().sms == says
    assert not any("SMS" in line for line in layout.lines), "no SMS line on paper"


def test_the_idle_timeout_on_the_keypad_goes_home_and_forgets_the_half_typed_number():
    v = kiosk(sms=True)
    v.take("rej")
    type_number(v, "600")
    later(v, 21)
    assert v.tick().redraw and v.screen == Screen.HOME and v.phone == ""


def test_the_phone_keypad_is_not_offered_while_the_server_is_down():
    v = kiosk(sms=True)
    v.connection(True, False)
    v.take("rej")
    assert v.screen == Screen.MESSAGE, "straight to 'not answering', no keypad for nothing"


# ---------------------------------------------------------------------- document pick-up


def pickup_kiosk(**kw) -> Visit:
    v = kiosk(pickups=True, **kw)
    assert v.start_pickup().guard and v.screen == Screen.PICKUP
    return v


def test_the_pickup_button_needs_the_setting_and_the_system_up():
    assert kiosk().start_pickup().redraw is False
    v = kiosk(pickups=True)
    v.connection(True, False)
    assert v.start_pickup().redraw is False and v.screen == Screen.HOME


def test_a_typed_reference_asks_for_a_pickup_ticket_and_prints_the_case():
    v = pickup_kiosk()
    assert v.pickup_submit().ask is None and v.reference_note == "Wpisz sygnaturę, np. KM.1/2026."
    for ch in "KM.1/2026":
        assert v.pickup_key(ch).refresh
    v.pickup_erase()
    v.pickup_key("6")
    step = v.pickup_submit()
    assert step.ask is not None and step.ask.pickup == "KM.1/2026" and step.ask.service is None
    TicketRequest(id="k1-r1", pickup=step.ask.pickup)  # the protocol takes it
    v.sent("k1-r1")
    layout = v.answered(answer("k1-r1", issued("B001", sid="pj"))).layout
    assert v.ticket_view().head == "Odbiór dokumentu"
    assert layout.lines[:2] == ["ODBIÓR DOKUMENTU", "Sygn. KM.1/2026"]
    printer = TicketPrinter(PrinterSettings(kind="dummy"))
    printer.print_ticket(layout)
    assert "ODBIÓR DOKUMENTU".encode("cp852") in printer.last_job and b"Sygn. KM.1/2026" in printer.last_job


def test_a_scanned_reference_from_home_or_the_keypad_asks_at_once():
    v = kiosk(pickups=True)
    v.typed("KM.7/2026")
    step = v.entered()
    assert step.ask is not None and step.ask.pickup == "KM.7/2026"
    v = pickup_kiosk()
    v.typed("km.8/2026 ")
    assert v.entered().ask.pickup == "km.8/2026"


def test_a_scanned_booking_code_still_checks_in_where_both_are_offered():
    v = kiosk(pickups=True, bookings=True)
    v.typed("YTX-RY5")
    step = v.entered()
    assert step.ask is not None and step.ask.booking == "YTXRY5" and step.ask.pickup is None


@pytest.mark.parametrize(
    ("code", "lang", "starts"),
    [
        ("pickup_unknown", "pl", "Nie ma dokumentu do odbioru z tą sygnaturą."),
        ("pickup_unknown", "en", "No document is ready under this reference."),
        ("pickup_unknown", "uk", "Документа з цим номером немає."),
        ("pickup_collected", "pl", "Bilet do odbioru tego dokumentu został już wydany."),
        ("pickup_collected", "en", "A ticket to collect this document was issued already."),
        ("pickup_collected", "uk", "Талон на отримання цього документа вже видано."),
    ],
)
def test_each_pickup_refusal_says_what_happened_in_each_language(code, lang, starts):
    v = pickup_kiosk()
    v.set_lang(lang)
    for ch in "KM.9/2026":
        v.pickup_key(ch)
    v.pickup_submit()
    v.sent("k1-r1")
    v.answered(answer("k1-r1", error=code))
    assert v.screen == Screen.MESSAGE and v.message.startswith(starts)
    v.go_home()
    assert v.pickup is None and v.reference == ""


def test_the_protocol_refuses_a_phone_without_a_service_and_a_pickup_with_one():
    with pytest.raises(ValueError):
        TicketRequest(id="x", pickup="KM.1/2026", phone=NUMBER)
    with pytest.raises(ValueError):
        TicketRequest(id="x", service="rej", pickup="KM.1/2026")
    assert TicketResponse(id="x", ok=True, server_time=T0, phone="subscribed").phone == "subscribed"
