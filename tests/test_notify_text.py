"""Phone numbers, SMS length rules and the message templates."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from notify import phone
from notify.message import NoticeKind
from notify.sms_text import MAX_PARTS, Encoding, TextTooLong, analyse, compare, prepare, transliterate
from notify.templates import CATALOGUE, LANGUAGES, TemplateError, render

WARSAW = ZoneInfo("Europe/Warsaw")


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("600 100 200", "+48600100200"),
        ("+48 600-100-200", "+48600100200"),
        ("0048600100200", "+48600100200"),
        ("(+48) 600 100 200", "+48600100200"),
        ("+380 50 123 4567", "+380501234567"),
        ("+49 151 23456789", "+4915123456789"),
    ],
)
def test_numbers_typed_in_polish_and_international_forms_are_stored_in_e164(typed, stored):
    assert phone.normalise(typed) == stored


@pytest.mark.parametrize(
    ("typed", "why"),
    [
        ("", "no number"),
        ("42 123 45 67", "not a mobile"),  # a Łódź landline cannot get an SMS
        ("12345", "digits"),
        ("zadzwoń do mnie", "not a phone number"),
        ("+48 600 100 200 " * 5, "too long"),
    ],
)
def test_a_number_that_cannot_get_an_sms_is_refused_with_a_reason(typed, why):
    with pytest.raises(phone.InvalidPhoneNumber, match=why):
        phone.normalise(typed)


def test_a_number_is_shown_whole_only_to_its_owner():
    assert phone.display("+48600100200") == "+48 600 100 200"
    assert phone.redact("+48600100200") == "+48…00"


@pytest.mark.parametrize(
    ("text", "encoding", "units", "parts"),
    [
        ("x" * 160, Encoding.GSM7, 160, 1),
        ("x" * 161, Encoding.GSM7, 161, 2),
        ("x" * 306, Encoding.GSM7, 306, 2),
        ("x" * 307, Encoding.GSM7, 307, 3),
        ("€" * 80, Encoding.GSM7, 160, 1),  # extension characters take two septets
        ("x" * 152 + "€" + "x" * 10, Encoding.GSM7, 164, 2),  # the escape pair is not split: 152 + 12
        ("x" * 69 + "ą", Encoding.UCS2, 70, 1),  # one Polish letter makes the whole text UCS-2
        ("x" * 70 + "ą", Encoding.UCS2, 71, 2),
        ("ą" * 134, Encoding.UCS2, 134, 2),
        ("ą" * 135, Encoding.UCS2, 135, 3),
        ("A023 – Stanowisko 4", Encoding.UCS2, 19, 1),  # so does a typographic dash
    ],
)
def test_the_alphabet_and_part_count_follow_gsm_rules(text, encoding, units, parts):
    cost = analyse(text)
    assert (cost.encoding, cost.units, cost.parts) == (encoding, units, parts)


def test_transliteration_makes_polish_gsm7_but_keeps_ukrainian_readable():
    assert transliterate("Zażółć gęślą jaźń – „A023” …") == 'Zazolc gesla jazn - "A023" ...'
    assert transliterate("Ваш номер A023") == "Ваш номер A023"
    assert transliterate("Müller, Señor, é") == "Müller, Señor, é"  # GSM-7 has these letters
    cmp = compare("Starostwo Łódź: Prawo jazdy do odbioru w Wydziale Komunikacji, stanowisko 7.")
    assert (cmp.as_written.parts, cmp.transliterated.parts) == (2, 1)
    assert cmp.describe() == "as written: 2 parts (UCS-2, 76 characters); transliterated: 1 part (GSM-7, 76 characters)"


def test_a_runaway_text_is_refused_rather_than_sent_in_many_parts():
    with pytest.raises(TextTooLong):
        prepare("ą" * (67 * MAX_PARTS + 1), transliterate_text=False)
    text, cost = prepare("ą" * (67 * MAX_PARTS + 1), transliterate_text=True)
    assert cost.encoding is Encoding.GSM7 and cost.parts == 3


OFFICE = "Starostwo Łódź"
VALUES = {
    NoticeKind.TURN_NEAR: {"ticket": "A023", "ahead": 3, "minutes": 10},
    NoticeKind.CALLED: {
        "ticket": "A023",
        "counter": {"pl": "Stanowisko 4", "en": "Desk 4", "uk": "Віконце 4"},
        "place": {"pl": "parter", "en": "ground floor", "uk": "перший поверх"},
    },
    NoticeKind.DOCUMENT_READY: {
        "document": {"pl": "Prawo jazdy", "en": "Driving licence", "uk": "Посвідчення водія"},
        "where": {"pl": "w Wydziale Komunikacji", "en": "at the Transport Dept.", "uk": "у відділі транспорту"},
        "counter": {"pl": "stan. 7", "en": "desk 7", "uk": "віконце 7"},
        "hours": {"pl": "pn-pt 8-15", "en": "Mon-Fri 8-15", "uk": "пн-пт 8-15"},
        "reference": "KM.5430.12.2026",
    },
    NoticeKind.BOOKING_CONFIRMED: {
        "service": {"pl": "Rejestracja pojazdów", "en": "Vehicle registration", "uk": "Реєстрація авто"},
        "at": "2026-12-15T08:30:00+00:00",
        "where": "ul. Piotrkowska 1",
        "code": "K7Q2",
    },
    NoticeKind.OPTOUT_CONFIRMED: {},
    NoticeKind.TEST: {},
}
VALUES[NoticeKind.BOOKING_REMINDER] = VALUES[NoticeKind.BOOKING_CONFIRMED]


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("kind", list(NoticeKind))
def test_every_template_renders_in_every_language_within_two_parts(kind, lang):
    rendered = render(kind, lang, {"office": OFFICE, **VALUES[kind]}, WARSAW)
    assert "{" not in rendered.text and rendered.subject
    assert analyse(rendered.text).parts <= 2
    if kind is NoticeKind.CALLED:  # the message that matters most costs one part, in every language
        assert analyse(rendered.text).parts == 1


def test_the_call_reads_as_the_office_writes_it():
    text = render(NoticeKind.CALLED, "pl", {"office": OFFICE, **VALUES[NoticeKind.CALLED]}, WARSAW).text
    assert text == "Starostwo Łódź: A023 – Stanowisko 4, parter. Zapraszamy."


@pytest.mark.parametrize(
    ("lang", "ahead", "words"),
    [
        ("pl", 1, "1 osoba"),
        ("pl", 3, "3 osoby"),
        ("pl", 5, "5 osób"),
        ("pl", 22, "22 osoby"),
        ("uk", 5, "5 осіб"),
        ("uk", 2, "2 особи"),
        ("en", 1, "1 person ahead"),
        ("en", 4, "4 people ahead"),
    ],
)
def test_counted_people_take_the_languages_plural_form(lang, ahead, words):
    params = {"office": OFFICE, "ticket": "A023", "ahead": ahead, "minutes": 5}
    assert words in render(NoticeKind.TURN_NEAR, lang, params, WARSAW).text


def test_a_booking_time_is_shown_in_the_offices_zone_and_language():
    params = {"office": OFFICE, **VALUES[NoticeKind.BOOKING_CONFIRMED]}
    assert "wt. 15 gru, 09:30" in render(NoticeKind.BOOKING_CONFIRMED, "pl", params, WARSAW).text
    assert "Tue 15 Dec, 09:30" in render(NoticeKind.BOOKING_CONFIRMED, "en", params, WARSAW).text


def test_a_missing_value_is_named_and_an_unknown_language_falls_back_to_polish():
    with pytest.raises(TemplateError, match="'ticket'"):
        render(NoticeKind.CALLED, "pl", {"office": OFFICE}, WARSAW)
    assert render(NoticeKind.TEST, "de", {"office": OFFICE}, WARSAW).subject == CATALOGUE[NoticeKind.TEST]["pl"].subject


def test_html_alternative_escapes_what_the_office_typed():
    rendered = render(NoticeKind.TEST, "en", {"office": "<b>Urząd</b>"}, WARSAW)
    assert "&lt;b&gt;Urząd&lt;/b&gt;" in rendered.html()


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize("kind", [NoticeKind.BOOKING_CONFIRMED, NoticeKind.BOOKING_REMINDER])
def test_a_booking_message_with_its_link_to_move_or_cancel_costs_at_most_three_parts(kind, lang):
    link = "https://kolejka.example.pl/wizyta/X2FgasYR1XO-bMEZQLnF1VavRLKqhv5r?lang=" + lang
    text = render(kind, lang, {"office": OFFICE, **VALUES[kind], "link": link}, WARSAW).text
    assert text.endswith(link)
    assert analyse(text).parts <= 3
