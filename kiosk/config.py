"""The kiosk's config: one small TOML file per kiosk (see kiosk/examples/kiosk.toml).

Validated with pydantic so a typo ("netwrok", a port of 99999) is reported with the
field's path before the touch screen ever lights up, not at the first resident's tap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hardware.printer import PrinterSettings
from kiosk.texts import LANGUAGES
from protocol import config
from protocol.config import ConfigError
from protocol.mqtt import BrokerConfig
from protocol.topics import ID_PATTERN

EXAMPLE_CONFIG = Path(__file__).parent / "examples" / "kiosk.toml"
DEJAVU = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
DEJAVU_BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KioskSection(_Strict):
    id: Annotated[str, Field(pattern=ID_PATTERN)]
    public_url: Annotated[str, Field(pattern=r"^https?://[^\s/]+(/[^\s]*)?$")]
    """The server's address as a phone sees it; the ticket's QR code is this + ``/t/<token>``."""
    default_language: str = "pl"
    """A language of the kiosk's catalogue (kiosk/locale): pl, en, uk, or one a translator added."""
    idle_timeout_s: Annotated[float, Field(ge=3, le=600)] = 20.0
    """Any screen but home returns home after this long without a touch."""
    fault_timeout_s: Annotated[float, Field(ge=10, le=900)] = 90.0
    """The ticket screen after a printer fault stays this long instead (at least as long
    as ``idle_timeout_s``): the resident must note or photograph the number and the QR
    code, which takes an elderly person longer than 20 s."""
    response_timeout_s: Annotated[float, Field(ge=1, le=60)] = 6.0
    """How long to wait for the server's answer before saying it is unreachable."""
    bookings: bool = False
    """Offer check-in for appointments ("Mam rezerwację"): a keypad for the booking's code and
    a 2D scanner acting as a keyboard. Only where the office takes bookings."""
    sms: bool = False
    """After a service is chosen, offer a keypad for a mobile number ("your turn is near" by SMS;
    skipping is the big default button). Only where the server has ``[notify]`` with an SMS gateway."""
    pickups: bool = False
    """Offer "Odbiór dokumentu": a keypad (or a scanner) for a ready document's case reference.
    Only where clerks announce documents ready (docs/notifications.md)."""

    @field_validator("public_url")
    @classmethod
    def _no_trailing_slash(cls, v: str) -> str:
        return v.rstrip("/")

    @field_validator("default_language")
    @classmethod
    def _a_catalogue_language(cls, v: str) -> str:
        if v not in LANGUAGES:
            raise ValueError(f"must be one of {', '.join(LANGUAGES)} (the languages in kiosk/locale)")
        return v


class PrinterSection(_Strict):
    type: Literal["dummy", "network", "usb", "serial"] = "dummy"
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 9100
    usb_vendor: Annotated[int, Field(ge=0, le=0xFFFF)] = 0x04B8
    usb_product: Annotated[int, Field(ge=0, le=0xFFFF)] = 0x0E15
    usb_in_ep: Annotated[int, Field(ge=0, le=0xFF)] = 0x82
    usb_out_ep: Annotated[int, Field(ge=0, le=0xFF)] = 0x01
    serial_device: str = "/dev/ttyUSB0"
    baudrate: Literal[9600, 19200, 38400, 57600, 115200] = 9600
    profile: str = "default"
    timeout_s: Annotated[float, Field(gt=0, le=30)] = 3.0
    query_status: bool = True
    dummy_output: str | None = None
    qr: Literal["auto", "native", "image"] = "auto"
    cut: bool = True

    def settings(self) -> PrinterSettings:
        data = self.model_dump()
        data["kind"] = data.pop("type")
        return PrinterSettings(**data)


class ScreenSection(_Strict):
    fullscreen: bool = True
    width: Annotated[int, Field(ge=320, le=7680)] = 1280
    height: Annotated[int, Field(ge=240, le=4320)] = 720
    font: str = DEJAVU
    font_bold: str = DEJAVU_BOLD

    @field_validator("font", "font_bold")
    @classmethod
    def _font_exists(cls, v: str) -> str:
        if not Path(v).is_file():
            raise ValueError(f"font file {v!r} not found (install fonts-dejavu-core)")
        return v


class KioskConfig(_Strict):
    kiosk: KioskSection
    mqtt: BrokerConfig = BrokerConfig()
    printer: PrinterSection = PrinterSection()
    screen: ScreenSection = ScreenSection()


def load_config(path: str | Path) -> KioskConfig:
    """Read and validate a kiosk config (:class:`ConfigError` names the file and each field)."""
    p = Path(path)
    cfg = config.load(p, KioskConfig)
    if cfg.printer.dummy_output:
        out = config.relative_to(p, cfg.printer.dummy_output)
        cfg = cfg.model_copy(update={"printer": cfg.printer.model_copy(update={"dummy_output": out})})
    return cfg


__all__ = ["ConfigError", "KioskConfig", "load_config"]
