"""Wait estimates (issue 15): each failure mode of the old estimate, on the real engine with an injected clock.

Each test sets up a situation from the issue, asks the engine for the estimate a kiosk would
print, then plays the office forward through the real engine (counters press NEXT when their
client is done, clerks come back from breaks) and checks the printed range holds the wait
that really happened, where the old estimator was far off.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from protocol.messages import CounterAction, CounterCommand, CounterStatus
from protocol.waits import round_outward, wait_text
from server.config import parse_config
from server.domain import Ticket, TicketStatus
from server.engine import QueueEngine
from server.estimate import HonestEstimator, RecentMedianEstimator
from server.estimates.forward import SimQueues, pick
from tests.engine_support import FakeClock, Tokens

WEEKDAYS = "mon = '08:00-16:00', tue = '08:00-16:00', wed = '08:00-16:00', thu = '08:00-16:00', fri = '08:00-16:00'"


def office(services: str, counters: str) -> str:
    return f"""
[office]
name = "Urząd Testowy"
timezone = "Europe/Warsaw"
day_starts = "05:00"
{services}
{counters}
"""


def service(sid: str, prefix: str, target: int = 60, priority: int = 0) -> str:
    return f"""
[[services]]
id = "{sid}"
prefix = "{prefix}"
name = {{ pl = "{sid}", en = "{sid}" }}
hours = {{ {WEEKDAYS} }}
target_wait_min = {target}
priority = {priority}
"""


def counter(cid: str, *services: str) -> str:
    listed = ", ".join(f'"{s}"' for s in services)
    return f"""
[[counters]]
id = "{cid}"
name = "Stanowisko {cid}"
services = [{listed}]
"""


# Monday 2026-11-23 in Warsaw (UTC+1): 08:00 local is 07:00 UTC.
MONDAY_8AM = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


class Office:
    """The real engine on a settable clock, with a clerk's presses as one-liners."""

    def __init__(self, toml: str, start: datetime = MONDAY_8AM, estimator=None) -> None:
        self.clock = FakeClock(start)
        self.engine = QueueEngine(parse_config(toml), self.clock, estimator=estimator, token_factory=Tokens())
        self._ids = itertools.count()

    def press(self, counter: str, action: str, **kw) -> Ticket | None:
        cmd = CounterCommand(id=f"t{next(self._ids)}", action=CounterAction(action), **kw)
        return self.engine.command(counter, cmd)

    def minutes(self, m: float) -> None:
        self.clock.advance(m * 60)

    def serve(self, counter: str, service: str, minutes: float, clients: int) -> None:
        """Clients served one after another: teaches the time a counter takes per client."""
        for _ in range(clients):
            self.engine.issue(service)
            self.press(counter, "next")
            self.minutes(minutes)
            self.press(counter, "finish")

    def take_break(self, counter: str, minutes: float) -> None:
        self.press(counter, "pause")
        self.minutes(minutes)
        self.press(counter, "open")

    def play_until_called(
        self,
        ticket: Ticket,
        minutes_per_client: float,
        back_at: dict[str, datetime] | None = None,
        step_s: float = 15.0,
    ) -> float:
        """Run the office until ``ticket`` is called; every client takes ``minutes_per_client``.

        Open counters press NEXT when free or when their client is done; a paused or closed
        counter in ``back_at`` opens at that moment. Returns the minutes the ticket waited.
        """
        back_at = dict(back_at or {})
        started: dict[str, datetime] = {}
        for _ in range(100_000):
            now = self.clock.now
            for cid, rt in self.engine.counters.items():
                if cid in back_at and now >= back_at[cid]:
                    del back_at[cid]
                    self.press(cid, "open")
                if rt.status != CounterStatus.OPEN:
                    continue
                cur = self.engine.current_ticket(cid)
                if cur is not None and started.get(cid) is None:
                    started[cid] = now
                if cur is None or now - started[cid] >= timedelta(minutes=minutes_per_client):
                    called = self.press(cid, "next")
                    started[cid] = now if called is not None else None  # type: ignore[assignment]
            if ticket.status != TicketStatus.WAITING:
                return (ticket.first_called_at - ticket.issued_at).total_seconds() / 60  # type: ignore[operator]
            self.clock.advance(step_s)
        raise AssertionError("the ticket was never called")


