"""The counter unit's configuration (TOML), validated with pydantic.

One file describes one Raspberry Pi: the broker it talks to and the counter(s) it drives
(a Pi between two neighbouring counters can drive both). Pins are BCM GPIO numbers
(``17`` or ``"GPIO17"``); ``"BOARD11"`` style names are accepted too. Every pin may be used
once in the whole file: two buttons on one pin would make one press act twice, so that is
refused with the names of both users. Pins the Pi reserves are refused too: GPIO0/GPIO1 (the
HAT ID EEPROM's bus) always, and the I2C lines of a bus an LCD is on (bus 1: GPIO2 SDA, GPIO3
SCL), because a button there would short the display's bus whenever it is pressed.
counter/examples/counter.toml is the documented example.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from protocol import config
from protocol.config import ConfigError
from protocol.mqtt import BrokerConfig
from protocol.topics import ID_PATTERN, device_name

EXAMPLE_CONFIG = Path(__file__).parent / "examples" / "counter.toml"

log = logging.getLogger(__name__)

_PIN_NAME = re.compile(r"^(GPIO|BCM|BOARD|J8:)\d{1,2}$")

# Physical header positions (BOARD<n>, J8:<n>) of the BCM pins checked below.
_HEADER_TO_BCM = {3: 2, 5: 3, 27: 0, 28: 1}
RESERVED_PINS = {0: "ID_SD of the HAT ID EEPROM", 1: "ID_SC of the HAT ID EEPROM"}
"""BCM pins never to wire a button or LED to: the firmware probes them at boot for a HAT."""
I2C_BUS_PINS = {0: {0: "SDA", 1: "SCL"}, 1: {2: "SDA", 3: "SCL"}}
"""I2C bus -> {BCM pin: line} on the 40-pin header."""

DeviceId = Annotated[str, Field(pattern=ID_PATTERN)]


def normalise_pin(value: int | str) -> str:
    """A pin as gpiozero takes it: ``17`` -> ``"GPIO17"``."""
    if isinstance(value, bool):
        raise ValueError("a pin is a BCM number like 17 or a name like 'GPIO17'")
    if isinstance(value, int):
        if not 0 <= value <= 27:
            raise ValueError(f"BCM pin {value} does not exist on a Raspberry Pi header (0-27)")
        return f"GPIO{value}"
    text = value.strip().upper()
    if text.isdigit():
        return normalise_pin(int(text))
    if not _PIN_NAME.match(text):
        raise ValueError(f"{value!r} is not a pin: use a BCM number like 17 or a name like 'GPIO17' or 'BOARD11'")
    return text


def bcm_number(pin: str) -> int | None:
    """The BCM number of a normalised pin name, or None for a header position not checked here."""
    match = re.match(r"^(GPIO|BCM|BOARD|J8:)(\d+)$", pin)
    if match is None:
        return None
    number = int(match.group(2))
    return number if match.group(1) in ("GPIO", "BCM") else _HEADER_TO_BCM.get(number)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UnitConfig(_Strict):
    device: DeviceId | None = Field(None, description="availability id; default counter-<ids>")
    reply_timeout_s: float = Field(3.0, gt=0, le=30, description="no reply by then: the press failed")
    message_s: float = Field(4.0, gt=0, le=60, description="how long an error or notice stays on the display")


def _pin_field(v: int | str | None) -> str | None:
    return None if v is None else normalise_pin(v)


class Buttons(_Strict):
    """The clerk's buttons. Any may be left out; ``pull_up`` true = button wired to GND."""

    next: str | None = None
    recall: str | None = None
    no_show: str | None = None
    finish: str | None = None
    pause: str | None = Field(None, description="held for hold_s: pause an open counter, open a paused one")
    pull_up: bool = True

    @field_validator("next", "recall", "no_show", "finish", "pause", mode="before")
    @classmethod
    def _pin(cls, v: int | str | None) -> str | None:
        return _pin_field(v)


