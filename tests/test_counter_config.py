"""The counter unit's config: the example is valid, mistakes get clear errors, displays fit text."""

from __future__ import annotations

from pathlib import Path

import pytest

from counter.config import EXAMPLE_CONFIG, ConfigError, load_config
from hardware.number_display import HD44780Display, MemoryDisplay, plain_ascii
from tests.harness import run_tool

MINIMAL = """
[[counters]]
id = "1"
[counters.buttons]
next = 17
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "counter.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_example_config_is_valid_and_documents_every_part():
    cfg = load_config(EXAMPLE_CONFIG)
    c = cfg.counters[0]
    assert c.buttons.next == "GPIO17" and c.buttons.pause == "GPIO24"
    assert [(t.service, t.counter) for t in c.transfer] == [("pj", None), (None, "2")]
    assert [f.rating for f in c.feedback] == [1, 3, 5]
    assert c.led is not None and c.display.kind == "lcd" and c.display.address == 0x27
    assert cfg.device == "counter-1"


def test_minimal_config_takes_safe_defaults(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL))
    c = cfg.counters[0]
    assert (c.bounce_ms, c.hold_s, c.double_press_s) == (30, 2.0, 0.8)
    assert cfg.mqtt.port == 1883 and cfg.unit.reply_timeout_s == 3.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            MINIMAL + "recall = 17\n",
            "pin GPIO17 is used twice: by counter 1 button next and by counter 1 button recall",
        ),
        (MINIMAL + "recall = 40\n", "counters.0.buttons.recall: BCM pin 40 does not exist"),
        (MINIMAL + 'recall = "pin seven"\n', "is not a pin"),
        (
            MINIMAL + "recall = 2\n",
            "counters.0.buttons.recall: GPIO2 is the SDA line of I2C bus 1, which the LCD of counter 1",
        ),
        (MINIMAL + 'finish = "BOARD5"\n', "counters.0.buttons.finish: BOARD5 is the SCL line of I2C bus 1"),
        (
            MINIMAL + "\n[counters.led]\nred = 0\ngreen = 5\nblue = 6\n",
            "counters.0.led.red: GPIO0 is ID_SD of the HAT ID EEPROM",
        ),
        (MINIMAL.replace('id = "1"', 'id = "1/2"'), "counters.0.id"),
        (MINIMAL + "\n[[counters.feedback]]\npin = 5\nrating = 1\n", "feedback needs 3 to 5 buttons, not 1"),
        (
            MINIMAL + '\n[[counters.transfer]]\npin = 5\nservice = "pj"\ncounter = "2"\n',
            "exactly one of 'service' or 'counter'",
        ),
        (MINIMAL + '\n[[counters.transfer]]\npin = 5\ncounter = "1"\n', "cannot transfer to itself"),
        (MINIMAL.replace("[counters.buttons]", "hold_s = 0.1\n[counters.buttons]"), "counters.0.hold_s"),
        (MINIMAL + "nxet = 18\n", "counters.0.buttons.nxet: Extra inputs are not permitted"),
        (MINIMAL + MINIMAL.replace("17", "18"), "counter ids repeat"),
        ("[broker]\nport = 'x'\n" + MINIMAL, "broker.port"),
        ("counters = [", "not valid TOML"),
        ("", "counters: Field required"),
    ],
)
def test_config_mistakes_are_reported_clearly(tmp_path, text, expected):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert expected in str(err.value)
    assert "counter.toml" in str(err.value)


def test_two_counters_on_one_pi_need_their_own_pins_and_lcd_addresses(tmp_path):
    two = MINIMAL + '\n[[counters]]\nid = "2"\n[counters.buttons]\nnext = 27\n'
    cfg = load_config(write(tmp_path, two + "[counters.display]\naddress = 0x26\n"))
    assert [c.id for c in cfg.counters] == ["1", "2"] and cfg.device == "counter-1-2"
    with pytest.raises(ConfigError, match="both use the LCD at I2C bus 1 address 0x27"):
        load_config(write(tmp_path, two.replace("next = 27", "next = 22")))  # both default to 0x27
    with pytest.raises(ConfigError, match="pin GPIO17 is used twice"):
        load_config(write(tmp_path, MINIMAL + '\n[[counters]]\nid = "2"\n[counters.buttons]\nnext = "GPIO17"\n'))


def test_cli_check_accepts_the_example_and_refuses_a_bad_file_with_exit_2(tmp_path):
    ok = run_tool("counter.cli", "--check", "--config", str(EXAMPLE_CONFIG), timeout=60)
    assert ok.returncode == 0 and "OK" in ok.stdout
    bad = run_tool("counter.cli", "--check", "--config", str(write(tmp_path, MINIMAL + "recall = 17\n")), timeout=60)
    assert bad.returncode == 2 and "used twice" in bad.stderr and "Traceback" not in bad.stderr


def test_display_shows_what_an_hd44780_can_draw_cut_to_its_width():
    d = MemoryDisplay(cols=16, rows=2)
    d.show(["Zażółć gęślą jaźń — ŁÓDŹ", "Numer A001"])
    assert d.text == ("Zazolc gesla jaz", "Numer A001")
    d.show(["Zażółć gęślą jaźń — ŁÓDŹ", "Numer A001"])  # unchanged: not rewritten
    assert len(d.history) == 1
    d.show(["Przerwa"])
    assert d.text == ("Przerwa", "") and len(d.history) == 2
    assert plain_ascii("Brak połączenia") == "Brak polaczenia"


def test_lcd_without_an_i2c_bus_starts_faulty_with_a_clear_reason_not_a_crash():
    display = HD44780Display(address=0x27, port=19, retry_s=3600)
    assert display.fault is not None and "no 16x2 LCD on I2C bus 19 at address 0x27" in display.fault
    display.show(["Numer A001"])  # no exception: the counter's buttons keep working
    assert display.text == ()


def test_i2c_pins_are_free_for_buttons_only_when_no_lcd_uses_that_bus(tmp_path):
    no_lcd = MINIMAL + 'recall = 2\nfinish = 3\n[counters.display]\nkind = "memory"\n'
    assert load_config(write(tmp_path, no_lcd)).counters[0].buttons.recall == "GPIO2"
    # The LCD of counter 1 is on bus 1, so a button of counter 2 on GPIO3 would short it too.
    two = MINIMAL + '\n[[counters]]\nid = "2"\n[counters.buttons]\nnext = 3\n[counters.display]\nkind = "memory"\n'
    with pytest.raises(
        ConfigError, match=r"counters\.1\.buttons\.next: GPIO3 is the SCL line of I2C bus 1, which the LCD of counter 1"
    ):
        load_config(write(tmp_path, two))
    on_bus_0 = MINIMAL + "recall = 2\n[counters.display]\nport = 0\n"  # bus 0 is on GPIO0/GPIO1, not GPIO2/3
    assert load_config(write(tmp_path, on_bus_0)).counters[0].buttons.recall == "GPIO2"