def inside(range_min: tuple[int, int] | None, minutes: float) -> bool:
    assert range_min is not None
    return range_min[0] <= minutes <= range_min[1]


# ---------------------------------------------------------------- the failure modes


FOUR_COUNTERS = office(service("rej", "A"), "".join(counter(c, "rej") for c in "1234"))


def test_a_paused_counter_is_a_break_that_ends():
    """Three of four clerks on a break: the old estimate counted them as gone for the day."""
    hall = Office(FOUR_COUNTERS)
    hall.serve("1", "rej", 10, 6)  # 10 minutes per client
    for c in "234":
        hall.press(c, "open")
        hall.take_break(c, 15)  # breaks last 15 minutes here
    for _ in range(20):
        hall.engine.issue("rej")
    for c in "1234":
        hall.press(c, "next")
    for c in "234":  # they finish their client and go for coffee
        hall.press(c, "finish")
        hall.press(c, "pause")
    hall.minutes(5)
    before = RecentMedianEstimator(free_counters=hall.engine.free_counters)
    before.observe("rej", 600)
    old = before.estimate("rej", hall.engine.people_ahead("rej", False), hall.engine.capacity("rej"))

    ticket, ahead = hall.engine.issue("rej")
    assert ahead == 16
    back = hall.clock.now + timedelta(minutes=10)
    waited = hall.play_until_called(ticket, 10, back_at=dict.fromkeys("234", back))

    assert 40 <= waited <= 50  # the three came back after their 15 minutes
    assert inside(ticket.estimated_wait_range_min, waited), (ticket.estimated_wait_range_min, waited)
    assert abs(ticket.estimated_wait_s / 60 - waited) < 8
    assert old / 60 > 150  # what the old estimate printed: 16.5 clients at one counter


def test_a_priority_ticket_waits_behind_the_overdue_ordinary_tickets_the_rule_calls_first():
    desk = Office(office(service("rej", "A", target=10), counter("1", "rej")))
    desk.serve("1", "rej", 5, 4)  # 5 minutes per client
    desk.engine.issue("rej")
    desk.press("1", "next")  # a long case keeps the clerk busy...
    ordinary = [desk.engine.issue("rej")[0] for _ in range(4)]
    desk.minutes(12)  # ...while four ordinary tickets go past their 10-minute target
    ticket, ahead = desk.engine.issue("rej", priority=True)
    assert ahead == 4  # the engine counts the overdue ordinary tickets NEXT will call first

    desk.minutes(3)  # the long case ends
    desk.press("1", "finish")
    waited = desk.play_until_called(ticket, 5)

    assert all(t.status != TicketStatus.WAITING for t in ordinary)  # they were called first
    assert 20 <= waited <= 25
    assert inside(ticket.estimated_wait_range_min, waited), (ticket.estimated_wait_range_min, waited)
    assert ticket.estimated_wait_range_min is not None and ticket.estimated_wait_range_min[0] >= 10


def test_a_priority_ticket_goes_before_ordinary_tickets_that_are_not_overdue():
    desk = Office(office(service("rej", "A", target=60), counter("1", "rej")))
    desk.serve("1", "rej", 5, 4)
    for _ in range(6):
        desk.engine.issue("rej")
    desk.press("1", "next")
    ticket, _ = desk.engine.issue("rej", priority=True)
    waited = desk.play_until_called(ticket, 5)
    assert 4.5 <= waited <= 5.5
    assert inside(ticket.estimated_wait_range_min, waited)
    assert ticket.estimated_wait_range_min is not None and ticket.estimated_wait_range_min[1] <= 15


