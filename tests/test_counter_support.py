"""Helpers (no tests here) for the counter unit and clerk panel tests: a unit on MockFactory pins, presses, events."""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path

from gpiozero.pins.mock import MockFactory

from counter.config import CounterUnitConfig
from counter.unit import CounterUnit, Station
from tests.harness import Peer

BASE = "numerek"

PINS = {
    "buttons": {"next": 17, "recall": 27, "no_show": 22, "finish": 23, "pause": 24},
    "transfer": [{"pin": 25, "service": "pj", "label": "Do prawa jazdy"}, {"pin": 5, "counter": "2"}],
    "led": {"red": 13, "green": 19, "blue": 26},
    "feedback": [{"pin": 6, "rating": 1}, {"pin": 12, "rating": 3}, {"pin": 16, "rating": 5}],
}


def unit_config(broker_port: int, counter: str = "1", **counter_overrides) -> CounterUnitConfig:
    return CounterUnitConfig.model_validate(
        {
            "mqtt": {"host": "127.0.0.1", "port": broker_port, "keepalive": 5},
            "unit": {"reply_timeout_s": 3.0, "message_s": 2.0},
            "counters": [
                {
                    "id": counter,
                    "bounce_ms": 30,
                    "hold_s": 0.6,
                    "double_press_s": 0.4,
                    "display": {"kind": "memory"},
                    **PINS,
                    **counter_overrides,
                }
            ],
        }
    )


def start_unit(broker_port: int, counter: str = "1", **overrides) -> tuple[CounterUnit, MockFactory]:
    factory = MockFactory()
    unit = CounterUnit(unit_config(broker_port, counter, **overrides), pin_factory=factory).start()
    return unit, factory


def pin_of(station: Station, button: str):
    return station.buttons[button].pin


def press(station: Station, button: str, hold_s: float = 0.06) -> None:
    """A clean press: close the contact, keep it closed ``hold_s``, open it, let it settle."""
    pin = pin_of(station, button)
    pin.drive_low()
    time.sleep(hold_s)
    pin.drive_high()
    time.sleep(0.05)


def bouncy_press(station: Station, button: str, chatter: int = 6) -> None:
    """A worn switch: the contact chatters on closing and on opening (edges ~1 ms apart)."""
    pin = pin_of(station, button)
    for _ in range(chatter):
        pin.drive_low()
        time.sleep(0.001)
        pin.drive_high()
        time.sleep(0.001)
    pin.drive_low()
    time.sleep(0.1)
    for _ in range(chatter):
        pin.drive_high()
        time.sleep(0.001)
        pin.drive_low()
        time.sleep(0.001)
    pin.drive_high()
    time.sleep(0.05)


def issue(peer: Peer, service: str, kiosk: str = "k1") -> str:
    rid = uuid.uuid4().hex[:12]
    reply = peer.request(
        f"{BASE}/kiosk/{kiosk}/request",
        {"v": 1, "id": rid, "service": service},
        response_topic=f"{BASE}/kiosk/{kiosk}/response/{rid}",
    )
    assert reply["ok"], reply
    return reply["ticket"]["number"]


def events(database: Path, counter: str | None = None, kinds: tuple[str, ...] | None = None) -> list[dict]:
    """Rows of the server's event log (read-only), oldest first."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        rows = [dict(r) for r in conn.execute("SELECT * FROM events ORDER BY id")]
    finally:
        conn.close()
    return [r for r in rows if (counter is None or r["counter"] == counter) and (kinds is None or r["kind"] in kinds)]


def led_colour(station: Station) -> tuple[int, int, int]:
    assert station.led is not None
    return tuple(int(round(v)) for v in station.led.value)  # type: ignore[return-value]
