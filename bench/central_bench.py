"""Central ingest: many branches' event logs through real Mosquitto bridges into PostgreSQL.

    .venv/bin/python bench/central_bench.py --branches 50 --tickets 2000 --brokers 5 --speed 600

Real parts: Debian's PostgreSQL 15 in a temporary folder (``fsync`` on, as in production),
a central Mosquitto with persistence and per-branch accounts, ``--brokers`` branch
Mosquittos each bridged to the centre with the generated bridge config (one bridge carries
``branches / brokers`` branches' topics), and ``numerek-central`` as a process.

What is replayed: each branch's office day of ``--tickets`` tickets (issue, call, start,
finish: 4 events each, plus counters opening) spread over 8 office hours with a morning
peak, compressed ``--speed`` times, published in batches every 0.2 s per branch as the
replicator does, each event stamped with the wall time it is published (as the branch
server stamps it). Figures:

* **ingest events/s**: all events / (last stored - first published);
* **replication lag** per event: PostgreSQL's ``received_at`` - the event's time, p50/p99
  (same machine, one clock);
* **backlog drain**: a second phase publishes ``--backlog`` branches' whole days at once
  (a link back after a day offline) and times until every event is stored.
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import paho.mqtt.client as mqtt  # noqa: E402
import psycopg  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from protocol.replica import EventBatch, ReplicaEvent  # noqa: E402
from protocol.topics import Topics  # noqa: E402
from server.replicate import bridge_config  # noqa: E402
from tests.central_support import (  # noqa: E402
    _AS_ME,
    CentralBroker,
    IngesterProcess,
    Postgres,
    write_central_config,
)
from tests.harness import Broker, wait_for  # noqa: E402

T = Topics()
DAY_S = 8 * 3600
SERVICES = ["rej", "pj", "pasz", "dow", "mel"]


def office_day(branch: str, tickets: int, seed: int) -> list[tuple[float, dict]]:
    """(offset in office seconds, event without id/at) for one branch's day, in time order."""
    rng = random.Random(f"{seed}-{branch}")
    out: list[tuple[float, dict]] = []
    for c in range(1, 9):
        out.append((c * 5.0, {"kind": "counter_open", "counter": str(c)}))
    for t in range(1, tickets + 1):
        # A morning peak: two thirds of the tickets in the first three hours.
        issued = rng.uniform(0, 3 * 3600) if rng.random() < 0.66 else rng.uniform(3 * 3600, DAY_S - 1800)
        service = rng.choice(SERVICES)
        called = issued + rng.expovariate(1 / 900)
        started = called + rng.uniform(10, 60)
        finished = started + rng.expovariate(1 / 420)
        common = {"ticket_id": t, "ticket": f"A{t:03d}", "service": service}
        counter = str(rng.randint(1, 8))
        out += [
            (issued, {"kind": "issue", **common}),
            (called, {"kind": "call", "counter": counter, **common}),
            (started, {"kind": "start", "counter": counter, **common}),
            (finished, {"kind": "finish", "counter": counter, **common}),
        ]
    out.sort(key=lambda e: e[0])
    return out


class Publisher:
    """One branch broker's replicators: publishes its branches' batches on schedule."""

    def __init__(self, port: int, branches: list[str]) -> None:
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{port}", protocol=mqtt.MQTTv5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.branches = branches
        self.next_id = dict.fromkeys(branches, 1)
        self.events = 0

    def flush(self, pending: dict[str, list[dict]]) -> None:
        infos = []
        now = time.time()
        day = datetime.now(UTC).date()
        for branch, evs in pending.items():
            for i in range(0, len(evs), 500):
                chunk = []
                for e in evs[i : i + 500]:
                    chunk.append(ReplicaEvent(id=self.next_id[branch], at=now, day=day, **e))
                    self.next_id[branch] += 1
                batch = EventBatch(branch=branch, head=self.next_id[branch] - 1, sent_at=now, events=chunk)
                infos.append(self.client.publish(T.replica_events(branch), batch.model_dump_json(), qos=1))
                self.events += len(chunk)
        for info in infos:
            info.wait_for_publish(60)
        pending.clear()

    def replay(self, days: dict[str, list[tuple[float, dict]]], speed: float, start: float) -> None:
        """Publish at office time / speed (speed 0: everything at once)."""
        merged = heapq.merge(*[[(off, b, e) for off, e in days[b]] for b in days], key=lambda x: x[0])
        pending: dict[str, list[dict]] = {}
        next_flush = start + 0.2
        for off, branch, event in merged:
            due = start + off / speed if speed else start
            while time.monotonic() < due:
                if time.monotonic() >= next_flush:
                    self.flush(pending)
                    next_flush += 0.2
                time.sleep(min(0.02, max(0.0, due - time.monotonic())))
            pending.setdefault(branch, []).append(event)
            if speed == 0 and sum(len(v) for v in pending.values()) >= 2000:
                self.flush(pending)
        self.flush(pending)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def stored(dsn: str) -> int:
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    except psycopg.errors.UndefinedTable:
        return -1  # the ingester has not made its tables yet


