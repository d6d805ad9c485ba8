"""Garbage-collection pauses in the real server under the benchmark's load (server/gcpolicy.py).

    .venv/bin/python bench/gc_bench.py --runs 2 --before /tmp/before   # an older server beside this one

Each run starts a server (bench/server_bench.py's office: real mosquitto, real SQLite), issues
10,000 tickets (64 in flight), then ``--seconds`` of tickets at 16 in flight, then ``--calls``
NEXT → display calls one at a time. The server logs every collection it makes (generation,
pause in ms) through bench/gc_probe/sitecustomize.py, which only the server loads. Reported
per phase: collections of each generation, their total and longest pause. With ``--before``
the older server runs right after this one in each run, under the same load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import server_bench as sb  # noqa: E402

HERE = Path(__file__).resolve().parent


def one(folder: Path, code: Path | None, seconds: float, calls: int) -> dict:
    log = folder / "gc"
    os.environ["NUMEREK_GC_LOG"] = str(log)
    office = sb.Office(folder, False, 25, code)
    marks = {"start": time.time()}
    try:
        sb.load(office.port, 64, 0, office.folder, count=10000)
        marks["filled"] = time.time()
        result = sb.load(office.port, 16, seconds, office.folder)
        marks["loaded"] = time.time()
        lat = sb.call_latency(office.port, calls)
        marks["called"] = time.time()
        pid = office.server.proc.pid
    finally:
        office.close()
    events = [line.split() for line in Path(f"{log}.{pid}").read_text().splitlines()]
    phases = {}
    bounds = [("fill 10,000", "start", "filled"), ("16 in flight", "filled", "loaded"), ("calls", "loaded", "called")]
    for name, a, b in bounds:
        inside = [(int(g), float(ms)) for t, g, ms, _ in events if marks[a] <= float(t) < marks[b]]
        phases[name] = {g: [ms for gg, ms in inside if gg == g] for g in (0, 1, 2)}
    return {"phases": phases, "rate": result["rate"], "calls": lat}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--before", type=Path)
    args = ap.parse_args()
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE / "gc_probe"), os.environ.get("PYTHONPATH")]))
    codes: list[tuple[str, Path | None]] = [("after" if args.before else "this", None)]
    if args.before:
        codes.append(("before", args.before))
    got: dict[str, list[dict]] = {}
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    for run in range(args.runs):
        for label, code in codes:
            with tempfile.TemporaryDirectory(dir=HERE) as tmp:
                r = one(Path(tmp), code, args.seconds, args.calls)
            got.setdefault(label, []).append(r)
            print(f"run {run + 1} {label}: {r['rate']:.0f} tickets/s at 16, call p99 {sb.pct(r['calls'], 99):.2f} ms")
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    print()
    print("| server | phase | gen 0: n, total ms | gen 1: n, total ms | gen 2: n, total ms, longest ms |")
    print("|---|---|---:|---:|---:|")
    for label, runs in got.items():
        for phase in runs[0]["phases"]:
            cells = []
            for g in (0, 1, 2):
                xs = [ms for r in runs for ms in r["phases"][phase][g]]
                cell = f"{len(xs)}, {sum(xs):.1f}"
                if g == 2:
                    cell += f", {max(xs, default=0):.1f}"
                cells.append(cell)
            print(f"| {label} | {phase} | " + " | ".join(cells) + " |")
    for label, runs in got.items():
        calls = [x for r in runs for x in r["calls"]]
        print(
            f"{label}: call NEXT → display p50 {statistics.median(calls):.2f} ms, p99 {sb.pct(calls, 99):.2f} ms "
            f"(n={len(calls)}); tickets/s at 16 in flight, median of runs "
            f"{statistics.median(r['rate'] for r in runs):.0f}"
        )


if __name__ == "__main__":
    main()
