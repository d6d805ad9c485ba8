"""CPU time of one ticket in a burst, in the engine alone (the estimate included), old code beside new.

    git archive <commit> | tar -x -C /tmp/before
    .venv/bin/python bench/issue_burst_bench.py --before /tmp/before --rounds 5

The engine of tests/engine_support.py's office (three counters, three services; daily limits
lifted) issues 1,500 tickets, a thousandth of a second apart, as a kiosk burst lands in one
group-commit batch; each ticket's ``issue`` is timed with the thread's CPU time
(``time.thread_time``, so other jobs on a shared machine count less than in wall time). Two
offices: **closed** (no counter open or expected: the estimate is "cannot estimate", as in
bench/server_bench.py's office) and **open** (every counter open: the replay runs). Each code
runs in its own process (``python -m`` from its directory), old and new alternating per round.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import json, sys, time
from datetime import timedelta
from protocol.messages import CounterAction
from server.domain import Command
from server.engine import QueueEngine
from tests.engine_support import FakeClock, Tokens, office_config

mode, n = sys.argv[1], int(sys.argv[2])
clock = FakeClock()
clock.advance(3600)  # 10:00 on a Monday, two hours after opening
cfg = office_config()
cfg = cfg.model_copy(update={"services": [s.model_copy(update={"daily_limit": 99999}) for s in cfg.services]})
engine = QueueEngine(cfg, clock, token_factory=Tokens())
if mode == "open":
    for c in ("1", "2", "3"):
        engine.command(c, Command(CounterAction.OPEN))
engine.take_changes()
out = []
for i in range(n):
    clock.advance(0.001)
    t0 = time.thread_time()
    engine.issue(("rej", "pj", "kasa")[i % 3])
    out.append(time.thread_time() - t0)
    if i % 16 == 15:
        engine.take_changes()
print(json.dumps(out))
"""


def run(code: Path, mode: str, n: int) -> list[float]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(n)], cwd=code, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", type=Path, help="an older checkout (git archive), run interleaved")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tickets", type=int, default=1500)
    args = ap.parse_args()
    codes = [("after", ROOT)] + ([("before", args.before)] if args.before else [])
    times: dict[tuple[str, str], list[float]] = {}
    for r in range(args.rounds):
        for mode in ("closed", "open"):
            for label, code in codes:
                times.setdefault((label, mode), []).extend(run(code, mode, args.tickets))
        print(f"round {r + 1} done", file=sys.stderr, flush=True)
    print("| office | code | tickets | ms per ticket, median | p90 | mean |")
    print("|---|---|---:|---:|---:|---:|")
    for (label, mode), ts in sorted(times.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        ms = sorted(x * 1000 for x in ts)
        p90 = ms[int(0.9 * (len(ms) - 1))]
        print(
            f"| {mode} | {label} | {len(ms)} | {statistics.median(ms):.3f} | {p90:.3f} | {statistics.fmean(ms):.3f} |"
        )
    if args.before:
        for mode in ("closed", "open"):
            a = statistics.fmean(times[("after", mode)])
            b = statistics.fmean(times[("before", mode)])
            print(f"{mode}: mean CPU per ticket before ÷ after = {b / a:.2f}")


if __name__ == "__main__":
    main()