def test_no_estimate_for_a_service_no_counter_serves():
    hall = Office(office(service("rej", "A") + service("pasz", "P"), counter("1", "rej")))
    hall.press("1", "open")
    ticket, _ = hall.engine.issue("pasz")
    assert ticket.estimated_wait_range_min is None  # "nie możemy teraz oszacować"
    assert hall.engine.estimate_wait_range("pasz") is None
    assert hall.engine.estimate_wait_range("pasz", priority=True) is None
    assert hall.engine.estimate_wait_range("rej") == (0, 5)  # the open counter is free
    assert ticket.estimated_wait_s is not None and ticket.estimated_wait_s > 0  # old devices still get a number


def test_no_estimate_when_no_counter_has_opened_long_after_opening_and_none_usually_does_by_then():
    hall = Office(FOUR_COUNTERS, start=MONDAY_8AM + timedelta(hours=1))  # 9:00, nobody there yet
    ticket, _ = hall.engine.issue("rej")
    assert ticket.estimated_wait_range_min is None


def test_a_counter_that_usually_opens_late_is_expected_then():
    """Counter 1 opens at 10:00 on these days: at 9:00 the wait is an hour, not "cannot estimate"."""
    hall = Office(office(service("rej", "A"), counter("1", "rej")), start=MONDAY_8AM + timedelta(hours=2))
    for _day in range(2):  # two days of history: opens at 10:00, 10 minutes per client
        hall.serve("1", "rej", 10, 3)
        hall.press("1", "close")
        hall.clock.now = hall.clock.now.replace(hour=9, minute=0) + timedelta(days=1)  # 10:00 the next day
    hall.clock.now -= timedelta(hours=1)  # 9:00 on the third day
    ticket, _ = hall.engine.issue("rej")
    assert ticket.estimated_wait_range_min is not None
    waited = hall.play_until_called(ticket, 10, back_at={"1": hall.clock.now + timedelta(hours=1)})
    assert inside(ticket.estimated_wait_range_min, waited), (ticket.estimated_wait_range_min, waited)
    assert abs(ticket.estimated_wait_s / 60 - 60) < 5


def test_before_opening_the_counters_usually_there_are_expected_not_one():
    hall = Office(FOUR_COUNTERS, start=MONDAY_8AM + timedelta(minutes=5))
    for _day in range(2):  # the four counters open at 8:05 each day; 10 minutes per client
        for c in "1234":
            hall.press(c, "open")
        hall.serve("1", "rej", 10, 4)
        for c in "1234":
            hall.press(c, "close")
        hall.clock.now = hall.clock.now.replace(hour=7, minute=5) + timedelta(days=1)
    hall.clock.now -= timedelta(minutes=5)  # 8:00 on the third day: the service opens, no counter yet
    for _ in range(12):
        hall.engine.issue("rej")
    ticket, ahead = hall.engine.issue("rej")
    assert ahead == 12 and hall.engine.open_counters("rej") == []
    waited = hall.play_until_called(ticket, 10, back_at=dict.fromkeys("1234", hall.clock.now + timedelta(minutes=5)))
    assert 34 <= waited <= 36  # four counters from 8:05, three rounds of four, then this one
    assert inside(ticket.estimated_wait_range_min, waited), (ticket.estimated_wait_range_min, waited)
    assert abs(ticket.estimated_wait_s / 60 - waited) < 5  # "one counter assumed" printed 125 min


def test_on_the_first_day_the_counters_are_expected_when_their_services_open():
    hall = Office(FOUR_COUNTERS)  # 8:00, no history at all
    for _ in range(8):
        hall.engine.issue("rej")
    ticket, _ = hall.engine.issue("rej")
    assert ticket.estimated_wait_range_min is not None  # the plan: all four counters at 8:00
    assert ticket.estimated_wait_s / 60 < 15  # 5 minutes per client by default: two rounds of four


def test_a_shared_counter_serves_its_preferred_service_first_until_the_other_is_overdue():
    hall = Office(office(service("rej", "A", target=30) + service("odb", "C", target=30), counter("1", "rej", "odb")))
    hall.serve("1", "rej", 5, 3)
    hall.serve("1", "odb", 5, 3)
    for _ in range(4):
        hall.engine.issue("rej")
    ticket, ahead = hall.engine.issue("odb")
    assert ahead == 0  # nobody waits for odb, but the counter takes the four rej first
    waited = hall.play_until_called(ticket, 5)
    assert 19 <= waited <= 21
    assert inside(ticket.estimated_wait_range_min, waited), (ticket.estimated_wait_range_min, waited)


