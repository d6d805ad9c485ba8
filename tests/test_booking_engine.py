"""Appointments in the queue engine: check-in windows, called at their time ahead of walk-ins."""

from __future__ import annotations

from datetime import timedelta

import pytest

from protocol.messages import CounterAction, ErrorCode
from server.config import parse_config
from server.domain import Command, Refusal, TicketStatus
from server.engine import QueueEngine
from tests.booking_support import BOOKING_OFFICE, booking_config, local
from tests.engine_support import FakeClock, Tokens

NEXT = Command(CounterAction.NEXT)


@pytest.fixture
def clock():
    return FakeClock()  # Monday 2026-11-23 09:00 in Warsaw


@pytest.fixture
def engine(clock):
    return QueueEngine(booking_config(), clock, token_factory=Tokens())


def at(text: str):
    return local(booking_config(), f"2026-11-23 {text}")


def test_a_checked_in_appointment_gets_its_own_prefix_and_the_booked_time(engine):
    ticket, ahead = engine.check_in("rej", at("09:15"), "K7M4PX", origin="k1")
    assert ticket.number == "R001" and ticket.service == "rej" and ticket.appointment_at == at("09:15")
    assert ahead == 0 and ticket.booking == "K7M4PX"
    second, _ = engine.check_in("rej", at("09:30"), "ABCDEF")
    assert second.number == "R002"
    assert engine.issue("rej")[0].number == "A001"  # walk-in numbering is untouched


def test_an_appointment_is_called_at_its_time_ahead_of_walk_ins(engine, clock):
    walk_ins = [engine.issue("rej")[0] for _ in range(3)]
    appointment, _ = engine.check_in("rej", at("09:20"), "K7M4PX")
    assert engine.command("1", NEXT).number == walk_ins[0].number  # 09:00: not its time yet
    clock.advance(14 * 60)  # 09:14: the call window (5 min) has not come
    assert engine.command("1", NEXT).number == walk_ins[1].number
    clock.advance(60)  # 09:15 = 09:20 - call_window_min
    assert engine.command("1", NEXT).number == appointment.number
    assert engine.command("1", NEXT).number == walk_ins[2].number


def test_appointments_are_called_by_booked_time_not_by_arrival(engine, clock):
    later, _ = engine.check_in("rej", at("09:30"), "AAAAAA")
    earlier, _ = engine.check_in("rej", at("09:15"), "BBBBBB")
    assert engine.people_ahead_of(later) == 1 and engine.people_ahead_of(earlier) == 0
    clock.advance(40 * 60)
    assert [engine.command("1", NEXT).number for _ in range(2)] == [earlier.number, later.number]


def test_an_appointment_cannot_be_called_by_hand_before_its_window(engine, clock):
    appointment, _ = engine.check_in("rej", at("09:30"), "K7M4PX")
    with pytest.raises(Refusal) as err:
        engine.command("1", Command(CounterAction.CALL, ticket=appointment.number))
    assert err.value.code == ErrorCode.NOT_ALLOWED and "09:30" in err.value.message
    assert appointment.status == TicketStatus.WAITING and not engine.take_changes().calls
    clock.advance(25 * 60)
    assert engine.command("1", Command(CounterAction.CALL, ticket=appointment.number)) is appointment


def test_check_in_too_early_or_on_another_day_is_refused_with_nothing_changed(engine):
    engine.take_changes()
    with pytest.raises(Refusal) as err:
        engine.check_in("rej", at("09:31"), "K7M4PX")  # early_min = 30: from 09:01
    assert err.value.code == ErrorCode.BOOKING_TOO_EARLY and "09:01" in err.value.message
    with pytest.raises(Refusal) as err:
        engine.check_in("rej", at("09:30") + timedelta(days=1), "K7M4PX")
    assert err.value.code == ErrorCode.BOOKING_OTHER_DAY and "24.11.2026" in err.value.message
    assert not engine.take_changes() and engine.tickets == {}


def test_a_late_arrival_joins_the_walk_ins_or_is_refused_by_rule(clock):
    late = QueueEngine(booking_config(), clock, token_factory=Tokens())
    ticket, _ = late.check_in("rej", at("08:40"), "K7M4PX")  # late_min = 15: closed at 08:55
    assert ticket.number == "A001" and ticket.appointment_at is None and ticket.booking == "K7M4PX"
    refusing = parse_config(BOOKING_OFFICE.replace("per_contact = 2", 'per_contact = 2\nlate = "refuse"'))
    strict = QueueEngine(refusing, clock, token_factory=Tokens())
    with pytest.raises(Refusal) as err:
        strict.check_in("rej", at("08:40"), "K7M4PX")
    assert err.value.code == ErrorCode.BOOKING_TOO_LATE
    assert strict.tickets == {}


def test_checking_in_twice_gives_the_same_ticket(engine):
    first, _ = engine.check_in("rej", at("09:15"), "K7M4PX")
    again, _ = engine.check_in("rej", at("09:15"), "K7M4PX")
    assert again is first and len(engine.tickets) == 1


def test_a_transferred_appointment_waits_like_a_walk_in_of_its_new_service(engine, clock):
    appointment, _ = engine.check_in("rej", at("09:05"), "K7M4PX")
    assert engine.command("1", NEXT) is appointment
    engine.command("1", Command(CounterAction.TRANSFER, target_service="pj"))
    assert appointment.status == TicketStatus.WAITING and not appointment.is_appointment
    assert engine.people_ahead_of(appointment) == 0
    assert engine.command("2", NEXT) is appointment


def test_the_clerk_list_shows_a_due_appointment_first(engine, clock):
    walk_in = engine.issue("rej")[0]
    appointment, _ = engine.check_in("rej", at("09:20"), "K7M4PX")
    assert [t.number for t in engine.callable_by("1")] == [walk_in.number]
    clock.advance(15 * 60)
    assert [t.number for t in engine.callable_by("1")] == [appointment.number, walk_in.number]
