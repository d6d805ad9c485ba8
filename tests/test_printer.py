"""The ticket printer (hardware/printer.py) against python-escpos' Dummy printer and a
loopback TCP "network printer" that answers ESC/POS status queries like a real one.

The bytes are what matters here: a thermal printer prints exactly what it receives, so a
wrong code page is a ticket with "Urz?d" on it.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import threading
import time
import tty

import pytest

from hardware.printer import Fault, PrinterSettings, TicketLayout, TicketPrinter
from tests.harness import ROOT, free_port, wait_for

ESC_T_CP852 = b"\x1bt\x12"  # ESC t 18: CP852 (Latin-2, Polish) on Epson-compatible printers
ESC_T_CP866 = b"\x1bt\x11"  # ESC t 17: CP866 (Cyrillic)
POLISH = "Zażółć gęślą jaźń ŁÓDŹ ĄĘŚĆŃŻŹ"
# DLE EOT answers: bit 1 and 4 are always set; see the ESC/POS reference.
STATUS_FINE = {1: 0x12, 2: 0x12, 4: 0x12}


class LoopbackPrinter:
    """A network printer on 127.0.0.1: records every connection's bytes and answers
    ``DLE EOT n`` with ``status[n]`` (no answer for n missing, like a one-way printer)."""

    def __init__(self, status: dict[int, int] | None = None) -> None:
        self.status = dict(STATUS_FINE if status is None else status)
        self.port = free_port()
        self.connections: list[bytearray] = []
        self.arrivals: dict[int, list[tuple[float, int]]] = {}
        """Per connection (``id()`` of its bytes): (time.monotonic(), offset) of each chunk, for bench/."""
        self._sock = socket.create_server(("127.0.0.1", self.port))
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        data = bytearray()
        self.connections.append(data)
        conn.settimeout(0.2)
        with conn:
            while not self._stop.is_set():
                try:
                    chunk = conn.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                start = len(data)
                self.arrivals.setdefault(id(data), []).append((time.monotonic(), start))
                data += chunk
                i = data.find(b"\x10\x04", max(0, start - 2))
                while i != -1 and i + 2 < len(data):
                    n = data[i + 2]
                    if n in self.status:
                        conn.sendall(bytes([self.status[n]]))
                    i = data.find(b"\x10\x04", i + 3)

    @property
    def received(self) -> bytes:
        return b"".join(bytes(c) for c in self.connections)

    def close(self) -> None:
        self._stop.set()
        self._sock.close()


class SerialLoopbackPrinter:
    """A serial printer on a pseudo-terminal pair: the kiosk opens the pty's device file
    with pyserial as it would /dev/ttyUSB0; this side records the bytes and answers each
    ``DLE EOT n`` with ``status[n]``, one byte, like a real printer. Answers wait while
    ``hold`` is cleared (a printer that is slow to answer)."""

    def __init__(self, status: dict[int, int] | None = None) -> None:
        self.status = dict(STATUS_FINE if status is None else status)
        self.master, self._slave = os.openpty()  # the slave stays open: the pty outlives each job
        tty.setraw(self.master)
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        self.received = bytearray()
        self.queries: list[int] = []  # n of each DLE EOT n, in order
        self.hold = threading.Event()
        self.hold.set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if not ready:
                continue
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                return
            start = len(self.received)
            self.received += chunk
            i = self.received.find(b"\x10\x04", max(0, start - 2))
            while i != -1 and i + 2 < len(self.received):
                n = self.received[i + 2]
                self.queries.append(n)
                self.hold.wait()
                if n in self.status:
                    os.write(self.master, bytes([self.status[n]]))
                i = self.received.find(b"\x10\x04", i + 3)

    def close(self) -> None:
        self._stop.set()
        self.hold.set()
        self._thread.join(5)
        os.close(self.master)
        os.close(self._slave)


@pytest.fixture
def serial_printer():
    p = SerialLoopbackPrinter()
    yield p
    p.close()


@pytest.fixture
def loopback():
    p = LoopbackPrinter()
    yield p
    p.close()


def layout(**kw) -> TicketLayout:
    base = dict(
        header="Urząd Testowy w Łodzi",
        number="A017",
        lines=["Rejestracja pojazdów", POLISH],
        qr_url="http://192.0.2.1:8080/t/Tok3n_abc",
    )
    return TicketLayout(**{**base, **kw})


def test_polish_text_is_sent_in_cp852_after_selecting_that_code_page():
    p = TicketPrinter(PrinterSettings(kind="dummy"))
    assert p.print_ticket(layout()).fault == Fault.OK
    job = p.last_job
    assert ESC_T_CP852 + "Urząd Testowy w Łodzi".encode("cp852") in job
    assert POLISH.encode("cp852") in job
    # A few letters checked against the CP852 table itself, not only Python's codec.
    assert b"Urz\xa5d" in job and b"\x9dodzi" in job  # ą = A5, Ł = 9D
    assert "ł".encode("cp852") == b"\x88" and b"\x88" in job
    assert b"?" not in job.split(b"\x1d(k")[0]  # nothing replaced before the QR code
    assert b"A017" in job


def test_typographic_quotes_and_dashes_print_as_plain_ones_not_question_marks():
    p = TicketPrinter(PrinterSettings(kind="dummy"))
    p.print_ticket(
        layout(
            header="Urząd Miasta „Łódź” – Wydział Komunikacji",
            lines=["Sprawa „Prawo jazdy” — odbiór…", "Реєстрація – «паспорт»"],
            qr_url="",
        )
    )
    job = p.last_job
    assert b"?" not in job
    assert ESC_T_CP852 + 'Urząd Miasta "Łódź" - Wydział Komunikacji'.encode("cp852") in job
    assert 'Sprawa "Prawo jazdy" - odbiór...'.encode("cp852") in job
    assert ESC_T_CP866 + "Реєстрація".replace("і", "i").encode("cp866") in job
    assert b'"' + "паспорт".encode("cp866") + b'"' in job


def test_ukrainian_text_switches_to_cp866_and_back_to_cp852():
    p = TicketPrinter(PrinterSettings(kind="dummy"))
    p.print_ticket(layout(lines=["Реєстрація транспортних засобів", "Paszporty"], qr_url=""))
    job = p.last_job
    # CP866 has no Ukrainian і: it is printed as the identical-looking Latin i.
    assert ESC_T_CP866 + "Реєстрація транспортних засобів".replace("і", "i").encode("cp866") in job
    assert job.index(ESC_T_CP866) < job.rindex(ESC_T_CP852) < job.index(b"Paszporty")


def test_qr_code_is_printed_natively_with_the_status_url():
    p = TicketPrinter(PrinterSettings(kind="dummy"))
    p.print_ticket(layout())
    url = b"http://192.0.2.1:8080/t/Tok3n_abc"
    store = b"\x1d(k" + (len(url) + 3).to_bytes(2, "little") + b"1P0" + url  # GS ( k: store QR data
    assert store in p.last_job
    assert b"\x1d(k\x03\x001Q0" in p.last_job  # GS ( k: print the stored symbol


def test_qr_code_can_be_printed_as_an_image_for_printers_without_native_qr():
    p = TicketPrinter(PrinterSettings(kind="dummy", qr="image"))
    p.print_ticket(layout())
    assert b"\x1d(k" not in p.last_job
    assert b"\x1dv0" in p.last_job  # GS v 0: raster bit image


def test_profile_without_polish_code_page_is_refused_at_start():
    with pytest.raises(ValueError, match="CP852"):
        TicketPrinter(PrinterSettings(kind="dummy", profile="simple"))


def test_starting_a_printer_reads_escpos_profiles_from_json_and_leaves_nothing_in_tmp(tmp_path):
    """python-escpos parsed its printer database as YAML on every start (0.23 s of CPU, a sixth of
    the kiosk's start) and left a temporary folder behind each time (hardware/printer.py
    ``_import_capabilities``). A fresh process, as the kiosk starts: the same profiles, nothing left."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    code = (
        "import json, sys\n"
        "from importlib.resources import files\n"
        "from hardware.printer import PrinterSettings, TicketLayout, TicketPrinter\n"
        "p = TicketPrinter(PrinterSettings(kind='dummy'))\n"
        "assert p.print_ticket(TicketLayout('Urząd', 'A001')).fault.value == 'ok'\n"
        "import escpos.capabilities as caps\n"
        "assert caps.CAPABILITIES == json.loads((files('escpos') / 'capabilities.json').read_text('utf-8'))\n"
        "assert 'yaml.composer' not in sys.modules or not caps.full_load, 'parsed as YAML'\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "TMPDIR": str(tmp)}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert list(tmp.iterdir()) == [], "a folder left in /tmp by each start"


