"""The walk-ins' estimated wait leaves room for today's appointments (rule 1a, docs/estimates.md)."""

from __future__ import annotations

from datetime import timedelta

from protocol.messages import CounterAction
from server.domain import Command
from server.engine import QueueEngine
from server.estimates.appointments import DEFAULT_NO_SHOW, BookedVisit
from tests.booking_support import booking_config, local
from tests.engine_support import FakeClock, Tokens

NEXT = Command(CounterAction.NEXT)
OCCUPANCY_S = 300  # the estimator's time per client with no history (server/estimates/honest.py)


def at(text: str):
    return local(booking_config(), f"2026-11-23 {text}")


def busy_office() -> tuple[QueueEngine, FakeClock]:
    """Monday 9:00: counters 1 and 2 (registration and licences) busy, eight walk-ins waiting for registration."""
    clock = FakeClock()
    engine = QueueEngine(booking_config(), clock, token_factory=Tokens())
    for _ in range(10):
        engine.issue("rej")
    engine.command("1", NEXT)
    engine.command("2", NEXT)
    return engine, clock


def visits(service: str, n: int, first: str = "09:00", step_min: int = 5) -> list[BookedVisit]:
    return [BookedVisit(service, at(first) + timedelta(minutes=step_min * i), f"CODE{i:02d}") for i in range(n)]


def walk_in(engine: QueueEngine):
    ticket, _ = engine.issue("rej")
    return ticket


def test_a_walk_in_waits_later_by_about_the_time_the_next_hours_appointments_take():
    plain, _ = busy_office()
    without = walk_in(plain)
    booked, _ = busy_office()
    booked.set_booked_visits(visits("rej", 6, "09:05", 1))  # all callable before the walk-in's turn
    with_them = walk_in(booked)
    # six residents, each coming with the default show rate, take this much of two counters' time
    expected = 6 * (1 - DEFAULT_NO_SHOW) * OCCUPANCY_S / 2
    moved = with_them.estimated_wait_s - without.estimated_wait_s
    assert 0.7 * expected <= moved <= 1.3 * expected, (moved, expected)
    assert with_them.estimated_wait_range_min[0] > without.estimated_wait_range_min[0]
    assert with_them.estimated_wait_range_min[1] > without.estimated_wait_range_min[1]


def test_cancelled_bookings_give_their_time_back_to_walk_ins():
    plain, _ = busy_office()
    without = walk_in(plain)
    engine, _ = busy_office()
    engine.set_booked_visits(visits("rej", 6, "09:05", 1))
    assert engine.estimate_wait("rej") > without.estimated_wait_s
    engine.set_booked_visits([])  # all six cancelled
    again = walk_in(engine)
    assert (again.estimated_wait_s, again.estimated_wait_range_min) == (
        without.estimated_wait_s,
        without.estimated_wait_range_min,
    )


def test_appointments_for_a_service_the_walk_ins_counters_do_not_serve_change_nothing():
    plain, _ = busy_office()
    without = walk_in(plain)
    engine, _ = busy_office()
    engine.set_booked_visits(visits("kasa", 6, "09:05", 1))  # the cash desk has a counter of its own
    after = walk_in(engine)
    assert (after.estimated_wait_s, after.estimated_wait_range_min) == (
        without.estimated_wait_s,
        without.estimated_wait_range_min,
    )


def test_checked_in_appointments_that_are_due_count_as_called_ahead_of_walk_ins():
    plain, _ = busy_office()
    without = walk_in(plain)
    engine, _ = busy_office()
    for i in range(4):
        engine.check_in("rej", at("09:00") + timedelta(minutes=i), f"IN{i:04d}")
    moved = walk_in(engine).estimated_wait_s - without.estimated_wait_s
    expected = 4 * OCCUPANCY_S / 2  # each one comes: a whole client
    assert 0.7 * expected <= moved <= 1.3 * expected, (moved, expected)


def test_a_booking_checked_in_is_counted_once():
    booked, _ = busy_office()
    booked.set_booked_visits(visits("rej", 4, "09:00", 1))
    for i in range(4):  # the same four arrive; the feed has not reread the table yet
        booked.check_in("rej", at("09:00") + timedelta(minutes=i), f"CODE{i:02d}")
    checked, _ = busy_office()
    for i in range(4):
        checked.check_in("rej", at("09:00") + timedelta(minutes=i), f"CODE{i:02d}")
    assert walk_in(booked).estimated_wait_s == walk_in(checked).estimated_wait_s


