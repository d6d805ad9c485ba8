"""The queue engine's rules, one behaviour per test (pure: no broker, no disk)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from pydantic import ValidationError

from protocol.messages import CounterAction, CounterCommand, CounterStatus, ErrorCode
from server.domain import Command, EventKind, Refusal, TicketStatus
from server.engine import QueueEngine
from tests.engine_support import FakeClock, Tokens, office_config

_ids = iter(range(10**9))


def cmd(action: str, **kw) -> Command:
    return Command(action=CounterAction(action), **kw)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def engine(clock):
    return QueueEngine(office_config(), clock, token_factory=Tokens())


def test_numbers_count_up_per_prefix_from_001(engine):
    numbers = [engine.issue(s)[0].number for s in ("rej", "rej", "pj", "rej", "kasa")]
    assert numbers == ["A001", "A002", "B001", "A003", "K001"]


def test_numbering_restarts_at_the_start_of_the_next_office_day(engine, clock):
    engine.issue("rej")
    engine.issue("rej")
    clock.advance(24 * 3600)  # Tuesday 09:00
    assert engine.issue("rej")[0].number == "A001"


def test_a_clock_stepped_back_neither_rolls_the_day_back_nor_reorders_the_queue(engine, clock):
    first = engine.issue("rej")[0]
    clock.advance(-24 * 3600)  # a Pi that lost its time: Sunday 09:00
    second = engine.issue("rej")[0]
    assert second.number == "A002" and first.status == TicketStatus.WAITING
    assert second.issued_at == first.issued_at  # time holds still until the clock catches up
    clock.advance(24 * 3600 + 60)
    assert engine.issue("rej")[0].number == "A003"
    assert engine.command("1", cmd("next")).number == "A001"


def test_day_rollover_cancels_leftover_tickets_and_closes_counters(engine, clock):
    engine.issue("rej")
    engine.command("1", cmd("next"))
    engine.issue("rej")
    engine.take_changes()
    clock.advance(24 * 3600)
    engine.roll_day()
    kinds = [e.kind for e in engine.take_changes().events]
    assert kinds.count(EventKind.CANCEL) == 2
    assert EventKind.COUNTER_CLOSE in kinds
    assert engine.counters["1"].status == CounterStatus.CLOSED
    assert engine.waiting() == []


def test_closed_service_refuses_tickets(engine, clock):
    clock.advance(-2 * 3600)  # 07:00, before opening
    with pytest.raises(Refusal) as r:
        engine.issue("rej")
    assert r.value.code == ErrorCode.SERVICE_CLOSED


def test_cut_off_before_closing_refuses_tickets(engine, clock):
    clock.advance(6.6 * 3600)  # 15:36, within the 30-minute cut-off of 16:00
    with pytest.raises(Refusal) as r:
        engine.issue("rej")
    assert r.value.code == ErrorCode.CUT_OFF
    assert engine.issue("pj")[0].number == "B001"  # no cut-off for pj


def test_daily_limit_refuses_the_ticket_after_the_last(engine):
    for _ in range(50):
        engine.issue("rej")
    with pytest.raises(Refusal) as r:
        engine.issue("rej")
    assert r.value.code == ErrorCode.LIMIT_REACHED
    assert engine.last_seq["A"] == 50


def test_refusal_changes_nothing(engine):
    engine.issue("rej")
    engine.take_changes()
    for bad in (
        lambda: engine.issue("nope"),
        lambda: engine.command("1", cmd("recall")),
        lambda: engine.command("9", cmd("next")),
    ):
        with pytest.raises(Refusal):
            bad()
    assert not engine.take_changes()
    assert [t.number for t in engine.waiting()] == ["A001"]


def test_next_prefers_the_counters_first_service(engine, clock):
    engine.issue("rej")
    clock.advance(60)
    engine.issue("pj")
    assert engine.command("2", cmd("next")).number == "B001"  # counter 2 prefers pj
    assert engine.command("1", cmd("next")).number == "A001"


def test_priority_ticket_goes_before_earlier_ordinary_ones(engine, clock):
    engine.issue("rej")
    clock.advance(60)
    engine.issue("rej", priority=True)
    assert engine.command("1", cmd("next")).number == "A002"


def test_ticket_over_its_target_wait_overrides_preference(engine, clock):
    engine.issue("pj")  # target 15 min
    clock.advance(16 * 60)
    engine.issue("rej")
    # counter 1 prefers rej, but B001 has waited 16 min > 15 min target
    assert engine.command("1", cmd("next")).number == "B001"


def test_first_come_first_served_within_a_service(engine, clock):
    for _ in range(3):
        engine.issue("rej")
        clock.advance(10)
    called = [engine.command("1", cmd("next")).number for _ in range(3)]
    assert called == ["A001", "A002", "A003"]


def test_next_finishes_the_current_ticket(engine, clock):
    engine.issue("rej")
    engine.issue("rej")
    first = engine.command("1", cmd("next"))
    clock.advance(300)
    engine.command("1", cmd("next"))
    assert first.status == TicketStatus.FINISHED
    assert first.finished_at == clock.now


def test_stale_current_is_refused(engine):
    engine.issue("rej")
    engine.issue("rej")
    engine.command("1", cmd("next", current=""))
    engine.command("1", cmd("next", current="A001"))
    with pytest.raises(Refusal) as r:
        engine.command("1", cmd("next", current="A001"))
    assert r.value.code == ErrorCode.STALE
    assert engine.current_ticket("1").number == "A002"


def test_recall_announces_again_and_counts(engine, clock):
    engine.issue("rej")
    engine.command("1", cmd("next"))
    engine.take_changes()
    clock.advance(30)  # the client did not come: the clerk calls again
    t = engine.command("1", cmd("recall"))
    changes = engine.take_changes()
    assert t.recalls == 1
    assert [e.kind for e in changes.calls] == [EventKind.RECALL]


def test_no_show_ends_the_ticket_without_service(engine):
    engine.issue("rej")
    engine.command("1", cmd("next"))
    t = engine.command("1", cmd("no_show"))
    assert t.status == TicketStatus.NO_SHOW
    assert engine.current_ticket("1") is None


def test_transfer_to_service_keeps_number_and_queue_position(engine, clock):
    engine.issue("rej")  # A001 at 09:00
    clock.advance(60)
    engine.issue("kasa")  # K001 at 09:01
    engine.command("1", cmd("next"))
    clock.advance(120)
    moved = engine.command("1", cmd("transfer", target_service="kasa"))
    assert moved.number == "A001" and moved.service == "kasa"
    # A001 queued at 09:00, before K001: the cash desk takes it first
    assert engine.command("3", cmd("next")).number == "A001"


def test_transfer_to_counter_is_called_there_first(engine, clock):
    engine.issue("rej")
    engine.issue("pj")
    engine.command("1", cmd("next"))  # A001 at counter 1
    engine.command("1", cmd("transfer", target_counter="2"))
    assert engine.command("2", cmd("next")).number == "A001"


def test_pause_keeps_current_client_and_next_reopens(engine):
    engine.issue("rej")
    engine.issue("rej")
    engine.command("1", cmd("next"))
    engine.command("1", cmd("pause"))
    assert engine.counters["1"].status == CounterStatus.PAUSED
    assert engine.current_ticket("1").number == "A001"
    assert engine.open_counters("rej") == []
    engine.command("1", cmd("next"))
    assert engine.counters["1"].status == CounterStatus.OPEN


def test_rating_is_stored_once_against_the_last_finished_ticket(engine):
    engine.issue("rej")
    engine.command("1", cmd("next"))
    engine.command("1", cmd("finish"))
    t = engine.command("1", cmd("rate", rating=5))
    assert t.number == "A001" and t.rating == 5
    with pytest.raises(Refusal):
        engine.command("1", cmd("rate", rating=1))


def test_estimate_grows_with_people_ahead_and_falls_with_open_counters(engine, clock):
    for _ in range(3):  # learn a 10-minute service time
        engine.issue("kasa")
        engine.command("3", cmd("next"))
        clock.advance(600)
        engine.command("3", cmd("finish"))
    engine.command("3", cmd("open"))
    e1 = engine.issue("kasa")[0].estimated_wait_s
    e2 = engine.issue("kasa")[0].estimated_wait_s
    assert e1 < e2
    # the free counter calls K004 at once, and K005 once K004's 10 minutes are over
    assert e2 == pytest.approx(600, rel=0.01)


def test_clock_must_be_timezone_aware():
    from datetime import datetime

    engine = QueueEngine(office_config(), lambda: datetime(2026, 11, 23, 9))
    with pytest.raises(ValueError):
        engine.issue("rej")


def test_estimate_is_not_zero_while_no_counter_is_open(engine):
    ticket, ahead = engine.issue("kasa")
    assert ahead == 0 and engine.open_counters("kasa") == []
    assert ticket.estimated_wait_s > 0


# ---------------------------------------------------------------- command deadline (expires_at)


def test_command_read_after_its_expires_at_is_refused_as_expired_and_changes_nothing(engine, clock):
    """A server that froze must not carry out a press the clerk was already told had failed."""
    engine.issue("rej")
    engine.take_changes()
    deadline = clock.now + timedelta(seconds=3)
    clock.advance(20)  # the server was stopped for 20 s; the press waited in the broker
    with pytest.raises(Refusal) as r:
        engine.command("1", cmd("next", current="", expires_at=deadline))
    assert r.value.code == ErrorCode.EXPIRED
    assert "expired" in r.value.message
    assert not engine.take_changes()
    assert engine.current_ticket("1") is None
    assert [t.number for t in engine.waiting()] == ["A001"]


def test_command_before_its_expires_at_or_without_one_is_carried_out(engine, clock):
    engine.issue("rej")
    engine.issue("rej")
    in_warsaw = (clock.now + timedelta(seconds=3)).astimezone(engine.tz)  # any UTC offset compares right
    assert engine.command("1", cmd("next", expires_at=in_warsaw)).number == "A001"
    clock.advance(3600)
    assert engine.command("1", cmd("next")).number == "A002"  # old devices and scripts send none


def test_expires_at_without_a_utc_offset_is_refused_by_the_protocol():
    with pytest.raises(ValidationError) as e:
        CounterCommand(id="c", action=CounterAction.NEXT, expires_at=datetime(2026, 11, 23, 9, 0, 3))
    assert "expires_at" in str(e.value) and "UTC offset" in str(e.value)


# ---------------------------------------------------------------- ratings belong to the client just served


def test_rating_while_the_next_client_is_served_lands_on_that_client_not_the_one_before(engine, clock):
    """The audit's case: NEXT finishes A001 and calls A002; A002's client rates during their service."""
    engine.issue("rej")
    engine.issue("rej")
    engine.command("1", cmd("next"))
    first = engine.command("1", cmd("finish"))
    engine.command("1", cmd("next"))  # A002 is called
    clock.advance(5)
    engine.command("1", cmd("start"))  # A002 sits down: their service started
    clock.advance(10)  # well within the leaving window of A001
    rated = engine.command("1", cmd("rate", rating=1))
    assert (rated.number, rated.rating) == ("A002", 1)
    assert first.rating is None
    assert engine.take_changes().events[-1].ticket == "A002"


def test_rating_after_the_leaving_window_lands_on_the_called_client_at_the_counter(engine, clock):
    """START is optional: a called client served without it rates their own service."""
    engine.issue("rej")
    engine.issue("rej")
    engine.command("1", cmd("next"))
    first = engine.command("1", cmd("next"))  # finishes A001, calls A002
    assert first.number == "A002"
    clock.advance(QueueEngine.RATING_WINDOW_S + 1)
    rated = engine.command("1", cmd("rate", rating=3))
    assert (rated.number, rated.rating) == ("A002", 3)


def test_rating_of_the_client_at_the_counter_is_once_and_holds_after_their_service_ends(engine, clock):
    engine.issue("rej")
    engine.command("1", cmd("next"))
    engine.command("1", cmd("start"))
    assert engine.command("1", cmd("rate", rating=5)).number == "A001"
    engine.command("1", cmd("finish"))  # A001 leaves and presses again
    engine.take_changes()
    with pytest.raises(Refusal) as r:
        engine.command("1", cmd("rate", rating=1))
    assert r.value.code == ErrorCode.NOT_ALLOWED
    assert not engine.take_changes()


def test_rating_of_a_leaving_client_once_refuses_the_next_client_before_their_service(engine, clock):
    """Within the leaving window, before START, a press is the leaver's: one rating, the second refused."""
    engine.issue("rej")
    engine.issue("rej")
    engine.command("1", cmd("next"))
    engine.command("1", cmd("next"))  # finishes A001, calls A002
    assert engine.command("1", cmd("rate", rating=4)).number == "A001"
    clock.advance(10)
    with pytest.raises(Refusal) as r:
        engine.command("1", cmd("rate", rating=2))
    assert r.value.code == ErrorCode.NOT_ALLOWED and "A001" in r.value.message
    assert engine.current_ticket("1").rating is None


