"""The kiosk end to end: the real Kivy app (``python -m kiosk.cli``) on a private Xvfb
screen, clicked with xdotool, against the real broker and the real server.

What the app shows is read from its ``--trace`` file (the texts of the labels and buttons
on screen, and where the buttons are) and from the screenshots it saves under
tests/artifacts/kiosk/<test>/; the tickets from the server's HTTP API; the printed bytes
from the Dummy printer's output file or a loopback TCP printer.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

from kiosk.style import MIN_CAP_MM, MIN_CONTRAST, MIN_TEXT_PX, cap_height_mm
from tests.harness import (
    ALWAYS_OPEN,
    ServerProcess,
    VirtualScreen,
    free_port,
    midday_zone,
    start_app,
    wait_for,
    write_config,
)
from tests.test_printer import ESC_T_CP852, ESC_T_CP866, STATUS_FINE, LoopbackPrinter

BANNERS = ("System kolejkowy chwilowo nie działa", "Łączenie z systemem kolejkowym")
pytestmark = pytest.mark.skipif(shutil.which("xdotool") is None, reason="xdotool not installed (.ci/setup)")


class Kiosk:
    """``numerek-kiosk`` as a subprocess on the test's virtual screen."""

    def __init__(
        self,
        workdir: Path,
        screen,
        broker_port: int,
        public_url: str,
        printer: str,
        shots: Path,
        width: int = 1280,
        height: int = 720,
        idle_timeout_s: float = 5,
        fault_timeout_s: float = 90,
        bookings: bool = False,
        extra: str = "",
    ) -> None:
        self.workdir = workdir
        self.env = {**screen.env(), "KIVY_HOME": str(workdir / "kivy")}
        self.trace = workdir / "trace.jsonl"
        self._since = 0  # the trace entries before the last tap (wait's since_tap)
        self._entries: list[dict] = []  # the trace read so far, and how many of its bytes
        self._read = 0
        self.output = workdir / "printed.bin"
        self.config = workdir / "kiosk.toml"
        self.config.write_text(
            f"""
[kiosk]
id = "k1"
public_url = "{public_url}"
idle_timeout_s = {idle_timeout_s}
fault_timeout_s = {fault_timeout_s}
response_timeout_s = 3
bookings = {str(bookings).lower()}
{extra}
[mqtt]
port = {broker_port}

[printer]
{printer}

[screen]
fullscreen = false
width = {width}
height = {height}
""",
            encoding="utf-8",
        )
        self.shots = shots
        shutil.rmtree(shots, ignore_errors=True)
        log = workdir / "kiosk.log"
        log.write_bytes(b"")
        args = ["--config", str(self.config), "--trace", str(self.trace), "--screenshot-dir", str(shots)]
        self.proc = start_app("kiosk.cli", [*args, "--log-level", "INFO"], self.env, log)

    def entries(self) -> list[dict]:
        if self.proc.poll() is not None:
            raise AssertionError(f"kiosk exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")
        if not self.trace.exists():
            return []
        # Only what was added since the last look (a test polls every 20 ms; parsing the whole trace
        # each time cost the test process seconds of CPU), and only whole lines: the kiosk may be
        # writing one right now, cut anywhere (even inside a Polish letter's two bytes, so decode
        # what ends in a newline only).
        with self.trace.open("rb") as f:
            f.seek(self._read)
            data = f.read()
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break
            try:
                self._entries.append(json.loads(line.decode("utf-8")))
            except ValueError:  # the line being written right now
                break
            self._read += len(line)
        return list(self._entries)

    def now(self) -> dict:
        entries = self.entries()
        return entries[-1] if entries else {"screen": None, "texts": [], "buttons": {}}

    def wait(self, what: str, predicate, timeout: float = 60, since_tap: bool = False) -> dict:
        """What the kiosk shows now, once ``predicate`` holds for it.

        ``since_tap``: the first screen shown since the last tap that matches, even if the kiosk has
        moved on since — for a screen that lasts a few seconds (a ticket lives ``idle_timeout_s``, a
        refusal until the next state), which a test that got no CPU for those seconds on a busy
        machine (xdotool returning late) saw come and go without looking at it."""

        def check():
            if since_tap:
                entries = self.entries()
                for i in range(self._since, len(entries)):
                    if predicate(entries[i]):
                        self._since = i + 1  # a second wait finds the next one
                        return entries[i]
                return None
            e = self.now()
            return e if predicate(e) else None

        try:
            return wait_for(check, timeout, what)
        except AssertionError as exc:
            recent = [(e["screen"], e["texts"][-3:]) for e in self.entries()[-5:]]
            raise AssertionError(f"{exc}; last screens: {recent}\nkiosk log:\n{self.log_text()[-1500:]}") from None

    def wait_home(self, timeout: float = 60) -> dict:
        return self.wait(
            "home screen with services",
            lambda e: (
                e["screen"] == "home"
                and any(k.startswith("service:") for k in e["buttons"])
                and not any(t.startswith(BANNERS) for t in e["texts"])
            ),
            timeout,
        )

    def tap(self, button: str, clicks: int = 1) -> None:
        entry = self.now()
        assert button in entry["buttons"], f"no {button} on {entry['screen']}: {entry['buttons']}"
        self._since = len(self.entries())
        x, y, _enabled = entry["buttons"][button]
        subprocess.run(
            ["xdotool", "mousemove", "--sync", str(x), str(y), "click", "--repeat", str(clicks), "--delay", "80", "1"],
            env=self.env,
            check=True,
            timeout=10,
        )

    def scan(self, code: str) -> None:
        """A 2D scanner acting as a USB keyboard: the code's characters, then Enter."""
        w, h = self.now()["window"][2:]
        self._since = len(self.entries())
        subprocess.run(
            ["xdotool", "mousemove", "--sync", str(w // 2), str(h // 2)], env=self.env, check=True, timeout=10
        )
        subprocess.run(["xdotool", "type", "--delay", "2", code], env=self.env, check=True, timeout=10)
        subprocess.run(["xdotool", "key", "Return"], env=self.env, check=True, timeout=10)

    def text(self) -> str:
        return "\n".join(self.now()["texts"])

    def log_text(self) -> str:
        return (self.workdir / "kiosk.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(60)  # a bound: on a busy machine a killed kiosk took over 5 s to go


@pytest.fixture
def start_kiosk(tmp_path, screen, broker, artifacts, request):
    started: list[Kiosk] = []

    def start(server: ServerProcess, printer: str = 'type = "dummy"\ndummy_output = "printed.bin"') -> Kiosk:
        k = Kiosk(tmp_path, screen, broker.port, server.url, printer, artifacts / "kiosk" / request.node.name)
        started.append(k)
        return k

    yield start
    for k in started:
        k.stop()


def token_of(entry: dict) -> str:
    return entry["qr"].split("/t/")[1].split("?")[0]


def waiting(server: ServerProcess, service: str) -> int:
    return next(q["waiting"] for q in server.get("/api/queues").json() if q["service"] == service)


def test_tapping_a_service_prints_and_shows_a_ticket_the_server_knows(server, start_kiosk):
    kiosk = start_kiosk(server)
    home = kiosk.wait_home()
    assert "Urząd Testowy w Łodzi" in home["texts"]
    assert home["gl_samples"] == 0, "multisampled: each frame 2.5 times the CPU in software rendering"
    assert any(t.startswith("A  Rejestracja pojazdów\nCzeka: 0") for t in home["texts"])
    kiosk.tap("service:rej")
    shown = kiosk.wait(
        "ticket screen after printing", lambda e: e["screen"] == "ticket" and e["printer"], since_tap=True
    )
    assert shown["ticket"] == "A001" and "A001" in shown["texts"]
    assert "Rejestracja pojazdów" in shown["texts"]
    assert "Weź bilet z drukarki poniżej." in shown["texts"]
    # The QR code opens the server's status page for exactly this ticket.
    assert shown["qr"] == f"{server.url}/t/{token_of(shown)}"
    status = server.get(f"/api/tickets/{token_of(shown)}").json()
    assert (status["number"], status["service"], status["status"]) == ("A001", "rej", "waiting")
    assert server.get(shown["qr"].replace(server.url, "")).status_code == 200
    # Date and time on screen are the server's issue time.
    issued = datetime.fromisoformat(status["issued_at"])
    assert f"Wydano: {issued:%d.%m.%Y %H:%M}" in shown["texts"]
    printed = kiosk.output.read_bytes()
    assert b"A001" in printed
    assert ESC_T_CP852 + "Urząd Testowy w Łodzi".encode("cp852") in printed
    assert "Rejestracja pojazdów".encode("cp852") in printed and "Osób przed Tobą: 0".encode("cp852") in printed
    assert b"\x1d(k" + (len(shown["qr"]) + 3).to_bytes(2, "little") + b"1P0" + shown["qr"].encode() in printed
    # The home screen counts the new ticket, and comes back by itself when nobody touches it.
    again = kiosk.wait("home again after the idle timeout", lambda e: e["screen"] == "home", timeout=20)
    assert waiting(server, "rej") == 1
    kiosk.wait(
        "waiting count updated", lambda e: any(t.startswith("A  Rejestracja pojazdów\nCzeka: 1") for t in e["texts"])
    )
    assert again["lang"] == "pl"
    # The screenshots (kiosk/widgets.py ``screenshot``) are the screens as drawn: the window's size,
    # the yellow number on the ticket (kiosk/style.py's YELLOW) on black.
    [ticket_png] = sorted(kiosk.shots.glob("*-ticket.png"))
    with Image.open(ticket_png) as png:
        assert png.size == (1280, 720) and png.mode == "RGB"
        assert any(r == 255 and 215 <= g <= 218 and b == 0 for _n, (r, g, b) in png.getcolors(1280 * 720))
        x, y, _w, _h = shown["boxes"]["done"]  # "Gotowe", at the bottom: the rows are the right way up
        button = png.getpixel((x + 4, y + 4))
        assert button != (0, 0, 0) and png.getpixel((x + 4, 719 - (y + 4))) != button, "upside down"


def test_the_ticket_goes_to_the_printer_before_the_ticket_screen_is_built(server, start_kiosk):
    """The resident waits for the paper: printing starts before the screen's QR code and
    labels are built (issue 14: tap to printed bytes was p95 237 ms with the screen first)."""
    printer = LoopbackPrinter()
    try:
        kiosk = start_kiosk(server, f'type = "network"\nport = {printer.port}\ntimeout_s = 2')
        kiosk.wait_home()
        kiosk.tap("service:rej")
        kiosk.wait("ticket screen after printing", lambda e: e["screen"] == "ticket" and e["printer"], since_tap=True)
        assert b"A001" in printer.received
        log = kiosk.log_text()
        assert "ticket A001: printing" in log and "screen ticket built" in log
        assert log.index("ticket A001: printing") < log.index("screen ticket built")
    finally:
        printer.close()


def test_the_request_leaves_before_the_busy_screen_is_built(server, start_kiosk):
    """Issue 14: the tap's request goes out first; the "please wait" screen is built after it."""
    kiosk = start_kiosk(server)
    kiosk.wait_home()
    kiosk.tap("service:rej")
    kiosk.wait("ticket screen", lambda e: e["screen"] == "ticket" and e["printer"], since_tap=True)
    log = kiosk.log_text()
    assert "ticket for rej: asked" in log and "screen busy built" in log
    assert log.index("ticket for rej: asked") < log.index("screen busy built")


def test_double_tap_gives_one_ticket(server, start_kiosk):
    kiosk = start_kiosk(server)
    kiosk.wait_home()
    kiosk.tap("service:pj", clicks=2)
    shown = kiosk.wait("ticket screen", lambda e: e["screen"] == "ticket" and e["printer"], since_tap=True)
    assert shown["ticket"] == "B001"
    assert waiting(server, "pj") == 1
    assert kiosk.output.read_bytes().count(b"B00") == 1
    kiosk.tap("done")
    kiosk.wait_home()
    assert waiting(server, "pj") == 1


def test_double_tap_on_done_does_not_give_the_next_visitor_a_priority_ticket(server, start_kiosk):
    kiosk = start_kiosk(server)
    kiosk.wait_home()
    kiosk.tap("service:rej")
    ticket = kiosk.wait("first ticket", lambda e: e["screen"] == "ticket" and e["printer"], since_tap=True)
    done_x, done_y, _ = ticket["buttons"]["done"]
    kiosk.tap("done", clicks=2)  # an impatient double tap; the 2nd lands on the home screen
    home = kiosk.wait_home()
    prio_x, prio_y, _ = home["buttons"]["priority"]
    assert abs(prio_y - done_y) < 60  # the toggle really is where "Gotowe" was
    assert home["priority"] is False
    # The next visitor's tap: taps are handled in order, so a toggle from the double tap
    # would show here as a priority ticket.
    kiosk.tap("service:rej")
    shown = kiosk.wait("next visitor's ticket", lambda e: e["screen"] == "ticket" and e["printer"], since_tap=True)
    assert shown["ticket"] == "A002" and shown["priority"] is False
    assert "Twój numer" in shown["texts"] and "Bilet uprzywilejowany" not in shown["texts"]
    assert server.get(f"/api/tickets/{token_of(shown)}").json()["people_ahead"] == 1  # behind A001, not ahead
    assert "ignored" in kiosk.log_text()


def test_ukrainian_visitor_gets_the_screen_in_ukrainian_and_a_bilingual_network_printed_ticket(server, start_kiosk):
    printer = LoopbackPrinter()
    try:
        kiosk = start_kiosk(server, f'type = "network"\nport = {printer.port}\ntimeout_s = 2')
        kiosk.wait_home()
        kiosk.tap("lang:uk")
        home = kiosk.wait("Ukrainian home", lambda e: e["screen"] == "home" and e["lang"] == "uk" and e["buttons"])
        assert "Оберіть послугу, щоб отримати талон" in home["texts"]
        kiosk.tap("service:rej")
        shown = kiosk.wait("ticket screen", lambda e: e["screen"] == "ticket" and e["printer"], since_tap=True)
        assert shown["printer"] == "ok"
        assert {"Ваш номер", "A001", "Реєстрація", "Перед вами: 0"} <= set(shown["texts"])
        assert shown["qr"].endswith("?lang=uk")
        wait_for(lambda: b"A001" in printer.received and b"\x1dV" in printer.received, 10, "the printed ticket")
        got = printer.received
        assert ESC_T_CP852 + "Urząd Testowy w Łodzi".encode("cp852") in got
        assert "Rejestracja pojazdów".encode("cp852") in got
        assert ESC_T_CP866 + "Реєстрація".replace("і", "i").encode("cp866") in got  # і printed as Latin i
        assert shown["qr"].encode() in got
    finally:
        printer.close()


def test_printer_refusing_connections_still_shows_the_number_and_reports_the_fault(server, start_kiosk):
    dead_port = free_port()  # nobody listens: connection refused, like a printer switched off
    kiosk = start_kiosk(server, f'type = "network"\nport = {dead_port}\ntimeout_s = 1')
    warned = "Drukarka nie działa – numer i kod QR pokażemy na ekranie."
    kiosk.wait("home warns about the printer", lambda e: e["screen"] == "home" and warned in e["texts"])
    kiosk.wait_home()
    kiosk.tap("service:rej")
    shown = kiosk.wait(
        "ticket screen with printer outcome", lambda e: e["screen"] == "ticket" and e["printer"], since_tap=True
    )
    assert shown["printer"] == "offline"
    assert shown["ticket"] == "A001" and "A001" in shown["texts"]
    assert any(t.startswith("Drukarka nie działa (brak połączenia).") for t in shown["texts"])
    assert server.get(f"/api/tickets/{token_of(shown)}").json()["number"] == "A001"
    devices = wait_for(
        lambda: (d := server.get("/api/devices").json()).get("kiosk-k1", {}).get("fault") == "offline" and d,
        10,
        "fault at /api/devices",
    )
    assert str(dead_port) in devices["kiosk-k1"]["message"]


def test_paper_out_is_said_on_screen_reported_and_cleared_when_paper_is_back(server, start_kiosk):
    printer = LoopbackPrinter({1: 0x12, 2: 0x12, 4: 0x72})  # paper roll sensor: paper end
    try:
        kiosk = start_kiosk(server, f'type = "network"\nport = {printer.port}\ntimeout_s = 2')
        warned = "Drukarka nie działa – numer i kod QR pokażemy na ekranie."
        kiosk.wait("home warns about the printer", lambda e: e["screen"] == "home" and warned in e["texts"])
        wait_for(
            lambda: server.get("/api/devices").json().get("kiosk-k1", {}).get("fault") == "paper_out", 10, "paper_out"
        )
        kiosk.wait_home()
        kiosk.tap("service:pasz")
        shown = kiosk.wait("ticket screen", lambda e: e["screen"] == "ticket" and e["printer"], since_tap=True)
        assert shown["printer"] == "paper_out" and shown["ticket"] == "P001"
        assert any("brak papieru" in t for t in shown["texts"])
        assert b"P001" not in printer.received  # not left in the buffer for the next person
        printer.status = {1: 0x12, 2: 0x12, 4: 0x12}  # staff put a new roll in
        kiosk.tap("done")
        kiosk.wait_home()
        kiosk.tap("service:pasz")
        kiosk.wait("second ticket printed", lambda e: e["screen"] == "ticket" and e["printer"] == "ok", since_tap=True)
        wait_for(lambda: b"P002" in printer.received, 10, "P002 printed")
        wait_for(
            lambda: server.get("/api/devices").json().get("kiosk-k1", {}).get("fault") == "ok", 10, "fault cleared"
        )
    finally:
        printer.close()


def test_server_unreachable_shows_a_clear_message_greys_out_the_services_and_gives_no_ticket(
    server, broker, start_kiosk
):
    kiosk = start_kiosk(server)
    kiosk.wait_home()

    def says_down(e: dict) -> bool:
        return e["screen"] == "home" and any("System kolejkowy chwilowo nie działa" in t for t in e["texts"])

    def no_ticket_issued(e: dict) -> bool:
        return e["screen"] == "message" and any("Bilet NIE został wydany." in t for t in e["texts"])

    # 1. The server hangs (stopped, connection still open): nobody answers the request.
    server.freeze()
    try:
        kiosk.tap("service:rej")
        kiosk.wait("'no ticket' message after the response timeout", no_ticket_issued, timeout=15)
    finally:
        server.kill9()  # SIGKILL also ends a stopped process
    server.start()  # the same database: the unanswered request must not have made a ticket
    assert waiting(server, "rej") == 0
    # The message goes away by itself after the idle timeout; the banner once the server is back.
    kiosk.wait("home, server back", lambda e: e["screen"] == "home" and not says_down(e) and e["buttons"], 30)

    # 2. The server is gone (its last will says so): the kiosk says so before anyone taps,
    #    and its buttons do not look as if they would give a ticket.
    server.kill9()
    down = kiosk.wait("home says the system is down", says_down)
    assert_services_greyed_out(kiosk, down, "pj", "Chwilowo niedostępne")
    server.start()
    assert waiting(server, "pj") == 0
    home = kiosk.wait("home, server back", lambda e: e["screen"] == "home" and not says_down(e) and e["buttons"], 30)
    assert all(home["buttons"][f"service:{s}"][2] for s in ("rej", "pj", "pasz"))  # live again

    # 3. The broker is gone.
    broker.stop()
    down = kiosk.wait("home says the system is down", says_down)
    assert_services_greyed_out(kiosk, down, "pasz", "Chwilowo niedostępne")
    assert not kiosk.output.exists()  # nothing was ever printed


def test_a_request_the_stalled_server_reads_after_the_kiosk_gave_up_issues_no_ticket(server, peer, start_kiosk):
    """No ghost tickets: the resident was told "Bilet NIE został wydany", so none may exist."""
    peer.subscribe("numerek/kiosk/k1/response/#")
    kiosk = start_kiosk(server)
    kiosk.wait_home()
    kiosk.tap("service:rej")  # a first ticket: its response also tells the kiosk the server's time
    kiosk.wait("first ticket", lambda e: e["screen"] == "ticket" and e["printer"], since_tap=True)
    first = peer.expect("numerek/kiosk/k1/response/#", where=lambda d: d["ok"])
    kiosk.tap("done")
    kiosk.wait_home()

    server.freeze()  # frozen: the request waits, unread, in its socket
    try:
        kiosk.tap("service:rej")
        kiosk.wait(
            "'no ticket' message after the response timeout",
            lambda e: e["screen"] == "message" and any("Bilet NIE został wydany." in t for t in e["texts"]),
            timeout=15,
        )
    finally:
        server.thaw()
    # The server wakes up, reads the request and must refuse it: the kiosk gave up on it.
    late = peer.expect("numerek/kiosk/k1/response/#", timeout=15, where=lambda d: d["id"] != first["id"])
    assert not late["ok"] and late["error"]["code"] == "expired", late
    assert waiting(server, "rej") == 1, "only A001 waits: no ticket that nobody holds"
    assert kiosk.now()["screen"] == "message"
    assert kiosk.output.read_bytes().count(b"\x1dV") == 1, "only A001 was printed"


def assert_services_greyed_out(kiosk: Kiosk, home: dict, service: str, reason: str) -> None:
    """Every service button disabled and saying why; a tap on one does nothing."""
    assert all(not enabled for key, (_x, _y, enabled) in home["buttons"].items() if key.startswith("service:"))
    assert any(t.endswith("\n" + reason) for t in home["texts"]), home["texts"]
    before = len(kiosk.entries())
    kiosk.tap(f"service:{service}")
    kiosk.tap("lang:en")  # taps are handled in order: the English home comes after any effect of the first
    kiosk.wait("English home", lambda e: e["screen"] == "home" and e["lang"] == "en")
    assert [e["screen"] for e in kiosk.entries()[before:]] == ["home"] * (len(kiosk.entries()) - before)
    kiosk.tap("lang:pl")
    kiosk.wait("Polish home", lambda e: e["screen"] == "home" and e["lang"] == "pl")


def test_priority_toggle_gives_a_priority_ticket_ahead_of_normal_ones(server, start_kiosk):
    kiosk = start_kiosk(server)
    kiosk.wait_home()
    kiosk.tap("service:rej")
    kiosk.wait("first ticket", lambda e: e["screen"] == "ticket" and e["printer"], since_tap=True)
    kiosk.tap("done")
    kiosk.wait_home()
    kiosk.tap("priority")
    prio = kiosk.wait("priority on", lambda e: e["screen"] == "home" and e["priority"] and e["buttons"])
    assert any(t.startswith("WŁĄCZONA: bilet uprzywilejowany") for t in prio["texts"])
    # A001 waits, but nobody is ahead of a priority ticket: the button says so, not "Czeka: 1".
    assert any("Przed Tobą: 0" in t for t in prio["texts"]), prio["texts"]
    assert not any("Czeka: 1" in t for t in prio["texts"])
    kiosk.tap("service:rej")
    shown = kiosk.wait("priority ticket", lambda e: e["screen"] == "ticket" and e["printer"], since_tap=True)
    assert shown["ticket"] == "A002" and "Bilet uprzywilejowany" in shown["texts"]
    assert "Osób przed Tobą: 0" in shown["texts"]  # A001 is waiting, but A002 goes first
    assert server.get(f"/api/tickets/{token_of(shown)}").json()["people_ahead"] == 0
    assert "BILET UPRZYWILEJOWANY".encode("cp852") in kiosk.output.read_bytes()
    kiosk.tap("done")
    home = kiosk.wait_home()
    assert home["priority"] is False  # the next person does not inherit the priority choice


def test_closed_and_limit_reached_services_are_shown_as_such_and_tickets_name_the_place(tmp_path, broker, start_kiosk):
    cfg = write_config(tmp_path / "office.toml", broker.port, free_port(), limit=1)
    tomorrow = (datetime.now(ZoneInfo("Europe/Warsaw")) + timedelta(days=1)).strftime("%a").lower()
    text = cfg.read_text(encoding="utf-8")
    head, _, last = text.rpartition(f"hours = {ALWAYS_OPEN}")  # the last service: pasz
    places = '[public]\nzone_names = { hall = { pl = "Sala obsługi, parter", en = "Main hall, ground floor" } }\n'
    cfg.write_text(f'{head}hours = {{ {tomorrow} = "08:00-16:00" }}{last}\n{places}', encoding="utf-8")
    server = ServerProcess(cfg, http_port=int(text.split("[http]")[1].split("port = ")[1].split()[0])).start()
    try:
        kiosk = start_kiosk(server)
        home = kiosk.wait_home()
        assert home["buttons"]["service:pasz"][2] is False
        assert "Paszporty\nNieczynne" in home["texts"]
        kiosk.tap("service:pasz")
        kiosk.tap("service:rej")
        first = kiosk.wait("ticket", lambda e: e["screen"] == "ticket" and e["printer"], since_tap=True)
        # Every ticket names the place: on screen and on paper, under the service's name.
        assert "Zapraszamy: Sala obsługi, parter" in first["texts"]
        assert "Zapraszamy: Sala obsługi, parter".encode("cp852") in kiosk.output.read_bytes()
        kiosk.tap("done")
        home = kiosk.wait(
            "rej at its limit",
            lambda e: e["screen"] == "home" and e["buttons"].get("service:rej", [0, 0, True])[2] is False,
        )
        assert "Rejestracja pojazdów\nLimit biletów na dziś wyczerpany" in home["texts"]
        kiosk.tap("service:rej")
        kiosk.tap("service:pasz")
        kiosk.tap("service:pj")  # taps are handled in order: if the two above did anything, it shows here
        shown = kiosk.wait("pj ticket", lambda e: e["screen"] == "ticket" and e["printer"], since_tap=True)
        assert shown["ticket"] == "B001"
        assert waiting(server, "rej") == 1 and waiting(server, "pasz") == 0
        assert kiosk.output.read_bytes().count(b"\x1dV") == 2  # A001 and B001, nothing else
    finally:
        server.stop()


def test_kiosk_is_online_while_running_and_offline_after_a_clean_stop(server, start_kiosk):
    kiosk = start_kiosk(server)
    kiosk.wait_home()
    devices = lambda: server.get("/api/devices").json()  # noqa: E731
    wait_for(lambda: devices().get("kiosk-k1", {}).get("availability") == "online", 10, "kiosk online")
    kiosk.stop()  # SIGTERM, as systemd does
    assert kiosk.proc.returncode == 0
    wait_for(lambda: devices()["kiosk-k1"]["availability"] == "offline", 10, "kiosk offline")


# The Pi 7" panel, 7" HDMI panels, Touch Display 2 landscape, Full HD, Touch Display 2 upright
PANELS = [(800, 480), (1024, 600), (1280, 720), (1920, 1080), (720, 1280)]
PRINTER_WARNING = {
    "pl": "Drukarka nie działa – numer i kod QR pokażemy na ekranie.",
    "en": "The printer is not working – we will show your number and QR code on screen.",
}
SYSTEM_DOWN = {
    "pl": "System kolejkowy chwilowo nie działa",
    "en": "The queue system is not working right now",
    "uk": "Система черги тимчасово не працює",
}
NOT_ISSUED = {"pl": "Bilet NIE został wydany.", "en": "No ticket was issued."}


def assert_fits(entry: dict, width: int, height: int) -> None:
    """What a resident would notice: text cut off or off screen, buttons too small to hit."""
    where = f"{entry['screen']} ({entry['lang']}) at {width}x{height}"
    assert entry["window"][2:] == [width, height], where
    assert entry["clipped"] == [], f"{where}: text cut off or off screen: {entry['clipped']}"
    assert entry["smallest_font"] >= MIN_TEXT_PX, f"{where}: type of {entry['smallest_font']} px"
    # WCAG 2.1 AA contrast and our size rule, measured on the widgets as drawn (kiosk/style.py)
    for text, ratio, size in entry["legibility"]:
        assert ratio >= MIN_CONTRAST, f"{where}: {text!r} has contrast {ratio}:1"
        assert size >= MIN_TEXT_PX, f"{where}: {text!r} set in {size} px"
        if (width, height) == (800, 480):
            assert cap_height_mm(size) >= MIN_CAP_MM, f"{where}: {text!r} only {cap_height_mm(size):.1f} mm"
    for key, (x, y, w, h) in entry["boxes"].items():
        assert x >= 0 and y >= 0 and x + w <= width + 1 and y + h <= height + 1, f"{where}: {key} off screen"
        # ~10 mm on the 7" 800x480 panel; taller on bigger screens, as the design scales
        assert h >= 0.1 * min(width, height), f"{where}: {key} only {h} px high"
        square = key.startswith(("lang:", "key:"))  # a language or a key of the keypad: short words
        assert w >= 1.5 * h or square or w >= 100, f"{where}: {key} only {w} px wide"


@pytest.mark.parametrize("panel", PANELS, ids=[f"{w}x{h}" for w, h in PANELS])
def test_every_screen_fits_small_and_large_panels_in_polish_and_english(  # and the Ukrainian home
    panel, server, broker, tmp_path, artifacts, request
):
    width, height = panel
    screen = VirtualScreen(width, height)
    printer = LoopbackPrinter()
    kiosk = Kiosk(
        tmp_path,
        screen,
        broker.port,
        server.url,
        f'type = "network"\nport = {printer.port}\ntimeout_s = 2',
        artifacts / "kiosk" / request.node.name,
        width=width,
        height=height,
        idle_timeout_s=30,
        bookings=True,
    )
    checked: list[tuple[str, str]] = []

    def check(entry: dict) -> None:
        assert_fits(entry, width, height)
        checked.append((entry["screen"], entry["lang"]))

    def ticket(lang: str, printer_state: str):
        return lambda e: e["screen"] == "ticket" and e["lang"] == lang and e["printer"] == printer_state

    try:
        check(kiosk.wait_home())
        kiosk.tap("booking")
        check(kiosk.wait("the booking keypad", lambda e: e["screen"] == "booking"))
        kiosk.tap("key:A")
        kiosk.tap("confirm")
        check(kiosk.wait("the keypad's note", lambda e: "Kod ma 6 znaków. Wpisz brakujące." in e["texts"]))
        kiosk.tap("booking_back")
        kiosk.wait_home()
        kiosk.tap("service:rej")
        check(kiosk.wait("Polish ticket, printed", ticket("pl", "ok"), since_tap=True))
        printer.status = {1: 0x12, 2: 0x12, 4: 0x72}  # paper out
        kiosk.tap("done")
        kiosk.wait_home()
        kiosk.tap("service:pj")
        check(kiosk.wait("Polish ticket, printer fault", ticket("pl", "paper_out"), since_tap=True))
        kiosk.tap("done")
        check(kiosk.wait("home with the printer warning", lambda e: PRINTER_WARNING["pl"] in e["texts"]))
        kiosk.tap("lang:en")
        check(kiosk.wait("English home", lambda e: e["lang"] == "en" and PRINTER_WARNING["en"] in e["texts"]))
        kiosk.tap("service:pasz")
        check(kiosk.wait("English ticket, printer fault", ticket("en", "paper_out"), since_tap=True))
        printer.status = dict(STATUS_FINE)
        kiosk.tap("done")  # the next visitor starts in Polish: choose English again
        kiosk.wait("Polish home", lambda e: e["screen"] == "home" and e["lang"] == "pl")
        kiosk.tap("lang:en")
        kiosk.wait("English home", lambda e: e["screen"] == "home" and e["lang"] == "en")
        kiosk.tap("service:rej")
        check(kiosk.wait("English ticket, printed", ticket("en", "ok"), since_tap=True))
        kiosk.tap("done")
        kiosk.wait("Polish home", lambda e: e["screen"] == "home" and e["lang"] == "pl")
        kiosk.tap("lang:en")
        kiosk.wait("English home", lambda e: e["screen"] == "home" and e["lang"] == "en")
        server.freeze()  # the server hangs: the request goes unanswered
        kiosk.tap("service:rej")
        check(
            kiosk.wait("English 'no ticket'", lambda e: any(NOT_ISSUED["en"] in t for t in e["texts"]), since_tap=True)
        )
        kiosk.tap("back")
        kiosk.wait("English home", lambda e: e["screen"] == "home" and e["lang"] == "en")
        kiosk.tap("lang:pl")
        kiosk.wait("Polish home", lambda e: e["screen"] == "home" and e["lang"] == "pl")
        kiosk.tap("service:rej")
        check(
            kiosk.wait("Polish 'no ticket'", lambda e: any(NOT_ISSUED["pl"] in t for t in e["texts"]), since_tap=True)
        )
        kiosk.tap("back")
        server.kill9()  # now gone for good: its last will makes the home screen say so
        down = lambda lang: lambda e: e["screen"] == "home" and any(SYSTEM_DOWN[lang] in t for t in e["texts"])  # noqa: E731
        check(kiosk.wait("Polish home, system down", down("pl")))
        kiosk.tap("lang:en")
        check(kiosk.wait("English home, system down", down("en")))
        kiosk.tap("lang:uk")  # the longest words of the three
        check(kiosk.wait("Ukrainian home, system down", down("uk")))
        assert len(checked) == 14
    finally:
        kiosk.stop()
        printer.close()
        screen.stop()


def test_a_kiosk_that_never_reaches_the_broker_soon_says_the_system_is_not_working(tmp_path, screen, artifacts):
    """Not "connecting…" forever over an empty screen: after the start-up grace period the
    resident is told to ask at the information desk."""
    from kiosk.visit import CONNECT_GRACE_S
    from tests.harness import free_port

    kiosk = Kiosk(
        tmp_path,
        screen,
        free_port(),
        "http://127.0.0.1:1",
        'type = "dummy"\ndummy_output = "printed.bin"',
        artifacts / "kiosk" / "never_connected",
    )
    try:
        first = kiosk.wait("the first screen", lambda e: e["screen"] == "home")
        assert any(t.startswith("Łączenie z systemem kolejkowym") for t in first["texts"])
        down = kiosk.wait(
            "the system-down message",
            lambda e: any(t.startswith("System kolejkowy chwilowo nie działa") for t in e["texts"]),
            timeout=CONNECT_GRACE_S + 20,
        )
        assert not any(t.startswith("Łączenie") for t in down["texts"])
    finally:
        kiosk.stop()


def test_a_booking_code_scanned_or_typed_is_checked_in_with_the_server(
    server, peer, screen, broker, tmp_path, artifacts, request
):
    """The kiosk's half of check-in against the real server: typed and scanned codes reach it
    as ``booking``, and its refusal is explained (the server's half: tests/test_booking_checkin.py)."""
    peer.subscribe("numerek/kiosk/k1/response/#")
    kiosk = Kiosk(
        tmp_path,
        screen,
        broker.port,
        server.url,
        'type = "dummy"\ndummy_output = "printed.bin"',
        artifacts / "kiosk" / request.node.name,
        bookings=True,
    )
    try:
        home = kiosk.wait_home()
        assert "Mam rezerwację" in home["texts"] and home["buttons"]["booking"][2]
        kiosk.tap("booking")
        keypad = kiosk.wait("the keypad", lambda e: e["screen"] == "booking")
        assert_fits(keypad, 1280, 720)
        for ch in "ACE47":
            kiosk.tap(f"key:{ch}")
        kiosk.wait("five characters typed", lambda e: "ACE-47_" in e["texts"])
        kiosk.tap("confirm")
        kiosk.wait("the code is too short", lambda e: "Kod ma 6 znaków. Wpisz brakujące." in e["texts"])
        kiosk.scan("ace-479")  # a code nobody booked, as the scanner types it
        answer = peer.expect("numerek/kiosk/k1/response/#", timeout=15)
        said = kiosk.wait("the kiosk's message", lambda e: e["screen"] == "message")
        assert not kiosk.output.exists(), "nothing was printed"
        assert answer["error"]["code"] == "booking_unknown", answer
        assert any(t.startswith("Nie ma rezerwacji z tym kodem.") for t in said["texts"])
        kiosk.tap("back")
        kiosk.wait_home()
    finally:
        kiosk.stop()


def test_a_service_cut_off_for_today_says_when_to_come_back_and_fits_the_small_panel(
    tmp_path, broker, artifacts, request
):
    zone = midday_zone()  # the office's day has hours behind it and ahead of it, whenever this runs
    now = datetime.now(ZoneInfo(zone))
    closes = (now + timedelta(minutes=30)).replace(second=0, microsecond=0)
    opens = (now - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    cfg = write_config(tmp_path / "office.toml", broker.port, free_port())
    text = cfg.read_text(encoding="utf-8").replace('timezone = "Europe/Warsaw"', f'timezone = "{zone}"', 1)
    assert f'timezone = "{zone}"' in text
    head, _, last = text.rpartition(f"hours = {ALWAYS_OPEN}")  # the last service: pasz
    days = ", ".join(f'{d} = "{opens:%H:%M}-{closes:%H:%M}"' for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"))
    cfg.write_text(f"{head}hours = {{ {days} }}\ncutoff_min = 60{last}", encoding="utf-8")
    server = ServerProcess(cfg, http_port=int(text.split("[http]")[1].split("port = ")[1].split()[0])).start()
    screen = VirtualScreen(800, 480)
    kiosk = Kiosk(
        tmp_path,
        screen,
        broker.port,
        server.url,
        'type = "dummy"\ndummy_output = "printed.bin"',
        artifacts / "kiosk" / request.node.name,
        width=800,
        height=480,
    )
    try:
        home = kiosk.wait_home()
        said = f"Paszporty\nDziś już nie wydajemy biletów – zapraszamy jutro od {opens.hour}:00"
        assert said in home["texts"] and home["buttons"]["service:pasz"][2] is False
        assert_fits(home, 800, 480)
    finally:
        kiosk.stop()
        screen.stop()
        server.stop()
