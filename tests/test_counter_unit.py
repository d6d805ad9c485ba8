"""The counter unit on gpiozero MockFactory pins against the real broker and the real server."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator

import pytest
from gpiozero.pins.mock import MockFactory

from counter.unit import CounterUnit
from hardware.number_display import MemoryDisplay
from tests.harness import TEST_RECALL_GUARD_S, Peer, ServerProcess, wait_for
from tests.test_counter_support import (
    BASE,
    bouncy_press,
    events,
    issue,
    led_colour,
    pin_of,
    press,
    start_unit,
    unit_config,
)

GREEN, BLUE, YELLOW, RED, OFF = (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 0), (0, 0, 0)


@pytest.fixture
def unit(server, broker) -> Iterator[CounterUnit]:
    u, factory = start_unit(broker.port)
    yield u
    u.stop()
    factory.reset()


@pytest.fixture
def kiosk(peer: Peer) -> Peer:
    peer.subscribe(f"{BASE}/kiosk/k1/response/#")
    return peer


def shows(unit: CounterUnit, *lines: str, counter: str = "1", timeout: float = 10) -> None:
    display = unit.stations[counter].display
    wait_for(lambda: display.text[: len(lines)] == lines, timeout, f"display to show {lines} (shows {display.text})")


def led_is(unit: CounterUnit, colour: tuple[int, int, int], counter: str = "1", timeout: float = 10) -> None:
    station = unit.stations[counter]
    wait_for(lambda: led_colour(station) == colour, timeout, f"LED {colour} (is {led_colour(station)})")


def current_at(server: ServerProcess, counter: str = "1") -> str | None:
    ticket = server.get(f"/api/counters/{counter}").json()["ticket"]
    return ticket["number"] if ticket else None


def calls(server: ServerProcess) -> list[str]:
    return [e["ticket"] for e in events(server.database, kinds=("call",))]


def test_unit_shows_ready_after_connecting_to_an_open_counter(server, unit):
    station = unit.stations["1"]
    # The test office's counters start closed: the first NEXT opens the counter.
    shows(unit, "Nieczynne".center(16).rstrip(), "Stanowisko 1")
    led_is(unit, YELLOW)
    assert station.indicator() == "closed"


def test_next_press_calls_the_first_waiting_ticket_and_the_display_shows_it(server, unit, kiosk):
    assert issue(kiosk, "rej") == "A001"
    assert issue(kiosk, "rej") == "A002"
    shows(unit, "Nieczynne".center(16).rstrip())
    press(unit.stations["1"], "next")
    shows(unit, "   Numer A001", "Stanowisko 1")
    assert current_at(server) == "A001"
    led_is(unit, BLUE)
    assert calls(server) == ["A001"]
    state = server.get("/api/counters/1").json()
    assert state["status"] == "open" and state["waiting"]["rej"] == 1


def test_next_with_nobody_waiting_says_the_queue_is_empty(server, unit):
    shows(unit, "Nieczynne".center(16).rstrip())
    press(unit.stations["1"], "next")
    shows(unit, "Zapraszamy".center(16).rstrip(), "Kolejka pusta")
    led_is(unit, GREEN)
    assert calls(server) == []


def test_contact_bounce_and_fast_double_press_call_exactly_one_ticket_each(server, unit, kiosk):
    for _ in range(3):
        issue(kiosk, "rej")
    station = unit.stations["1"]
    shows(unit, "Nieczynne".center(16).rstrip())
    bouncy_press(station, "next")  # ~24 edges for one press
    shows(unit, "   Numer A001")
    time.sleep(0.5)  # the clerk serves A001 (longer than double_press_s)
    # A nervous double press: two clean presses 0.1 s apart, both about A001.
    press(station, "next", hold_s=0.05)
    press(station, "next", hold_s=0.05)
    shows(unit, "   Numer A002", "Stan zmieniony")  # the second press: a notice, no error
    time.sleep(1.5)  # give a wrongly sent second command every chance to arrive
    assert calls(server) == ["A001", "A002"]
    assert current_at(server) == "A002"
    assert server.get("/api/counters/1").json()["waiting"]["rej"] == 1
    # The refused second press is no error for the clerk: the LED still says "serving".
    led_is(unit, BLUE)


def test_holding_pause_pauses_and_holding_again_reopens(server, unit, kiosk):
    issue(kiosk, "rej")
    station = unit.stations["1"]
    shows(unit, "Nieczynne".center(16).rstrip())
    press(station, "next")
    shows(unit, "   Numer A001")
    press(station, "pause", hold_s=1.0)  # hold_s is 0.6 in the test config
    wait_for(lambda: server.get("/api/counters/1").json()["status"] == "paused", 10, "counter paused")
    led_is(unit, YELLOW)
    # A short press of PAUSE does nothing but tell the clerk to hold it.
    press(station, "pause", hold_s=0.05)
    shows(unit, "   Numer A001", "Przytrzymaj")
    assert server.get("/api/counters/1").json()["status"] == "paused"
    press(station, "pause", hold_s=1.0)
    wait_for(lambda: server.get("/api/counters/1").json()["status"] == "open", 10, "counter open again")
    led_is(unit, BLUE)
    kinds = [e["kind"] for e in events(server.database, counter="1", kinds=("counter_pause", "counter_open"))]
    assert kinds == ["counter_open", "counter_pause", "counter_open"]


def test_recall_no_show_finish_and_transfer_buttons(server, unit, kiosk):
    for _ in range(4):
        issue(kiosk, "rej")
    station = unit.stations["1"]
    shows(unit, "Nieczynne".center(16).rstrip())
    press(station, "next")
    shows(unit, "   Numer A001")
    press(station, "recall")  # the hall is still announcing A001: no second announcement
    shows(unit, "   Numer A001", "Juz wywolano")
    led_is(unit, BLUE)
    press(station, "no_show")
    shows(unit, "Zapraszamy".center(16).rstrip())
    press(station, "next")
    shows(unit, "   Numer A002")
    press(station, "transfer0")  # to service pj; its label says where
    shows(unit, "Zapraszamy".center(16).rstrip(), "Do prawa jazdy")
    press(station, "next")
    shows(unit, "   Numer A003")
    press(station, "transfer1")  # to counter 2, no label: the target is shown
    shows(unit, "Zapraszamy".center(16).rstrip(), "Do stanowiska 2")
    wait_for(lambda: server.get("/api/counters/2").json()["personal_waiting"] == 1, 10, "A003 waiting at counter 2")
    press(station, "next")
    shows(unit, "   Numer A004")
    press(station, "finish")
    shows(unit, "Zapraszamy".center(16).rstrip())
    time.sleep(0.5)  # longer than double_press_s: a new press, not the same one again
    press(station, "finish")  # nobody to finish: refused, shown as an error
    shows(unit, "Zapraszamy".center(16).rstrip(), "Brak klienta")
    led_is(unit, RED)
    rows = [(e["kind"], e["ticket"]) for e in events(server.database, counter="1") if e["ticket"]]
    assert rows == [
        ("call", "A001"),
        ("no_show", "A001"),
        ("call", "A002"),
        ("transfer", "A002"),
        ("call", "A003"),
        ("transfer", "A003"),
        ("call", "A004"),
        ("finish", "A004"),
    ]
    transfer_to_pj = next(e for e in events(server.database, kinds=("transfer",)) if e["ticket"] == "A002")
    assert '"to_service": "pj"' in transfer_to_pj["data"]


def test_feedback_button_rates_the_service_that_just_ended_once_and_a_refused_press_keeps_the_led(server, unit, kiosk):
    """A second press is refused; the client made no mistake of the clerk's, so the LED keeps
    showing the counter's state instead of turning red."""
    issue(kiosk, "pj")
    station = unit.stations["1"]
    shows(unit, "Nieczynne".center(16).rstrip())
    press(station, "next")
    shows(unit, "   Numer B001")
    press(station, "finish")
    shows(unit, "Zapraszamy".center(16).rstrip())
    led_is(unit, GREEN)
    press(station, "rate5")
    shows(unit, "Zapraszamy".center(16).rstrip(), "Dziekujemy!")
    time.sleep(0.5)  # a second client-side press, not a bounce of the first
    seen: list[str] = []
    press(station, "rate1")  # a second rating of the same service is refused
    wait_for(
        lambda: seen.append(station.indicator()) or station.display.text[1:] == ("Juz oceniono",),
        10,
        "the refusal notice",
    )
    shows(unit, "Zapraszamy".center(16).rstrip(), "Juz oceniono")
    assert station.indicator() == "ready" and "error" not in seen
    assert led_colour(station) == GREEN
    ratings = events(server.database, kinds=("rating",))
    assert [(r["ticket"], r["data"]) for r in ratings] == [("B001", '{"rating": 5}')]