def test_rating_with_nobody_served_or_present_is_refused(engine):
    with pytest.raises(Refusal) as r:
        engine.command("1", cmd("rate", rating=5))
    assert r.value.code == ErrorCode.UNKNOWN_TICKET
    assert not engine.take_changes()


def test_rating_after_a_no_show_is_refused(engine):
    engine.issue("rej")
    engine.issue("rej")
    engine.command("1", cmd("next"))
    engine.command("1", cmd("next"))  # finishes A001, calls A002
    engine.command("1", cmd("no_show"))  # A002 never came
    with pytest.raises(Refusal) as r:
        engine.command("1", cmd("rate", rating=2))
    assert r.value.code == ErrorCode.UNKNOWN_TICKET
    assert engine.counters["1"].last_finished is None


def test_client_finished_by_next_can_still_rate_their_service_while_leaving(engine, clock):
    """NEXT both ends a service and calls the next person; the one leaving may rate until START."""
    engine.issue("rej")
    engine.issue("rej")
    engine.command("1", cmd("next"))
    clock.advance(300)
    engine.command("1", cmd("next"))  # finishes A001, calls A002
    clock.advance(QueueEngine.RATING_WINDOW_S - 5)
    rated = engine.command("1", cmd("rate", rating=4))
    assert (rated.number, rated.rating) == ("A001", 4)


