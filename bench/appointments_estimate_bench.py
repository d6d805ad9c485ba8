"""What leaving room for today's appointments costs a walk-in's estimate (docs/estimates.md, "Appointments").

The engine of tests/test_walk_in_estimate_appointments.py (two registration counters busy,
eight walk-ins waiting), asked for a new walk-in's estimate in 300 states (the clock moves a
second each time, so no answer comes from the cache); CPU time, median and 99th percentile.

    .venv/bin/python bench/appointments_estimate_bench.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.estimates.honest import HonestEstimator  # noqa: E402
from tests.test_walk_in_estimate_appointments import busy_office, visits  # noqa: E402


def cost(n: int, appointments: bool = True) -> tuple[float, float]:
    engine, clock = busy_office()
    engine.estimator = HonestEstimator(appointments=appointments)
    engine.set_booked_visits(visits("rej", n, "09:05", 10))
    times = []
    for _ in range(300):
        clock.advance(1)
        began = time.process_time()
        engine.estimator.predict("rej", False, engine)
        times.append(time.process_time() - began)
    times.sort()
    return times[len(times) // 2] * 1000, times[int(len(times) * 0.99)] * 1000


def main() -> None:
    print("| estimator | visits booked today | median ms | p99 ms |")
    print("| --- | ---: | ---: | ---: |")
    for label, n, on in (
        ("blind to bookings", 30, False),
        ("with appointments", 0, True),
        ("with appointments", 30, True),
    ):
        median, p99 = cost(n, on)
        print(f"| {label} | {n} | {median:.2f} | {p99:.2f} |")


if __name__ == "__main__":
    main()
