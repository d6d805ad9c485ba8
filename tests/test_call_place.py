"""A call says where to go: the counter's place, else its zone's name for residents."""

from __future__ import annotations

from server.config import parse_config
from server.engine import QueueEngine
from server.wire import Wire
from tests.engine_support import OFFICE, FakeClock


def wire_for(extra_counter: str, public: str = "") -> Wire:
    text = OFFICE.replace('id = "3"\nname = "Kasa"\n', f'id = "3"\nname = "Kasa"\nzone = "upstairs"\n{extra_counter}')
    return Wire(QueueEngine(parse_config(text + public), FakeClock()))


def test_a_call_carries_its_counters_place_in_every_language_given():
    wire = wire_for('place = { pl = "pokój 12, I piętro", en = "room 12, 1st floor" }\n')
    assert wire.counter_place("3") == {"pl": "pokój 12, I piętro", "en": "room 12, 1st floor"}


def test_a_counter_without_a_place_sends_its_zones_name_for_residents_else_nothing():
    public = '\n[public]\nzone_names = { upstairs = { pl = "I piętro", en = "1st floor" } }\n'
    wire = wire_for("", public)
    assert wire.counter_place("3") == {"pl": "I piętro", "en": "1st floor"}
    assert wire.counter_place("1") is None, "a hall without a name for residents: the counter's name says it all"