def test_rating_later_than_the_window_after_the_service_is_refused_as_expired(engine, clock):
    engine.issue("rej")
    engine.command("1", cmd("next"))
    finished = engine.command("1", cmd("finish"))
    clock.advance(QueueEngine.RATING_WINDOW_S + 1)
    with pytest.raises(Refusal) as r:
        engine.command("1", cmd("rate", rating=5))
    assert r.value.code == ErrorCode.EXPIRED
    assert "within 30 s" in r.value.message
    assert finished.rating is None


def test_rating_window_is_configurable(clock):
    engine = QueueEngine(office_config(), clock, token_factory=Tokens(), rating_window_s=600)
    engine.issue("rej")
    engine.command("1", cmd("next"))
    engine.command("1", cmd("finish"))
    clock.advance(300)
    assert engine.command("1", cmd("rate", rating=3)).rating == 3


def test_rating_naming_a_ticket_must_be_the_one_this_counter_just_finished(engine, clock):
    for _ in range(3):
        engine.issue("rej")
    engine.command("1", cmd("next"))
    engine.command("1", cmd("next"))  # A001 finished
    engine.command("1", cmd("next"))  # A002 finished, A003 called
    with pytest.raises(Refusal) as r:
        engine.command("1", cmd("rate", rating=5, ticket="A001"))
    assert r.value.code == ErrorCode.UNKNOWN_TICKET and "A002" in r.value.message
    engine.command("2", cmd("next"))  # nothing waiting; counter 2 finished nobody
    with pytest.raises(Refusal):
        engine.command("2", cmd("rate", rating=5, ticket="A002"))
    assert engine.command("1", cmd("rate", rating=5, ticket="A002")).rating == 5


