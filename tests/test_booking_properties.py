"""The engine's property tests (tests/test_engine_properties.py) with booked residents checking in.

Every rule and invariant of the walk-in office still holds, and with appointments:
no ticket is lost or served twice, first come first served among walk-ins of a service and
class, and an appointment is never called before its window (booked time less
``call_window_min``) — checked on every call event, across restarts from the SQLite file.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule

from server.domain import EventKind, Refusal
from server.engine import QueueEngine
from tests.booking_support import booking_config
from tests.test_engine_properties import SERVICES, Office

# 200 examples of 50 steps each: minutes on a busy machine (the 300-s default bounds a hung test).
pytestmark = pytest.mark.timeout(900)

CONFIG = booking_config()
"""Parsed once, as the engine state machine's (tests/test_engine_properties.py ``CONFIG``)."""
WINDOW = timedelta(minutes=CONFIG.booking.call_window_min)


class OfficeWithBookings(Office):
    def _new_engine(self) -> QueueEngine:
        engine = QueueEngine(CONFIG, self.clock, token_factory=self.tokens)
        engine.restore(self.store.load())
        return engine

    def _cmd(self, counter, action, **kw):
        self._appointments = {t.id for t in self.engine.waiting() if t.is_appointment}
        return super()._cmd(counter, action, **kw)

    def _check_fcfs(self, counter, called, before) -> None:
        if called.id in self._appointments:
            return  # called at its time: checked by appointments_are_never_called_before_their_window
        walk_ins = {tid: v for tid, v in before.items() if tid not in self._appointments}
        super()._check_fcfs(counter, called, walk_ins)

    @rule(
        service=st.sampled_from(SERVICES),
        minutes=st.sampled_from([-40, -10, 0, 3, 10, 25, 45]),
        again=st.booleans(),
    )
    def check_in(self, service, minutes, again):
        """A booked resident checks in (``minutes`` from now to the booked time); maybe twice."""
        self.engine.roll_day()
        self._commit()
        self.n += 1
        code = f"B{self.n:05d}"
        at = self.engine.now() + timedelta(minutes=minutes)
        for _ in range(2 if again else 1):
            try:
                self.engine.check_in(service, at, code)
            except Refusal:
                assert not self.engine.pending, "a refused check-in left changes behind"
                return
            self._commit()

    @invariant()
    def sorted_queues_hold_exactly_the_waiting_tickets(self):
        e = self.engine
        recount = Counter(t.service for t in e.waiting() if t.target_counter is None and not t.is_appointment)
        assert e.waiting_counts() == {s: recount.get(s, 0) for s in SERVICES}
        lists = (
            list(e.queues._service.values()) + list(e.queues._personal.values()) + list(e.queues._appointments.values())
        )
        indexed = [tid for q in lists for _at, tid in q]
        assert sorted(indexed) == sorted(t.id for t in e.waiting())
        for q in lists:
            assert q == sorted(q)

    @invariant()
    def who_is_ahead_is_the_order_next_calls_them_in(self):
        e = self.engine
        now = e.now()
        for service in SERVICES:
            waiting = [t for t in e.waiting(service) if t.target_counter is None and not t.is_appointment]
            order = sorted(waiting, key=lambda t: e._routing_key((0, t), now))
            for position, t in enumerate(order):
                assert e.people_ahead_of(t) == position
            booked = sorted((t for t in e.waiting(service) if t.is_appointment), key=lambda t: (t.queued_at, t.id))
            for position, t in enumerate(booked):
                assert e.people_ahead_of(t) == position
        for cid in e.counters:
            listed = e.callable_by(cid)
            assert (listed[0] if listed else None) is e.pick_next(cid)

    @invariant()
    def appointments_are_never_called_before_their_window(self):
        booked = {}  # ticket id -> booked time, while it is an appointment
        for ev in self.events:
            if ev.kind == EventKind.ISSUE and ev.data.get("appointment_at"):
                from datetime import datetime

                booked[ev.ticket_id] = datetime.fromisoformat(ev.data["appointment_at"])
            elif ev.kind == EventKind.TRANSFER:
                booked.pop(ev.ticket_id, None)  # waits as a walk-in from now on
            elif ev.kind == EventKind.CALL and ev.ticket_id in booked:
                assert ev.at >= booked[ev.ticket_id] - WINDOW, f"{ev.ticket} called before its window"

    @invariant()
    def one_ticket_per_booking(self):
        open_codes = [t.booking for t in self.engine.tickets.values() if t.booking]
        assert len(open_codes) == len(set(open_codes))


OfficeWithBookings.TestCase.settings = settings(
    max_examples=200, stateful_step_count=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestOfficeWithBookings = OfficeWithBookings.TestCase
