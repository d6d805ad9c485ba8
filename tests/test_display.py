"""The hall display end to end: the real Kivy app under Xvfb, the real broker and server.

Calls are caused the way an office causes them: kiosk ticket requests, then counter
commands. The display's probe directory (NUMEREK_DISPLAY_PROBE) tells what is on screen and
exports screenshots; its "files" audio output records every announcement as a WAV with the
time it started and ended. Screenshots land in tests/artifacts/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
import wave
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from display.config import DEFAULT_RECALL_CHIME as RECALL_WAV
from hardware.audio import FileOutput, load_chime, scale, wav_frames
from protocol.messages import BoardMessage, CallMessage, ServiceInfo, ServicesMessage
from tests.harness import (
    ROOT,
    TEST_RECALL_GUARD_S,
    Broker,
    ForkedProcess,
    Peer,
    ServerProcess,
    VirtualScreen,
    free_port,
    start_app,
    wait_for,
    write_config,
)

BASE = "numerek"
ARROW = "\u2192"


class DisplayProcess:
    """``numerek-display`` as a subprocess with a probe directory and a recording speaker."""

    def __init__(
        self,
        workdir: Path,
        broker_port: int,
        screen_env: dict[str, str],
        *,
        zone: str = "hall",
        device: str = "hall-1",
        size: tuple[int, int] = (1280, 720),
        languages: tuple[str, ...] = ("pl",),
        speed: float = 6.0,
        highlight: float = 8.0,
        logo: str = "",
        last_calls: int = 6,
        layout: str = "calls",
        other_zones: tuple[str, ...] = (),
        info_text: str = f"Zażółć gęślą jaźń {ARROW} prosimy przygotować dowód osobisty · Please have your ID ready",
        info_fps: int = 15,
        board_languages: tuple[str, ...] | None = None,
    ) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.probe = workdir / "probe"
        self.audio = workdir / "audio"
        self.config = workdir / "display.toml"
        self.config.write_text(
            f"""
