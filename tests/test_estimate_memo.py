"""The estimate's config memo (server/estimates/memo.py): cheaper per ticket, never a different estimate.

Residents must see exactly the range they saw before the memo: scenario weeks are played through
the real engine twice, with the memo and without it, and every printed estimate is compared.
The cost is checked by counting work (computations, queue reads), never by timing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from protocol.messages import CounterAction
from server.config import SiteConfig
from server.domain import Command, Ticket
from server.engine import QueueEngine
from server.estimate import HonestEstimator
from server.sim.office import OfficeRun
from server.sim.scenario import load_scenario
from tests.engine_support import FakeClock, Tokens, office_config

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"


class Printed:
    """Every ticket's printed estimate, in the order the kiosk printed them."""

    def __init__(self) -> None:
        self.tickets: list[tuple[str, str, int | None, tuple[int, int] | None]] = []

    def before_issue(self, engine: QueueEngine, service: str, priority: bool) -> None:
        return None

    def issued(self, engine: QueueEngine, ticket: Ticket, ahead: int, before: None) -> None:
        when = ticket.issued_at.isoformat()
        self.tickets.append((when, ticket.number, ticket.estimated_wait_s, ticket.estimated_wait_range_min))

    def events(self, engine: QueueEngine, events: list) -> None:
        pass


def printed(scenario: str, memo: bool) -> list:
    seen = Printed()
    run = OfficeRun(load_scenario(SCENARIOS / scenario), estimator=HonestEstimator(memo=memo), observers=[seen])
    try:
        run.run(1)
    finally:
        run.close()
    return seen.tickets


@pytest.mark.parametrize("scenario", ["county_week.toml", "bus_and_breaks.toml", "quiet_and_unstaffed.toml"])
def test_every_estimate_printed_over_a_simulated_week_is_the_same_with_the_memo(scenario):
    with_memo, without = printed(scenario, True), printed(scenario, False)
    assert len(with_memo) > 500
    assert any(t[3] is not None for t in with_memo)  # the weeks have real ranges to compare, not only "unknown"
    assert with_memo == without


def engine(memo: bool, clock: FakeClock) -> QueueEngine:
    cfg = office_config()
    cfg = cfg.model_copy(update={"services": [s.model_copy(update={"daily_limit": 9999}) for s in cfg.services]})
    return QueueEngine(cfg, clock, HonestEstimator(memo=memo), token_factory=Tokens())


def test_a_burst_of_tickets_works_out_the_office_layout_once_not_per_ticket():
    """64 tickets in a burst (one group-commit batch): the connected counters and the weekdays
    with the same hours are config answers, computed for the first ticket of each service only."""
    clock = FakeClock()
    e = engine(True, clock)
    for c in ("1", "2", "3"):
        e.command(c, Command(CounterAction.OPEN))
    e.issue("rej")
    e.issue("pj")
    first = e.estimator.memo.computed
    for i in range(64):
        clock.advance(0.001)
        e.issue("rej" if i % 2 else "pj")
    assert e.estimator.memo.computed == first
    assert first > 0


def test_after_a_config_change_the_estimates_follow_the_new_config():
    """The memo keys on the config itself: a counter that stops serving a service changes its group at once."""
    clock = FakeClock()
    cached, plain = engine(True, clock), engine(False, clock)
    for e in (cached, plain):
        for c in ("1", "2", "3"):
            e.command(c, Command(CounterAction.OPEN))
        for i in range(30):
            e.issue("rej" if i % 3 else "pj")
    before = cached.estimator.predict("pj", False, cached)
    counters = [c.model_dump() for c in cached.config.counters]
    counters[0]["services"] = ["rej"]  # counter 1 no longer helps with driving licences
    changed = SiteConfig.model_validate({**cached.config.model_dump(), "counters": counters})
    for e in (cached, plain):
        e.apply_config(changed)
    clock.advance(1)
    after = cached.estimator.predict("pj", False, cached)
    assert after == plain.estimator.predict("pj", False, plain)
    assert after.point_s > before.point_s  # one counter fewer for the same queue: a longer wait


class CountingEngine(QueueEngine):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.queue_reads = 0

    def waiting_queue(self, service: str, priority: bool):
        self.queue_reads += 1
        return super().waiting_queue(service, priority)


def test_with_no_counter_to_call_it_the_estimate_reads_only_its_own_queue():
    """Before the office opens (no counter open or expected) the answer is 'cannot estimate' with
    the people ahead: the other services' queues are not copied for a replay that cannot run."""
    clock = FakeClock()
    cfg = office_config()
    cfg = cfg.model_copy(update={"services": [s.model_copy(update={"daily_limit": 9999}) for s in cfg.services]})
    e = CountingEngine(cfg, clock, HonestEstimator(), token_factory=Tokens())
    clock.advance(3600)  # 10:00, two hours after opening, every counter still closed: none is expected
    for _ in range(200):
        e.issue("rej")
        e.issue("pj")
    e.queue_reads = 0
    estimate = e.estimator.predict("pj", False, e)
    assert estimate.range_min is None and estimate.ahead == 200
    assert e.queue_reads == 2  # its own two classes, for the people ahead
