"""Property-based tests: any sequence of office actions keeps the queue's invariants.

Hypothesis drives issue / next / call / recall / start / no-show / transfer / finish /
pause / open / close / time passing / server restart. Every change goes through the
real :class:`server.store.Store` (a real SQLite file), and "restart" builds a new engine
from that file, so the invariants also cover what survives a restart.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from protocol.messages import CounterAction, ErrorCode
from server.domain import Command, EventKind, Refusal, TicketStatus
from server.engine import QueueEngine
from server.store import Store
from tests.engine_support import FakeClock, Tokens, office_config

# 300 examples of 50 steps each: 1-5 minutes, more on a busy machine (the 300-s default is a bound
# for a hung test, and this one is not hung at 314 s on a machine at load 15).
pytestmark = pytest.mark.timeout(900)

SERVICES = ["rej", "pj", "kasa"]
COUNTERS = ["1", "2", "3"]

CONFIG = office_config()
"""Parsed once: every engine of every example (and each restart's) gets this one. An engine never changes
its config (``QueueEngine.apply_config`` replaces it), and parsing the TOML anew for each of ~3,800 engines
was 6% of the state machine's CPU."""


class Office(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.TemporaryDirectory()
        self.path = str(Path(self.dir.name) / "numerek.db")
        self.clock = FakeClock()
        self.tokens = Tokens()
        self.store = Store(self.path)
        self.engine = self._new_engine()
        self.events = []  # every event ever committed, in order
        self.n = 0

    def _new_engine(self) -> QueueEngine:
        engine = QueueEngine(CONFIG, self.clock, token_factory=self.tokens)
        engine.restore(self.store.load())
        return engine

    def _commit(self) -> None:
        changes = self.engine.take_changes()
        counters = [self.engine.counters[c] for c in changes.counters]
        self.store.commit(changes, counters, [])
        self.events.extend(changes.events)

    def _cmd(self, counter: str, action: CounterAction, **kw):
        self.n += 1
        self.engine.roll_day()  # day-end events are not the command's doing
        self._commit()
        before = {t.id: (t.service, t.priority, t.queued_at, t.target_counter) for t in self.engine.waiting()}
        try:
            result = self.engine.command(counter, Command(action=action, **kw))
        except Refusal:
            assert not self.engine.pending, "a refused command left changes behind"
            return None
        if action == CounterAction.NEXT and result is not None:
            self._check_fcfs(counter, result, before)
        self._commit()
        return result

    def _check_fcfs(self, counter, called, before) -> None:
        """Nobody of the same service and priority class who came earlier was skipped."""
        if before[called.id][3] is not None:  # taken from the counter's own transfer queue
            return
        service, priority, queued_at, _ = before[called.id]
        for tid, (s, p, q, target) in before.items():
            if tid != called.id and target is None and s == service and p == priority:
                assert (q, tid) > (queued_at, called.id), f"ticket {tid} came earlier than {called.number}"

    def teardown(self) -> None:
        self.store.close()
        self.dir.cleanup()

    # ------------------------------------------------------------------ actions

    @rule(service=st.sampled_from(SERVICES + ["nope"]), priority=st.booleans())
    def issue(self, service, priority):
        self.engine.roll_day()
        self._commit()
        try:
            self.engine.issue(service, priority)
        except Refusal:
            assert not self.engine.pending
            return
        self._commit()

    @rule(service=st.sampled_from(SERVICES), priorities=st.lists(st.booleans(), min_size=2, max_size=6))
    def rush(self, service, priorities):
        """Several people take tickets at once: queues long enough for ordering to matter."""
        for priority in priorities:
            self.issue(service, priority)

    @rule(counter=st.sampled_from(COUNTERS + ["9"]))
    def next(self, counter):
        self._cmd(counter, CounterAction.NEXT)

    @rule(counter=st.sampled_from(COUNTERS), pick=st.integers(0, 30))
    def call_specific(self, counter, pick):
        waiting = sorted(self.engine.waiting(), key=lambda t: t.id)
        if waiting:
            self._cmd(counter, CounterAction.CALL, ticket=waiting[pick % len(waiting)].number)

    @rule(
        counter=st.sampled_from(COUNTERS),
        action=st.sampled_from(
            [
                CounterAction.RECALL,
                CounterAction.START,
                CounterAction.FINISH,
                CounterAction.NO_SHOW,
                CounterAction.PAUSE,
                CounterAction.OPEN,
                CounterAction.CLOSE,
                CounterAction.SYNC,
            ]
        ),
    )
    def simple(self, counter, action):
        self._cmd(counter, action)

    def _rating_for(self, counter: str):
        """The rule of docs/counter.md, restated: the leaver while leaving, else the client present."""
        e = self.engine
        finished = e._finished.get(counter)
        current = e.current_ticket(counter)
        now = e.now()
        if finished is not None and now - finished.finished_at <= e.rating_window:
            if current is None or current.status == TicketStatus.CALLED:
                return finished
        return current

    @rule(counter=st.sampled_from(COUNTERS), rating=st.integers(1, 5))
    def rate(self, counter, rating):
        """A rating lands on the leaving client or the one present, once; a restart decides alike."""
        self.engine.roll_day()
        self._commit()
        expected = self._rating_for(counter)
        # The same press against a server rebuilt from the file must get the same answer.
        shadow = self._new_engine()
        try:
            twin = shadow.command(counter, Command(action=CounterAction.RATE, rating=rating))
            twin_outcome = ("ok", twin.id)
        except Refusal as r:
            twin_outcome = ("refused", r.code)
        try:
            rated = self.engine.command(counter, Command(action=CounterAction.RATE, rating=rating))
            outcome = ("ok", rated.id)
        except Refusal as r:
            rated, outcome = None, ("refused", r.code)
            assert not self.engine.pending, "a refused command left changes behind"
        self._commit()
        assert outcome == twin_outcome, "a restarted server would decide this rating differently"
        if rated is not None:
            assert expected is not None and rated.id == expected.id and rated.rating == rating
            assert sum(1 for ev in self.events if ev.kind == EventKind.RATING and ev.ticket_id == rated.id) == 1
        elif expected is not None and expected.rating is None:
            raise AssertionError(f"a rating for {expected.number} was refused: {outcome}")

    @rule(counter=st.sampled_from(COUNTERS), service=st.sampled_from(SERVICES))
    def transfer_to_service(self, counter, service):
        self._cmd(counter, CounterAction.TRANSFER, target_service=service)

    @rule(counter=st.sampled_from(COUNTERS), to=st.sampled_from(COUNTERS))
    def transfer_to_counter(self, counter, to):
        self._cmd(counter, CounterAction.TRANSFER, target_counter=to)

    @rule(counter=st.sampled_from(COUNTERS), stale=st.booleans())
    def double_press(self, counter, stale):
        """Two NEXT presses carrying the same belief: at most one ticket is called."""
        cur = self.engine.current_ticket(counter)
        belief = (cur.number if cur else "") if not stale else "Z999"
        first = self._cmd(counter, CounterAction.NEXT, current=belief)
        calls_before = sum(1 for e in self.events if e.kind == EventKind.CALL)
        self._cmd(counter, CounterAction.NEXT, current=belief)
        if first is not None or not stale:
            assert sum(1 for e in self.events if e.kind == EventKind.CALL) == calls_before

    @rule(minutes=st.sampled_from([1, 5, 17, 45, 24 * 60]))
    def time_passes(self, minutes):
        self.clock.advance(minutes * 60)

    @rule()
    def restart(self):
        self.engine.roll_day()  # the stored day is that of the last event; roll both sides
        self._commit()
        before = self._snapshot()
        self.store.close()
        self.store = Store(self.path)
        self.engine = self._new_engine()
        self.engine.roll_day()
        assert not self.engine.pending, "a restart produced events of its own"
        assert self._snapshot() == before

    @precondition(lambda self: self.engine.day is not None)
    @rule()
    def new_day(self):
        self.clock.advance(24 * 3600)
        self.engine.roll_day()
        self._commit()

    def _snapshot(self):
        e = self.engine
        order = {c: [t.number for t in self._drain_order(c)] for c in COUNTERS}
        return (
            e.day,
            sorted(
                (t.number, t.service, t.status, t.priority, t.queued_at, t.target_counter) for t in e.tickets.values()
            ),
            {c: (r.status, r.current, r.clerk, r.last_finished) for c, r in e.counters.items()},
            {c: (t.id, t.finished_at, t.rating) for c, t in e._finished.items()},
            e.last_seq,
            e.issued,
            order,
        )

    def _drain_order(self, counter):
        """Which ticket NEXT would call at ``counter`` (without calling it)."""
        t = self.engine.pick_next(counter)
        return [t] if t else []

    # ------------------------------------------------------------------ invariants

    @invariant()
    def no_ticket_lost_or_ended_twice(self):
        issued = {e.ticket_id for e in self.events if e.kind == EventKind.ISSUE}
        ends = Counter(
            e.ticket_id for e in self.events if e.kind in (EventKind.FINISH, EventKind.NO_SHOW, EventKind.CANCEL)
        )
        assert all(n == 1 for n in ends.values()), "a ticket ended twice"
        open_ids = {t.id for t in self.engine.tickets.values() if t.status.is_open}
        assert issued == open_ids | set(ends), "a ticket was lost"
        assert not (open_ids & set(ends)), "an ended ticket is still in a queue"

    @invariant()
    def one_client_per_counter_and_one_counter_per_client(self):
        current = [r.current for r in self.engine.counters.values() if r.current is not None]
        assert len(current) == len(set(current))
        for cid, r in self.engine.counters.items():
            if r.current is not None:
                t = self.engine.tickets[r.current]
                assert t.status in (TicketStatus.CALLED, TicketStatus.SERVING) and t.counter == cid
        for t in self.engine.tickets.values():
            if t.status in (TicketStatus.CALLED, TicketStatus.SERVING):
                assert self.engine.counters[t.counter].current == t.id

    @invariant()
    def sorted_queues_hold_exactly_the_waiting_tickets(self):
        e = self.engine
        recount = Counter(t.service for t in e.waiting() if t.target_counter is None)
        assert e.waiting_counts() == {s: recount.get(s, 0) for s in SERVICES}
        lists = list(e.queues._service.values()) + list(e.queues._personal.values())
        indexed = [tid for q in lists for _at, tid in q]
        assert sorted(indexed) == sorted(t.id for t in e.waiting())
        for q in lists:
            assert q == sorted(q)

    @invariant()
    def who_is_ahead_is_the_order_next_calls_them_in(self):
        """The ticket page's "people ahead" is derived from the routing rule's own keys: for
        every waiting ticket it equals the number of the service's tickets that sort before it
        under that rule (brute force here), and each counter's list starts with NEXT's pick."""
        e = self.engine
        now = e.now()
        for service in SERVICES:
            waiting = [t for t in e.waiting(service) if t.target_counter is None]
            order = sorted(waiting, key=lambda t: e._routing_key((0, t), now))
            for position, t in enumerate(order):
                assert e.people_ahead_of(t) == position, (t.number, position, [x.number for x in order])
        for cid in COUNTERS:
            listed = e.callable_by(cid)
            pick = e.pick_next(cid)
            assert (listed[0] if listed else None) is pick

    @invariant()
    def numbers_unique_per_day(self):
        per_day = Counter((e.day, e.ticket) for e in self.events if e.kind == EventKind.ISSUE)
        assert all(n == 1 for n in per_day.values())

    @invariant()
    def called_before_finished(self):
        first_call, end = {}, {}
        for e in self.events:
            if e.kind == EventKind.CALL:
                first_call.setdefault(e.ticket_id, e.at)
            if e.kind in (EventKind.FINISH, EventKind.NO_SHOW):
                end[e.ticket_id] = e.at
        for tid, at in end.items():
            assert tid in first_call and first_call[tid] <= at


Office.TestCase.settings = settings(
    max_examples=300, stateful_step_count=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestOffice = Office.TestCase


def test_ticket_issued_and_transferred_in_one_batch_keeps_its_issued_service(tmp_path):
    """Reports count a ticket under the service it was issued for, even when the issue and
    a transfer reach the disk in the same group commit."""
    clock = FakeClock()
    store = Store(str(tmp_path / "numerek.db"))
    engine = QueueEngine(office_config(), clock, token_factory=Tokens())
    engine.issue("rej")
    engine.command("1", Command(action=CounterAction.NEXT))
    engine.command("1", Command(action=CounterAction.TRANSFER, target_service="kasa"))
    changes = engine.take_changes()
    store.commit(changes, [engine.counters[c] for c in changes.counters], [])
    row = store.db.execute("SELECT issued_service, service FROM tickets").fetchone()
    store.close()
    assert row == ("rej", "kasa")


def test_rating_rules_hold_across_a_restart(tmp_path):
    """A restarted server lets the client just served rate, once, and after START the client present."""
    clock = FakeClock()
    store = Store(str(tmp_path / "numerek.db"))

    def command(engine: QueueEngine, n: str, action: CounterAction, **kw):
        result = engine.command("1", Command(action=action, **kw))
        changes = engine.take_changes()
        store.commit(changes, [engine.counters[c] for c in changes.counters], [])
        return result

    def restarted() -> QueueEngine:
        engine = QueueEngine(office_config(), clock, token_factory=Tokens())
        engine.restore(store.load())
        return engine

    engine = QueueEngine(office_config(), clock, token_factory=Tokens())
    engine.issue("rej")
    engine.issue("rej")
    command(engine, "a", CounterAction.NEXT)
    command(engine, "b", CounterAction.FINISH)
    engine = restarted()
    assert command(engine, "c", CounterAction.RATE, rating=5).number == "A001"
    engine = restarted()
    with pytest.raises(Refusal) as second:
        command(engine, "d", CounterAction.RATE, rating=1)
    assert second.value.code == ErrorCode.NOT_ALLOWED
    command(engine, "e", CounterAction.NEXT)  # A002 called
    command(engine, "f", CounterAction.START)  # A002's service started: A001's chance to rate is over
    engine = restarted()
    assert engine.counters["1"].last_finished is None
    assert command(engine, "g", CounterAction.RATE, rating=2).number == "A002"  # the client present
    engine = restarted()
    with pytest.raises(Refusal) as again:
        command(engine, "h", CounterAction.RATE, rating=1)
    assert again.value.code == ErrorCode.NOT_ALLOWED
    store.close()
