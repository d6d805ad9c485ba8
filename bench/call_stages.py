"""Where a slow call's time goes: NEXT sent → server → commit → call published → display, stage by stage.

    .venv/bin/python bench/call_stages.py --calls 1000                 # 10,000 tickets waiting
    .venv/bin/python bench/call_stages.py --calls 1000 --before /tmp/before

The server runs with bench/call_probe/sitecustomize.py on its PYTHONPATH, which stamps (with the
monotonic clock every process shares) each batch that carries a counter command: its message's
arrival on the network thread, the batch's start, the commit, the call queued and flushed to the
socket. The benchmark stamps the NEXT it publishes and the call the display client receives, as
bench/server_bench.py's call cells do (one call at a time, 10,000 tickets waiting). Printed:
each stage's p50/p99 and the slowest calls with their stages and any garbage collection inside.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.server_bench import HERE, Office, load, pct, timed_calls  # noqa: E402

STAGES = ["to server", "inbox", "engine", "commit", "to publish", "flush", "to display"]


def run(code: Path | None, folder: Path, calls: int, waiting: int, pi: bool = False, quota: int = 25) -> list[dict]:
    folder.mkdir(parents=True)
    log = folder / "calls"
    env = {
        "NUMEREK_CALL_LOG": str(log),
        "PYTHONPATH": os.pathsep.join([str(HERE / "call_probe"), str(code or HERE.parent)]),
    }
    office = Office(folder, pi, quota, code, env=env)
    try:
        load(office.port, 64, 0, folder, count=waiting + calls)
        sent = timed_calls(office.port, calls)
    finally:
        office.close()
    lines = [json.loads(x) for f in folder.glob("calls.*") for x in f.read_text().splitlines()]
    gcs = [x for x in lines if "gc" in x]
    others = [x for x in lines if "other" in x]
    batches = sorted((x for x in lines if "arrived" in x), key=lambda b: b["start"])
    out = []
    ends = {id(b): prev["end"] for prev, b in zip(batches, batches[1:], strict=False)}
    for (t0, t1), b in zip(sent, batches[-len(sent) :], strict=True):
        c0, c1 = b["commit"]
        marks = [t0, b["arrived"][0], b["start"], c0, c1, b["call_queued"], b.get("call_flushed", b["call_queued"]), t1]
        stages = {s: (marks[i + 1] - marks[i]) * 1000 for i, s in enumerate(STAGES)}
        inside = [g for g in gcs if t0 <= g["at"] <= t1]
        busy = [o for o in others if o["start"] < b["start"] and o["end"] > t0]
        out.append(
            {
                "total": (t1 - t0) * 1000,
                "stages": stages,
                "batch": len(b["jobs"]),
                "kinds": sorted(set(b["jobs"])),
                "gc": [(g["gc"], round(g["ms"], 2)) for g in inside],
                "behind": [(o["other"], round((o["end"] - o["start"]) * 1000, 2)) for o in busy],
                # the previous call's batch (the state messages built after its call left) still
                # running when this NEXT was sent: ms after the send, 0 when it had ended
                "previous": max(0.0, (ends.get(id(b), t0) - t0) * 1000),
            }
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--waiting", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--before", type=Path)
    ap.add_argument("--after", type=Path)
    ap.add_argument("--slowest", type=int, default=12)
    ap.add_argument("--dump", type=Path, help="write every call's stages here (JSON)")
    ap.add_argument("--pi", action="store_true", help="the server on one core with a CPU quota, as server_bench --pi")
    ap.add_argument("--quota", type=int, default=25, help="percent of one core for --pi (default 25)")
    args = ap.parse_args()
    print(f"load average (1 min) at the start: {os.getloadavg()[0]:.1f}", flush=True)
    codes = [("after", args.after)] + ([("before", args.before)] if args.before else [])
    got: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(dir=HERE) as tmp:
        for r in range(args.runs):
            for label, code in codes:
                got.setdefault(label, []).extend(
                    run(code, Path(tmp) / f"{label}{r}", args.calls, args.waiting, args.pi, args.quota)
                )
                print(
                    f"run {r + 1} {label}: p50 {statistics.median(c['total'] for c in got[label]):.2f} ms", flush=True
                )
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f}\n")
    if args.dump:
        args.dump.write_text(json.dumps(got))
    for label, calls in got.items():
        totals = [c["total"] for c in calls]
        print(
            f"{label}: call NEXT → display p50 {statistics.median(totals):.2f} / p99 {pct(totals, 99):.2f} ms (n={len(calls)})"
        )
        print("| stage | p50 ms | p90 ms | p99 ms | max ms | share of the slowest 1 % |")
        print("|---|---:|---:|---:|---:|---:|")
        slow = sorted(calls, key=lambda c: c["total"])[-max(1, len(calls) // 100) :]
        slow_total = sum(c["total"] for c in slow)
        for s in STAGES:
            v = [c["stages"][s] for c in calls]
            share = sum(c["stages"][s] for c in slow) / slow_total
            print(
                f"| {s} | {statistics.median(v):.3f} | {pct(v, 90):.3f} | {pct(v, 99):.3f} | {max(v):.3f} | {share:.0%} |"
            )
        print(f"\nthe {args.slowest} slowest ({label}):")
        for c in sorted(calls, key=lambda c: c["total"])[-args.slowest :]:
            st = " ".join(f"{k}={v:.2f}" for k, v in c["stages"].items())
            print(
                f"  {c['total']:7.2f} ms: {st}; batch of {c['batch']} {c['kinds']}; gc {c['gc']}; behind {c['behind']};"
                f" previous call's batch ended {c['previous']:.2f} ms after the send"
            )
        print()


if __name__ == "__main__":
    main()
