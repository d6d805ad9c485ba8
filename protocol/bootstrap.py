"""How every Numerek program starts: options, logging, its config, ``--check``, signals, systemd.

Why one bootstrap: ``numerek-server``, ``-kiosk``, ``-display`` and ``-counter`` are run by
the same people the same way (``--config /etc/numerek/<role>.toml``, ``--check`` after an
edit, ``systemctl stop``). They now take the same options, log in the same format, answer a
bad config with the same one-line messages and exit status, and stop the same way on
SIGTERM::

    boot = Bootstrap("numerek-kiosk", "Run the ticket kiosk.", default_config=EXAMPLE_CONFIG)
    boot.parser.add_argument("--windowed", action="store_true")
    args = boot.parse(argv)
    cfg = boot.load(load_config)          # exit 2 with "numerek-kiosk: <file>: <field>: <problem>"
    if args.check:
        return boot.ok(f"kiosk {cfg.kiosk.id}")
    boot.on_stop(app.stop)                # SIGTERM / SIGINT, once

Exit status, the same for every role: 0 after a stop request, 2 for a config error (systemd's
``RestartPreventExitStatus=2``: a wrong file is not fixed by restarting), 1 for a failure a
restart may cure. Standard library only.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TypeVar

from protocol import sdnotify
from protocol.config import ConfigError

C = TypeVar("C")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
EXIT_CONFIG = 2
"""A config error: fix the file; restarting would not help."""


class Bootstrap:
    """One program's start: build on :attr:`parser`, then :meth:`parse`, :meth:`load`, :meth:`ok`."""

    def __init__(self, prog: str, description: str, default_config: Path | str | None = None) -> None:
        self.prog = prog
        self.parser = argparse.ArgumentParser(prog=prog, description=description)
        if default_config is None:
            self.parser.add_argument("--config", required=True, help="config file (TOML)")
        else:
            self.parser.add_argument(
                "--config", default=str(default_config), help="config file (TOML); default: %(default)s"
            )
        self.parser.add_argument("--check", action="store_true", help="validate the config, print OK, exit")
        self.parser.add_argument(
            "--log-level",
            default="INFO",
            type=str.upper,
            choices=["DEBUG", "INFO", "WARNING", "ERROR"],
            help="default: %(default)s",
        )
        self.args = argparse.Namespace()
        self._stopping = threading.Event()

    def parse(self, argv: list[str] | None = None) -> argparse.Namespace:
        """Parse the options and set up logging (to stderr: the journal under systemd)."""
        self.args = self.parser.parse_args(argv)
        logging.basicConfig(level=self.args.log_level, format=LOG_FORMAT, force=True)
        return self.args

    @property
    def config_path(self) -> str:
        return str(self.args.config)

    def load(self, loader: Callable[[str], C]) -> C:
        """The config, or exit 2 after printing each problem on a line of its own."""
        try:
            return loader(self.config_path)
        except ConfigError as exc:
            self.fail(str(exc))

    def fail(self, message: str, status: int = EXIT_CONFIG) -> NoReturn:
        """Print ``message`` (each line prefixed with the program's name) and exit."""
        for line in message.splitlines() or [""]:
            print(f"{self.prog}: {line}", file=sys.stderr)
        raise SystemExit(status)

    def ok(self, summary: str) -> int:
        """What ``--check`` prints for a good config; returns the exit status 0."""
        print(f"{self.config_path}: OK — {summary}")
        return 0

    def on_stop(self, stop: Callable[[], None]) -> None:
        """Call ``stop`` on the first SIGTERM (systemd) or SIGINT (Ctrl-C), from the main thread.

        A second signal while stopping is ignored: a stop that hangs is systemd's to kill
        (``TimeoutStopSec``), not a reason to die half-way through saying ``offline``.
        """

        def handler(_signum: int, _frame: object) -> None:
            if self._stopping.is_set():
                return
            self._stopping.set()
            sdnotify.stopping()
            stop()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    @property
    def stopping(self) -> bool:
        """A stop signal has arrived."""
        return self._stopping.is_set()

    @staticmethod
    def ready(status: str) -> None:
        """Tell systemd the program is up (a no-op outside systemd or for ``Type=simple`` units)."""
        sdnotify.ready(status)


__all__ = ["EXIT_CONFIG", "Bootstrap"]
