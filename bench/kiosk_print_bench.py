"""Kiosk tap → ticket bytes at the printer, measured on the real kiosk.

    python bench/kiosk_print_bench.py --taps 50 [--before REV] [--rounds 5]

The real kiosk (``python -m kiosk.cli``) runs under a private Xvfb against the real server and
a private Mosquitto (tests/harness.py), printing to a loopback TCP ESC/POS printer that answers
status queries like a real one (tests/test_printer.py ``LoopbackPrinter``). Each tap is an
X click on a service button through XTEST (the pointer is moved there first by xdotool,
untimed; the click is sent from this process, see :class:`Clicker`); the time runs from just
before the click to

* ``first byte``: the first byte of the print job at the printer (its status query), and
* ``ticket sent``: the last byte of the ticket at the printer (the whole ticket is there).

The split of the first byte's time comes from the kiosk's own log (its timestamps, ms) and the
broker: ``tap seen`` (the kiosk's "ticket for rej: tap" line: X server, Kivy's frame, the
button), ``request sent`` ("asked"), ``answer out`` (the server's answer seen by a subscriber
on the same broker), ``print started`` ("ticket A001: printing": the printer's thread was
started, on Kivy's thread before, on the network thread since issue 14's change), ``first byte``. Each is in ms after the tap; a kiosk whose
log lacks a line (an older tree) leaves that column out.

After each ticket the bench taps "Gotowe" and waits for the home screen, so every tap is a
resident's first tap on a settled home screen.

``--before REV`` also measures the kiosk as it was at git revision REV (exported with
``git archive`` into a temporary directory and run from there), interleaved with the working
tree in ``--rounds`` rounds, a fresh kiosk process each round, so both see the same machine.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import paho.mqtt.client as mqtt  # noqa: E402

import tests.test_kiosk as test_kiosk  # noqa: E402
from protocol.topics import RouteKind, Topics  # noqa: E402
from tests.harness import ROOT, Broker, ServerProcess, VirtualScreen, free_port, wait_for, write_config  # noqa: E402
from tests.test_kiosk import Kiosk  # noqa: E402
from tests.test_printer import LoopbackPrinter  # noqa: E402


def export(rev: str, into: Path) -> Path:
    """The tree at ``rev`` (only what the kiosk runs from), for a "before" kiosk."""
    archive = subprocess.run(
        ["git", "archive", rev, "kiosk", "hardware", "protocol"], cwd=ROOT, check=True, capture_output=True
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ kiosk\.app: (.*)$")
KEEP: Path | None = None
STAGES = ("tap seen", "request sent", "answer out", "print started", "first byte")


class Clicker:
    """A mouse click through the XTEST extension of the screen's X server, from this process.

    Why not ``xdotool click``: starting the xdotool program (fork, exec, connecting to X) took
    tens of ms on the loaded machine, all of it counted as the kiosk's; a resident's finger
    costs nothing of the kind. The pointer is still moved there by xdotool, untimed."""

    def __init__(self, display: str) -> None:
        self.x11 = ctypes.CDLL(ctypes.util.find_library("X11"))
        self.xtst = ctypes.CDLL(ctypes.util.find_library("Xtst"))
        self.x11.XOpenDisplay.restype = ctypes.c_void_p
        self.x11.XFlush.argtypes = [ctypes.c_void_p]
        self.x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
        self.xtst.XTestFakeButtonEvent.argtypes = [ctypes.c_void_p, ctypes.c_uint, ctypes.c_int, ctypes.c_ulong]
        self.dpy = self.x11.XOpenDisplay(display.encode())
        if not self.dpy:
            raise RuntimeError(f"cannot open X display {display}")

    def click(self) -> None:
        self.xtst.XTestFakeButtonEvent(self.dpy, 1, 1, 0)
        self.xtst.XTestFakeButtonEvent(self.dpy, 1, 0, 0)
        self.x11.XFlush(self.dpy)

    def close(self) -> None:
        self.x11.XCloseDisplay(self.dpy)


class AnswerWatch:
    """A subscriber on the kiosks' response topics: when each answer left the broker (wall clock)."""

    def __init__(self, port: int) -> None:
        self.seen: dict[str, float] = {}  # ticket number -> time.time() of arrival
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(Topics().filter(RouteKind.KIOSK_RESPONSE))
        self.client.loop_start()

    def _message(self, _c, _u, msg) -> None:
        at = time.time()
        try:
            number = json.loads(msg.payload)["ticket"]["number"]
        except (ValueError, KeyError, TypeError):
            return
        with self._lock:
            self.seen[number] = at

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def log_split(log: Path, number: str, wall0: float) -> dict[str, float]:
    """ms after the tap (wall clock ``wall0``) of the kiosk's "tap", "asked", "printing" lines for ``number``."""
    lines = []
    for raw in log.read_text(encoding="utf-8", errors="replace").splitlines():
        m = LOG_LINE.match(raw)
        if m:
            at = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            lines.append((at, m.group(2)))
    out: dict[str, float] = {}
    end = next((i for i, (_at, text) in enumerate(lines) if text == f"ticket {number}: printing"), None)
    if end is None:
        return out
    out["print started"] = (lines[end][0] - wall0) * 1000
    for at, text in reversed(lines[:end]):
        if "request sent" not in out and text.startswith("ticket for ") and text.endswith("asked"):
            out["request sent"] = (at - wall0) * 1000
        if "tap seen" not in out and text.startswith("ticket for ") and text.endswith(": tap"):
            out["tap seen"] = (at - wall0) * 1000
        if at < wall0 - 1:
            break
    return out