def test_the_replay_calls_the_queue_the_engine_would():
    """forward.pick mirrors QueueEngine.pick_next on the cases the routing rule tells apart."""
    toml = office(
        service("rej", "A", target=20) + service("odb", "C", target=10, priority=1) + service("pj", "B", target=20),
        counter("1", "rej", "odb") + counter("2", "pj", "rej") + counter("3", "odb", "pj"),
    )
    for case in range(6):
        hall = Office(toml)
        plan = [
            [("rej", False), ("odb", False)],
            [("odb", False), ("rej", True)],
            [("pj", False), ("rej", False), ("odb", False)],
            [("rej", False)],
            [("odb", True), ("pj", False)],
            [("pj", False), ("odb", False), ("rej", True)],
        ][case]
        for i, (s, prio) in enumerate(plan):
            hall.engine.issue(s, priority=prio)
            hall.minutes(6 + 3 * i + case)
        engine = hall.engine
        now = engine.now()
        queues = SimQueues()
        for s in engine.services:
            for prio in (True, False):
                queues.queues[(s, prio)] = [
                    ((q - now).total_seconds(), float(tid)) for q, tid in engine.waiting_queue(s, prio)
                ]
        targets = {s: v.target_wait_min * 60.0 for s, v in engine.services.items()}
        prios = {s: v.priority for s, v in engine.services.items()}
        for cid, cfg in engine.counter_config.items():
            expected = engine.pick_next(cid)
            got = pick(cfg.services, queues, 0.0, targets, prios)
            assert (got is None) == (expected is None), (case, cid)
            if expected is not None:
                assert got == (expected.service, expected.priority), (case, cid)


def test_a_restarted_server_learns_the_same_office_from_its_stored_events(tmp_path):
    """The estimator's history rebuilt from the store equals the one learned live."""
    from server.sim.office import OfficeRun
    from server.sim.scenario import load_scenario
    from tests.harness import ROOT

    scenario = load_scenario(ROOT / "scenarios" / "small_town.toml")
    live = HonestEstimator()
    run = OfficeRun(scenario, estimator=live, database=str(tmp_path / "office.db"))
    run.run(weeks=1)
    run.close()
    warmed = HonestEstimator()
    from server.store import Store

    store = Store(str(tmp_path / "office.db"))
    try:
        last_day = scenario.start + timedelta(days=5)
        n = warmed.warm(store.recent_events(before=last_day, days=14), scenario.site)
    finally:
        store.close()
    assert n > 1000
    a, b = live.history, warmed.history
    assert a is not None and b is not None
    for s in ("usc", "mel", "pod"):
        assert b.occupancy_mean(s) == pytest.approx(a.occupancy_mean(s))
    assert list(b.breaks) == pytest.approx(list(a.breaks))
    assert b.first_open == a.first_open and b.first_open


# ---------------------------------------------------------------- what residents read


def test_the_printed_range_is_rounded_outward_on_the_grid():
    assert round_outward(0, 130) == (0, 5)
    assert round_outward(0, 0) == (0, 5)
    assert round_outward(17 * 60, 28 * 60) == (15, 30)
    assert round_outward(31 * 60, 44 * 60) == (30, 50)
    assert round_outward(95 * 60, 170 * 60) == (90, 180)
    assert round_outward(13 * 3600, 14 * 3600) == (720, 840)