def test_network_printer_receives_the_ticket_after_a_status_check(loopback):
    p = TicketPrinter(PrinterSettings(kind="network", port=loopback.port, timeout_s=2))
    status = p.print_ticket(layout())
    assert status.fault == Fault.OK and status.known
    wait_for(lambda: b"\x1dV" in loopback.received, 5, "the cut command")
    got = loopback.received
    assert got.index(b"\x10\x04\x01") < got.index(b"A017")
    assert ESC_T_CP852 + "Urząd Testowy w Łodzi".encode("cp852") in got


@pytest.mark.parametrize(
    ("answers", "fault"),
    [
        ({1: 0x12, 2: 0x12, 4: 0x72}, Fault.PAPER_OUT),  # paper roll sensor: paper end
        ({1: 0x1A, 2: 0x16, 4: 0x12}, Fault.COVER_OPEN),  # offline because the cover is open
        ({1: 0x1A, 2: 0x12, 4: 0x12}, Fault.OFFLINE),
    ],
)
def test_printer_that_cannot_print_is_not_sent_the_ticket(answers, fault):
    printer = LoopbackPrinter(answers)
    try:
        p = TicketPrinter(PrinterSettings(kind="network", port=printer.port, timeout_s=2))
        status = p.print_ticket(layout())
        assert status.fault == fault and not status.can_print
        assert p.status().fault == fault
        assert b"A017" not in printer.received
    finally:
        printer.close()


