"""The small number display at a counter: shows the client which ticket is served here.

Why an interface: the counter daemon only decides *what* the client should read (two short
lines); *how* it reaches glass is the display's business. Three implementations:

* :class:`HD44780Display` — a 16x2 (or 20x4) HD44780 character LCD on an I2C backpack
  (PCF8574, MCP23008 or MCP23017), driven through RPLCD. This is the production choice,
  see docs/counter.md for why and for the wiring.
* :class:`MemoryDisplay` — keeps what it would show; tests read it, and it is what a unit
  without a display uses.
* :class:`ConsoleDisplay` — logs each change; for the one-machine demo.

Every implementation goes through :meth:`NumberDisplay.show`, which fits the text to the
glass first (character set and size), so what a test reads from :class:`MemoryDisplay` is
exactly what the LCD would show.
"""

from __future__ import annotations

import logging
import threading
import time
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Sequence

log = logging.getLogger(__name__)

# The HD44780's ROM (A00 and A02 alike) has no Polish letters; these read naturally without them.
_PLAIN = str.maketrans({"ł": "l", "Ł": "L"})


def plain_ascii(text: str) -> str:
    """``Zażółć gęślą`` -> ``Zazolc gesla``: what a character LCD can draw."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_PLAIN))
    return "".join(ch for ch in decomposed if ord(ch) < 128 and (ch.isprintable() or ch == " "))


class DisplayError(RuntimeError):
    """The display could not be opened or written (wiring, address, permissions)."""


RETRY_S = 30.0
"""How often a failed display is tried again (re-opened and re-initialised)."""


class NumberDisplay(ABC):
    """A few lines of a few characters each. Thread-safe; :meth:`show` skips repeats.

    A display that fails (a loose cable, an LCD missing at boot) never stops the caller: the
    failure is logged once, :attr:`fault` says what is wrong (the counter shows it on its LED),
    and every ``retry_s`` the next :meth:`show` re-opens the display (:meth:`_reconnect`) and
    writes the latest text. Why not retry on every write: the counter re-renders about ten
    times a second, which flooded the journal with one error per write.
    """

    def __init__(self, cols: int = 16, rows: int = 2, retry_s: float = RETRY_S) -> None:
        if cols < 8 or rows < 1:
            raise ValueError("a number display needs at least 8 columns and 1 row")
        self.cols = cols
        self.rows = rows
        self.retry_s = retry_s
        self._lock = threading.Lock()
        self._shown: tuple[str, ...] | None = None
        self.fault: str | None = None  # why the display does not work now; None while it does
        self._retry_at = 0.0  # monotonic time of the next attempt while faulty

    def fit(self, lines: Sequence[str]) -> tuple[str, ...]:
        """The lines as the glass shows them: plain ASCII, cut and padded to ``cols``."""
        fitted = [plain_ascii(line)[: self.cols].ljust(self.cols) for line in list(lines)[: self.rows]]
        fitted += [" " * self.cols] * (self.rows - len(fitted))
        return tuple(fitted)

    def show(self, lines: Sequence[str]) -> None:
        fitted = self.fit(lines)
        with self._lock:
            if fitted == self._shown:
                return
            if self.fault is not None:
                if time.monotonic() < self._retry_at:
                    return  # still broken as far as we know; tried again at _retry_at
                try:
                    self._reconnect()
                except (OSError, DisplayError) as exc:
                    self._failed(exc)
                    return
            try:
                self._write(fitted)
            except (OSError, DisplayError) as exc:
                self._failed(exc)
                return
            if self.fault is not None:
                log.warning("number display works again (was: %s)", self.fault)
                self.fault = None
            self._shown = fitted

    def _failed(self, exc: BaseException) -> None:
        """Remember the failure (logged only when the display was working) and when to retry."""
        if self.fault is None:
            log.error("number display failed: %s; showing the error on the LED, retrying every %g s", exc, self.retry_s)
        self.fault = str(exc) or type(exc).__name__
        self._shown = None
        self._retry_at = time.monotonic() + self.retry_s

    def _reconnect(self) -> None:  # noqa: B027 - most displays have nothing to re-open
        """Re-open a failed display before the next write; raise OSError/DisplayError if it still fails."""

    @property
    def text(self) -> tuple[str, ...]:
        """What the display shows now (right-stripped), as a client would read it."""
        with self._lock:
            return tuple(line.rstrip() for line in self._shown) if self._shown else ()

    @abstractmethod
    def _write(self, lines: tuple[str, ...]) -> None: ...

    def close(self) -> None:  # noqa: B027 - most displays have nothing to release
        pass


class MemoryDisplay(NumberDisplay):
    """Remembers every screen it showed, oldest first."""

    def __init__(self, cols: int = 16, rows: int = 2, retry_s: float = RETRY_S) -> None:
        super().__init__(cols, rows, retry_s)
        self.history: list[tuple[str, ...]] = []

    def _write(self, lines: tuple[str, ...]) -> None:
        self.history.append(tuple(line.rstrip() for line in lines))


class ConsoleDisplay(NumberDisplay):
    """Logs each new screen; lets the demo show what the counter's client would read."""

    def __init__(self, name: str, cols: int = 16, rows: int = 2) -> None:
        super().__init__(cols, rows)
        self.name = name

    def _write(self, lines: tuple[str, ...]) -> None:
        log.info("[%s] |%s|", self.name, "|".join(lines))