def test_an_absent_booking_frees_its_time_once_its_late_window_has_passed():
    plain, plain_clock = busy_office()
    engine, clock = busy_office()
    engine.set_booked_visits(visits("rej", 6, "09:05", 1))
    for c in (plain_clock, clock):
        c.advance(25 * 60)  # 9:25: the last of them (9:10) could check in until 9:25
    a, b = walk_in(plain), walk_in(engine)
    assert (a.estimated_wait_s, a.estimated_wait_range_min) == (b.estimated_wait_s, b.estimated_wait_range_min)


def test_a_booking_past_its_time_without_a_check_in_holds_less_counter_time():
    plain, _ = busy_office()
    base = walk_in(plain).estimated_wait_s
    coming, _ = busy_office()
    coming.set_booked_visits(visits("rej", 6, "09:05", 1))  # due from 9:00: expected in full
    overdue, _ = busy_office()
    overdue.set_booked_visits(visits("rej", 6, "08:50", 1))  # due since 8:45, check-in closes 9:05-9:10
    a, b = walk_in(coming).estimated_wait_s - base, walk_in(overdue).estimated_wait_s - base
    assert 0 < b < a / 2, (a, b)


def test_appointments_later_in_the_day_do_not_delay_a_walk_in_called_before_them():
    plain, _ = busy_office()
    without = walk_in(plain)
    engine, _ = busy_office()
    engine.set_booked_visits(visits("rej", 6, "14:00"))
    assert walk_in(engine).estimated_wait_s == without.estimated_wait_s


def test_a_scenario_with_bookings_checks_residents_in_and_calls_them_in_their_window():
    from datetime import datetime

    from server.domain import EventKind
    from server.sim.office import OfficeRun
    from server.sim.scenario import load_scenario
    from tests.harness import ROOT

    events = []

    class Keep:
        def before_issue(self, engine, service, priority):
            return None

        def issued(self, engine, ticket, ahead, before):
            pass

        def events(self, engine, evs):
            events.extend(evs)

    scenario = load_scenario(ROOT / "scenarios" / "county_bookings.toml")
    OfficeRun(scenario, observers=[Keep()]).run(weeks=1)
    appointments = {e.ticket_id: e for e in events if e.kind == EventKind.ISSUE and e.data.get("appointment_at")}
    per_day = len(appointments) / 5
    # 4 registrations + 3 passports an hour for about 6.5 hours, 80 % booked, 5 % cancelled, 15 % absent
    assert 25 < per_day < 45
    window = timedelta(minutes=scenario.site.booking.call_window_min)
    calls = [e for e in events if e.kind == EventKind.CALL and e.ticket_id in appointments]
    assert len(calls) >= 0.95 * len(appointments)
    for call in calls:
        booked = datetime.fromisoformat(appointments[call.ticket_id].data["appointment_at"])
        assert call.at >= booked - window


def test_the_replay_calls_a_due_appointment_where_the_engine_would():
    """forward._due_appointment mirrors rule 1a of QueueEngine.pick_next: the earliest due one,
    then the counter's preference; none before its window; walk-ins when none is due."""
    from server.estimates.forward import _due_appointment

    for case, booked in enumerate(
        [
            [("rej", "09:10"), ("pj", "09:02")],
            [("rej", "09:03"), ("pj", "09:03")],
            [("pj", "09:20")],
            [("rej", "09:04"), ("rej", "09:01")],
        ]
    ):
        clock = FakeClock()
        engine = QueueEngine(booking_config(), clock, token_factory=Tokens())
        engine.issue("rej")
        engine.issue("pj")
        for i, (service, hhmm) in enumerate(booked):
            engine.check_in(service, at(hhmm), f"C{case}{i:04d}")
        now = engine.now()
        appts = {
            s: [((r.due - now).total_seconds(), r.weight) for r in engine.expected_appointments(s)]
            for s in engine.services
        }
        for cid, cfg in engine.counter_config.items():
            expected = engine.pick_next(cid)
            got = _due_appointment(cfg.services, appts, 0.0)
            if expected is not None and expected.is_appointment:
                # same booked time in two services: the engine takes the one checked in first, the
                # replay (which has no tickets for booked visits) the counter's preferred; both go
                # before every walk-in, so a walk-in's estimate is the same either way
                tied = {s for s in cfg.services if appts[s] and appts[s][0][0] == appts[expected.service][0][0]}
                assert got in tied, (case, cid)
            else:
                assert got is None, (case, cid)