class TransferButton(_Strict):
    """A TRANSFER button with its fixed target: a service or a counter, not both."""

    pin: str
    service: DeviceId | None = None
    counter: DeviceId | None = None
    label: str | None = Field(None, max_length=16, description="shown on the display after the transfer")

    @field_validator("pin", mode="before")
    @classmethod
    def _pin(cls, v: int | str) -> str:
        return normalise_pin(v)

    @model_validator(mode="after")
    def _one_target(self) -> TransferButton:
        if (self.service is None) == (self.counter is None):
            raise ValueError("a transfer button needs exactly one of 'service' or 'counter'")
        return self


class FeedbackButton(_Strict):
    """One of the client's rating buttons (e.g. three: 1 = unhappy, 3, 5 = happy)."""

    pin: str
    rating: int = Field(ge=1, le=5)

    @field_validator("pin", mode="before")
    @classmethod
    def _pin(cls, v: int | str) -> str:
        return normalise_pin(v)


class LedConfig(_Strict):
    """An RGB status LED (three pins). ``active_high`` false for a common-anode LED."""

    red: str
    green: str
    blue: str
    active_high: bool = True

    @field_validator("red", "green", "blue", mode="before")
    @classmethod
    def _pin(cls, v: int | str) -> str:
        return normalise_pin(v)


class DisplayConfig(_Strict):
    """The client-facing number display. ``lcd``: HD44780 over I2C (RPLCD)."""

    kind: Literal["lcd", "console", "memory", "none"] = "lcd"
    address: int = Field(0x27, ge=0x03, le=0x77, description="I2C address (PCF8574 backpacks: 0x27 or 0x3F)")
    port: int = Field(1, ge=0, le=20, description="I2C bus: /dev/i2c-<port>")
    expander: Literal["PCF8574", "MCP23008", "MCP23017"] = "PCF8574"
    cols: int = Field(16, ge=8, le=40)
    rows: int = Field(2, ge=1, le=4)
    charmap: Literal["A00", "A02", "ST0B"] = "A00"


class CounterConfig(_Strict):
    id: DeviceId
    name: str | None = Field(None, max_length=40, description="for the display; default: the server's name")
    bounce_ms: int = Field(
        30, ge=0, le=500, description="edges closer than this to the previous edge are contact bounce"
    )
    hold_s: float = Field(2.0, ge=0.5, le=10, description="how long PAUSE must be held")
    double_press_s: float = Field(
        0.8, ge=0, le=5, description="a second press of the same button this soon is the same press"
    )
    buttons: Buttons = Buttons()
    transfer: list[TransferButton] = Field(default_factory=list, max_length=6)
    feedback: list[FeedbackButton] = Field(default_factory=list)
    led: LedConfig | None = None
    display: DisplayConfig = DisplayConfig()

    @model_validator(mode="after")
    def _check(self) -> CounterConfig:
        if self.feedback:
            if not 3 <= len(self.feedback) <= 5:
                raise ValueError(f"feedback needs 3 to 5 buttons, not {len(self.feedback)}")
            ratings = [b.rating for b in self.feedback]
            if len(set(ratings)) != len(ratings):
                raise ValueError(f"feedback buttons repeat a rating: {ratings}")
        for t in self.transfer:
            if t.counter == self.id:
                raise ValueError(f"counter {self.id} cannot transfer to itself")
        return self

    def pins(self) -> list[tuple[str, str]]:
        """(pin, what uses it) for every pin of this counter."""
        return [(pin, what) for pin, what, _field in self.pin_fields()]

    def pin_fields(self) -> list[tuple[str, str, str]]:
        """(pin, what uses it, its field in this counter's config) for every pin of this counter."""
        out: list[tuple[str, str, str]] = []
        for name in ("next", "recall", "no_show", "finish", "pause"):
            pin = getattr(self.buttons, name)
            if pin:
                out.append((pin, f"counter {self.id} button {name}", f"buttons.{name}"))
        out += [
            (t.pin, f"counter {self.id} transfer to {t.service or 'counter ' + str(t.counter)}", f"transfer.{i}.pin")
            for i, t in enumerate(self.transfer)
        ]
        out += [
            (b.pin, f"counter {self.id} feedback {b.rating}", f"feedback.{i}.pin") for i, b in enumerate(self.feedback)
        ]
        if self.led:
            out += [(getattr(self.led, c), f"counter {self.id} led {c}", f"led.{c}") for c in ("red", "green", "blue")]
        return out