def test_rating_pressed_while_the_next_client_is_served_lands_on_that_client(server, unit, kiosk, peer):
    """B001 left without rating; B002 is being served (START from the clerk panel) and rates: it is B002's."""
    issue(kiosk, "pj")
    issue(kiosk, "pj")
    station = unit.stations["1"]
    shows(unit, "Nieczynne".center(16).rstrip())
    press(station, "next")
    shows(unit, "   Numer B001")
    time.sleep(0.5)  # longer than double_press_s: a second, deliberate NEXT
    press(station, "next")  # finishes B001, calls B002
    shows(unit, "   Numer B002")
    peer.subscribe(f"{BASE}/counter/1/reply")
    peer.publish(f"{BASE}/counter/1/command", {"v": 1, "id": "start-b002", "action": "start", "current": "B002"})
    peer.expect(f"{BASE}/counter/1/reply", where=lambda r: r["id"] == "start-b002" and r["ok"])
    press(station, "rate1")  # B002's client, at the buttons during their service
    shows(unit, "   Numer B002", "Dziekujemy!")
    ratings = events(server.database, kinds=("rating",))
    assert [(r["ticket"], r["data"]) for r in ratings] == [("B002", '{"rating": 1}')]


def test_stale_refusal_shows_a_notice_and_re_reads_the_true_state(server, unit, kiosk, peer):
    """When what the unit shows is behind the server, a press is refused as stale; the unit
    says so briefly and fetches the retained state again instead of staying wrong."""
    issue(kiosk, "rej")
    issue(kiosk, "rej")
    station = unit.stations["1"]
    shows(unit, "Nieczynne".center(16).rstrip())
    press(station, "next")
    shows(unit, "   Numer A001")
    topic = f"{BASE}/counter/1/state"
    peer.subscribe(topic)
    true_state = wait_for(lambda: peer.latest(topic), 10, "the retained state")
    assert true_state["ticket"]["number"] == "A001"
    # An out-of-date copy (as if an update had been lost on the way), not retained: the unit shows nobody.
    peer.publish(topic, {**true_state, "ticket": None})
    shows(unit, "Zapraszamy".center(16).rstrip())
    time.sleep(0.5)  # longer than double_press_s: a new press
    press(station, "next")  # about "nobody", but A001 is at the counter: refused as stale
    shows(unit, "   Numer A001", "Stan zmieniony")
    led_is(unit, BLUE)
    assert calls(server) == ["A001"]