[display]
id = "{device}"
zone = "{zone}"
logo = "{logo}"
highlight_seconds = {highlight}
last_calls = {last_calls}
layout = "{layout}"
other_zones = {json.dumps(list(other_zones))}
info_text = "{info_text}"
info_fps = {info_fps}
{f"languages = {json.dumps(list(board_languages))}" if board_languages else ""}
[mqtt]
port = {broker_port}
[screen]
fullscreen = false
width = {size[0]}
height = {size[1]}
[audio]
output = "files"
record_dir = "{self.audio}"
playback_speed = {speed}
languages = {json.dumps(list(languages))}
""",
            encoding="utf-8",
        )
        self.env = {
            **screen_env,
            "KIVY_NO_ARGS": "1",
            "KIVY_HOME": str(workdir / "kivy"),
            "NUMEREK_DISPLAY_PROBE": str(self.probe),
        }
        self.proc: subprocess.Popen | ForkedProcess | None = None

    def start(self, online: bool = True) -> DisplayProcess:
        shutil.rmtree(self.probe, ignore_errors=True)
        self.proc = start_app("display.cli", ["--config", str(self.config)], self.env, self.workdir / "display.log")
        if online:
            self.wait(lambda s: s["offline"] == "" and s["office"], "the display to connect")
        return self

    def shown(self) -> dict:
        if self.proc and self.proc.poll() is not None:
            raise AssertionError(f"display exited with {self.proc.returncode}: {self.log()[-3000:]}")
        try:
            return json.loads((self.probe / "screen.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def wait(self, predicate, what: str, timeout: float = 30.0) -> dict:
        return wait_for(lambda: (s := self.shown()) and predicate(s) and s, timeout, what)

    def screenshot(self, name: str, artifacts: Path) -> Path:
        (self.probe / f"{name}.shot").write_text("")
        png = self.probe / f"{name}.png"
        wait_for(png.exists, 15, f"screenshot {name}")
        assert png.stat().st_size > 5_000, "a blank screenshot"
        out = artifacts / f"{name}.png"
        shutil.copyfile(png, out)
        return out

    def layout(self, name: str, artifacts: Path) -> dict:
        """A screenshot plus what it shows as geometry: the texts with their boxes and the
        lines the font drew (``display.app.drawn_layout``), written with the same frame."""
        self.screenshot(name, artifacts)
        data = json.loads((self.probe / f"{name}.json").read_text(encoding="utf-8"))
        shutil.copyfile(self.probe / f"{name}.json", artifacts / f"{name}.json")
        return data

    def announcements(self) -> list[dict]:
        return FileOutput.read_log(self.audio)

    def log(self) -> str:
        p = self.workdir / "display.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


@pytest.fixture
def display_factory(tmp_path, broker, screen):
    started: list[DisplayProcess] = []

    def make(name: str = "display", screen_env: dict | None = None, **kw) -> DisplayProcess:
        d = DisplayProcess(tmp_path / name, broker.port, screen_env or screen.env(), **kw)
        started.append(d)
        return d

    yield make
    for d in started:
        d.stop()


def issue(peer: Peer, service: str, rid: str) -> str:
    reply = peer.request(
        f"{BASE}/kiosk/k1/request", {"v": 1, "id": rid, "service": service}, f"{BASE}/kiosk/k1/response/{rid}"
    )
    assert reply["ok"], reply
    return reply["ticket"]["number"]


def command(peer: Peer, counter: str, rid: str, action: str = "next") -> dict:
    peer.publish(f"{BASE}/counter/{counter}/command", {"v": 1, "id": rid, "action": action})
    reply = peer.expect(f"{BASE}/counter/{counter}/reply", where=lambda d: d["id"] == rid)
    assert reply["ok"], reply
    return reply


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / w.getframerate()


def soxi_seconds(path: Path) -> float:
    return float(subprocess.run(["soxi", "-D", str(path)], capture_output=True, text=True, check=True).stdout)


@pytest.fixture
def office_peer(peer):
    peer.subscribe(f"{BASE}/kiosk/k1/response/#", f"{BASE}/counter/+/reply", f"{BASE}/zone/+/call")
    return peer


def test_call_is_shown_large_highlighted_and_announced_then_a_recall_again(
    server, office_peer, display_factory, artifacts
):
    peer = office_peer
    display = display_factory(highlight=4.0).start()
    assert display.shown()["gl_samples"] == 0, "multisampled: each frame 2.5 times the CPU in software rendering"
    issue(peer, "rej", "t1")
    issue(peer, "pj", "t2")
    display.wait(lambda s: s["waiting"] == [["Rejestracja pojazdów", 1], ["Prawo jazdy", 1]], "waiting counts")

    # Garbage on the zone's topics is ignored; the display keeps going.
    peer.publish(f"{BASE}/zone/hall/call", b"not json")
    peer.publish(f"{BASE}/zone/hall/call", {"v": 1, "seq": "x"})

    command(peer, "1", "c1")
    call = peer.expect(f"{BASE}/zone/hall/call", where=lambda d: d.get("ticket") == "A001")
    # The call comes first, the board with the new waiting counts right after it.
    shown = display.wait(
        lambda s: (
            s["newest"] == f"A001 {ARROW} Stanowisko 1"
            and s["waiting"] == [["Rejestracja pojazdów", 0], ["Prawo jazdy", 1]]
        ),
        "the call and the new waiting counts on screen",
    )
    assert shown["highlighted"]
    assert shown["office"] == "Urząd Testowy w Łodzi"
    called_at = datetime.fromisoformat(call["at"])
    server_minutes = {called_at.strftime("%H:%M"), (called_at + timedelta(minutes=1)).strftime("%H:%M")}
    assert shown["clock"] in server_minutes, "the clock shows the server's time (office time zone)"
    display.screenshot("display-call-1280x720", artifacts)

    [said] = wait_for(display.announcements, 30, "the announcement")
    assert (said["seq"], said["ticket"], said["recall"]) == (call["seq"], "A001", False)
    wav = display.audio / said["file"]
    assert wav.stat().st_size > 10_000
    assert 1.5 <= wav_seconds(wav) <= 8.0
    assert abs(soxi_seconds(wav) - wav_seconds(wav)) < 0.05

    display.wait(lambda s: not s["highlighted"], "the highlight to end", timeout=20)

    time.sleep(TEST_RECALL_GUARD_S)  # the server refuses a recall while the call may still be announced
    command(peer, "1", "c2", "recall")
    recall = peer.expect(f"{BASE}/zone/hall/call", where=lambda d: d.get("recall") is True)
    shown = display.wait(lambda s: s["newest_seq"] == recall["seq"], "the recall on screen")
    assert shown["highlighted"] and shown["caption"].startswith("Ponowne wezwanie")
    display.screenshot("display-recall-1280x720", artifacts)
    log = wait_for(lambda: len(a := display.announcements()) == 2 and a, 30, "the recall announcement")
    assert [(e["ticket"], e["recall"]) for e in log] == [("A001", False), ("A001", True)]
    # What the hall hears: the call opens with the chime, the recall with the recall chime.
    call_frames, recall_frames = (wav_frames((display.audio / e["file"]).read_bytes()) for e in log)
    chime, recall_chime = scale(load_chime(None), 0.8), scale(load_chime(RECALL_WAV), 0.8)
    assert call_frames.startswith(chime) and recall_frames.startswith(recall_chime)
    assert not recall_frames.startswith(chime), "a recall must not sound like a new call"


def test_ten_calls_in_a_burst_are_announced_in_call_order_none_dropped_none_overlapping(
    server, office_peer, display_factory, artifacts
):
    peer = office_peer
    display = display_factory(speed=8.0).start()
    tickets = [issue(peer, "rej", f"t{i}") for i in range(10)]
    assert tickets == [f"A{i:03d}" for i in range(1, 11)]
    # Ten NEXT presses at two counters, sent back to back without waiting for replies.
    for i in range(10):
        peer.publish(f"{BASE}/counter/{1 + i % 2}/command", {"v": 1, "id": f"n{i}", "action": "next"})
    calls = [peer.expect(f"{BASE}/zone/hall/call", timeout=10) for _ in range(10)]
    seqs = [c["seq"] for c in calls]
    assert seqs == sorted(seqs) and len(set(seqs)) == 10

    log = wait_for(lambda: len(a := display.announcements()) >= 10 and a, 90, "ten announcements")
    assert [e["seq"] for e in log] == seqs, "announced in call order, each exactly once"
    assert [e["ticket"] for e in log] == [c["ticket"] for c in calls]
    for before, after in zip(log, log[1:], strict=False):
        assert before["end"] <= after["start"], f"{before['ticket']} and {after['ticket']} overlap"
    for e in log:
        assert 1.5 <= wav_seconds(display.audio / e["file"]) <= 8.0
    shown = display.wait(lambda s: s["newest_seq"] == seqs[-1], "the last call on screen")
    assert len(shown["recent"]) == 5, "the newest five of six: rows keep the 10-metre size"
    display.screenshot("display-burst-1280x720", artifacts)


def test_restarted_display_shows_the_board_at_once_and_announces_nothing_stale(
    server, office_peer, display_factory, artifacts
):
    peer = office_peer
    availability = f"{BASE}/device/display-hall-1/availability"
    peer.subscribe(availability)
    first = display_factory("first").start()
    peer.take(lambda m: m.topic == availability and m.payload == b"online", 10, "display online")
    for i in range(4):
        issue(peer, "rej", f"t{i}")
    command(peer, "1", "c1")
    command(peer, "1", "c2")
    wait_for(lambda: len(first.announcements()) == 2, 30, "two announcements")
    first.stop()
    peer.take(lambda m: m.topic == availability and m.payload == b"offline", 10, "display offline on stop")
    command(peer, "1", "c3")  # A003 is called while no display is running

    again = display_factory("again").start()
    shown = again.wait(lambda s: s["newest"].startswith("A003"), "the current board after restart")
    assert shown["recent"][:2] == [f"A002 {ARROW} Stanowisko 1", f"A001 {ARROW} Stanowisko 1"]
    assert not shown["highlighted"], "a call from the board is not presented as new"
    again.screenshot("display-after-restart-1280x720", artifacts)

    command(peer, "1", "c4")  # the first live call after the restart
    log = wait_for(lambda: again.announcements(), 30, "the live call's announcement")
    again.wait(lambda s: s["newest"].startswith("A004"), "A004 on screen")
    assert [e["ticket"] for e in again.announcements()] == ["A004"], log


def test_broker_restart_shows_an_offline_mark_then_the_board_without_replaying_calls(
    server, broker, office_peer, display_factory, artifacts
):
    peer = office_peer
    display = display_factory().start()
    issue(peer, "rej", "t1")
    issue(peer, "rej", "t2")
    command(peer, "1", "c1")
    wait_for(lambda: len(display.announcements()) == 1, 30, "the first announcement")
    peer.close()

    broker.stop()
    shown = display.wait(lambda s: "offline" in s["offline"], "the offline mark")
    assert shown["newest"].startswith("A001"), "the last board stays on screen while offline"
    display.screenshot("display-offline-1280x720", artifacts)

    broker.start()
    shown = display.wait(lambda s: s["offline"] == "" and s["newest"].startswith("A001"), "reconnect", timeout=60)
    wait_for(lambda: server.get("/health").json()["broker_connected"], 30, "server reconnect")
    again = Peer(broker.port)
    try:
        again.subscribe(f"{BASE}/counter/+/reply")
        command(again, "1", "c2")
        display.wait(lambda s: s["newest"].startswith("A002"), "A002 on screen")
        log = wait_for(lambda: len(a := display.announcements()) == 2 and a, 30, "A002 announced")
        assert [e["ticket"] for e in log] == ["A001", "A002"], "nothing replayed after the broker restart"
    finally:
        again.close()
    server.stop()
    display.wait(lambda s: "server offline" in s["offline"], "the server-offline mark")


def test_each_display_shows_only_its_zone_at_1080p_and_720p(server, office_peer, display_factory, artifacts):
    peer = office_peer
    big = VirtualScreen(1920, 1080)
    try:
        hall = display_factory("hall", screen_env=big.env()).start()
        upstairs = display_factory(
            "upstairs",
            screen_env=big.env(),
            zone="upstairs",
            device="up-1",
            size=(1920, 1080),
            languages=("pl", "en"),
            logo=str(Path(kivy_package_dir()) / "data" / "logo" / "kivy-icon-256.png"),
        ).start()
        issue(peer, "pasz", "p1")
        issue(peer, "pasz", "p2")
        issue(peer, "rej", "a1")
        command(peer, "3", "c3")  # P001 at counter 3, upstairs
        command(peer, "1", "c1")  # A001 at counter 1, hall

        shown = upstairs.wait(
            lambda s: s["newest"] == f"P001 {ARROW} Stanowisko 3" and s["waiting"] == [["Paszporty", 1]],
            "P001 upstairs, one passport client still waiting",
        )
        assert shown["window"] == [1920, 1080]
        shown = hall.wait(lambda s: s["newest"] == f"A001 {ARROW} Stanowisko 1", "A001 in the hall")
        assert shown["recent"] == [] and [n for n, _ in shown["waiting"]] == ["Rejestracja pojazdów", "Prawo jazdy"]

        up_log = wait_for(upstairs.announcements, 30, "the upstairs announcement")
        hall_log = wait_for(hall.announcements, 30, "the hall announcement")
        upstairs.screenshot("display-upstairs-1920x1080", artifacts)
        hall.screenshot("display-hall-zone-1280x720", artifacts)
        assert [e["ticket"] for e in up_log] == ["P001"]
        assert [e["ticket"] for e in hall_log] == ["A001"]
        bilingual = wav_seconds(upstairs.audio / up_log[0]["file"])
        assert 3.0 <= bilingual <= 12.0, "Polish then English"
    finally:
        big.stop()


def test_bad_config_is_refused_with_the_field_named(tmp_path):
    cases = {
        "[audio]\nvolume = 3\n": "audio.volume",
        '[audio]\noutput = "files"\n': "record_dir",
        '[display]\nzone = "hall/#"\n': "display.zone",
        "[display\n": "not valid TOML",
        '[screen]\nfont = "/nonexistent.ttf"\n': "screen.font",
        "[display]\nlast_calls = 10\n": "display.last_calls",  # the board's 10 calls: the newest + 9 below
    }
    for text, named in cases.items():
        bad = tmp_path / "display.toml"
        bad.write_text(text, encoding="utf-8")
        done = subprocess.run(
            [sys.executable, "-m", "display.cli", "--config", str(bad)], capture_output=True, text=True, cwd=ROOT
        )
        assert done.returncode == 2, text
        assert named in done.stderr, (text, done.stderr)
        assert "Traceback" not in done.stderr


def kivy_package_dir() -> str:
    import importlib.util

    spec = importlib.util.find_spec("kivy")
    assert spec and spec.origin
    return str(Path(spec.origin).parent)


def test_test_audio_command_says_one_call_through_the_configured_output(tmp_path):
    cfg = tmp_path / "display.toml"
    cfg.write_text('[audio]\noutput = "files"\nrecord_dir = "rec"\nplayback_speed = 50\nlanguages = ["pl", "en"]\n')
    done = subprocess.run(
        [sys.executable, "-m", "display.cli", "--config", str(cfg), "--test-audio", "A023", "Stanowisko 4"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "pl: Numer A 23, stanowisko 4" in done.stdout and "en: Number A 23, counter 4" in done.stdout
    [said] = FileOutput.read_log(tmp_path / "rec")
    assert said["ticket"] == "A023" and 3.0 <= wav_seconds(tmp_path / "rec" / said["file"]) <= 12.0


def test_shipped_example_config_is_valid():
    example = ROOT / "display" / "examples" / "display.toml"
    done = subprocess.run(
        [sys.executable, "-m", "display.cli", "--config", str(example), "--check"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "zone hall" in done.stdout


# --------------------------------------------------------------------------- a crowded board, every screen size
#
# The office's own example config (server/examples/county_office.toml) with all five of its
# services in the hall, three-digit queues and a full list of recent calls. The board is
# published over the real broker exactly as the server publishes it (retained, validated by
# the protocol models), so the day and the counts can be the awkward ones.

EXAMPLE_OFFICE = ROOT / "server" / "examples" / "county_office.toml"
SCREENS = [(1920, 1080), (1366, 768), (1280, 720)]
WAITING = {"rej": 123, "pj": 999, "odb": 100, "kasa": 7, "pasz": 45}
WEDNESDAY = datetime.fromisoformat("2026-09-30T10:15:00+02:00")  # "środa, 30 września 2026"
LONGEST_DAY = datetime.fromisoformat("2028-10-30T10:15:00+01:00")  # "poniedziałek, 30 października 2028"


def example_services() -> list[ServiceInfo]:
    office = tomllib.loads(EXAMPLE_OFFICE.read_text(encoding="utf-8"))
    return [
        ServiceInfo(
            id=s["id"],
            prefix=s["prefix"],
            name=s["name"],
            zone="hall",
            available=True,
            waiting=WAITING[s["id"]],
            estimated_wait_min=10,
            open_counters=1,
        )
        for s in office["services"]
    ]


def publish_office(broker_port: int, at: datetime, calls: int = 10, server_online: bool = True) -> None:
    """The retained services list and hall board the server would publish, at server time ``at``.

    A display connected already gets them live (the retain flag cleared), as from the server's
    periodic republishing; one that connects later gets the retained copies, which teach no time.
    """
    services = example_services()
    board = BoardMessage(
        zone="hall",
        seq=calls,
        calls=[
            CallMessage(
                seq=seq,
                ticket=f"A{seq:03d}",
                service="rej",
                counter=str(1 + seq % 5),
                counter_name=f"Stanowisko {1 + seq % 5}",
                zone="hall",
                at=at,
            )
            for seq in range(calls, 0, -1)
        ],
        waiting={s.id: s.waiting for s in services},
        server_time=at,
    )
    office = ServicesMessage(office="Starostwo Powiatowe w Nowym Mieście", services=services, server_time=at)
    peer = Peer(broker_port)
    try:  # availability first: "offline" makes the display forget the time the board then tells
        peer.publish(f"{BASE}/server/availability", b"online" if server_online else b"offline", retain=True)
        peer.publish(f"{BASE}/services", office.to_json(), retain=True)
        peer.publish(f"{BASE}/zone/hall/board", board.to_json(), retain=True)
    finally:
        peer.close()


@pytest.fixture
def crowded(display_factory, broker):
    screens: list[VirtualScreen] = []

    def make(size: tuple[int, int], name: str, at: datetime = WEDNESDAY, online: bool = True, **kw) -> DisplayProcess:
        screen = VirtualScreen(*size)
        screens.append(screen)
        display = display_factory(name, screen_env=screen.env(), size=size, last_calls=9, **kw)
        return show_crowded(display, broker.port, at, online)

    yield make
    for screen in screens:
        screen.stop()


def show_crowded(display: DisplayProcess, broker_port: int, at: datetime, online: bool) -> DisplayProcess:
    """Start ``display`` on the crowded board at server time ``at``."""
    publish_office(broker_port, at, server_online=online)
    display.start(online=False)
    display.wait(lambda s: len(s["waiting"]) == 5 and (s["recent"] or s["columns"]), "the crowded board")
    publish_office(broker_port, at, server_online=online)  # again, live now: the display learns the time
    display.wait(lambda s: s["date"], "the server's date")
    if online:
        display.wait(lambda s: s["offline"] == "", "the display to connect")
    return display


@pytest.fixture(scope="module", params=SCREENS, ids=lambda s: f"{s[0]}x{s[1]}")
def crowded_board(request, tmp_path_factory) -> Iterator[tuple[DisplayProcess, tuple[int, int]]]:
    """The crowded board at one screen size, for the tests that only look at it (waiting counts,
    service names, recent calls): one display start per size rather than per test (1.5-2 s of CPU
    each). They take screenshots under names of their own and change nothing on the board."""
    size = request.param
    workdir = tmp_path_factory.mktemp(f"crowded-{size[0]}x{size[1]}")
    broker = Broker(workdir).start()
    screen = VirtualScreen(*size)
    display = DisplayProcess(workdir / "display", broker.port, screen.env(), size=size, last_calls=9)
    try:
        yield show_crowded(display, broker.port, WEDNESDAY, online=True), size
    finally:
        display.stop()
        screen.stop()
        broker.stop()


def test_a_board_known_only_from_retained_messages_shows_no_clock_rather_than_an_old_time(
    display_factory, broker, artifacts
):
    """After a server outage the retained board and services are as old as the outage: the
    display must not show their time as now. A live message sets the clock; the server going
    offline blanks it again."""
    hours_ago = WEDNESDAY - timedelta(hours=3, minutes=40)  # 06:35: when the server last spoke
    publish_office(broker.port, hours_ago)
    display = display_factory("retained", last_calls=9).start(online=False)
    shown = display.wait(lambda s: len(s["waiting"]) == 5 and len(s["recent"]) == 5, "the retained board")
    assert (shown["clock"], shown["date"]) == ("", ""), "a time learnt from a retained message"
    layout = display.layout("display-retained-no-clock-1280x720", artifacts)
    assert not [t for t in layout["texts"] if t["role"] in ("clock", "date")], "a clock is drawn"
    assert [drawn(t) for t in texts(layout, "recent-ticket")[:1] + texts(layout, "recent-counter")[:1]] == [
        "A009",
        "5",
    ], "the board itself is shown"

    publish_office(broker.port, WEDNESDAY)  # the server is back and republishes, live
    shown = display.wait(lambda s: s["clock"] and s["date"], "the clock from a live message")
    assert (shown["clock"], shown["date"]) in {
        ("10:15", "środa, 30 września 2026"),
        ("10:16", "środa, 30 września 2026"),
    }
    display.screenshot("display-live-clock-1280x720", artifacts)

    peer = Peer(broker.port)
    try:
        peer.publish(f"{BASE}/server/availability", b"offline", retain=True)
    finally:
        peer.close()
    shown = display.wait(lambda s: "server offline" in s["offline"], "the server-offline mark")
    assert (shown["clock"], shown["date"]) == ("", ""), "the time of a server that may restart with another clock"


def texts(layout: dict, role: str) -> list[dict]:
    return [t for t in layout["texts"] if t["role"] == role]


def drawn(text: dict) -> str:
    """The text as the font drew it, lines joined by a space."""
    return " ".join(line["text"].strip() for line in text["lines"])


def inside(inner: list[float], outer: list[float], slack: float = 1.0) -> bool:
    x, y, w, h = inner
    ox, oy, ow, oh = outer
    return x >= ox - slack and y >= oy - slack and x + w <= ox + ow + slack and y + h <= oy + oh + slack


def overlap(a: list[float], b: list[float]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def assert_drawn_inside(text: dict) -> None:
    for line in text["lines"]:
        assert inside(line["box"], text["box"]), f"{line['text']!r} is drawn outside its box {text['box']}"


def test_waiting_counts_of_three_digits_are_shown_in_full(crowded_board, artifacts):
    display, size = crowded_board
    layout = display.layout(f"display-counts-{size[0]}x{size[1]}", artifacts)
    counts = texts(layout, "waiting-count")
    assert [drawn(c) for c in counts] == ["123", "999", "100", "7", "45"], "every digit on screen, no '1…'"
    for c in counts:
        assert not c["shortened"] and len(c["lines"]) == 1
        assert_drawn_inside(c)
    assert all(inside(c["box"], [0, 0, *layout["window"]]) for c in counts), "the last count is off screen"


def test_five_service_names_are_shown_whole_in_at_most_two_lines(crowded_board, artifacts):
    display, size = crowded_board
    layout = display.layout(f"display-names-{size[0]}x{size[1]}", artifacts)
    names = texts(layout, "waiting-name")
    expected = [s.name["pl"] for s in example_services()]
    assert [n["text"].replace("\n", " ") for n in names] == expected
    for n, full in zip(names, expected, strict=True):
        assert drawn(n) == full, f"{full!r} is drawn as {drawn(n)!r}"  # whole words, nothing cut out
        assert 1 <= len(n["lines"]) <= 2
        assert_drawn_inside(n)
        assert n["font_size"] >= layout["window"][1] / 60, f"{full!r} in a {n['font_size']:.0f} px font is not legible"
    boxes = [t["box"] for t in layout["texts"] if t["role"] in ("waiting-name", "waiting-count", "waiting-caption")]
    for i, a in enumerate(boxes):
        assert not any(overlap(a, b) for b in boxes[i + 1 :]), "two cells of the waiting bar overlap"


def test_a_long_list_of_recent_calls_shows_the_newest_rows_at_full_size_below_its_heading(crowded_board, artifacts):
    display, size = crowded_board  # last_calls = 9, the config's maximum
    layout = display.layout(f"display-recent-{size[0]}x{size[1]}", artifacts)
    headings = texts(layout, "recent-heading")
    assert [drawn(h) for h in headings] == ["Numer Number", "Stanowisko Counter"]
    tickets, counters = texts(layout, "recent-ticket"), texts(layout, "recent-counter")
    assert len(tickets) == len(counters) == 5, "16:9 landscape has room for five rows at the 10-metre size"
    assert [drawn(t) for t in tickets] == [f"A{seq:03d}" for seq in range(9, 4, -1)], "the newest, in order"
    assert [drawn(c) for c in counters] == [str(1 + seq % 5) for seq in range(9, 4, -1)]
    for row in tickets + counters:
        assert inside(row["box"], layout["recent_box"]), f"{drawn(row)!r} is outside the recent-calls list"
        assert not any(overlap(row["box"], h["box"]) for h in headings), f"{drawn(row)!r} is drawn over the heading"
        assert not row["shortened"]
        assert_drawn_inside(row)
    for a, b in zip(tickets, tickets[1:], strict=False):
        assert not overlap(a["box"], b["box"]) and a["box"][1] > b["box"][1], "rows overlap or are out of order"


@pytest.mark.parametrize("size", SCREENS, ids=lambda s: f"{s[0]}x{s[1]}")
def test_the_longest_polish_date_is_shown_with_its_year(crowded, artifacts, size):
    display = crowded(size, "date", at=LONGEST_DAY)
    shown = display.wait(lambda s: s["date"] == "poniedziałek, 30 października 2028", "the server's date")
    layout = display.layout(f"display-date-{size[0]}x{size[1]}", artifacts)
    [date] = texts(layout, "date")
    assert drawn(date) == shown["date"] and not date["shortened"]
    assert_drawn_inside(date)
    [clock] = texts(layout, "clock")
    assert drawn(clock) == "10:15"
    [office] = texts(layout, "office")
    assert drawn(office) == "Starostwo Powiatowe w Nowym Mieście", "the office name still fits beside the date"


@pytest.mark.parametrize("size", [(1920, 1080), (1280, 720)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_a_board_in_polish_and_ukrainian_shows_every_caption_in_both_languages_whole(crowded, artifacts, size):
    """``[display] languages = ["pl", "uk"]``: Ukrainian where English was, nothing cut or overlapping."""
    display = crowded(size, "uk", board_languages=("pl", "uk"))
    layout = display.layout(f"display-pl-uk-{size[0]}x{size[1]}", artifacts)
    shown = {role: [drawn(t) for t in texts(layout, role)] for role in ("caption", "recent-heading", "waiting-caption")}
    assert shown == {
        "caption": ["Wywołany numer \u00b7 Викликано номер"],
        "recent-heading": ["Numer Номер", "Stanowisko Вікно"],
        "waiting-caption": ["Oczekuje Очікують"],
    }
    captions = [t for role in shown for t in texts(layout, role)]
    for t in captions:
        assert not t["shortened"], drawn(t)
        assert_drawn_inside(t)
    for i, a in enumerate(captions):
        assert not any(overlap(a["box"], b["box"]) for b in captions[i + 1 :]), drawn(a)


@pytest.mark.parametrize("size", [(1920, 1080), (1280, 720)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_offline_mark_and_logo_are_both_visible(crowded, artifacts, size):
    logo = str(Path(kivy_package_dir()) / "data" / "logo" / "kivy-icon-256.png")
    display = crowded(size, "offline", online=False, logo=logo)
    display.wait(lambda s: s["offline"] == "\u25cf serwer niedostępny · server offline", "the server-offline mark")
    layout = display.layout(f"display-offline-logo-{size[0]}x{size[1]}", artifacts)
    [mark] = texts(layout, "offline")
    assert drawn(mark) == "\u25cf serwer niedostępny · server offline" and not mark["shortened"]
    assert_drawn_inside(mark)
    ink = [line["box"] for line in mark["lines"]]
    assert layout["logo"] and not any(overlap(box, layout["logo"]) for box in ink), "the mark covers the logo"
    for other in layout["texts"]:
        if other["role"] not in ("offline", ""):
            assert not any(overlap(box, line["box"]) for box in ink for line in other["lines"]), other["text"]


def test_docs_name_the_environment_the_display_unit_sets():
    """docs/display.md lists the variables for Kivy on KMS/DRM; the systemd unit must set them."""
    unit = (ROOT / "systemd" / "numerek-display.service").read_text(encoding="utf-8")
    env = dict(line.split("=", 2)[1:] for line in unit.splitlines() if line.startswith("Environment="))
    docs = (ROOT / "docs" / "display.md").read_text(encoding="utf-8")
    [bullet] = [line for line in docs.split("\n- ") if line.startswith("Environment:")]
    named = dict(code.split("=", 1) for code in bullet.split("`")[1::2] if "=" in code)
    listed = {k: v for k, v in named.items() if k.startswith(("KIVY_", "SDL_"))}
    assert listed, bullet
    for key, value in listed.items():
        if key in ("KIVY_NO_ARGS", "KIVY_LOG_MODE"):  # set by numerek-display itself, as the docs say
            continue
        assert env.get(key) == value, f"docs say {key}={value}, the unit sets {env.get(key)!r}"
    assert env.get("KIVY_GL_BACKEND") == "sdl2", "GL through SDL2's context on KMS/DRM, not libGL/GLX"


# --------------------------------------------------------------------------- chime and speaker checks
#
# As on a Pi installed without sox: the display's PATH holds only the programs it is given.


def path_with(tmp_path: Path, **scripts: str) -> str:
    """A directory for PATH with espeak-ng and aplay (the real ones unless ``scripts`` replaces
    one with a shell script) and nothing else: in particular no sox."""
    bin_dir = tmp_path / "-".join(["bin", *scripts])
    bin_dir.mkdir()
    for name in ("espeak-ng", "aplay"):
        target = bin_dir / name
        if name in scripts:
            target.write_text(f"#!/bin/sh\n{scripts[name]}\n")
            target.chmod(0o755)
        else:
            real = shutil.which(name)
            assert real, f"{name} is not installed"
            target.symlink_to(real)
    return str(bin_dir)


def stereo_chime(path: Path, rate: int = 44100) -> Path:
    """A valid 16-bit stereo WAV at 44.1 kHz: a CD-quality "ding" an office might pick."""
    import array
    import math

    frames = array.array("h")
    for i in range(int(rate * 0.6)):
        v = int(8000 * math.sin(2 * math.pi * 880 * i / rate))
        frames.extend((v, v))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames.tobytes())
    return path


def run_cli(cfg: Path, *args: str, path: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **({"PATH": path} if path else {})}
    return subprocess.run(
        [sys.executable, "-m", "display.cli", "--config", str(cfg), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )


def test_chime_that_cannot_be_converted_falls_back_to_the_built_in_chime_and_calls_are_still_spoken(
    tmp_path, server, office_peer, display_factory
):
    from hardware.audio import load_chime, scale

    chime = stereo_chime(tmp_path / "gong.wav")
    display = display_factory()
    with open(display.config, "a", encoding="utf-8") as f:
        f.write(f'chime = "{chime}"\n')
    display.env["PATH"] = path_with(tmp_path)
    display.start()

    issue(office_peer, "rej", "t1")
    command(office_peer, "1", "c1")
    [said] = wait_for(display.announcements, 30, "the call to be announced despite the unusable chime")
    assert said["ticket"] == "A001"
    heard = wave.open(str(display.audio / said["file"]), "rb")
    frames = heard.readframes(heard.getnframes())
    built_in = scale(load_chime(None), 0.8)  # the config's default volume
    assert frames.startswith(built_in), "the announcement starts with the built-in ding-dong"
    assert len(frames) > len(built_in) + 22050, "and the call is spoken after it"
    log = display.log()
    assert "audio.chime" in log and "sox is not installed" in log and "built-in chime" in log
    assert "audio disabled" not in log


def test_check_names_a_chime_the_display_cannot_use(tmp_path):
    cfg = tmp_path / "display.toml"
    stereo = stereo_chime(tmp_path / "gong.wav")
    (tmp_path / "notes.wav").write_text("not a sound at all")
    no_sox = path_with(tmp_path)
    cases = [
        ('chime = "missing.wav"', None, "cannot read chime"),
        ('chime = "notes.wav"', None, "is not a WAV file"),
        (f'chime = "{stereo}"', no_sox, "sox is not installed"),
    ]
    for line, path, why in cases:
        cfg.write_text(f"[audio]\n{line}\n", encoding="utf-8")
        done = run_cli(cfg, "--check", path=path)
        assert done.returncode == 2, (line, done.stdout, done.stderr)
        assert "audio.chime" in done.stderr and why in done.stderr, (line, done.stderr)
        assert "Traceback" not in done.stderr and "OK —" not in done.stdout
    # With sox the same stereo 44.1 kHz chime is converted: valid.
    cfg.write_text(f'[audio]\nchime = "{stereo}"\n', encoding="utf-8")
    done = run_cli(cfg, "--check")
    assert done.returncode == 0 and "OK —" in done.stdout, done.stderr
    # A display without sound does not care about its chime.
    cfg.write_text('[audio]\nenabled = false\nchime = "missing.wav"\n', encoding="utf-8")
    assert run_cli(cfg, "--check").returncode == 0


def test_test_audio_fails_with_a_clear_message_when_the_speaker_cannot_play(tmp_path):
    cfg = tmp_path / "display.toml"
    cfg.write_text('[audio]\noutput = "alsa"\ndevice = "hw:CARD=NoSuchCard"\n', encoding="utf-8")
    done = run_cli(cfg, "--test-audio", "A023", "Stanowisko 4")
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "could not be played" in done.stderr and "hw:CARD=NoSuchCard" in done.stderr, done.stderr
    assert "did you hear it" not in done.stdout and "Traceback" not in done.stderr

    # A player that fails (e.g. the card is busy) is reported the same way.
    failing = path_with(
        tmp_path,
        aplay='/bin/cat >/dev/null; echo "aplay: main:831: audio open error: Device or resource busy" >&2; exit 1',
    )
    cfg.write_text('[audio]\noutput = "alsa"\n', encoding="utf-8")
    done = run_cli(cfg, "--test-audio", "A023", "Stanowisko 4", path=failing)
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "could not be played" in done.stderr and "Device or resource busy" in done.stderr, done.stderr

    # Real aplay into ALSA's "null" device plays (and discards) it: success.
    cfg.write_text('[audio]\noutput = "alsa"\ndevice = "null"\n', encoding="utf-8")
    done = run_cli(cfg, "--test-audio", "A023", "Stanowisko 4")
    assert done.returncode == 0, done.stderr
    assert "pl: Numer A 23, stanowisko 4" in done.stdout and "did you hear it" in done.stdout


def test_a_zone_the_server_does_not_have_is_named_in_the_log(server, office_peer, display_factory):
    lost = display_factory("lost", zone="hal", device="hall-2").start()
    right = display_factory("right").start()
    issue(office_peer, "rej", "t1")
    right.wait(lambda s: s["waiting"] == [["Rejestracja pojazdów", 1], ["Prawo jazdy", 0]], "the hall's waiting counts")
    wait_for(lambda: "no service of the server is in zone 'hal'" in lost.log(), 30, "the warning about the zone")
    assert "'hall'" in lost.log(), "the warning names the zones the server has"
    assert lost.shown()["waiting"] == [], "the lost display shows nothing to wait for"
    assert "no service of the server" not in right.log()
    assert lost.log().count("no service of the server") == 1, "said once, not on every services update"


# The display with a fault injected into its MQTT thread (test-only, from outside the package),
# as a bug would: the connection cannot even make its client.
_INJECTED = """
import sys
import protocol.device