@pytest.mark.parametrize(
    ("rng", "lang", "text"),
    [
        ((0, 5), "pl", "do 5 min"),
        ((0, 5), "en", "up to 5 min"),
        ((0, 5), "uk", "до 5 хв"),
        ((15, 30), "pl", "15–30 min"),
        ((15, 30), "uk", "15–30 хв"),
        ((120, 180), "pl", "2–3 godz."),
        ((120, 180), "en", "2–3 h"),
        (None, "pl", "nie możemy teraz oszacować czasu oczekiwania"),
        (None, "en", "we cannot estimate the wait now"),
        (None, "uk", "зараз не можемо оцінити час очікування"),
    ],
)
def test_the_range_reads_in_the_residents_language(rng, lang, text):
    assert wait_text(rng, lang) == text


def test_a_waiting_tickets_live_estimate_counts_only_those_ahead_of_it():
    hall = Office(FOUR_COUNTERS)
    hall.serve("1", "rej", 10, 4)
    hall.press("1", "next")
    tickets = [hall.engine.issue("rej")[0] for _ in range(6)]
    first, last = hall.engine.ticket_wait(tickets[0]), hall.engine.ticket_wait(tickets[-1])
    assert first.point_s < last.point_s
    assert first.range_min is not None and first.range_min[1] <= 15


# ---------------------------------------------------------------- cut-off advice


def test_on_a_quiet_afternoon_the_last_ticket_is_one_that_is_still_served_before_closing():
    from server.estimates.cutoff import cutoff_advice

    hall = Office(FOUR_COUNTERS, start=MONDAY_8AM + timedelta(hours=6))  # 14:00
    for c in "1234":
        hall.press(c, "open")
    hall.serve("1", "rej", 10, 5)  # 10 minutes per client; now 14:50
    advice = cutoff_advice(hall.engine.estimator, hall.engine, "rej")
    assert advice.reason == "fits" and advice.last_ticket_at is not None
    closes = advice.closes_at
    assert closes is not None and closes.hour == 16
    assert timedelta(minutes=10) <= closes - advice.last_ticket_at <= timedelta(minutes=25)
    hall.clock.now = advice.last_ticket_at.astimezone(UTC)
    ticket, _ = hall.engine.issue("rej")
    waited = hall.play_until_called(ticket, 10)
    assert ticket.issued_at + timedelta(minutes=waited + 10) <= closes  # called and served in time


def test_a_queue_that_fills_the_day_stops_new_tickets_and_says_when_to_come_back():
    from server.estimates.cutoff import automatic_cutoff, cutoff_advice

    friday_2pm = MONDAY_8AM + timedelta(days=4, hours=6)
    hall = Office(FOUR_COUNTERS, start=friday_2pm)
    for c in "1234":
        hall.press(c, "open")
    hall.serve("1", "rej", 10, 5)  # 14:50
    assert automatic_cutoff(hall.engine.estimator, hall.engine, "rej") is None
    for _ in range(30):  # 30 people at four counters, 10 minutes each: past 16:00
        hall.engine.issue("rej")
    advice = cutoff_advice(hall.engine.estimator, hall.engine, "rej")
    assert advice.reason == "full" and advice.last_ticket_at is None
    code, message, come_back = automatic_cutoff(hall.engine.estimator, hall.engine, "rej")
    assert code == "cut_off" and "16:00" in message
    assert come_back is not None and come_back.weekday() == 0 and come_back.hour == 8  # Monday 8:00


def test_the_service_list_before_the_days_first_ticket_expects_the_counters_of_the_new_day():
    """The kiosk's list is estimated every 15 s: at 7:55 the counters that closed yesterday are expected again."""
    hall = Office(FOUR_COUNTERS)
    for c in "1234":
        hall.press(c, "open")
    hall.serve("1", "rej", 10, 3)
    for c in "1234":
        hall.press(c, "close")
    hall.clock.now = hall.clock.now.replace(hour=6, minute=55) + timedelta(days=1)  # 7:55 the next day
    assert hall.engine.estimate_wait_range("rej") in ((0, 5), (0, 10), (0, 15))  # four counters at 8:00, nobody waiting