class HD44780Display(NumberDisplay):
    """An HD44780 character LCD behind an I2C port expander, through RPLCD.

    RPLCD talks to ``/dev/i2c-<port>`` with smbus2 (pure Python, no compiled extension),
    so the user running the counter needs the ``i2c`` group. Writes rewrite both lines in
    place (no ``clear()``, which flickers and takes 1.6 ms on the controller).

    An LCD missing at start (no ``/dev/i2c-<port>``, nothing at the address) does not raise:
    the display starts faulty and is opened again, with the HD44780 initialised afresh, every
    ``retry_s`` (see :class:`NumberDisplay`), so the counter's buttons work meanwhile.
    """

    def __init__(
        self,
        address: int = 0x27,
        port: int = 1,
        expander: str = "PCF8574",
        cols: int = 16,
        rows: int = 2,
        charmap: str = "A00",
        retry_s: float = RETRY_S,
    ) -> None:
        super().__init__(cols, rows, retry_s)
        try:
            from RPLCD.i2c import CharLCD
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise DisplayError("the LCD needs RPLCD and smbus2: pip install 'numerek[counter]'") from exc
        self._open_lcd = lambda: CharLCD(
            expander, address, port=port, cols=cols, rows=rows, charmap=charmap, auto_linebreaks=False
        )
        self._where = f"{cols}x{rows} LCD on I2C bus {port} at address {address:#04x} ({expander})"
        self._lcd = None
        try:
            self._reconnect()
        except DisplayError as exc:
            with self._lock:
                self._failed(exc)

    def _reconnect(self) -> None:
        """Open the LCD afresh: RPLCD's constructor runs the HD44780's initialisation sequence."""
        self._release()
        try:
            lcd = self._open_lcd()
            lcd.clear()
        except (OSError, ValueError) as exc:
            raise DisplayError(
                f"no {self._where}: {exc}. "
                "Check the wiring, that I2C is enabled (raspi-config) and that the user is in the i2c group."
            ) from exc
        self._lcd = lcd

    def _write(self, lines: tuple[str, ...]) -> None:
        if self._lcd is None:
            raise DisplayError(f"the {self._where} is not open")
        for row, line in enumerate(lines):
            self._lcd.cursor_pos = (row, 0)
            self._lcd.write_string(line)

    def _release(self) -> None:
        lcd, self._lcd = self._lcd, None
        if lcd is not None:
            try:
                lcd.close(clear=False)
            except OSError:
                pass

    def close(self) -> None:
        if self._lcd is not None:
            try:
                self._lcd.close(clear=True)
            except OSError:
                pass
        self._lcd = None