# ---------------------------------------------------------------- recall guard


def test_second_recall_while_the_call_is_still_announced_is_refused_too_soon(engine, clock):
    engine.issue("rej")
    engine.command("1", cmd("next", current=""))
    clock.advance(30)
    engine.command("1", cmd("recall", current="A001"))
    engine.take_changes()
    clock.advance(1)  # a nervous double press: another id, the same belief
    with pytest.raises(Refusal) as r:
        engine.command("1", cmd("recall", current="A001"))
    assert r.value.code == ErrorCode.TOO_SOON
    assert not engine.take_changes()  # no second announcement
    assert engine.current_ticket("1").recalls == 1
    clock.advance(QueueEngine.RECALL_GUARD_S)
    assert engine.command("1", cmd("recall", current="A001")).recalls == 2
    assert [e.kind for e in engine.take_changes().calls] == [EventKind.RECALL]


def test_a_deliberate_recall_five_seconds_after_the_call_is_carried_out(engine, clock):
    """The resident did not hear; the clerk recalls at once, while the hall may still be
    announcing: that is not a double press, and it is announced (after the first one)."""
    engine.issue("rej")
    engine.command("1", cmd("next"))
    engine.take_changes()
    clock.advance(5)
    assert engine.command("1", cmd("recall")).recalls == 1
    assert [e.kind for e in engine.take_changes().calls] == [EventKind.RECALL]


def test_recall_right_after_the_call_is_refused_too_soon(engine, clock):
    engine.issue("rej")
    engine.command("1", cmd("next"))
    engine.take_changes()
    clock.advance(1)
    with pytest.raises(Refusal) as r:
        engine.command("1", cmd("recall"))
    assert r.value.code == ErrorCode.TOO_SOON
    assert not engine.take_changes().calls


def test_the_recall_guard_and_rating_window_come_from_the_site_config(clock):
    base = office_config()
    office = base.office.model_copy(update={"recall_guard_s": 0.0, "rating_window_s": 600.0})
    engine = QueueEngine(base.model_copy(update={"office": office}), clock, token_factory=Tokens())
    engine.issue("rej")
    engine.command("1", cmd("next", current=""))
    assert engine.command("1", cmd("recall", current="A001")).recalls == 1  # no guard configured: at once
    engine.command("1", cmd("finish", current="A001"))
    clock.advance(QueueEngine.RATING_WINDOW_S + 60)  # past the default window, inside the configured one
    engine.command("1", cmd("rate", rating=5))
    assert [e.kind for e in engine.take_changes().events][-1] == EventKind.RATING


def test_estimate_is_zero_only_while_a_counter_of_the_service_is_free(engine, clock):
    engine.command("3", cmd("open"))  # counter 3 alone serves the cash desk
    assert engine.estimate_wait("kasa") == 0  # nobody ahead, counter 3 free: called at once
    engine.issue("kasa")
    engine.command("3", cmd("next", current=""))
    assert engine.estimate_wait("kasa") > 0  # nobody ahead, but the clerk is busy with K001
