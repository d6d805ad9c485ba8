"""What ``auto_cutoff`` costs per ticket and per services message, in process, on the real engine.

    .venv/bin/python bench/cutoff_bench.py [--every 50] [--seed 1]

The example county office (server/examples/county_office.toml), every counter open, a
Monday afternoon from 12:30 until 16:10: every ``--every`` seconds of office time a resident
takes a ticket (a random service, one in twenty priority) and a counter presses NEXT when its
client has been there 5 minutes (seven counters: 84 clients an hour; the default 72 tickets
an hour leave room, so the two runs see nearly the same queues until the cut-off starts). After each step the services message is built, as the
worker publishes it after every batch. The same run (same seed) with ``auto_cutoff`` off
for every service, then on, alternately ``--runs`` times (the spread between runs of one
setting is the machine's noise). Times are the thread's CPU time (``time.thread_time``), since
wall-clock percentiles on a shared machine measure the other jobs. docs/estimates.md
("Automatic cut-off") has the figures.
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protocol.messages import CounterAction, CounterCommand  # noqa: E402
from server.config import EXAMPLE_CONFIG, SiteConfig, load_config  # noqa: E402
from server.domain import Refusal  # noqa: E402
from server.engine import QueueEngine  # noqa: E402
from server.wire import Wire  # noqa: E402


def with_auto_cutoff(cfg: SiteConfig, on: bool) -> SiteConfig:
    services = [s.model_copy(update={"auto_cutoff": on}) for s in cfg.services]
    return cfg.model_copy(update={"services": services})


def run(on: bool, every: int, seed: int) -> dict[str, object]:
    cfg = with_auto_cutoff(load_config(EXAMPLE_CONFIG), on)
    now = [datetime(2026, 11, 23, 11, 30, tzinfo=UTC)]  # Monday 12:30 in Warsaw
    engine = QueueEngine(cfg, lambda: now[0], token_factory=(f"t{i:020d}" for i in itertools.count()).__next__)
    wire = Wire(engine)
    ids = itertools.count()
    for cid in engine.counters:
        engine.command(cid, CounterCommand(id=f"o{next(ids)}", action=CounterAction.OPEN))
    rng = random.Random(seed)
    services = list(engine.services)
    since: dict[str, datetime] = {}
    issue_ms: list[float] = []
    list_ms: list[float] = []
    issued = refused_cut_off = 0
    end = now[0] + timedelta(hours=3, minutes=40)
    while now[0] < end:
        now[0] += timedelta(seconds=every)
        for cid, rt in engine.counters.items():
            if rt.current is None or now[0] - since.get(cid, now[0]) >= timedelta(minutes=5):
                if engine.command(cid, CounterCommand(id=f"n{next(ids)}", action=CounterAction.NEXT)):
                    since[cid] = now[0]
        began = time.thread_time()
        try:
            engine.issue(rng.choice(services), priority=rng.random() < 0.05)
            issued += 1
            issue_ms.append((time.thread_time() - began) * 1000)
        except Refusal as r:
            refused_cut_off += r.code == "cut_off"
        began = time.thread_time()
        wire.services()
        list_ms.append((time.thread_time() - began) * 1000)
        engine.take_changes()
    return {
        "issue_ms": issue_ms,
        "list_ms": list_ms,
        "issued": issued,
        "cut_off": refused_cut_off,
    }


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--every", type=int, default=50, help="seconds between residents")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3, help="off and on alternately, this many times each")
    args = ap.parse_args()
    print(
        "| auto_cutoff | tickets issued | refused cut_off | issued ticket: median ms | p99 ms | mean ms "
        "| services message: median ms | p99 ms | mean ms |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for on in [False, True] * args.runs:
        r = run(on, args.every, args.seed)
        i, s = r["issue_ms"], r["list_ms"]
        assert isinstance(i, list) and isinstance(s, list)
        print(
            f"| {'on' if on else 'off'} | {r['issued']} | {r['cut_off']} "
            f"| {statistics.median(i):.2f} | {pct(i, 0.99):.2f} | {statistics.fmean(i):.2f} "
            f"| {statistics.median(s):.2f} | {pct(s, 0.99):.2f} | {statistics.fmean(s):.2f} |"
        )


if __name__ == "__main__":
    main()
