"""A Pi's clock steps (NTP corrects it late, forwards or backwards): the office must not notice.

The rules with an injected system clock (fast), then the real server process under
libfaketime (Debian's ``faketime``), whose offset the test moves by rewriting a file.
"""

from __future__ import annotations

import glob
import os
from datetime import timedelta
from pathlib import Path

import pytest

from protocol.messages import CounterAction
from server.clock import ServerClock
from server.domain import Command, EventKind
from server.engine import QueueEngine
from tests.engine_support import MONDAY_9AM, Tokens, office_config
from tests.harness import Peer, ServerProcess, free_port, wait_for, write_config

BASE = "numerek"
DAY = 86400.0


class SystemClocks:
    """The system's realtime and monotonic clocks, moved by the test."""

    def __init__(self) -> None:
        self.wall_s = MONDAY_9AM.timestamp()
        self.mono_s = 1000.0

    def wall(self) -> float:
        return self.wall_s

    def mono(self) -> float:
        return self.mono_s

    def run(self, seconds: float) -> None:
        """Real time passes: both clocks advance together."""
        self.wall_s += seconds
        self.mono_s += seconds

    def step(self, seconds: float) -> None:
        """NTP steps the system clock; the monotonic clock does not move."""
        self.wall_s += seconds


def office(clocks: SystemClocks) -> tuple[QueueEngine, ServerClock]:
    clock = ServerClock(wall=clocks.wall, mono=clocks.mono, synchronized=lambda: True)
    return QueueEngine(office_config(), clock, token_factory=Tokens()), clock


def tick(engine: QueueEngine, clock: ServerClock) -> None:
    """What the worker does every 15 s: take a pending step if no ticket is open, roll the day."""
    if engine.is_idle() and clock.adopt_pending() is not None:
        engine.time_adjusted()
    engine.roll_day()


def next_(engine: QueueEngine, counter: str = "1"):
    return engine.command(counter, Command(action=CounterAction.NEXT))


def test_a_step_forward_of_a_day_cancels_nothing_and_numbering_goes_on():
    clocks = SystemClocks()
    engine, clock = office(clocks)
    engine.issue("rej")
    engine.issue("rej")
    assert next_(engine).number == "A001"
    engine.take_changes()
    clocks.step(DAY)
    clocks.run(60)
    tick(engine, clock)
    assert engine.issue("rej")[0].number == "A003"
    assert [t.number for t in engine.waiting()] == ["A002", "A003"]
    assert engine.current_ticket("1").number == "A001"
    assert not [e for e in engine.take_changes().events if e.kind == EventKind.CANCEL]
    assert clock.status().pending_step_s == pytest.approx(DAY)


def test_the_step_is_taken_once_no_ticket_is_open_and_then_the_new_day_starts_at_a001():
    clocks = SystemClocks()
    engine, clock = office(clocks)
    engine.issue("rej")
    clocks.step(DAY)
    tick(engine, clock)
    assert engine.issue("rej")[0].number == "A002"  # still Monday on the server's timeline
    clocks.run(120)
    next_(engine)
    next_(engine)
    engine.command("1", Command(action=CounterAction.FINISH))
    tick(engine, clock)  # nobody is open now: the step is taken, Tuesday begins
    assert clock.status().pending_step_s is None
    assert engine.now() >= MONDAY_9AM + timedelta(days=1, seconds=120)
    assert engine.issue("rej")[0].number == "A001"


def test_a_correction_back_keeps_time_running_and_service_times_true():
    """The audit's case: after a step back, every time stamp froze and service times read 0."""
    clocks = SystemClocks()
    engine, clock = office(clocks)
    engine.issue("rej")
    called = next_(engine)
    clocks.step(-3600)
    clocks.run(90)
    finished = engine.command("1", Command(action=CounterAction.FINISH))
    assert (finished.finished_at - called.called_at).total_seconds() == pytest.approx(90)
    clocks.run(30)
    assert (engine.now() - finished.finished_at).total_seconds() == pytest.approx(30)


