"""The hall display's CPU and memory, idle and while calls arrive, on the real display.

    python bench/display_cpu_bench.py [--seconds 60] [--before REV] [--size 1920x1080]

Each variant starts the real display (``python -m display.cli``, tests/test_display.py's
``DisplayProcess`` without its probe) on a private Xvfb screen against the real server and a
private Mosquitto, waits until it is online and 10 s more, then measures the display process's
CPU (utime + stime from /proc/<pid>/stat, as % of one core) for ``--seconds`` idle, and again
for ``--seconds`` while a ticket is issued and called every 2 s (each call is drawn and
announced: audio output "files", so the speech is synthesised as on a Pi). RSS (VmRSS) is
read after the settle, after the idle phase and at the end.

Variants: the info line of display/examples/display.toml (fits a 1920 px screen), and a long
one (four times that) scrolled at 15 fps and shown in parts (``info_fps = 0``). With
``--before REV`` the display as it was at git revision REV (``git archive``) runs first with
the example text (it scrolled any text at 30 fps, so the long one costs the same).

``--soak MINUTES`` instead runs one display (this tree, the example text) for that long with a
call every 2 s and prints its RSS every minute: the leak check of issue 14.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tests.test_display as test_display  # noqa: E402
from protocol.topics import RouteKind, Topics  # noqa: E402
from tests.harness import ROOT, Broker, Peer, ServerProcess, VirtualScreen, free_port, write_config  # noqa: E402
from tests.test_display import BASE, DisplayProcess, command, issue  # noqa: E402

TOPICS = Topics(BASE)

EXAMPLE = "Prosimy o przygotowanie dowodu osobistego · Please have your ID card ready"
LONG = " · ".join([EXAMPLE] * 4)
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14 and 15)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_percent(pid: int, seconds: float) -> float:
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)  # the measuring window itself, not a synchronisation
    return 100 * (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


class Caller:
    """A ticket issued and called every ``every`` seconds, as a steady office would."""

    def __init__(self, peer: Peer, every: float = 2.0) -> None:
        self.peer, self.every = peer, every
        self.stop = threading.Event()
        self.n = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(self.every):
            self.n += 1
            rid = f"{time.monotonic_ns()}"
            issue(self.peer, "rej", f"t{rid}")
            command(self.peer, "1", f"c{rid}")

    def __enter__(self) -> Caller:
        self.thread.start()
        return self

    def __exit__(self, *_a) -> None:
        self.stop.set()
        self.thread.join(10)


def export(rev: str, into: Path) -> Path:
    archive = subprocess.run(
        ["git", "archive", rev, "display", "hardware", "protocol"], cwd=ROOT, check=True, capture_output=True
    )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def start(workdir: Path, broker: Broker, screen, peer: Peer, root: Path, size, text: str, fps: int | None):
    test_display.ROOT = root  # DisplayProcess runs ``python -m display.cli`` from here
    d = DisplayProcess(workdir, broker.port, screen.env(), size=size, speed=1.0, info_text=text, info_fps=fps or 0)
    if fps is None:  # a display from before info_fps existed refuses the key
        d.config.write_text(d.config.read_text(encoding="utf-8").replace("info_fps = 0\n", ""), encoding="utf-8")
    d.env.pop("NUMEREK_DISPLAY_PROBE")  # the probe's file writes are the tests' cost, not the hall's
    availability = TOPICS.device_availability("display-hall-1")
    peer.subscribe(availability)
    d.start(online=False)
    peer.take(lambda m: m.topic == availability and m.payload == b"online", 60, "display online")
    test_display.ROOT = ROOT
    return d


def measure(name, d: DisplayProcess, peer: Peer, seconds: float) -> dict:
    assert d.proc is not None
    pid = d.proc.pid
    time.sleep(10)  # settle: the first board, fonts, the first frames
    rss0 = rss_mb(pid)
    idle = cpu_percent(pid, seconds)
    rss1 = rss_mb(pid)
    with Caller(peer) as caller:
        busy = cpu_percent(pid, seconds)
    out = {
        "variant": name,
        "idle_cpu_pct": round(idle, 1),
        "calls_cpu_pct": round(busy, 1),
        "calls": caller.n,
        "rss_mb": [round(rss0, 1), round(rss1, 1), round(rss_mb(pid), 1)],
    }
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--before", help="a git revision to measure first")
    ap.add_argument("--size", default="1920x1080")
    ap.add_argument("--soak", type=float, help="minutes of one display under calls, RSS each minute")
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="numerek-display-bench-") as tmp:
        base = Path(tmp)
        broker = Broker(base).start()
        http = free_port()
        server = ServerProcess(write_config(base / "server.toml", broker.port, http), http).start(login=False)
        screen = VirtualScreen(*size)
        peer = Peer(broker.port)
        peer.subscribe(TOPICS.kiosk_response("k1", "#"), TOPICS.filter(RouteKind.COUNTER_REPLY))
        variants: list[tuple[str, Path, str, int | None]] = []
        if args.before:
            (base / "before-tree").mkdir()
            before = export(args.before, base / "before-tree")
            variants += [(f"before ({args.before}), example text (it scrolled at 30 fps)", before, EXAMPLE, None)]
        variants += [
            ("after, example text (fits: still)", ROOT, EXAMPLE, 15),
            ("after, long text, info_fps = 15", ROOT, LONG, 15),
            ("after, long text, info_fps = 0 (parts)", ROOT, LONG, 0),
        ]
        results = []
        try:
            if args.soak:
                d = start(base / "soak", broker, screen, peer, ROOT, size, EXAMPLE, 15)
                pid, t0 = d.proc.pid, time.monotonic()
                with Caller(peer) as caller:
                    for minute in range(int(args.soak) + 1):
                        row = {"minute": minute, "rss_mb": round(rss_mb(pid), 1), "calls": caller.n}
                        print(json.dumps(row), flush=True)
                        results.append(row)
                        if minute < args.soak:
                            time.sleep(max(0.0, t0 + 60 * (minute + 1) - time.monotonic()))
                d.stop()
            else:
                for i, (name, root, text, fps) in enumerate(variants):
                    d = start(base / f"v{i}", broker, screen, peer, root, size, text, fps)
                    try:
                        results.append(measure(name, d, peer, args.seconds))
                    finally:
                        d.stop()
        finally:
            peer.close()
            screen.stop()
            server.stop()
            broker.stop()
    print(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
