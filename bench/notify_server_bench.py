"""What the notification listener costs the worker per batch (server/notices.py).

The listener runs inside every batch that changes the queue, on the one thread that changes
state, so its cost is added to every NEXT press. This measures it with N waiting tickets that
all left a contact, the worst case: one NEXT per batch, the listener's ``write`` timed alone
(the engine's own work and the batch's commit are not counted), on a real SQLite file.

    .venv/bin/python bench/notify_server_bench.py --tickets 200 --presses 150
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from notify import outbox as ob  # noqa: E402
from protocol.messages import CounterAction  # noqa: E402
from server.config import NoticeThreshold, Notifications  # noqa: E402
from server.domain import Command  # noqa: E402
from server.engine import QueueEngine  # noqa: E402
from server.notices import Contact, NoticeListener  # noqa: E402
from server.notices_schema import migration  # noqa: E402
from tests.engine_support import FakeClock, office_config  # noqa: E402


def run(tickets: int, presses: int, minutes: int) -> list[float]:
    clock = FakeClock()
    engine = QueueEngine(office_config(), clock)
    with tempfile.TemporaryDirectory() as folder:
        conn = ob.connect(str(Path(folder) / "n.db"))
        migration(conn)
        ob.migrate(conn)
        settings = Notifications(config="x", near=NoticeThreshold(people=3, minutes=minutes))
        listener = NoticeListener(settings, lambda: engine.config, lambda: None)
        for i in range(tickets):
            t, _ = engine.issue("pj", False, origin="bench")
            listener._add(Contact(t.id, t.token, ob.Channel.EMAIL, f"r{i}@example.pl", "pl"))
        engine.take_changes()
        times = []
        for _ in range(presses):
            clock.advance(60)
            engine.command("1", Command(action=CounterAction.NEXT, current=None))
            changes = engine.take_changes()
            conn.execute("BEGIN IMMEDIATE")
            start = time.perf_counter()
            listener.write(conn, changes, engine)
            times.append((time.perf_counter() - start) * 1000)
            conn.execute("COMMIT")
            listener.committed(changes)
        conn.close()
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tickets", type=int, default=200)
    p.add_argument("--presses", type=int, default=150)
    args = p.parse_args()
    for minutes in (0, 10):
        times = sorted(run(args.tickets, args.presses, minutes))
        q = statistics.quantiles(times, n=100)
        print(
            f"{args.tickets} subscribed tickets, near = {{ people = 3, minutes = {minutes} }}: "
            f"listener write per batch p50 {q[49]:.2f} ms, p90 {q[89]:.2f} ms, max {times[-1]:.2f} ms"
        )


if __name__ == "__main__":
    main()
