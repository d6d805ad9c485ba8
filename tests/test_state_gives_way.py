"""The retained services list is built between requests, not in front of them.

Why: with a deep queue, building the services list (each service's estimates replay its queue)
takes the worker 1–4 ms, and a NEXT that came in meanwhile waited for it: most of the call's
p99 in bench/call_stages.py (docs/performance.md). These tests run the real worker with a real
engine and a real SQLite store, in this process, with the worker's monotonic clock in hand; a NEXT
"comes in" from the network thread's side (``Worker.submit``) at the moment the worker starts
on the list, which is the race the benchmark saw.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from protocol.topics import Topics
from server.config import EXAMPLE_CONFIG, load_config
from server.engine import QueueEngine
from server.jobs import Job, Out
from server.requests import RequestMemory
from server.store import Store
from server.worker import STATE_GIVE_WAY_S, STATE_INTERVAL_S, Worker
from tests.engine_support import FakeClock

TOPICS = Topics("numerek")


class Office:
    """A worker over the example county office, its messages in ``sent`` in the order they left."""

    def __init__(self, folder: Path) -> None:
        self.clock = FakeClock(datetime(2026, 11, 23, 9, 0, tzinfo=UTC))  # a Monday, 10:00 in Warsaw
        self.mono = 1000.0
        self.store = Store(str(folder / "numerek.db"))
        self.engine = QueueEngine(load_config(EXAMPLE_CONFIG), self.clock)
        self.engine.restore(self.store.load())
        self.sent: list[Out] = []
        self.worker = Worker(
            self.engine,
            self.store,
            RequestMemory({}, self.clock.now),
            TOPICS,
            self.sent.append,
            lambda: True,
            threading.RLock(),
            kiosk_rate="1000/second",
            monotonic=lambda: self.mono,
        )
        self.arrives_during_list: Job | None = None
        building = self.worker.wire.service_info

        def service_info(service_id, now):  # the network thread hands over a request meanwhile
            if self.arrives_during_list is not None:
                job, self.arrives_during_list = self.arrives_during_list, None
                self.worker.submit(job)
            return building(service_id, now)

        self.worker.wire.service_info = service_info  # type: ignore[method-assign]
        self.ids = iter(range(1, 10_000))

    def ticket(self, service: str) -> Job:
        rid = f"t{next(self.ids)}"
        topic = "numerek/kiosk/k1/request"
        payload = json.dumps({"v": 1, "id": rid, "service": service}).encode()
        return self._job("kiosk", "k1", topic, payload, f"numerek/kiosk/k1/response/{rid}", rid)

    def press(self, counter: str, action: str) -> Job:
        rid = f"c{next(self.ids)}"
        topic = f"numerek/counter/{counter}/command"
        payload = json.dumps({"v": 1, "id": rid, "action": action}).encode()
        return self._job("counter", counter, topic, payload, f"numerek/counter/{counter}/response/{rid}", rid)

    @staticmethod
    def _job(kind: str, device: str, topic: str, payload: bytes, response: str, rid: str) -> Job:
        return Job(
            kind,
            device=device,
            topic=topic,
            payload=payload,
            response_topic=response,
            correlation=rid.encode(),
            route=TOPICS.parse(topic),
        )

    def run_waiting(self) -> None:
        """What the worker's loop does next: one batch of what is in its inbox (or a state flush)."""
        jobs: list[Job] = []
        while not self.worker.inbox.empty():
            job = self.worker.inbox.get_nowait()
            assert job is not None
            jobs.append(job)
        self.worker._process(jobs or [Job("flush")])

    def kinds(self) -> list[str]:
        out = []
        for o in self.sent:
            if o.topic == TOPICS.services:
                out.append("services")
            elif o.topic.endswith("/call"):
                out.append(f"call {json.loads(o.payload)['ticket']}")
        return out


@pytest.fixture
def office(tmp_path):
    o = Office(tmp_path)
    yield o
    o.store.close()


def _busy_office(office: Office) -> None:
    office.worker._process([office.press("1", "open"), office.ticket("rej"), office.ticket("rej")])
    office.mono += STATE_INTERVAL_S  # the state of that batch is out; the next change publishes at once
    office.run_waiting()
    office.sent.clear()


def test_a_next_that_comes_in_while_the_services_list_is_built_is_called_before_the_list_goes_out(office):
    _busy_office(office)
    office.arrives_during_list = office.press("1", "next")
    office.mono += STATE_INTERVAL_S
    office.worker._process([office.ticket("rej")])  # a new ticket: the services list is due

    assert office.kinds() == [], "the list was built in front of the NEXT that came in meanwhile"
    office.run_waiting()  # the NEXT
    assert office.kinds() == ["call A001"], "the call first"
    office.run_waiting()  # nothing more came in: a lull
    assert office.kinds() == ["call A001", "services"], "then the list, in the first lull"
    listed = json.loads(next(o.payload for o in office.sent if o.topic == TOPICS.services))
    assert {s["id"]: s["waiting"] for s in listed["services"]}["rej"] == 2  # A002 and A003 still wait


def test_the_services_list_still_goes_out_when_requests_never_stop_coming(office):
    """Once it gave way, the list waits for a lull, but no longer than STATE_GIVE_WAY_S."""
    _busy_office(office)
    office.mono += STATE_INTERVAL_S
    office.worker.submit(office.ticket("rej"))
    office.arrives_during_list = office.ticket("rej")
    office.run_waiting()  # the list gives way to the ticket that came in meanwhile
    for _ in range(3):  # a stream without a lull: the list waits
        office.worker.submit(office.ticket("rej"))
        office.run_waiting()
        assert "services" not in office.kinds(), "the list went out between two requests of a stream"
        office.mono += STATE_GIVE_WAY_S / 4
    office.mono += STATE_GIVE_WAY_S  # now past the bound
    office.worker.submit(office.ticket("rej"))
    office.run_waiting()
    assert office.kinds() == ["services"], "the list never went out"
    listed = json.loads(office.sent[-1].payload)
    assert {s["id"]: s["waiting"] for s in listed["services"]}["rej"] == 2 + 6  # every ticket carried out


def test_a_quiet_office_publishes_its_services_list_at_once(office):
    """Nothing waiting: the list is built straight away, as before (no request is held, none delays it)."""
    _busy_office(office)
    office.mono += STATE_INTERVAL_S
    office.worker._process([office.ticket("rej")])
    assert office.kinds() == ["services"]