def test_broker_restart_shows_offline_refuses_presses_and_recovers_the_right_state(server, broker, unit, kiosk):
    for _ in range(3):
        issue(kiosk, "rej")
    station = unit.stations["1"]
    shows(unit, "Nieczynne".center(16).rstrip())
    press(station, "next")
    shows(unit, "   Numer A001", "Stanowisko 1")

    broker.stop()
    # The client keeps seeing its number; the second line and the blinking red LED say offline.
    shows(unit, "   Numer A001", "Brak polaczenia")
    wait_for(lambda: led_colour(station) == RED, 5, "red half of the offline blink")
    wait_for(lambda: led_colour(station) == OFF, 5, "dark half of the offline blink")
    assert station.indicator() == "offline"

    press(station, "next")  # refused on the spot, never queued
    shows(unit, "   Numer A001", "Nie wyslano!")
    assert station.indicator() == "error"

    # Meanwhile the clerk panel (HTTP, same engine path) moves the counter on.
    r = server.post("/api/counters/1/commands", json={"v": 1, "id": "panel-1", "action": "next", "current": "A001"})
    assert r.status_code == 200 and r.json()["ticket"]["number"] == "A002"

    broker.start()
    # Reconnected by itself; the retained state (A002) is the truth, not what the unit showed.
    shows(unit, "   Numer A002", "Stanowisko 1", timeout=20)
    led_is(unit, BLUE)
    time.sleep(2.0)  # a replayed offline press would call A003 by now
    assert calls(server) == ["A001", "A002"]
    assert current_at(server) == "A002"
    # And the unit works again.
    press(station, "next")
    shows(unit, "   Numer A003")
    assert calls(server) == ["A001", "A002", "A003"]