def test_a_failing_estimator_never_stops_a_ticket_or_a_call(caplog):
    """The estimate is advice: if it breaks, the kiosk says "cannot estimate" and the office goes on."""
    hall = Office(FOUR_COUNTERS)
    hall.press("1", "open")
    hall.serve("1", "rej", 10, 2)
    history = hall.engine.estimator.history

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the estimator")

    history.arrival_rate = broken  # used by every estimate
    history.feed = broken  # and every event
    ticket, _ = hall.engine.issue("rej")
    assert ticket.estimated_wait_range_min is None
    assert hall.press("1", "next").number == ticket.number
    assert sum("wait estimator failed" in r.message for r in caplog.records) == 2  # once per kind, not per ticket
    hall.engine.issue("rej")
    assert sum("wait estimator failed" in r.message for r in caplog.records) == 2


def test_the_service_list_gets_the_same_estimates_from_one_replay_as_from_one_each():
    """The kiosk's list asks for every service and class at once; one replay with ghost tickets answers all."""
    toml = office(
        service("rej", "A", target=20) + service("odb", "C", target=10, priority=1) + service("pj", "B", target=20),
        counter("1", "rej", "odb") + counter("2", "pj", "rej") + counter("3", "odb", "pj"),
    )
    hall = Office(toml)
    for c in "123":
        hall.press(c, "open")
    hall.serve("1", "rej", 8, 3)
    hall.serve("3", "odb", 3, 3)
    hall.serve("2", "pj", 6, 3)
    for i in range(12):
        hall.engine.issue(("rej", "odb", "pj")[i % 3], priority=i % 5 == 0)
        hall.minutes(1)
    for c in "123":
        hall.press(c, "next")
    est = hall.engine.estimator
    asked = [(s, p) for s in ("rej", "odb", "pj") for p in (False, True)]
    together = [hall.engine.estimator.predict(s, p, hall.engine) for s, p in asked]  # same state: cached
    assert est._cache and len(est._cache) == 6  # the second question replayed the whole group once
    one_by_one = []
    for s, p in asked:
        est._cache_state = None  # forget: a replay of its own
        one_by_one.append(est.predict(s, p, hall.engine))
    assert [e.point_s for e in together] == [e.point_s for e in one_by_one]
    assert len({e.point_s for e in together}) > 3  # they differ from each other


def test_estimates_asked_from_web_threads_while_the_worker_publishes_never_fail():
    """The worker builds the kiosks' estimates outside the engine lock while web threads ask for
    theirs under it (the soak in CI saw 500s on /api/services): the estimator's own memory
    must not be torn by two threads at once."""
    import threading

    desk = Office(
        office(service("rej", "A", target=10) + service("pasz", "P"), counter("1", "rej") + counter("2", "rej", "pasz"))
    )
    desk.serve("1", "rej", 5, 6)
    desk.serve("2", "pasz", 7, 6)
    lock = threading.RLock()
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                with lock:
                    desk.engine.estimator.predict("rej", False, desk.engine)
                    desk.engine.estimator.predict("pasz", True, desk.engine)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
                return

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for t in readers:
        t.start()
    try:
        for i in range(300):
            with lock:  # the worker changes the engine under the lock...
                desk.engine.issue("rej" if i % 3 else "pasz", priority=i % 7 == 0)
                desk.minutes(0.5)
                if i % 4 == 0:
                    desk.press("1", "next")
            for sid in ("rej", "pasz"):  # ...and builds the published estimates outside it
                for priority in (False, True):
                    desk.engine.estimator.predict(sid, priority, desk.engine)
            if errors:
                break
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert not errors, repr(errors[0])


def test_a_wait_longer_than_any_office_day_is_printed_as_cannot_estimate():
    """600 waiting and two slow counters once gave [10020, ...] minutes: beyond the protocol's
    bounds, the kiosk's ticket then failed to build. Such a range is no estimate."""
    from server.estimates.base import WaitEstimate

    assert WaitEstimate(point_s=40_000, range_min=(480, 900)).range_min is None
    assert WaitEstimate(point_s=20_000, range_min=(300, 720)).range_min == (300, 720)
    assert (
        wait_text(WaitEstimate(point_s=40_000, range_min=(600, 10020)).range_min, "en")
        == "we cannot estimate the wait now"
    )