def test_paper_nearly_out_still_prints_but_says_so():
    printer = LoopbackPrinter({1: 0x12, 2: 0x12, 4: 0x1E})
    try:
        p = TicketPrinter(PrinterSettings(kind="network", port=printer.port, timeout_s=2))
        status = p.print_ticket(layout())
        assert status.fault == Fault.PAPER_LOW and status.can_print
        wait_for(lambda: b"A017" in printer.received, 5, "the ticket")
    finally:
        printer.close()


def test_printer_without_status_replies_still_prints():
    printer = LoopbackPrinter({})
    try:
        p = TicketPrinter(PrinterSettings(kind="network", port=printer.port, timeout_s=0.5))
        status = p.print_ticket(layout())
        assert status.fault == Fault.OK and not status.known
        wait_for(lambda: b"A017" in printer.received, 5, "the ticket")
    finally:
        printer.close()


def test_refused_connection_is_reported_as_offline_not_raised():
    port = free_port()  # nothing listens here
    p = TicketPrinter(PrinterSettings(kind="network", port=port, timeout_s=1))
    status = p.print_ticket(layout())
    assert status.fault == Fault.OFFLINE
    assert f"127.0.0.1:{port}" in status.message
    assert p.status().fault == Fault.OFFLINE


def test_missing_usb_and_serial_printers_are_reported_as_offline():
    usb = TicketPrinter(PrinterSettings(kind="usb", usb_vendor=0x1234, usb_product=0x5678))
    assert usb.print_ticket(layout()).fault == Fault.OFFLINE
    serial = TicketPrinter(PrinterSettings(kind="serial", serial_device="/dev/numerek-no-such-tty"))
    status = serial.print_ticket(layout())
    assert status.fault == Fault.OFFLINE and "/dev/numerek-no-such-tty" in status.message


def test_serial_printer_answers_are_read_at_once_so_a_ticket_does_not_wait_out_the_timeout(serial_printer):
    # A long read timeout: reading only stops early when the answer byte is taken as it
    # arrives. Waiting out even one timeout would overrun the wait below by far.
    p = TicketPrinter(PrinterSettings(kind="serial", serial_device=serial_printer.path, timeout_s=60))
    done: list = []
    threading.Thread(target=lambda: done.append(p.print_ticket(layout())), daemon=True).start()
    wait_for(lambda: done, 20, "the serial ticket job")
    assert done[0].fault == Fault.OK and done[0].known
    wait_for(lambda: b"\x1dV" in serial_printer.received, 5, "the cut command")
    got = bytes(serial_printer.received)
    assert b"A017" in got and ESC_T_CP852 + "Urząd Testowy w Łodzi".encode("cp852") in got
    # One status round per ticket: online? and paper; the offline cause only when offline.
    assert serial_printer.queries == [1, 4]
    assert got.rindex(b"\x10\x04") < got.index(b"A017")


def test_serial_printer_reports_paper_out_and_cover_open(serial_printer):
    p = TicketPrinter(PrinterSettings(kind="serial", serial_device=serial_printer.path, timeout_s=60))
    serial_printer.status = {1: 0x1A, 2: 0x16, 4: 0x12}  # offline: cover open
    assert p.status().fault == Fault.COVER_OPEN
    serial_printer.status = {1: 0x12, 2: 0x12, 4: 0x72}  # paper end
    assert p.print_ticket(layout()).fault == Fault.PAPER_OUT
    assert b"A017" not in serial_printer.received


def test_a_ticket_does_not_wait_for_a_periodic_status_check_to_finish(serial_printer):
    p = TicketPrinter(PrinterSettings(kind="serial", serial_device=serial_printer.path, timeout_s=60))
    serial_printer.hold.clear()  # the printer is slow with its first answer
    checked: list = []
    threading.Thread(target=lambda: checked.append(p.status()), daemon=True).start()
    wait_for(lambda: serial_printer.queries == [1], 10, "the periodic check's first query")
    printed: list = []
    threading.Thread(target=lambda: printed.append(p.print_ticket(layout())), daemon=True).start()
    wait_for(lambda: p.ticket_waiting, 10, "the ticket waiting for the printer")
    serial_printer.hold.set()
    wait_for(lambda: printed and checked, 20, "the ticket and the check")
    assert printed[0].fault == Fault.OK
    assert checked[0] == printed[0]  # the check reports what the ticket's own query found
    wait_for(lambda: b"\x1dV" in serial_printer.received, 5, "the cut command")
    # The check stopped after its first query; the ticket then asked once for itself.
    assert serial_printer.queries == [1, 1, 4]
