"""The device roles the demo starts, and their demo configs.

Each demo config is the role's shipped example with only what a one-machine demo changes:
the broker port, a window instead of full screen, and sound to files when the machine has
no sound card. Kept apart from server/demo.py so each role is a few lines here.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _set(text: str, key: str, value: str) -> str:
    """Replace ``key = …`` (first occurrence, keeping any comment) in a TOML text."""
    new, n = re.subn(rf"(?m)^{re.escape(key)}\s*=\s*[^#\n]*", f"{key} = {value}  ", text, count=1)
    if n != 1:
        raise ValueError(f"demo: no {key!r} in the example config")
    return new


def display_config(data: Path, mqtt_port: int) -> Path:
    text = (ROOT / "display" / "examples" / "display.toml").read_text(encoding="utf-8")
    text = _set(text, "port", str(mqtt_port))
    text = _set(text, "fullscreen", "false")
    text = _set(text, "width", "1280")
    text = _set(text, "height", "720")
    if not Path("/dev/snd").exists():  # no sound card: keep the announcements as WAV files
        text = _set(text, "output", '"files"')
        text = text.replace("# record_dir = ", "record_dir = ", 1)
        text = _set(text, "record_dir", f'"{data / "announcements"}"')
    path = data / "display.toml"
    path.write_text(text, encoding="utf-8")
    return path


def kiosk_config(data: Path, mqtt_port: int, url: str) -> Path:
    text = (ROOT / "kiosk" / "examples" / "kiosk.toml").read_text(encoding="utf-8")
    text = _set(text, "port", str(mqtt_port))
    text = _set(text, "public_url", f'"{url}"')
    text = _set(text, "fullscreen", "false")
    text = _set(text, "dummy_output", f'"{data / "printed-tickets.bin"}"')
    text = _set(text, "bookings", "true")  # the demo books visits for today: "Mam rezerwację" checks them in
    path = data / "kiosk.toml"
    path.write_text(text, encoding="utf-8")
    return path


def counter_config(data: Path, mqtt_port: int) -> Path:
    text = (ROOT / "counter" / "examples" / "counter-demo.toml").read_text(encoding="utf-8")
    path = data / "counter.toml"
    path.write_text(_set(text, "port", str(mqtt_port)), encoding="utf-8")
    return path


def role_commands(data: Path, mqtt_port: int, url: str, bin_dir: Path) -> list[tuple[str, list[str], bool]]:
    """(name, command, needs a screen) for each device role in demo mode."""
    return [
        ("kiosk", [str(bin_dir / "numerek-kiosk"), "--config", str(kiosk_config(data, mqtt_port, url))], True),
        ("display", [str(bin_dir / "numerek-display"), "--config", str(display_config(data, mqtt_port))], True),
        # the counter unit on gpiozero's mock pins: its LCD prints to counter.log; press with the clerk panel
        (
            "counter",
            [str(bin_dir / "numerek-counter"), "--mock-pins", "--config", str(counter_config(data, mqtt_port))],
            False,
        ),
    ]
