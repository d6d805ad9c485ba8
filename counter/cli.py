"""``numerek-counter``: run the counter unit (buttons, LED, number display) from its config.

On a Pi: ``numerek-counter --config /etc/numerek/counter.toml``. Without hardware (the
one-machine demo) add ``--mock-pins``: gpiozero's MockFactory stands in for the header and
the buttons are pressed by typing their names on standard input (``next``, ``hold pause``,
``rate 5``...; ``help`` lists them), with ``kind = "console"`` displays logging what the
client would read.

Exit status: 0 after SIGTERM or ``quit``; 2 for a config error (systemd does not restart it);
1 when the unit's MQTT thread died without a stop request (systemd restarts it); 3 when the
GPIO pins cannot be opened.
"""

from __future__ import annotations

import logging
import sys
import threading
import time

from counter.config import EXAMPLE_CONFIG, load_config
from protocol.bootstrap import Bootstrap

HELP = """type a button and Enter ('1:' before it picks a counter when the unit drives two):
  next | recall | no_show | finish | transfer [N] | hold pause | pause | rate R | state | quit"""


def _drive_from_stdin(unit) -> None:  # pragma: no cover - interactive demo aid
    """Press mock buttons from typed lines: the demo's stand-in for fingers."""
    first = next(iter(unit.stations))
    for line in sys.stdin:
        words = line.strip().split()
        if not words:
            continue
        station_id = first
        if words[0].endswith(":"):
            station_id = words.pop(0)[:-1]
        station = unit.stations.get(station_id)
        if station is None or not words:
            print(f"no counter {station_id!r}; this unit drives {list(unit.stations)}")
            continue
        cmd, arg = words[0], (words[1] if len(words) > 1 else "")
        if cmd == "quit":
            unit._stop.set()
            return
        if cmd == "state":
            print(station.indicator(), station.display.text)
            continue
        name = {"transfer": f"transfer{arg or 0}", "rate": f"rate{arg}", "hold": arg}.get(cmd, cmd)
        button = station.buttons.get(name)
        if button is None:
            print(HELP)
            continue
        button.pin.drive_low() if button.pull_up else button.pin.drive_high()
        time.sleep(station.cfg.hold_s + 0.3 if cmd == "hold" else 0.1)
        button.pin.drive_high() if button.pull_up else button.pin.drive_low()
    # End of input (the demo gives /dev/null) only ends typing; the unit keeps serving the panel.


def main(argv: list[str] | None = None) -> int:
    boot = Bootstrap("numerek-counter", (__doc__ or "").split("\n\n")[0], default_config=EXAMPLE_CONFIG)
    boot.parser.add_argument(
        "--mock-pins", action="store_true", help="demo without a Pi: mock GPIO, buttons from stdin"
    )
    args = boot.parse(argv)
    cfg = boot.load(load_config)
    if args.check:
        return boot.ok(f"counters {', '.join(c.id for c in cfg.counters)}, broker {cfg.mqtt.host}:{cfg.mqtt.port}")

    from gpiozero.exc import GPIOZeroError

    from counter.unit import CounterUnit, UnitFailed
    from hardware.number_display import DisplayError

    pin_factory = None
    if args.mock_pins:
        from gpiozero.pins.mock import MockFactory

        pin_factory = MockFactory()
    try:
        unit = CounterUnit(cfg, pin_factory=pin_factory)
    except (GPIOZeroError, DisplayError, OSError) as exc:
        print(f"cannot start the counter unit: {exc}", file=sys.stderr)
        return 3
    boot.on_stop(unit._stop.set)
    if args.mock_pins:
        print(HELP)
        threading.Thread(target=_drive_from_stdin, args=(unit,), daemon=True).start()
    try:
        unit.run_forever()
    except KeyboardInterrupt:
        unit.stop()
    except UnitFailed as exc:
        # Exit non-zero so that systemd (Restart=on-failure) restarts the unit: a unit whose
        # MQTT thread died has dead buttons, and exiting 0 would leave it so until someone notices.
        logging.getLogger("counter").critical("%s; exiting so that systemd restarts the unit", exc)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
