"""``numerek-kiosk``: run the ticket kiosk (touch screen + printer) from a kiosk config.

Kivy reads its settings from the environment and its config at import time, so this
module sets them *before* importing Kivy: no Kivy argument parsing (our own options
would be mistaken for Kivy's), a private KIVY_HOME unless one is given, the window
size and position from the config.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from kiosk.config import EXAMPLE_CONFIG, load_config
from protocol.bootstrap import Bootstrap


def main(argv: list[str] | None = None) -> int:
    boot = Bootstrap("numerek-kiosk", (__doc__ or "").splitlines()[0], default_config=EXAMPLE_CONFIG)
    p = boot.parser
    p.add_argument("--printer-status", action="store_true", help="ask the printer for its status, print it, exit")
    p.add_argument("--windowed", action="store_true", help="ignore screen.fullscreen (desk testing)")
    p.add_argument("--trace", help="append what each screen shows (JSON lines) to this file")
    p.add_argument("--screenshot-dir", help="save a PNG of every screen shown into this folder")
    args = boot.parse(argv)
    cfg = boot.load(load_config)

    from hardware.printer import TicketPrinter

    try:
        printer = TicketPrinter(cfg.printer.settings())
    except ValueError as exc:
        boot.fail(f"{args.config}: printer: {exc}")
    if args.check:
        return boot.ok(f"kiosk {cfg.kiosk.id}, {cfg.printer.type} printer, broker {cfg.mqtt.host}:{cfg.mqtt.port}")
    if args.printer_status:
        status = printer.status()
        print(
            f"{status.fault.value}{'' if status.known else ' (not reported by the printer)'} {status.message}".strip()
        )
        return 0 if status.can_print else 1

    shots = Path(args.screenshot_dir) if args.screenshot_dir else None
    if shots:
        shots.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    os.environ.setdefault("KIVY_NO_CONSOLELOG", "1")
    os.environ.setdefault("KIVY_LOG_MODE", "PYTHON")
    if "KIVY_HOME" not in os.environ:
        os.environ["KIVY_HOME"] = tempfile.mkdtemp(prefix="numerek-kivy-")
    from kivy.config import Config

    s = cfg.screen
    fullscreen = s.fullscreen and not args.windowed
    Config.set("graphics", "fullscreen", "auto" if fullscreen else "0")
    Config.set("graphics", "borderless", "1")
    Config.set("graphics", "position", "custom")
    Config.set("graphics", "left", "0")
    Config.set("graphics", "top", "0")
    Config.set("graphics", "width", str(s.width))
    Config.set("graphics", "height", str(s.height))
    Config.set("graphics", "show_cursor", "1" if args.windowed else "0")
    # No multisampling (Kivy asks for 2, Mesa gives 4): the kiosk draws rectangles and text
    # textures, which it does not smooth, and in software rendering (Mesa's llvmpipe: a kiosk PC
    # without a GPU driver, the tests' Xvfb) it made every frame 2.5 times the CPU (37 → 102 ms
    # at 1920x1080, bench/kivy_frame_cpu.py).
    Config.set("graphics", "multisamples", "0")
    Config.set("input", "mouse", "mouse,disable_multitouch")
    Config.set("kivy", "exit_on_escape", "0")

    from kiosk.app import KioskApp
    from kiosk.widgets import register_fonts

    register_fonts(cfg)
    app = KioskApp(cfg, printer, trace=Path(args.trace) if args.trace else None, shots=shots)

    from kivy.clock import Clock

    # systemd stops us with SIGTERM: leave through Kivy so on_stop says "offline" politely.
    boot.on_stop(lambda: Clock.schedule_once(lambda _dt: app.stop()))
    # A dead MQTT thread leaves the kiosk offline for good: stop, exit 1, systemd restarts us.
    app.link.conn.on_failure = lambda _exc: app.stop()
    app.run()
    return 1 if app.link.conn.failure is not None else 0


if __name__ == "__main__":
    raise SystemExit(main())