class CounterUnitConfig(_Strict):
    mqtt: BrokerConfig = BrokerConfig()
    unit: UnitConfig = UnitConfig()
    counters: list[CounterConfig] = Field(min_length=1, max_length=4)

    @model_validator(mode="after")
    def _check(self) -> CounterUnitConfig:
        ids = [c.id for c in self.counters]
        if len(set(ids)) != len(ids):
            raise ValueError(f"counter ids repeat: {ids}")
        users: dict[str, str] = {}
        for c in self.counters:
            for pin, what in c.pins():
                if pin in users:
                    raise ValueError(f"pin {pin} is used twice: by {users[pin]} and by {what}")
                users[pin] = what
        i2c_buses = {c.display.port: c.id for c in self.counters if c.display.kind == "lcd"}
        for i, c in enumerate(self.counters):
            for pin, _what, where in c.pin_fields():
                bcm = bcm_number(pin)
                if bcm is None:
                    continue
                if bcm in RESERVED_PINS:
                    raise ValueError(
                        f"counters.{i}.{where}: {pin} is {RESERVED_PINS[bcm]}, reserved by the Pi; choose another pin"
                    )
                for bus, lcd_counter in i2c_buses.items():
                    line = I2C_BUS_PINS.get(bus, {}).get(bcm)
                    if line is not None:
                        raise ValueError(
                            f"counters.{i}.{where}: {pin} is the {line} line of I2C bus {bus}, which the LCD of "
                            f"counter {lcd_counter} uses; choose another pin"
                        )
        lcds: dict[tuple[int, int], str] = {}
        for c in self.counters:
            if c.display.kind == "lcd":
                key = (c.display.port, c.display.address)
                if key in lcds:
                    raise ValueError(
                        f"counters {lcds[key]} and {c.id} both use the LCD at I2C bus {key[0]} address {key[1]:#04x}"
                    )
                lcds[key] = c.id
        return self

    @property
    def device(self) -> str:
        return self.unit.device or device_name("counter", *(c.id for c in self.counters))[:32]


def _old_broker_section(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """Files written before the roles agreed on ``[mqtt]`` call the section ``[broker]``:
    still read (a unit in a cupboard must not stop at an upgrade), with a line in the log."""
    if "broker" not in data:
        return data
    if "mqtt" in data:
        raise config.problem(path, "broker", "[broker] is the old name of [mqtt]: keep one section, [mqtt]")
    log.warning("%s: [broker] is the old name of [mqtt]; it is still read, rename it to [mqtt]", path)
    data = dict(data)
    data["mqtt"] = data.pop("broker")
    return data


def load_config(path: str | Path) -> CounterUnitConfig:
    """Read and validate a counter config; :class:`ConfigError` names the file and every problem found."""
    p = Path(path)
    raw = config.read_toml(p)
    data = _old_broker_section(raw, p)
    try:
        return config.validate(CounterUnitConfig, data, p)
    except ConfigError as exc:
        if data is raw:
            raise
        # Name the fields as the file spells them.
        renamed = [
            (("broker" + where[4:]) if where.startswith("mqtt.") else where, what) for where, what in exc.problems
        ]
        raise ConfigError(p, renamed) from None


__all__ = ["ConfigError", "CounterUnitConfig", "load_config"]