def broken_client(*args, **kwargs):
    raise RuntimeError("injected fault in the MQTT thread")

protocol.device.make_client = broken_client
from display.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_display_exits_non_zero_when_its_mqtt_thread_dies_so_systemd_restarts_it(tmp_path, broker, screen):
    """Not a screen that says "offline" forever: like the counter, it stops and exits 1."""
    cfg = tmp_path / "display.toml"
    cfg.write_text(
        f"[mqtt]\nport = {broker.port}\n\n[screen]\nfullscreen = false\nwidth = 640\nheight = 360\n\n[audio]\nenabled = false\n",
        encoding="utf-8",
    )
    env = {**screen.env(), "KIVY_HOME": str(tmp_path / "kivy")}
    done = subprocess.run(
        [sys.executable, "-c", _INJECTED, "--config", str(cfg)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "injected fault in the MQTT thread" in done.stderr


# ---------------------------------------------------------------------------- read from 10 m
#
# The hall display read from 10 metres: rendered type measured on a 43-inch panel.
#
# The real display under Xvfb shows the example office's crowded board; a screenshot is taken
# through its probe and the height of the glyphs actually drawn is measured in pixels (the ink
# of a text's last glyph, a digit: as tall as a capital in DejaVu Sans), then converted to
# millimetres on a 43-inch 16:9 panel (952 x 535.5 mm; 0.496 mm per pixel at 1920x1080 or
# 1080x1920). The design rule (docs/display.md, "Reading from 10 m"): 1 cm of capital height
# per 3 m of distance, so a text meant for 10 m needs 33.3 mm capitals.

PANEL_SHORT_MM = 535.5
"""The short side of a 43-inch 16:9 panel: 43 in x 25.4 x 9 / sqrt(16^2 + 9^2)."""
MM_PER_METRE = 10 / 3
"""Capital height per metre of viewing distance (1 cm per 3 m)."""
TEN_METRES = 10 * MM_PER_METRE


def last_glyph_height_px(png: Image.Image, box: list[float]) -> int:
    """Height in pixels of the ink of the last glyph drawn in ``box`` (window coordinates, y up).

    The background is the box's most common colour; a pixel differing from it by more than a
    quarter of the range is ink. The last glyph is the rightmost run of ink columns.
    """
    x, y, w, h = box
    top = png.height - (y + h)
    crop = png.crop((int(x), int(top), int(x + w + 0.999), int(top + h + 0.999))).convert("RGB")
    pixels = crop.load()
    background = Counter(crop.get_flattened_data()).most_common(1)[0][0]

    def ink(px: tuple[int, int, int]) -> bool:
        return sum(abs(a - b) for a, b in zip(px, background, strict=True)) > 3 * 64

    columns = [any(ink(pixels[i, j]) for j in range(crop.height)) for i in range(crop.width)]
    right = max(i for i, c in enumerate(columns) if c)
    left = right
    while left > 0 and columns[left - 1]:
        left -= 1
    rows = [j for j in range(crop.height) if any(ink(pixels[i, j]) for i in range(left, right + 1))]
    return rows[-1] - rows[0] + 1


def measured_mm(display, name: str, artifacts: Path, roles: tuple[str, ...]) -> dict[str, list[tuple[str, float]]]:
    layout = display.layout(name, artifacts)
    png = Image.open(artifacts / f"{name}.png")
    print(f"\n{name} (mm of capital height on a 43-inch panel)")
    mm_per_px = PANEL_SHORT_MM / min(layout["window"])
    out: dict[str, list[tuple[str, float]]] = {}
    for role in roles:
        for t in texts(layout, role):
            line = t["lines"][-1]
            out.setdefault(role, []).append((drawn(t), round(last_glyph_height_px(png, line["box"]) * mm_per_px, 1)))
        print(f"  {role}: " + ", ".join(f"{text} {mm}" for text, mm in out.get(role, [])))
    return out


def assert_at_least(heights: dict[str, list[tuple[str, float]]], role: str, mm: float, count: int) -> None:
    rows = heights.get(role, [])
    assert len(rows) >= count, f"{role}: {rows}"
    small = [(text, h) for text, h in rows if h < mm]
    assert not small, f"{role} below {mm:.1f} mm (readable from {min(h for _t, h in small) / MM_PER_METRE:.1f} m)"


@pytest.mark.parametrize("size", [(1920, 1080), (1080, 1920)], ids=["landscape", "portrait"])
def test_current_call_recent_calls_and_counter_names_are_readable_from_ten_metres(crowded, artifacts, size):
    display = crowded(size, f"legible-{size[0]}x{size[1]}")
    name = f"display-legibility-{size[0]}x{size[1]}"
    heights = measured_mm(display, name, artifacts, ("ticket", "counter", "recent-ticket", "recent-counter"))
    assert_at_least(heights, "ticket", 80.0, 1)  # A010: readable from 24 m
    assert_at_least(heights, "counter", TEN_METRES, 1)  # → Stanowisko 1
    rows = 5
    assert_at_least(heights, "recent-ticket", TEN_METRES, rows)
    assert_at_least(heights, "recent-counter", TEN_METRES, rows)


def test_per_counter_columns_show_each_counters_ticket_readable_from_ten_metres(crowded, artifacts):
    display = crowded((1920, 1080), "legible-columns", layout="counters")
    shown = display.wait(lambda s: len(s["columns"]) == 5, "five counter columns")
    assert shown["columns"] == [
        ["Stanowisko 1", "A010"],
        ["Stanowisko 2", "A006"],
        ["Stanowisko 3", "A007"],
        ["Stanowisko 4", "A008"],
        ["Stanowisko 5", "A009"],
    ]
    heights = measured_mm(
        display, "display-legibility-counters-1920x1080", artifacts, ("column-counter", "column-ticket")
    )
    assert [t for t, _h in heights["column-counter"]] == ["1", "2", "3", "4", "5"]
    assert [t for t, _h in heights["column-ticket"]] == ["A010", "A006", "A007", "A008", "A009"], "one line each"
    assert_at_least(heights, "column-counter", TEN_METRES, 5)
    assert_at_least(heights, "column-ticket", 38.0, 5)  # five columns: 11 m and more


# ---------------------------------------------------------------------------- where to go

UPSTAIRS_PLACE = '{ pl = "pokój 12, I piętro", en = "room 12, 1st floor" }'


@pytest.fixture
def office_with_places(tmp_path, broker):
    """The test office with its passport counter upstairs given a place, as an office would."""
    http_port = free_port()
    cfg = write_config(tmp_path / "office.toml", broker.port, http_port)
    text = cfg.read_text(encoding="utf-8")
    upstairs = 'name = "Stanowisko 3"\nzone = "upstairs"\n'
    assert upstairs in text
    cfg.write_text(text.replace(upstairs, upstairs + f"place = {UPSTAIRS_PLACE}\n"), encoding="utf-8")
    server = ServerProcess(cfg, http_port=http_port).start()
    yield server
    server.stop()


def test_a_hall_display_lists_the_upstairs_call_with_its_place_and_does_not_announce_it(
    office_with_places, office_peer, display_factory, artifacts
):
    peer = office_peer
    display = display_factory(other_zones=("upstairs",), size=(1280, 720)).start()
    issue(peer, "pasz", "t1")
    issue(peer, "rej", "t2")
    command(peer, "3", "c1")  # the passport counter upstairs calls P001
    call = peer.expect(f"{BASE}/zone/upstairs/call", where=lambda d: d["ticket"] == "P001")
    assert call["place"] == {"pl": "pokój 12, I piętro", "en": "room 12, 1st floor"}
    shown = display.wait(lambda s: s["others"], "the upstairs call in the side list")
    assert shown["others"] == [f"P001 {ARROW} Stanowisko 3, pokój 12, I piętro"]
    assert shown["newest"] == "", "the hall's own board is untouched"

    command(peer, "1", "c2")  # a hall call: this one is announced, the upstairs one never was
    display.wait(lambda s: s["newest"].startswith("A001"), "the hall call")
    log = wait_for(lambda: display.announcements(), 30, "the hall call's announcement")
    layout = display.layout("display-other-zones-1280x720", artifacts)
    assert [e["ticket"] for e in log] == ["A001"], "only this hall's calls are spoken here"
    [place] = texts(layout, "other-place")
    assert drawn(place) == "Stanowisko 3, pokój 12, I piętro" and not place["shortened"]
    assert_drawn_inside(place)


def info_strip(png: Path) -> bytes:
    """The bottom 10 % of a screenshot, where the info line is."""
    with Image.open(png) as im:
        return im.convert("RGB").crop((0, int(im.height * 0.9), im.width, im.height)).tobytes()


def test_an_info_line_that_fits_stands_still_and_a_long_one_is_shown_in_parts_without_scrolling(
    server, display_factory, artifacts
):
    """Scrolling redraws the whole window every frame (a third of a core at 30 fps, issue 14):
    a line that fits the screen is drawn once and does not move."""
    display = display_factory("short", info_text="Prosimy o przygotowanie dowodu · Please have your ID ready").start()
    shown = display.wait(lambda s: s["info_mode"], "the info line laid out")
    assert shown["info_mode"] == "static"
    first = info_strip(display.screenshot("display-info-still-1", artifacts))
    second = info_strip(display.screenshot("display-info-still-2", artifacts))
    assert first == second, "the info line moved"
    assert len(set(first)) > 2, "the info line is drawn"
    display.stop()

    long_text = " · ".join(["Prosimy o przygotowanie dowodu osobistego", "Please have your ID card ready"] * 4)
    paged = display_factory("long", info_text=long_text, info_fps=0).start()
    assert paged.wait(lambda s: s["info_mode"], "the info line laid out")["info_mode"] == "pages"
    paged.stop()
    scrolling = display_factory("scrolling", info_text=long_text, info_fps=15).start()
    assert scrolling.wait(lambda s: s["info_mode"], "the info line laid out")["info_mode"] == "scroll"