def ticket_timing(printer: LoopbackPrinter, number: str, t0: float, timeout: float = 10) -> tuple[float, float]:
    """(first byte, last byte) of the connection that carried ``number``, in ms after ``t0``.
    Called once the kiosk reported the print's outcome, so all of its bytes are in."""
    data = wait_for(lambda: next((d for d in list(printer.connections) if number.encode() in d), None), timeout, number)
    chunks = printer.arrivals[id(data)]
    return (chunks[0][0] - t0) * 1000, (chunks[-1][0] - t0) * 1000


def run_round(
    workdir: Path, screen, broker: Broker, server: ServerProcess, root: Path, taps: int, watch: AnswerWatch
) -> list[tuple[float, float, dict[str, float]]]:
    printer = LoopbackPrinter()
    test_kiosk.ROOT = root  # the Kiosk helper runs ``python -m kiosk.cli`` from here
    workdir.mkdir(parents=True, exist_ok=True)
    kiosk = Kiosk(
        workdir,
        screen,
        broker.port,
        server.url,
        f'type = "network"\nport = {printer.port}\ntimeout_s = 2',
        workdir / "shots",
        idle_timeout_s=60,
    )
    out = []
    clicker = Clicker(kiosk.env["DISPLAY"])
    try:
        misses = 0
        while len(out) < taps:
            home = kiosk.wait_home(60)
            if home["priority"]:  # a click landed on the toggle (home rebuilt under the pointer)
                kiosk.tap("priority")
                home = kiosk.wait("priority off", lambda e: e["screen"] == "home" and not e["priority"], 30)
            x, y, _enabled = home["buttons"]["service:rej"]
            subprocess.run(["xdotool", "mousemove", "--sync", str(x), str(y)], env=kiosk.env, check=True)
            wall0, t0 = time.time(), time.monotonic()
            clicker.click()
            shown = kiosk.wait(
                "ticket screen (or a missed tap)",
                lambda e: (e["screen"] == "ticket" and e["printer"]) or (e["screen"] == "home" and e["priority"]),
                30,
            )
            if shown["screen"] != "ticket":
                misses += 1
                assert misses < 5, "taps keep missing the service button"
                continue
            first, last = ticket_timing(printer, shown["ticket"], t0)
            split = log_split(workdir / "kiosk.log", shown["ticket"], wall0)
            if shown["ticket"] in watch.seen:
                split["answer out"] = (watch.seen[shown["ticket"]] - wall0) * 1000
            split["first byte"] = first
            out.append((first, last, split))
            for attempt in range(5):  # a tap while the screen is rebuilt (the print outcome) is lost
                kiosk.tap("done")
                try:
                    kiosk.wait("home after done", lambda e: e["screen"] == "home", 5)
                    break
                except AssertionError:
                    if attempt == 4:
                        raise
    finally:
        clicker.close()
        kiosk.stop()
        printer.close()
        if KEEP is not None:
            KEEP.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(workdir / "kiosk.log", KEEP / f"{workdir.name}.log")
        test_kiosk.ROOT = ROOT
    return out


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


def summary(name: str, rows: list[tuple[float, float, dict[str, float]]]) -> dict:
    first, last = [r[0] for r in rows], [r[1] for r in rows]
    split = {}
    for stage in STAGES:
        values = [r[2][stage] for r in rows if stage in r[2]]
        if values:
            split[stage] = {"p50": round(pct(values, 50), 1), "p99": round(pct(values, 99), 1)}
    return {
        "kiosk": name,
        "taps": len(rows),
        "first_byte_ms": {p: round(pct(first, q), 1) for p, q in (("p50", 50), ("p95", 95), ("p99", 99))}
        | {"max": round(max(first), 1), "mean": round(statistics.fmean(first), 1)},
        "ticket_sent_ms": {p: round(pct(last, q), 1) for p, q in (("p50", 50), ("p95", 95), ("p99", 99))}
        | {"max": round(max(last), 1), "mean": round(statistics.fmean(last), 1)},
        "split_ms_after_tap": split,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--taps", type=int, default=50, help="taps per kiosk version (split over the rounds)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--before", help="a git revision to compare with, interleaved")
    ap.add_argument("--keep-logs", type=Path, help="copy each round's kiosk log into this directory")
    args = ap.parse_args()
    global KEEP
    KEEP = args.keep_logs
    with tempfile.TemporaryDirectory(prefix="numerek-kiosk-bench-") as tmp:
        base = Path(tmp)
        broker = Broker(base).start()
        http = free_port()
        server = ServerProcess(write_config(base / "server.toml", broker.port, http), http).start(login=False)
        screen = VirtualScreen()
        watch = AnswerWatch(broker.port)
        versions = {"after (this tree)": ROOT}
        if args.before:
            before = base / "before"
            before.mkdir()
            versions = {f"before ({args.before})": export(args.before, before), **versions}
        results: dict[str, list] = {name: [] for name in versions}
        try:
            per_round = max(1, args.taps // args.rounds)
            for r in range(args.rounds):
                for name, root in versions.items():
                    rows = run_round(
                        base / f"r{r}-{len(results[name])}-{name[:5]}", screen, broker, server, root, per_round, watch
                    )
                    results[name] += rows
                    print(
                        f"round {r + 1}/{args.rounds} {name}: first byte p50 {statistics.median(x[0] for x in rows):.1f} ms"
                        f" (load {os.getloadavg()[0]:.2f})",
                        flush=True,
                    )
        finally:
            watch.close()
            screen.stop()
            server.stop()
            broker.stop()
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(json.dumps([summary(name, rows) for name, rows in results.items()], indent=2))


if __name__ == "__main__":
    main()
