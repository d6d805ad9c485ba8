"""The display's rules without a screen: what is new, what is stale, what time it is."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from display.board import BoardState, call_line, counter_labels
from protocol.clock import ServerClock
from protocol.messages import BoardMessage, CallMessage, ServiceInfo, ServicesMessage

WARSAW_SUMMER = timezone(timedelta(hours=2))
T0 = datetime(2031, 5, 1, 10, 0, 5, tzinfo=WARSAW_SUMMER)


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_call(seq: int, ticket: str, counter: str = "1", zone: str = "hall", recall: bool = False) -> CallMessage:
    return CallMessage(
        seq=seq,
        ticket=ticket,
        service="rej",
        counter=counter,
        counter_name=f"Stanowisko {counter}",
        zone=zone,
        recall=recall,
        at=T0,
    )


def make_board(seq: int, calls: list[CallMessage], zone: str = "hall", waiting: dict | None = None) -> BoardMessage:
    return BoardMessage(zone=zone, seq=seq, calls=calls, waiting=waiting or {"rej": 2}, server_time=T0)


def state() -> BoardState:
    return BoardState(zone="hall", clock=ServerClock(monotonic=FakeMonotonic()))


def test_board_is_shown_but_its_calls_are_not_new():
    s = state()
    assert s.apply_board(make_board(5, [make_call(5, "A005"), make_call(3, "A003")]))
    assert call_line(s.newest) == "A005 \u2192 Stanowisko 1"
    assert not s.highlighted
    assert not s.apply_call(make_call(5, "A005")), "a call already on the board is not announced again"
    assert not s.apply_call(make_call(4, "A004")), "an older call is never presented as new"


def test_live_call_with_higher_seq_is_new_highlighted_and_moves_to_the_top():
    s = state()
    s.apply_board(make_board(5, [make_call(5, "A005"), make_call(3, "A003")]))
    assert s.apply_call(make_call(6, "A003", counter="2"), highlight_seconds=5)
    assert [c.ticket for c in s.calls] == ["A003", "A005"]
    assert s.highlighted
    s.clock.monotonic.now += 6
    assert not s.highlighted


def test_recall_has_its_own_seq_and_is_new():
    s = state()
    assert s.apply_call(make_call(1, "A001"))
    assert s.apply_call(make_call(2, "A001", recall=True))
    assert [c.ticket for c in s.calls] == ["A001"]


def test_another_zones_board_and_calls_change_nothing():
    s = state()
    s.apply_board(make_board(2, [make_call(2, "A002")]))
    assert not s.apply_board(make_board(9, [make_call(9, "P009", zone="upstairs")], zone="upstairs"))
    assert not s.apply_call(make_call(10, "P010", counter="3", zone="upstairs"))
    assert [c.ticket for c in s.calls] == ["A002"] and s.known_seq == 2


def test_server_numbering_that_restarts_is_followed():
    s = state()
    s.apply_board(make_board(40, [make_call(40, "A040")]))
    s.apply_board(make_board(0, []))
    assert s.newest is None
    assert s.apply_call(make_call(1, "A001")), "after a server reset its first call must be announced"


def test_clock_and_date_come_from_the_server_not_this_machine():
    s = state()
    assert s.clock_text() == ("", ""), "no time is shown before the server has told it"
    s.apply_board(make_board(0, []))
    assert s.clock_text() == ("", ""), "the board itself teaches no time: the app feeds live server_time"
    s.clock.learn(T0, retained=True)
    assert s.clock_text() == ("", ""), "a retained server_time may be hours old: no time rather than a wrong one"
    s.clock.learn(T0, retained=False)
    assert s.clock_text() == ("10:00", "czwartek, 1 maja 2031")
    s.clock.monotonic.now += 60
    assert s.clock_text()[0] == "10:01"


def test_waiting_rows_use_the_zones_service_names_in_server_order():
    s = state()
    info = dict(prefix="A", available=True, waiting=0, estimated_wait_min=0, open_counters=1)
    s.apply_services(
        ServicesMessage(
            office="Urząd",
            services=[
                ServiceInfo(id="pj", name={"pl": "Prawo jazdy", "en": "Driving licences"}, zone="hall", **info),
                ServiceInfo(id="pasz", name={"pl": "Paszporty", "en": "Passports"}, zone="upstairs", **info),
                ServiceInfo(id="rej", name={"pl": "Rejestracja", "en": "Registration"}, zone="hall", **info),
            ],
            server_time=T0,
        )
    )
    s.apply_board(make_board(0, [], waiting={"rej": 3, "pj": 1}))
    assert s.waiting_rows() == [("Prawo jazdy", 1), ("Rejestracja", 3)]
    assert s.waiting_rows("en") == [("Driving licences", 1), ("Registration", 3)]


def test_counter_names_sharing_a_first_word_put_it_in_the_heading_and_keep_the_rest_in_the_cells():
    labels = counter_labels(["Stanowisko 4", "Stanowisko 12", "stanowisko 1"])
    assert labels.word == "Stanowisko"
    assert labels.labels == {"Stanowisko 4": "4", "Stanowisko 12": "12", "stanowisko 1": "1"}
    assert labels.heading("counter") == "Stanowisko \u00b7 Counter"


def test_counter_names_sharing_no_first_word_are_kept_whole():
    labels = counter_labels(["Kasa", "Pokój 12"])
    assert labels.word == "" and labels.labels == {"Kasa": "Kasa", "Pokój 12": "Pokój 12"}
    assert counter_labels(["Okienko 1", "Stanowisko 2"]).labels["Okienko 1"] == "Okienko 1"


def test_per_counter_columns_show_each_counters_newest_call_in_natural_order():
    s = state()
    s.apply_board(make_board(4, [make_call(4, "A004", "10"), make_call(3, "A003", "2"), make_call(1, "A001", "2")]))
    cols = s.counter_columns()
    assert [(c.counter, c.name, c.call.ticket if c.call else None) for c in cols] == [
        ("2", "Stanowisko 2", "A003"),
        ("10", "Stanowisko 10", "A004"),
    ]
    s.apply_call(make_call(5, "A001", "2", recall=True))
    assert s.counter_columns()[0].call.ticket == "A001", "a recall is the counter's newest call"
    configured = s.counter_columns(["10", "7", "2"])
    assert [(c.counter, c.call.ticket if c.call else "") for c in configured] == [
        ("10", "A004"),
        ("7", ""),
        ("2", "A001"),
    ]


PLACE = {"pl": "pokój 12, I piętro", "en": "room 12, 1st floor"}


def upstairs_call(seq: int, ticket: str, recall: bool = False) -> CallMessage:
    return CallMessage(
        seq=seq,
        ticket=ticket,
        service="pasz",
        counter="3",
        counter_name="Stanowisko 3",
        zone="upstairs",
        recall=recall,
        at=T0,
        place=PLACE,
    )


def test_another_zones_call_is_listed_with_its_place_and_never_announced():
    s = BoardState(zone="hall", clock=ServerClock(monotonic=FakeMonotonic()), other_zones=("upstairs",))
    s.apply_board(make_board(5, [make_call(5, "A005")]))
    assert not s.apply_call(upstairs_call(6, "P001")), "another zone's call is not announced here"
    assert s.other_rows() == [("P001", "Stanowisko 3, pokój 12, I piętro")]
    assert s.other_rows("en") == [("P001", "Stanowisko 3, room 12, 1st floor")]
    assert s.newest.ticket == "A005" and not s.highlighted, "this hall's board is untouched"
    assert s.apply_call(make_call(6, "A006")), "a hall call with a seq an upstairs call already used is still new"
    assert s.known_seq == 6


def test_another_zones_board_replaces_its_lines_and_a_recall_moves_a_ticket_up():
    s = BoardState(zone="hall", clock=ServerClock(monotonic=FakeMonotonic()), other_zones=("upstairs",))
    s.apply_call(upstairs_call(3, "P001"))
    up = BoardMessage(
        zone="upstairs", seq=8, calls=[upstairs_call(8, "P002"), upstairs_call(3, "P001")], waiting={}, server_time=T0
    )
    assert s.apply_board(up)
    assert [t for t, _w in s.other_rows()] == ["P002", "P001"]
    assert s.known_seq == 0, "another zone's board says nothing about what this hall has announced"
    s.apply_call(upstairs_call(9, "P001", recall=True))
    assert [t for t, _w in s.other_rows()] == ["P001", "P002"], "one line per ticket, the newest on top"
    s.apply_call(upstairs_call(4, "P002"))  # a late copy of an older call
    assert [t for t, _w in s.other_rows()] == ["P001", "P002"]


def test_a_zone_not_configured_is_neither_listed_nor_announced():
    s = state()
    assert not s.apply_call(upstairs_call(6, "P001"))
    assert s.other_rows() == [] and s.calls == []


def test_a_checked_in_appointment_is_shown_and_announced_like_any_call():
    """Appointment tickets have their own prefix (``[booking] prefix``, "R"): the hall shows
    and says them as it does walk-ins' — the resident listens for the number on their ticket."""
    from display.speech import announcement_text
    from hardware.audio import Announcement

    s = state()
    assert s.apply_call(make_call(1, "A001"))
    assert s.apply_call(make_call(2, "R001", counter="2"))
    assert call_line(s.newest) == "R001 \u2192 Stanowisko 2"
    assert [c.ticket for c in s.calls] == ["R001", "A001"]
    said = Announcement(seq=2, ticket="R001", counter="2", counter_name="Stanowisko 2")
    assert announcement_text(said, "pl") == "Numer R 1, stanowisko 2"


