"""The cheaper replay (server/estimates/forward.py) answers exactly as the one before it.

Residents must see the very estimate they saw before: the replay of commit f5dbb56 is kept as
an oracle (tests/replay_reference.py) and both are run on the same inputs: every printed estimate
of three simulated weeks (the kiosk's, ticket by ticket), and random offices drawn by hypothesis
(counters with breaks, overdue tickets, priorities, expected arrivals, appointments, ghosts).
The cost is checked by counting work, never by timing.
"""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import server.estimates.honest as honest
from server.estimates import forward
from server.estimates.forward import INF, Arrivals, SimCounter, SimQueues
from tests import replay_reference
from tests.test_estimate_memo import printed


@pytest.mark.parametrize("scenario", ["county_week.toml", "bus_and_breaks.toml", "quiet_and_unstaffed.toml"])
def test_every_estimate_printed_over_a_simulated_week_is_the_one_the_previous_replay_printed(scenario, monkeypatch):
    now = printed(scenario, memo=True)
    monkeypatch.setattr(honest, "replay_many", replay_reference.replay_many)
    before = printed(scenario, memo=True)
    assert len(now) > 500
    assert sum(t[3] is not None for t in now) > 100  # real ranges, not only "cannot estimate"
    assert now == before


SERVICES = ["a", "b", "c"]


@st.composite
def offices(draw):
    counters = []
    for i in range(draw(st.integers(1, 4))):
        services = draw(st.lists(st.sampled_from(SERVICES), min_size=1, max_size=3, unique=True))
        free_at = draw(st.one_of(st.just(INF), st.floats(0, 3600)))
        pause_from = draw(st.floats(0, 7200))
        gone_at = draw(st.one_of(st.just(INF), st.floats(600, 20000)))

        def slowdown(t, pause_from=pause_from, gone_at=gone_at):
            if t >= gone_at:
                return INF
            return 1.5 if pause_from <= t < pause_from + 900 else 1.0

        counters.append(SimCounter(str(i), services, free_at, slowdown))
    queues = SimQueues()
    tid = 0
    for s in SERVICES:
        for prio in (True, False):
            for q in draw(st.lists(st.floats(-7200, 0), max_size=40)):
                tid += 1
                queues.add(s, prio, q, float(tid))
            queues.beyond[(s, prio)] = draw(st.integers(0, 50))
    ghosts = []
    for k, (s, prio) in enumerate(draw(st.lists(st.tuples(st.sampled_from(SERVICES), st.booleans()), max_size=4))):
        ghost = (s, prio, draw(st.floats(-600, 0)), 1e15 - k)
        queues.add(*ghost)
        ghosts.append(ghost)
    arriving = [
        (s, prio, draw(st.floats(0, 5000)), 1e15 - 100 - k)
        for k, (s, prio) in enumerate(draw(st.lists(st.tuples(st.sampled_from(SERVICES), st.booleans()), max_size=2)))
    ]
    rates = {s: draw(st.floats(0, 0.05)) for s in SERVICES}
    closed_until = draw(st.floats(0, 3000))
    arrivals = {
        s: Arrivals(lambda t, r=rates[s]: 0.0 if t < closed_until else r, draw(st.floats(0, 0.5))) for s in SERVICES
    }
    appointments = {
        s: sorted((draw(st.floats(0, 7200)), draw(st.floats(0.2, 1.5))) for _ in range(draw(st.integers(0, 3))))
        for s in SERVICES
    }
    return {
        "counters": counters,
        "queues": queues,
        "targets": ghosts + arriving,
        "targets_s": {s: draw(st.sampled_from([600.0, 1200.0, 1800.0])) for s in SERVICES},
        "service_priority": {s: draw(st.integers(0, 2)) for s in SERVICES},
        "occupancy": {s: draw(st.floats(60, 900)) for s in SERVICES},
        "arrivals": arrivals,
        "horizon": draw(st.sampled_from([3600.0, 6 * 3600.0])),
        "arriving": arriving,
        "appointments": appointments if draw(st.booleans()) else None,
    }


@settings(max_examples=400, deadline=None)
@given(offices())
def test_the_replay_answers_as_the_previous_one_in_any_office(office):
    def run(replay):
        args = copy.deepcopy({k: v for k, v in office.items() if k not in ("counters", "arrivals")})
        return replay(
            office["counters"],
            args["queues"],
            args["targets"],
            args["targets_s"],
            args["service_priority"],
            args["occupancy"],
            office["arrivals"],
            args["horizon"],
            args["arriving"],
            args["appointments"],
        )

    assert run(forward.replay_many) == run(replay_reference.replay_many)


class Counted(dict):
    """A mapping that counts its lookups."""

    reads = 0

    def __getitem__(self, key):
        Counted.reads += 1
        return super().__getitem__(key)

    def get(self, key, default=None):
        Counted.reads += 1
        return super().get(key, default)


def test_a_counter_looks_up_its_queues_targets_and_priorities_once_per_replay_not_per_call():
    counters = [SimCounter("1", ["a", "b"], 0.0), SimCounter("2", ["b", "c"], 30.0)]
    queues = SimQueues()
    for n in range(300):
        queues.add(SERVICES[n % 3], n % 7 == 0, -n * 10.0, float(n + 1))
    target = ("a", False, 0.0, 1e15)
    queues.add(*target)
    Counted.reads = 0
    targets_s, prios = Counted(dict.fromkeys(SERVICES, 1200.0)), Counted(dict.fromkeys(SERVICES, 0))
    occupancy = dict.fromkeys(SERVICES, 300.0)
    found = forward.replay_many(counters, queues, [target], targets_s, prios, occupancy, {}, 8 * 3600.0)
    assert found[target][1] >= 90  # about a hundred calls replayed before the ghost
    assert Counted.reads == 16  # 2 counters × 2 services × 2 classes × (target, priority), once
    Counted.reads = 0
    queues = SimQueues()
    for n in range(300):
        queues.add(SERVICES[n % 3], n % 7 == 0, -n * 10.0, float(n + 1))
    queues.add(*target)
    replay_reference.replay_many(counters, queues, [target], targets_s, prios, occupancy, {}, 8 * 3600.0)
    assert Counted.reads >= 500  # the previous replay: per queue head, per call (600 here)