# ---------------------------------------------------------------- automatic cut-off (Service.auto_cutoff)

AUTO_CUTOFF = office(
    service("rej", "A").replace("priority = 0", "priority = 0\nauto_cutoff = true"),
    "".join(counter(c, "rej") for c in "1234"),
)
FRIDAY_2PM = MONDAY_8AM + timedelta(days=4, hours=6)


def friday_afternoon(toml: str, queue: int) -> Office:
    """Four counters at 10 minutes a client since 14:00; at 14:50, ``queue`` people wait."""
    hall = Office(toml, start=FRIDAY_2PM)
    for c in "1234":
        hall.press(c, "open")
    hall.serve("1", "rej", 10, 5)
    for _ in range(queue):
        hall.engine.issue("rej")
    return hall


def test_with_automatic_cut_off_a_queue_that_runs_to_closing_refuses_new_tickets_and_says_when_to_come_back():
    from server.domain import Refusal
    from server.wire import Wire

    hall = friday_afternoon(AUTO_CUTOFF, 0)  # 14:50, four counters, 10 minutes a client: room for about 28
    with pytest.raises(Refusal) as refused:
        for _ in range(30):
            hall.engine.issue("rej")
    assert refused.value.code == "cut_off" and "16:00" in str(refused.value)
    waiting = len(hall.engine.waiting("rej"))
    assert 10 <= waiting < 30, waiting
    with pytest.raises(Refusal):
        hall.engine.issue("rej")
    assert len(hall.engine.waiting("rej")) == waiting, "nothing issued"
    info = Wire(hall.engine).services().services[0]
    assert not info.available and info.reason == "cut_off"
    assert info.next_opening is not None and info.next_opening.weekday() == 0 and info.next_opening.hour == 8
    last = max(hall.engine.waiting("rej"), key=lambda t: t.id)
    waited = hall.play_until_called(last, 10)
    closes = FRIDAY_2PM + timedelta(hours=2)
    assert last.issued_at + timedelta(minutes=waited + 10) <= closes, "the last ticket taken is served in time"


def test_with_automatic_cut_off_a_short_queue_still_takes_tickets():
    hall = friday_afternoon(AUTO_CUTOFF, 3)
    ticket, ahead = hall.engine.issue("rej")
    assert ticket.number == "A009" and ahead == 3


def test_automatic_cut_off_is_off_unless_the_service_asks_for_it():
    hall = friday_afternoon(FOUR_COUNTERS, 30)
    ticket, ahead = hall.engine.issue("rej")
    assert ahead == 30


def test_the_automatic_cut_off_lifts_when_a_counter_opens_and_the_queue_fits_again():
    """The answer is kept per state of the queues: a change (here a fifth and sixth counter) is seen at once."""
    toml = AUTO_CUTOFF.replace(counter("4", "rej"), "".join(counter(c, "rej") for c in "4567"))
    hall = Office(toml, start=FRIDAY_2PM)
    for c in "1234":
        hall.press(c, "open")
    hall.serve("1", "rej", 10, 5)
    for _ in range(20):
        hall.engine.issue("rej")
    code, _ = hall.engine.availability(hall.engine.services["rej"], hall.engine.now())
    assert code == "cut_off"
    for c in "567":
        hall.press(c, "open")
    code, _ = hall.engine.availability(hall.engine.services["rej"], hall.engine.now())
    assert code is None


def test_the_quick_check_says_full_exactly_when_the_full_advice_does():
    """The engine asks ``runs_to_closing`` (one estimate), never the whole advice: they must agree."""
    from server.estimates.cutoff import cutoff_advice, runs_to_closing

    hall = friday_afternoon(FOUR_COUNTERS, 0)
    seen = set()
    for _ in range(32):
        full = cutoff_advice(hall.engine.estimator, hall.engine, "rej").reason == "full"
        assert (runs_to_closing(hall.engine.estimator, hall.engine, "rej") is not None) == full
        seen.add(full)
        hall.engine.issue("rej")
    assert seen == {False, True}
