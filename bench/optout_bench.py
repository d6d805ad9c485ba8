"""What the SMS opt-out list costs (notify/optout.py).

The outbox asks the list before every SMS it hands over (an HMAC-SHA256 of the number and
one lookup in a ``WITHOUT ROWID`` table), and a "STOP" is one transaction: the list's row,
the number's pending SMS cancelled, the confirmation enqueued, one fsynced commit. Both on a
real SQLite file in WAL mode with ``synchronous=FULL``, like the server's.

    .venv/bin/python bench/optout_bench.py --listed 10000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from notify import optout  # noqa: E402
from notify import outbox as ob  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listed", type=int, default=10000, help="numbers already on the list")
    ap.add_argument("--checks", type=int, default=5000)
    ap.add_argument("--stops", type=int, default=300)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        conn = ob.connect(os.path.join(folder, "bench.db"))
        ob.migrate(conn)
        key = os.urandom(32)
        with ob.transaction(conn):
            conn.executemany(
                "INSERT INTO notify_optouts VALUES (?, 0, 'bench')",
                [(optout.number_key(key, f"+48600{i:06d}"),) for i in range(args.listed)],
            )
        checks = []
        for i in range(args.checks):
            t = time.perf_counter()
            optout.is_opted_out(conn, key, f"+48700{i:06d}")
            checks.append(time.perf_counter() - t)
        stops = []
        for i in range(args.stops):
            t = time.perf_counter()
            with ob.transaction(conn):
                optout.record(conn, key, optout.Words(), f"+48800{i:06d}", "STOP", "bench", 1e9)
            stops.append(time.perf_counter() - t)
        conn.close()
    checks.sort()
    stops.sort()

    def at(xs: list[float], q: float) -> float:
        return xs[min(len(xs) - 1, int(q * len(xs)))]

    print(
        f"check before hand-over, {args.listed} numbers listed: p50 {at(checks, 0.5) * 1e6:.1f} µs, "
        f"p99 {at(checks, 0.99) * 1e6:.1f} µs"
    )
    print(f"a STOP recorded (one fsynced commit): p50 {at(stops, 0.5) * 1e3:.2f} ms, p90 {at(stops, 0.9) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
