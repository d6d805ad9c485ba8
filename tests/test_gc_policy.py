"""The garbage-collection policy (server/gcpolicy.py): a collection's walk does not grow with the queue.

Counted, not timed: after :meth:`Collector.settle`, the objects the cyclic collector still walks are
counted with ``gc.get_objects()`` (frozen objects are not among them), for a short and a long
queue. And frozen is not leaked: a finished ticket's objects are freed by reference counting.
"""

from __future__ import annotations

import gc
import weakref

import pytest

from protocol.messages import CounterAction
from server import gcpolicy
from server.domain import Command
from server.engine import QueueEngine
from server.estimate import HonestEstimator
from tests.engine_support import FakeClock, Tokens, office_config


@pytest.fixture(autouse=True)
def thawed():
    """This test process goes back to collecting everything afterwards."""
    yield
    gc.unfreeze()
    gc.collect()


def busy_engine(waiting: int, open_counter: bool = False) -> tuple[QueueEngine, FakeClock]:
    clock = FakeClock()
    cfg = office_config()
    cfg = cfg.model_copy(update={"services": [s.model_copy(update={"daily_limit": 99999}) for s in cfg.services]})
    engine = QueueEngine(cfg, clock, HonestEstimator(), token_factory=Tokens())
    if open_counter:
        engine.command("1", Command(CounterAction.OPEN))
    for i in range(waiting):
        clock.advance(0.01)
        engine.issue("rej" if i % 2 else "pj")
    return engine, clock


def walked_after_settling(waiting: int) -> int:
    engine, _clock = busy_engine(waiting)
    gcpolicy.Collector().settle()
    walked = len(gc.get_objects())
    assert len(engine.waiting()) == waiting  # the queue is alive, only left out of the walks
    gc.unfreeze()
    return walked


def test_after_settling_a_collection_walks_the_same_few_objects_with_100_or_5000_tickets_waiting():
    short, long = walked_after_settling(100), walked_after_settling(5000)
    assert long - short < 200, (short, long)  # was: every ticket's objects, ~5 per ticket
    assert long < 2000


def test_a_ticket_frozen_while_waiting_is_freed_once_served_without_a_full_collection():
    engine, clock = busy_engine(300, open_counter=True)
    alive = [weakref.ref(t) for t in engine.waiting()]
    gcpolicy.Collector().settle()
    for _ in range(301):  # call and finish everyone
        clock.advance(1)
        engine.command("1", Command(CounterAction.NEXT))
    engine.take_changes()
    gc.collect()  # frozen objects are not in it: only reference counting can free them
    assert not engine.waiting()
    assert sum(r() is not None for r in alive) <= 1  # the counter's last client stays for a rating


class Linked:
    """Two of these pointing at each other: garbage only the cyclic collector can free."""

    other: Linked | None = None


def test_a_cycle_that_dies_after_being_frozen_is_reclaimed_by_the_hourly_full_collection():
    collector = gcpolicy.Collector(full_every=3)
    a, b = Linked(), Linked()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    collector.settle()  # start-up: frozen while alive
    del a, b
    collector.settle()
    collector.settle()
    assert gone() is not None  # frozen: ordinary settles leave it alone
    collector.settle()  # the third since the first: thaw and walk everything
    assert gone() is None