# ---------------------------------------------------------------------------- the board's languages


def test_a_board_in_polish_and_ukrainian_heads_its_columns_in_both():
    from display.texts import caption

    assert counter_labels(["Stanowisko 1", "Stanowisko 2"]).heading("counter", ("pl", "uk")) == "Stanowisko · Вікно"
    assert counter_labels(["Kasa", "Pokój 12"]).heading("desk", ("pl", "uk")) == "Stanowisko · Вікно"
    assert counter_labels(["Kasa", "Pokój 12"]).heading("desk", ("pl", "en")) == "Stanowisko · Desk"
    assert counter_labels(["Stanowisko 1"]).heading("counter", ("pl",)) == "Stanowisko"
    assert caption("now_calling", langs=("pl", "uk")) == "Wywołany numer · Викликано номер"


def test_the_board_shows_polish_and_english_unless_its_config_says_otherwise():
    from display.config import parse_config

    assert parse_config("").display.languages == ["pl", "en"]
    assert parse_config('[display]\nlanguages = ["pl", "uk"]\n').display.languages == ["pl", "uk"]
    assert parse_config('[display]\nlanguages = ["pl"]\n').display.languages == ["pl"]


@pytest.mark.parametrize(
    ("languages", "problem"),
    [
        (
            '["pl", "de"]',
            "unknown language 'de' (display/locale has pl, en, uk; a new language is a PO file there, docs/translating.md)",
        ),
        ('["uk", "pl"]', "the board shows Polish first, the office's language: start with \"pl\", not 'uk'"),
        ('["pl", "en", "uk"]', "at most 2 languages"),
        ('["pl", "pl"]', "a language must not repeat"),
        ("[]", "List should have at least 1 item after validation, not 0"),
    ],
)
def test_a_board_language_the_display_cannot_show_is_refused_with_the_field_named(languages, problem):
    from display.config import ConfigError, parse_config

    with pytest.raises(ConfigError) as e:
        parse_config(f"[display]\nlanguages = {languages}\n", source="display.toml")
    assert str(e.value) == f"display.toml: display.languages: {problem}"