def test_server_killed_shows_offline_and_a_press_is_refused_not_replayed(server, broker, unit, kiosk):
    issue(kiosk, "rej")
    issue(kiosk, "rej")
    station = unit.stations["1"]
    shows(unit, "Nieczynne".center(16).rstrip())
    server.kill9()  # no goodbye: the broker publishes the server's last will ("offline")
    shows(unit, "Nieczynne".center(16).rstrip(), "Brak polaczenia")
    press(station, "next")
    shows(unit, "Nieczynne".center(16).rstrip(), "Nie wyslano!")
    server.start()
    shows(unit, "Nieczynne".center(16).rstrip(), "Stanowisko 1", timeout=20)
    time.sleep(1.5)
    assert calls(server) == []
    press(station, "next")
    shows(unit, "   Numer A001")
    assert calls(server) == ["A001"]


def test_a_button_on_a_released_pin_does_not_act_without_a_press(server, unit, kiosk):
    """Releasing (or a lone bounce on release) is not a press."""
    issue(kiosk, "rej")
    station = unit.stations["1"]
    shows(unit, "Nieczynne".center(16).rstrip())
    pin = pin_of(station, "next")
    pin.drive_high()  # already released: no edge
    time.sleep(0.5)
    assert calls(server) == []


def replies(server: ServerProcess) -> list[dict]:
    """The replies the server gave (its idempotency table), oldest first."""
    conn = sqlite3.connect(f"file:{server.database}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT reply FROM commands ORDER BY at").fetchall()
    finally:
        conn.close()
    return [json.loads(r[0]) for r in rows]


def test_press_to_a_frozen_server_is_not_carried_out_when_it_wakes(server, unit, kiosk):
    """The unit told the clerk "Brak odpowiedzi"; the server that wakes later must not call
    the ticket behind the clerk's back: the press carried a deadline and has expired."""
    issue(kiosk, "rej")
    station = unit.stations["1"]
    shows(unit, "Nieczynne".center(16).rstrip(), "Stanowisko 1")
    wait_for(lambda: unit.server_clock.now() is not None, 10, "the unit to learn the server's clock")
    assert server.proc is not None
    server.freeze()
    try:
        press(station, "next")
        shows(unit, "Nieczynne".center(16).rstrip(), "Brak odpowiedzi")
        led_is(unit, RED)
    finally:
        server.thaw()
    # The press had reached the server before it froze; on waking it refuses it.
    expired = wait_for(
        lambda: [r for r in replies(server) if r.get("action") == "next" and not r["ok"]], 15, "the late press refused"
    )
    assert expired[0]["error"]["code"] == "expired"
    assert calls(server) == []
    assert current_at(server) is None
    assert next(q for q in server.get("/api/queues").json() if q["service"] == "rej")["waiting"] == 1
    # The unit shows the truth: nobody called, the counter still closed, no error left.
    shows(unit, "Nieczynne".center(16).rstrip(), "Stanowisko 1")
    led_is(unit, YELLOW)
    # And the next press, answered in time, is carried out.
    press(station, "next")
    shows(unit, "   Numer A001")
    assert calls(server) == ["A001"]