def phase(dsn: str, pubs: list[Publisher], days: dict, speed: float, groups: list[list[str]], base: int) -> dict:
    total = sum(len(days[b]) for g in groups for b in g)
    start_wall = time.time()
    start = time.monotonic()
    threads = [
        threading.Thread(target=p.replay, args=({b: days[b] for b in g}, speed, start))
        for p, g in zip(pubs, groups, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    published_s = time.monotonic() - start
    wait_for(lambda: stored(dsn) >= base + total, 3600, "every event stored")
    with psycopg.connect(dsn, autocommit=True) as conn:
        last, p50, p99, mx = conn.execute(
            "SELECT extract(epoch FROM max(received_at)), "
            "percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM received_at - at)), "
            "percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM received_at - at)), "
            "extract(epoch FROM max(received_at - at)) FROM events WHERE received_at >= %s",
            (datetime.fromtimestamp(start_wall, UTC),),
        ).fetchone()
    took = float(last) - start_wall
    return {
        "events": total,
        "published_s": round(published_s, 1),
        "stored_s": round(took, 1),
        "ingest_events_per_s": round(total / took),
        "lag_p50_s": round(float(p50), 3),
        "lag_p99_s": round(float(p99), 3),
        "lag_max_s": round(float(mx), 3),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--branches", type=int, default=50)
    ap.add_argument("--tickets", type=int, default=2000, help="tickets per branch per day")
    ap.add_argument("--brokers", type=int, default=5, help="bridged branch brokers carrying them")
    ap.add_argument("--speed", type=float, default=600, help="times real speed for the live phase")
    ap.add_argument("--backlog", type=int, default=10, help="branches coming back after a day offline")
    ap.add_argument(
        "--hours", type=float, default=8, help="replay only the first N office hours (the peak is the morning)"
    )
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_a: sys.exit(1))  # `timeout` still cleans up below

    tmp = Path(tempfile.mkdtemp(prefix="numerek-central-bench-"))
    names = [f"b{i:02d}" for i in range(args.branches)]
    backlog = [f"late{i:02d}" for i in range(args.backlog)]
    pg = Postgres().start(fsync=True)
    procs: list[Broker] = []
    ingester = None
    try:
        dsn = pg.create_db("central")
        everyone = names + backlog
        groups = [everyone[i :: args.brokers] for i in range(args.brokers)]
        central = CentralBroker(tmp / "central", everyone)
        # The bench's bridges sign in as bench-<i>, allowed every branch of their group.
        with open(tmp / "central" / "acl", "a") as acl:
            for i, g in enumerate(groups):
                acl.write(
                    f"\nuser bench-{i}\n" + "".join(f"topic {a} {p}\n" for b in g for a, p in T.acl("bridge", [b]))
                )
                subprocess.run(
                    ["mosquitto_passwd", "-b", str(tmp / "central" / "passwd"), f"bench-{i}", "bench"], check=True
                )
        central.start()
        procs.append(central)
        ingester = IngesterProcess(write_central_config(tmp / "central" / "central.toml", central, dsn)).start()
        pubs = []
        for i, group in enumerate(groups):
            folder = tmp / f"branch-broker-{i}"
            folder.mkdir()
            broker = Broker(folder)
            bridge = bridge_config(T, group[0], "127.0.0.1", central.port, f"bench-{i}", "bench")
            for b in group[1:]:
                bridge += "".join(f"topic {t} {d} 1 numerek/ numerek/\n" for d, t in T.bridge_topics(b))
            broker.conf.write_text(
                f"listener {broker.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                f"set_tcp_nodelay true\nmax_queued_messages 1000000\n{_AS_ME}{bridge}"
            )
            broker.start()
            procs.append(broker)
            pubs.append(Publisher(broker.port, group))

        wait_for(lambda: stored(dsn) == 0, 60, "the ingester's tables")
        days = {b: office_day(b, args.tickets, args.seed) for b in everyone}
        days = {b: [e for e in d if e[0] < args.hours * 3600] if b in names else d for b, d in days.items()}
        live_groups = [[b for b in g if b in names] for g in groups]
        peak = sum(1 for b in names for off, _e in days[b] if off < 3600) / 3600
        print(
            f"{args.branches} branches x {args.tickets} tickets/day, {args.brokers} bridged brokers, "
            f"first {args.hours:g} h at {args.speed:g}x: {peak:.1f} events/s in the first office hour, "
            f"{peak * args.speed:.0f}/s replayed"
        )
        live = phase(dsn, pubs, days, args.speed, live_groups, 0)
        print("live  ", json.dumps(live))
        late_groups = [[b for b in g if b in backlog] for g in groups]
        drain = phase(dsn, pubs, days, 0, late_groups, live["events"]) if backlog else None
        print("drain ", json.dumps(drain))
        for pub in pubs:
            pub.close()
    finally:
        if ingester is not None:
            ingester.stop()
        for p in procs:
            p.stop()
        pg.destroy()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
