"""``numerek-display``: run the hall display, check its config, or test its speaker.

    numerek-display --config /etc/numerek/display.toml
    numerek-display --config display.toml --check          # validate and exit
    numerek-display --config display.toml --test-audio A023 "Stanowisko 4"

Kivy reads its settings when first imported, so the window, cursor and fonts are set up here
before ``display.app`` (and with it Kivy's window) is imported.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile

from display.config import ConfigError, DisplayConfig, check_audio, load_config
from protocol.bootstrap import Bootstrap

log = logging.getLogger("numerek.display")


def _prepare_kivy(cfg: DisplayConfig) -> None:
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    os.environ.setdefault("KIVY_LOG_MODE", "PYTHON")  # one log format, ours, to stderr/journald
    if "KIVY_HOME" not in os.environ:
        # Kivy writes a config.ini there; keep it out of the read-only/unknown home of a service user.
        os.environ["KIVY_HOME"] = os.path.join(tempfile.gettempdir(), f"numerek-kivy-{os.getuid()}")
    from kivy.config import Config

    s = cfg.screen
    Config.set("kivy", "log_enable", "0")
    Config.set("kivy", "exit_on_escape", "0")
    Config.set("graphics", "fullscreen", "auto" if s.fullscreen else "0")
    Config.set("graphics", "width", str(s.width))
    Config.set("graphics", "height", str(s.height))
    Config.set("graphics", "show_cursor", "1" if s.show_cursor else "0")
    Config.set("graphics", "rotation", str(s.rotation))
    Config.set("graphics", "resizable", "1")
    # No multisampling (Kivy asks for 2, Mesa gives 4): the board is text textures and panels,
    # only the two panels' rounded corners would be smoothed (invisible from the hall), and in
    # software rendering (a Pi without its GPU driver, the tests' Xvfb) every frame cost 2.5 times
    # the CPU. The probe's screenshots never had it (they are drawn into an Fbo).
    Config.set("graphics", "multisamples", "0")
    Config.set("input", "mouse", "mouse,disable_multitouch")


def _test_audio(cfg: DisplayConfig, ticket: str, counter_name: str) -> int:
    """Say one call through the configured output: the installer's "can you hear it?".

    Exits 1 when the call could not be played (aplay failed, no such device...): success
    here must mean the sound really went out, not that it was queued.
    """
    from display.config import make_announcer
    from display.speech import Phrases
    from hardware.audio import Announcement, AudioError, readable

    a = cfg.audio
    call = Announcement(seq=1, ticket=ticket, counter="1", counter_name=counter_name)
    try:
        announcer = make_announcer(a)
    except AudioError as exc:
        print(f"numerek-display: audio: {exc}", file=sys.stderr)
        return 1
    for lang, text in Phrases(tuple(a.languages), a.counter_word_en)(call):
        print(f"{lang}: {readable(text)}")
    try:
        announcer.play_now(call)
    except AudioError as exc:
        where = f"device {a.device!r}" if a.device else "ALSA's default device"
        hint = f" through {where} (check [audio] device; `aplay -L` lists the devices)" if a.output == "alsa" else ""
        print(f"numerek-display: audio: the call could not be played{hint}: {exc}", file=sys.stderr)
        return 1
    finally:
        announcer.close()
    print("played: did you hear it?")
    return 0


def main(argv: list[str] | None = None) -> int:
    boot = Bootstrap("numerek-display", "Numerek hall display (call board).")
    boot.parser.add_argument(
        "--test-audio", nargs=2, metavar=("TICKET", "COUNTER_NAME"), help="announce one call and exit"
    )
    args = boot.parse(argv)
    cfg = boot.load(load_config)
    if args.check:
        try:
            check_audio(cfg.audio, args.config)
        except ConfigError as exc:
            boot.fail(str(exc))
        return boot.ok(f"zone {cfg.display.zone}, device {cfg.device_id}, broker {cfg.mqtt.host}:{cfg.mqtt.port}")
    if args.test_audio:
        return _test_audio(cfg, *args.test_audio)

    _prepare_kivy(cfg)
    from kivy.clock import Clock

    from display.app import DisplayApp, register_fonts

    register_fonts(cfg)
    app = DisplayApp(cfg)
    boot.on_stop(lambda: Clock.schedule_once(lambda _dt: app.stop()))
    app.run()
    return 1 if app.connection is not None and app.connection.failure is not None else 0


if __name__ == "__main__":
    raise SystemExit(main())
