"""How long the default wait estimator takes per estimate: on scenario offices, and with long queues.

    .venv/bin/python bench/estimates_bench.py scenarios/*.toml

Every estimate the engine asks for while the scenarios run (one per ticket issued) is timed;
then one office is filled with 10 to 5000 waiting tickets and the estimate for the next
ticket is timed. Times are the thread's CPU time (``time.thread_time``): on a shared machine
wall-clock percentiles measure the other jobs. The figures go to docs/estimates.md ("Cost").
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protocol.messages import CounterAction, CounterCommand  # noqa: E402
from server.config import EXAMPLE_CONFIG, load_config  # noqa: E402
from server.engine import QueueEngine  # noqa: E402
from server.estimate import HonestEstimator  # noqa: E402
from server.sim.office import OfficeRun  # noqa: E402
from server.sim.scenario import load_scenario  # noqa: E402


class Timed(HonestEstimator):
    def __init__(self) -> None:
        super().__init__()
        self.ms: list[float] = []

    def predict(self, service, priority, view, ticket=None):  # type: ignore[no-untyped-def]
        began = time.thread_time()
        try:
            return super().predict(service, priority, view, ticket)
        finally:
            self.ms.append((time.thread_time() - began) * 1000)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def long_queues() -> list[tuple[int, float, float, float]]:
    cfg = load_config(EXAMPLE_CONFIG)
    now = [datetime(2026, 11, 23, 8, 0, tzinfo=UTC)]  # Monday 9:00 in Warsaw
    engine = QueueEngine(cfg, lambda: now[0], token_factory=(f"t{i:020d}" for i in itertools.count()).__next__)
    for cid in engine.counters:
        engine.command(cid, CounterCommand(id=f"o{cid}", action=CounterAction.OPEN))
    out = []
    for n in (10, 100, 1000, 5000):
        while len(engine.waiting("odb")) < n:  # no daily limit on document collection
            engine.issue("odb")
            now[0] += timedelta(seconds=0.2)
        engine.take_changes()
        ms, lists = [], []
        for _ in range(30):
            now[0] += timedelta(seconds=1)  # a new second: nothing cached
            began = time.thread_time()
            engine.estimate_wait("odb")
            ms.append((time.thread_time() - began) * 1000)
            engine.issue("kasa")  # a new state of the queues
            began = time.thread_time()
            for service in engine.services:  # what the kiosk's service list asks
                engine.estimate_wait(service)
                engine.estimate_wait(service, priority=True)
            lists.append((time.thread_time() - began) * 1000)
        out.append((n, statistics.median(ms), max(ms), statistics.median(lists)))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("scenarios", nargs="*", default=sorted(str(s) for s in Path("scenarios").glob("*.toml")))
    args = p.parse_args()
    print("| scenario | estimates | median ms | p99 ms | max ms |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for path in args.scenarios:
        est = Timed()
        run = OfficeRun(load_scenario(path), estimator=est)
        run.run()
        print(
            f"| {Path(path).stem} | {len(est.ms)} | {statistics.median(est.ms):.2f} | {pct(est.ms, 0.99):.2f} "
            f"| {max(est.ms):.1f} |"
        )
    print()
    print("| tickets waiting | one estimate: median ms | max ms | the service list (10 estimates): median ms |")
    print("| ---: | ---: | ---: | ---: |")
    for n, med, top, listed in long_queues():
        print(f"| {n} | {med:.2f} | {top:.2f} | {listed:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
