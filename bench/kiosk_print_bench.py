"""Kiosk tap → ticket bytes at the printer, measured on the real kiosk.

    python bench/kiosk_print_bench.py --taps 50 [--before REV] [--rounds 5]

The real kiosk (``python -m kiosk.cli``) runs under a private Xvfb against the real server and
a private Mosquitto (tests/harness.py), printing to a loopback TCP ESC/POS printer that answers
status queries like a real one (tests/test_printer.py ``LoopbackPrinter``). Each tap is an
X click by xdotool on a service button (the pointer is moved there first, untimed); the time
runs from just before the click to

* ``first byte``: the first byte of the print job at the printer (its status query), and
* ``ticket sent``: the last byte of the ticket at the printer (the whole ticket is there).

After each ticket the bench taps "Gotowe" and waits for the home screen, so every tap is a
resident's first tap on a settled home screen.

``--before REV`` also measures the kiosk as it was at git revision REV (exported with
``git archive`` into a temporary directory and run from there), interleaved with the working
tree in ``--rounds`` rounds, a fresh kiosk process each round, so both see the same machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tests.test_kiosk as test_kiosk  # noqa: E402
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


def ticket_timing(printer: LoopbackPrinter, number: str, t0: float, timeout: float = 10) -> tuple[float, float]:
    """(first byte, last byte) of the connection that carried ``number``, in ms after ``t0``.
    Called once the kiosk reported the print's outcome, so all of its bytes are in."""
    data = wait_for(lambda: next((d for d in list(printer.connections) if number.encode() in d), None), timeout, number)
    chunks = printer.arrivals[id(data)]
    return (chunks[0][0] - t0) * 1000, (chunks[-1][0] - t0) * 1000


def run_round(
    workdir: Path, screen, broker: Broker, server: ServerProcess, root: Path, taps: int
) -> list[tuple[float, float]]:
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
    try:
        misses = 0
        while len(out) < taps:
            home = kiosk.wait_home(60)
            if home["priority"]:  # a click landed on the toggle (home rebuilt under the pointer)
                kiosk.tap("priority")
                home = kiosk.wait("priority off", lambda e: e["screen"] == "home" and not e["priority"], 30)
            x, y, _enabled = home["buttons"]["service:rej"]
            subprocess.run(["xdotool", "mousemove", "--sync", str(x), str(y)], env=kiosk.env, check=True)
            t0 = time.monotonic()
            subprocess.run(["xdotool", "click", "1"], env=kiosk.env, check=True)
            shown = kiosk.wait(
                "ticket screen (or a missed tap)",
                lambda e: (e["screen"] == "ticket" and e["printer"]) or (e["screen"] == "home" and e["priority"]),
                30,
            )
            if shown["screen"] != "ticket":
                misses += 1
                assert misses < 5, "taps keep missing the service button"
                continue
            out.append(ticket_timing(printer, shown["ticket"], t0))
            for attempt in range(5):  # a tap while the screen is rebuilt (the print outcome) is lost
                kiosk.tap("done")
                try:
                    kiosk.wait("home after done", lambda e: e["screen"] == "home", 5)
                    break
                except AssertionError:
                    if attempt == 4:
                        raise
    finally:
        kiosk.stop()
        printer.close()
        test_kiosk.ROOT = ROOT
    return out


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


def summary(name: str, rows: list[tuple[float, float]]) -> dict:
    first, last = [r[0] for r in rows], [r[1] for r in rows]
    return {
        "kiosk": name,
        "taps": len(rows),
        "first_byte_ms": {p: round(pct(first, q), 1) for p, q in (("p50", 50), ("p95", 95), ("p99", 99))}
        | {"max": round(max(first), 1), "mean": round(statistics.fmean(first), 1)},
        "ticket_sent_ms": {p: round(pct(last, q), 1) for p, q in (("p50", 50), ("p95", 95), ("p99", 99))}
        | {"max": round(max(last), 1), "mean": round(statistics.fmean(last), 1)},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--taps", type=int, default=50, help="taps per kiosk version (split over the rounds)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--before", help="a git revision to compare with, interleaved")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="numerek-kiosk-bench-") as tmp:
        base = Path(tmp)
        broker = Broker(base).start()
        http = free_port()
        server = ServerProcess(write_config(base / "server.toml", broker.port, http), http).start(login=False)
        screen = VirtualScreen()
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
                        base / f"r{r}-{len(results[name])}-{name[:5]}", screen, broker, server, root, per_round
                    )
                    results[name] += rows
                    print(
                        f"round {r + 1}/{args.rounds} {name}: first byte p50 {statistics.median(x[0] for x in rows):.1f} ms",
                        flush=True,
                    )
        finally:
            screen.stop()
            server.stop()
            broker.stop()
    print(json.dumps([summary(name, rows) for name, rows in results.items()], indent=2))


if __name__ == "__main__":
    main()