def test_double_press_of_recall_announces_the_ticket_once(server, unit, kiosk, peer):
    peer.subscribe(f"{BASE}/zone/hall/call")
    issue(kiosk, "rej")
    station = unit.stations["1"]
    shows(unit, "Nieczynne".center(16).rstrip())
    press(station, "next")
    shows(unit, "   Numer A001")
    peer.expect(f"{BASE}/zone/hall/call", where=lambda c: not c["recall"])
    time.sleep(TEST_RECALL_GUARD_S + 0.5)  # the client did not come; the call has long been announced
    press(station, "recall", hold_s=0.05)
    press(station, "recall", hold_s=0.05)  # a nervous double press
    shows(unit, "   Numer A001", "Juz wywolano")
    peer.expect(f"{BASE}/zone/hall/call", where=lambda c: c["recall"])
    time.sleep(1.5)  # give a second announcement every chance to arrive
    assert [e["ticket"] for e in events(server.database, kinds=("recall",))] == ["A001"]
    assert [json.loads(p)["recall"] for t, p, _r in peer.seen if t == f"{BASE}/zone/hall/call"] == [False, True]
    led_is(unit, BLUE)


class _BuggyDisplay(MemoryDisplay):
    """A display driver with a bug: its first writes of the closed screen raise KeyError (not an
    I/O error). The first of them happens while the unit handles the server's state message."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 0

    def _write(self, lines: tuple[str, ...]) -> None:
        if self.failures > 0 and "Nieczynne" in lines[0]:
            self.failures -= 1
            raise KeyError("glyph")
        super()._write(lines)


def test_an_unexpected_error_in_a_message_callback_is_logged_and_the_unit_keeps_working(server, broker, kiosk, caplog):
    issue(kiosk, "rej")
    display = _BuggyDisplay()
    unit = CounterUnit(unit_config(broker.port), displays={"1": display}, pin_factory=MockFactory())
    display.failures = 3
    unit.start()
    try:
        station = unit.stations["1"]
        wait_for(lambda: display.failures == 0, 10, "the buggy writes to happen")
        wait_for(
            lambda: any(r.exc_info and r.exc_info[0] is KeyError for r in caplog.records),
            10,
            "the KeyError's traceback in the log",
        )
        shows(unit, "Nieczynne".center(16).rstrip(), "Stanowisko 1")
        press(station, "next")  # the buttons still work
        shows(unit, "   Numer A001")
        assert calls(server) == ["A001"]
        assert unit._thread is not None and unit._thread.is_alive()
    finally:
        unit.stop()


def test_a_counter_unknown_to_the_server_is_logged_as_an_error(server, broker, caplog):
    unit, factory = start_unit(broker.port, counter="9")
    try:
        wait_for(
            lambda: any(r.levelname == "ERROR" and "no counter '9'" in r.getMessage() for r in caplog.records),
            15,
            "an error naming the unknown counter",
        )
    finally:
        unit.stop()
        factory.reset()


class _LooseCableDisplay(MemoryDisplay):
    """A display whose cable is out while ``loose``: every write and re-open fails with an I/O error."""

    def __init__(self) -> None:
        super().__init__(retry_s=0.3)
        self.loose = False
        self.reopened = 0

    def _reconnect(self) -> None:
        if self.loose:
            raise OSError(121, "Remote I/O error")
        self.reopened += 1

    def _write(self, lines: tuple[str, ...]) -> None:
        if self.loose:
            raise OSError(121, "Remote I/O error")
        super()._write(lines)


def test_a_loose_display_shows_red_on_the_led_is_logged_once_and_comes_back_by_itself(server, broker, kiosk, caplog):
    issue(kiosk, "rej")
    display = _LooseCableDisplay()
    unit = CounterUnit(unit_config(broker.port), displays={"1": display}, pin_factory=MockFactory())
    display.loose = True
    unit.start()
    try:
        station = unit.stations["1"]
        wait_for(lambda: unit.online and station.state is not None, 10, "the unit online with its state")
        led_is(unit, RED)  # the clerk sees that the client's display is dark
        press(station, "next")  # the buttons work meanwhile
        wait_for(lambda: calls(server) == ["A001"], 10, "A001 called")
        time.sleep(1.0)  # ~10 re-renders and 3 retry periods while still loose
        failures = [r for r in caplog.records if "number display failed" in r.getMessage()]
        assert len(failures) == 1
        display.loose = False  # the cable is pushed back in
        shows(unit, "   Numer A001", "Stanowisko 1")
        led_is(unit, BLUE)
        assert display.reopened >= 1 and display.fault is None
        assert any("number display works again" in r.getMessage() for r in caplog.records)
    finally:
        unit.stop()