def test_a_restart_with_a_clock_behind_the_file_stamps_nothing_earlier():
    """A Pi rebooted with a stale clock: new tickets must not get queue times before the old ones."""
    clocks = SystemClocks()
    clock = ServerClock(wall=clocks.wall, mono=clocks.mono, synchronized=lambda: False)
    last_on_disk = MONDAY_9AM + timedelta(hours=1)
    clock.not_before(last_on_disk)
    assert clock() >= last_on_disk
    assert clock.status().pending_step_s == pytest.approx(-3600, abs=1)
    assert clock.status().synchronized is False


def test_small_drift_is_followed_and_never_runs_backwards():
    clocks = SystemClocks()
    _, clock = office(clocks)
    first = clock()
    clocks.step(2.0)  # within tolerance: followed
    assert (clock() - first).total_seconds() == pytest.approx(2.0)
    clocks.step(-3.0)  # a small step back: absorbed
    assert clock() >= first + timedelta(seconds=2)
    assert clock.status().pending_step_s is None


# ---------------------------------------------------------------------- the real process


def _libfaketime() -> str | None:
    found = glob.glob("/usr/lib/*/faketime/libfaketime.so.1")
    return found[0] if found else None


@pytest.mark.skipif(_libfaketime() is None, reason="Debian's faketime package is not installed")
def test_the_real_server_under_a_stepped_clock_keeps_its_tickets_and_its_time(tmp_path, broker):
    offset = tmp_path / "faketime"
    offset.write_text("+0\n")
    cfg = write_config(tmp_path / "office.toml", broker.port, free_port())
    port = int(cfg.read_text().split("[http]")[1].split("port = ")[1].split()[0])
    env = {
        "LD_PRELOAD": _libfaketime(),
        "FAKETIME_TIMESTAMP_FILE": str(offset),
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    server = ServerProcess(cfg, http_port=port, env=env).start()
    peer = Peer(broker.port)
    peer.subscribe(f"{BASE}/kiosk/k1/response/#", f"{BASE}/counter/1/reply/#")

    def issue(rid: str) -> dict:
        return peer.request(
            f"{BASE}/kiosk/k1/request",
            {"v": 1, "id": rid, "service": "rej"},
            response_topic=f"{BASE}/kiosk/k1/response/{rid}",
            timeout=30,
        )

    def command(rid: str, action: str) -> dict:
        return peer.request(
            f"{BASE}/counter/1/command",
            {"v": 1, "id": rid, "action": action},
            response_topic=f"{BASE}/counter/1/reply/{rid}",
            timeout=30,
        )

    try:
        assert issue("a")["ticket"]["number"] == "A001"
        b = issue("b")["ticket"]
        assert command("n1", "next")["ticket"]["number"] == "A001"
        before = server.get("/health").json()["server_time"]

        offset.write_text("+1d\n")  # NTP steps the clock a day forward
        wait_for(lambda: server.get("/health").json()["clock_step_pending_s"] is not None, 60, "the step noticed")
        assert issue("c")["ticket"]["number"] == "A003"  # no new day: numbering goes on
        ticket_b = server.anonymous_get(f"/api/tickets/{b['token']}").json()
        assert ticket_b["status"] == "waiting"
        assert server.get("/api/counters/1", auth=server.CLERK).json()["ticket"]["number"] == "A001"
        after = server.get("/health").json()["server_time"]
        assert after[:10] == before[:10]  # the server's date did not jump

        offset.write_text("-1h\n")  # corrected back, past the true time
        first = server.get("/health").json()["server_time"]
        wait_for(lambda: server.get("/health").json()["server_time"] > first, 30, "server time moving on")
        finished = command("f1", "finish")
        assert finished["ok"]
        assert server.proc.poll() is None
        log = server.log()
        assert "stepped" in log
    finally:
        peer.close()
        server.stop()
    assert os.path.exists(Path(server.database))
