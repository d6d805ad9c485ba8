"""A thin ticket printer over python-escpos, in the spirit of gpiozero: one small class,
chosen by config, that the kiosk can ask two things: "how are you?" and "print this ticket".

Why a class of our own instead of using ``escpos.printer.*`` directly:

* **One place for the code page.** Thermal printers have no UTF-8; each text run must be
  sent in a code page the printer has. python-escpos' "magic" encoder guesses one per
  character, which works but makes the bytes depend on the order of its guesses. We force
  the page instead: Polish text in CP852 (``ESC t 18`` on Epson-compatible printers; it has
  every Polish letter, ą=0xA5, ł=0x88, Ł=0x9D, ż=0xBE...) and Cyrillic in CP866
  (``ESC t 17``), the Cyrillic page that cheap printers actually carry. CP866 lacks the
  Ukrainian і/ґ, so those are printed as the identical-looking Latin i / Cyrillic г.
  Neither page has typographic quotes and dashes („ ” – …): they are printed as " - ...
* **One place for status.** ESC/POS printers answer ``DLE EOT n`` with a status byte (online,
  cover, paper sensors). A kiosk must know *before* printing whether the paper is out, so
  it can tell the resident to note the number from the screen, and report it to managers.
* **One place for faults.** Any failure (no device, connection refused, broken pipe) becomes
  a :class:`PrinterStatus` with a :class:`Fault` value that maps 1:1 onto the protocol's
  ``FaultReport.fault``; callers never see an escpos or socket exception.

The QR code is printed natively (``GS ( k``, rendered by the printer at full resolution,
~100 bytes, fast even on a 9600-baud serial link) when the printer profile says the printer
supports it, and as a raster image made with the ``qrcode`` package otherwise.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import platform
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

DLE_EOT = b"\x10\x04"
STATUS_PRINTER = 1  # DLE EOT 1: bit 3 = offline
STATUS_OFFLINE_CAUSE = 2  # DLE EOT 2: bit 2 = cover open, bit 5 = stopped for paper end
STATUS_PAPER = 4  # DLE EOT 4: bits 2-3 = paper near end, bits 5-6 = paper end

LATIN_CODEPAGE = "CP852"
CYRILLIC_CODEPAGE = "CP866"
_CP866_SUBSTITUTES = str.maketrans({"і": "i", "І": "I", "ґ": "г", "Ґ": "Г"})
# Typography that neither CP852 nor CP866 has (it would print as "?"), in its plain form.
# Polish texts use „…” quotes and – dashes (office and service names come from the config).
_TYPOGRAPHY = str.maketrans(
    {
        "„": '"',
        "”": '"',
        "“": '"',
        "‟": '"',
        "«": '"',
        "»": '"',
        "‚": "'",
        "‘": "'",
        "’": "'",
        "‛": "'",
        "–": "-",
        "—": "-",
        "‒": "-",
        "‐": "-",
        "‑": "-",
        "−": "-",
        "…": "...",
        "•": "*",
        "·": "*",
        "\u00a0": " ",
        "\u202f": " ",
        "\u2009": " ",
    }
)


class Fault(StrEnum):
    """The printer's state, in the protocol's ``FaultReport.fault`` vocabulary."""

    OK = "ok"
    OFFLINE = "offline"
    PAPER_OUT = "paper_out"
    PAPER_LOW = "paper_low"
    COVER_OPEN = "cover_open"
    ERROR = "error"


@dataclass(frozen=True)
class PrinterStatus:
    fault: Fault
    message: str = ""
    known: bool = True
    """False when the printer cannot report its state (Dummy, one-way links): assumed fine."""

    @property
    def can_print(self) -> bool:
        return self.fault in (Fault.OK, Fault.PAPER_LOW)


@dataclass(frozen=True)
class TicketLayout:
    """What goes on paper, top to bottom. Built by the kiosk; the printer only lays it out."""

    header: str  # office name
    number: str  # printed very large
    lines: list[str] = field(default_factory=list)  # service, date, people ahead, ...
    qr_url: str = ""
    footer: list[str] = field(default_factory=list)  # e.g. "scan to follow your turn"


@dataclass(frozen=True)
class PrinterSettings:
    """Where the printer is. ``kind`` picks the python-escpos back-end."""

    kind: Literal["dummy", "network", "usb", "serial"] = "dummy"
    host: str = "127.0.0.1"  # network
    port: int = 9100  # network
    usb_vendor: int = 0x04B8  # usb (Epson by default)
    usb_product: int = 0x0E15
    usb_in_ep: int = 0x82  # endpoints differ between models; `lsusb -v` shows them
    usb_out_ep: int = 0x01
    serial_device: str = "/dev/ttyUSB0"  # serial
    baudrate: int = 9600
    profile: str = "default"  # python-escpos printer profile (code pages, QR support, width)
    timeout_s: float = 3.0
    query_status: bool = True  # ask DLE EOT before printing (off for one-way links)
    dummy_output: str | None = None  # dummy: append each job's bytes to this file
    qr: Literal["auto", "native", "image"] = "auto"
    cut: bool = True


class PrinterError(Exception):
    def __init__(self, status: PrinterStatus) -> None:
        super().__init__(status.message)
        self.status = status


def _import_capabilities() -> None:
    """Import python-escpos' printer database from its JSON, not through PyYAML, leaving nothing in /tmp.

    Why: python-escpos (3.1) parses its ``capabilities.json`` (96 kB) with PyYAML's pure-Python
    parser when ``escpos.capabilities`` is imported — 0.23 s of CPU, a sixth of the kiosk's start —
    unless it finds a pickle of it in ``ESCPOS_CAPABILITIES_PICKLE_DIR``. That folder defaults to a
    new temporary folder on every import: the pickle is never found again, and each kiosk start
    left a folder in /tmp (escpos makes that folder even when the variable is set). The file is JSON (PyYAML reads it as the same dicts), so ``json`` reads
    it in milliseconds, and escpos gets it as the pickle it looks for, in a folder of ours that is
    removed right after. A site that set either of escpos' own variables keeps escpos' behaviour.
    """
    own = {"ESCPOS_CAPABILITIES_PICKLE_DIR", "ESCPOS_CAPABILITIES_FILE"} & os.environ.keys()
    if own or "escpos.capabilities" in sys.modules:
        import escpos.capabilities  # noqa: F401

        return
    from importlib.resources import files

    data = json.loads((files("escpos") / "capabilities.json").read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="numerek-escpos-") as folder:
        pickled = Path(folder) / f"{platform.python_version()}.capabilities.pickle"  # escpos' own name for it
        pickled.write_bytes(pickle.dumps(data, protocol=2))
        os.environ["ESCPOS_CAPABILITIES_PICKLE_DIR"] = folder
        # escpos makes its default folder even when the variable is set: in ours, then
        default_tmp, tempfile.tempdir = tempfile.tempdir, folder
        try:
            import escpos.capabilities  # noqa: F401
        finally:
            tempfile.tempdir = default_tmp
            del os.environ["ESCPOS_CAPABILITIES_PICKLE_DIR"]


class TicketPrinter:
    """An ESC/POS ticket printer. Thread-safe: one job at a time.

    >>> p = TicketPrinter(PrinterSettings(kind="dummy"))
    >>> p.print_ticket(TicketLayout("Urząd", "A001")).fault
    <Fault.OK: 'ok'>
    """

    def __init__(self, settings: PrinterSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()  # one job at a time on the device
        self._cond = threading.Condition(self._lock)  # a status check waiting for a ticket's answer
        self._meta = threading.Lock()  # guards _wanted (read while _lock is held by someone else)
        self._wanted = 0  # print_ticket calls waiting for _lock
        self._jobs = 0  # tickets finished (under _lock)
        self._last_job = PrinterStatus(Fault.OK, known=False)
        self.last_job = b""  # the bytes of the last job on a dummy printer (tests, debugging)
        # Fail at start-up, not at the first ticket, if the profile lacks our code pages.
        _import_capabilities()
        from escpos.capabilities import get_profile

        pages = set(get_profile(settings.profile).get_code_pages())
        missing = {LATIN_CODEPAGE, CYRILLIC_CODEPAGE} - pages
        if missing:
            raise ValueError(f"printer profile {settings.profile!r} has no {', '.join(sorted(missing))} code page")

    # ------------------------------------------------------------------ device

    def _device(self):
        s = self.settings
        from escpos import printer as ep

        if s.kind == "dummy":
            return ep.Dummy(profile=s.profile)
        if s.kind == "network":
            dev = ep.Network(host=s.host, port=s.port, timeout=s.timeout_s, profile=s.profile)
        elif s.kind == "usb":
            dev = ep.Usb(
                s.usb_vendor,
                s.usb_product,
                timeout=int(s.timeout_s * 1000),
                in_ep=s.usb_in_ep,
                out_ep=s.usb_out_ep,
                profile=s.profile,
            )
        elif s.kind == "serial":
            dev = ep.Serial(devfile=s.serial_device, baudrate=s.baudrate, timeout=s.timeout_s, profile=s.profile)
        else:  # pragma: no cover - settings are validated
            raise ValueError(s.kind)
        dev.open()
        return dev

    def _where(self) -> str:
        s = self.settings
        return {
            "dummy": "dummy printer",
            "network": f"network printer {s.host}:{s.port}",
            "usb": f"USB printer {s.usb_vendor:04x}:{s.usb_product:04x}",
            "serial": f"serial printer {s.serial_device}",
        }[s.kind]

    def _open(self):
        try:
            return self._device()
        except Exception as exc:  # DeviceNotFoundError, OSError, usb.core errors...
            raise PrinterError(PrinterStatus(Fault.OFFLINE, f"cannot reach the {self._where()}: {exc}")) from exc

    # ------------------------------------------------------------------ status

    def _ask(self, dev, n: int) -> int | None:
        """Send ``DLE EOT n`` and return the status byte, as soon as it arrives.

        The answer is a single byte. python-escpos' serial ``_read`` asks pyserial for 16
        bytes, which waits out the whole timeout even after the byte is in: three queries
        cost ~9 s per ticket at the default 3 s. So on a serial line we read exactly one
        byte (returns on arrival; the timeout only runs out on a silent printer) and drop
        any stale byte first, so a late answer to an earlier query is not taken for this
        one. TCP ``recv`` and USB reads already return on the first data.
        """
        try:
            port = dev.device if self.settings.kind == "serial" else None
            if port is not None:
                port.reset_input_buffer()
            dev._raw(DLE_EOT + bytes([n]))
            answer = port.read(1) if port is not None else dev._read()
        except Exception as exc:
            log.debug("status query %d unanswered: %s", n, exc)
            return None
        return answer[-1] if answer else None

    def _status_of(self, dev, give_way: bool = False) -> PrinterStatus | None:
        """Ask the printer's sensors. ``None`` when ``give_way`` and a ticket is waiting.

        Two queries normally: the printer (online?) and the paper sensor. The offline cause
        (cover, paper-end stop) is asked only when the printer says it is offline; an
        online printer cannot have its cover open.
        """
        if self.settings.kind == "dummy" or not self.settings.query_status:
            return PrinterStatus(Fault.OK, known=False)
        printer = self._ask(dev, STATUS_PRINTER)
        if printer is None:
            return PrinterStatus(Fault.OK, "the printer does not report its status", known=False)
        if give_way and self.ticket_waiting:
            return None
        cause = (self._ask(dev, STATUS_OFFLINE_CAUSE) or 0) if printer & 0x08 else 0
        if give_way and self.ticket_waiting:
            return None
        paper = self._ask(dev, STATUS_PAPER) or 0
        if cause & 0x04:
            return PrinterStatus(Fault.COVER_OPEN, "the printer cover is open")
        if paper & 0x60 or cause & 0x20:
            return PrinterStatus(Fault.PAPER_OUT, "the printer is out of paper")
        if printer & 0x08:
            return PrinterStatus(Fault.OFFLINE, "the printer is offline")
        if paper & 0x0C:
            return PrinterStatus(Fault.PAPER_LOW, "the paper roll is nearly empty")
        return PrinterStatus(Fault.OK)

    @property
    def ticket_waiting(self) -> bool:
        """True while a :meth:`print_ticket` call waits for the printer."""
        with self._meta:
            return self._wanted > 0

    def status(self) -> PrinterStatus:
        """Ask the printer how it is (opens and closes the device).

        Never makes a ticket wait: the kiosk asks this periodically, and a resident may tap
        in the middle of it. If a ticket arrives meanwhile, the check stops after the query
        in flight and lets the ticket have the printer; the ticket asks the printer itself
        before printing, and its answer (the freshest) is returned here too.
        """
        with self._cond:
            try:
                dev = self._open()
            except PrinterError as exc:
                return exc.status
            try:
                status = self._status_of(dev, give_way=True)
            finally:
                _close(dev)
            if status is not None:
                return status
            seen = self._jobs
            self._cond.wait_for(lambda: self._jobs > seen)
            return self._last_job

    # ------------------------------------------------------------------ printing

    def print_ticket(self, ticket: TicketLayout) -> PrinterStatus:
        """Check the printer (one status round), then print. Returns the state; never raises.

        A printer that says it is out of paper or has its cover open is not sent the job:
        the ticket would be lost in its buffer and printed for the next person.
        """
        with self._meta:
            self._wanted += 1
        with self._cond:
            with self._meta:
                self._wanted -= 1
            status = PrinterStatus(Fault.ERROR, "printing did not finish")
            try:
                status = self._print_now(ticket)
                return status
            finally:
                self._last_job = status
                self._jobs += 1
                self._cond.notify_all()

    def _print_now(self, ticket: TicketLayout) -> PrinterStatus:
        try:
            dev = self._open()
        except PrinterError as exc:
            return exc.status
        try:
            status = self._status_of(dev)
            assert status is not None  # only a give-way check returns None
            if not status.can_print:
                return status
            self._render(dev, ticket)
            if self.settings.kind == "dummy":
                self.last_job = dev.output
                if self.settings.dummy_output:
                    with Path(self.settings.dummy_output).open("ab") as f:
                        f.write(dev.output)
            return status
        except Exception as exc:
            log.warning("printing failed: %s", exc)
            return PrinterStatus(Fault.ERROR, f"printing failed on the {self._where()}: {exc}")
        finally:
            _close(dev)

    def _render(self, dev, t: TicketLayout) -> None:
        dev.hw("INIT")
        dev.set(align="center", bold=True, double_width=False, double_height=False)
        self._text(dev, t.header + "\n")
        dev.set(align="center", bold=True, custom_size=True, width=6, height=6)
        self._text(dev, t.number + "\n")
        dev.set(align="center", normal_textsize=True, bold=False)
        for line in t.lines:
            self._text(dev, line + "\n")
        if t.qr_url:
            native = self.settings.qr == "native" or (self.settings.qr == "auto" and dev.profile.supports("qrCode"))
            dev.qr(t.qr_url, size=6, native=native, center=not native)
        for line in t.footer:
            self._text(dev, line + "\n")
        if self.settings.cut:
            dev.cut()

    @staticmethod
    def _text(dev, text: str) -> None:
        """Write ``text`` in a deliberately chosen code page (see the module docstring)."""
        for run, cyrillic in _runs(text.translate(_TYPOGRAPHY)):
            if cyrillic:
                dev.charcode(CYRILLIC_CODEPAGE)
                dev.text(run.translate(_CP866_SUBSTITUTES))
            else:
                dev.charcode(LATIN_CODEPAGE)
                dev.text(run)


def _is_cyrillic(ch: str) -> bool:
    return "\u0400" <= ch <= "\u04ff"


def _runs(text: str) -> list[tuple[str, bool]]:
    """Split into runs of Cyrillic / non-Cyrillic; spaces and digits join the current run."""
    runs: list[tuple[str, bool]] = []
    for ch in text:
        cyr = _is_cyrillic(ch)
        if runs and (runs[-1][1] == cyr or (not ch.isalpha())):
            runs[-1] = (runs[-1][0] + ch, runs[-1][1])
        else:
            runs.append((ch, cyr))
    return runs


def _close(dev) -> None:
    try:
        dev.close()
    except Exception:  # closing a broken device must not hide the real fault
        pass
