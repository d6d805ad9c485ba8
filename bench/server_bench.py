"""End-to-end server benchmark on loopback, the way an office sees it: tickets/s and call latency.

    .venv/bin/python bench/server_bench.py --runs 3                  # the full table
    .venv/bin/python bench/server_bench.py --runs 3 --pi             # the server on one slowed core
    git archive <commit> | tar -x -C /tmp/before                      # an older server beside this one:
    .venv/bin/python bench/server_bench.py --runs 3 --before /tmp/before   # cell by cell, interleaved

Everything real: Debian's mosquitto on a free port (``set_tcp_nodelay true``), ``numerek-server``
as a subprocess with a fresh SQLite file per cell (WAL, synchronous=FULL). Figures:

* **broker round trip**: a QoS 1 message from one client to another through mosquitto only,
  in the same run: the floor no server can beat;
* **fsync**: one SQLite commit with synchronous=FULL on the same disk: the floor of a
  durable ticket with one request in flight;
* **tickets/s**: kiosk load processes (bench/kiosk_load.py, up to 4 processes so the client
  is not the bottleneck; their CPU is reported) keep 1/4/16/64 ticket requests in flight for
  ``--seconds``, with 0 and with 10,000 tickets already waiting; p50/p99 request latency.
  ``--client lean`` (default) is its lean client, a small fraction of paho's CPU per ticket;
  ``--client paho`` the earlier one, ``--client lean,paho`` both, each cell with a fresh
  office for each, one right after the other (one table per client);
* **call latency**: a counter's NEXT published → the call received by a display client, one
  at a time, with 10,000 tickets waiting.

``--pi`` runs the server pinned to one core with a CPU quota (cgroup v1 ``cpu`` controller,
default 25 % of a core: a Raspberry Pi 4 core runs this Python code about 4× slower than a
modern x86 core), the load clients unrestricted on the other core. The quota is granted per
``--period``; by default the shortest the kernel allows (its smallest quota is 1 ms, so 4 ms
for 25 %). A slower core is slow evenly, while a 25 % quota per 100 ms (the kernel's default
period, used until 2026-12-07) lets the server run 25 ms at full speed and then stops it for
75 ms, a stall no Pi has; it doubled the call's p99 in the earlier Pi figures (66 → 32 ms,
docs/performance.md). The short period still allows stalls of up to 3 ms.

``--before DIR`` (a ``git archive`` of an older commit) runs that server too, each cell right
after this one's, so both see the same load on a shared machine; the table gets a ratio
column. ``--after DIR`` takes this side's server from a directory too (a frozen snapshot while
the working tree changes). Only the server's code differs: the clients are this checkout's.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protocol.topics import Topics  # noqa: E402
from tests.harness import Broker, Peer, ServerProcess, free_port, write_config  # noqa: E402

TOPICS = Topics("numerek")
HERE = Path(__file__).resolve().parent
CGROUP = Path("/sys/fs/cgroup/cpu/numerek-bench")


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def fsync_floor(folder: Path, n: int = 300) -> list[float]:
    db = sqlite3.connect(folder / "fsync.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (a)")
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t VALUES (?)", (i,))
        db.execute("COMMIT")
        out.append((time.perf_counter() - t0) * 1000)
    db.close()
    return out


class Stamp:
    """Receives messages on one topic and records perf_counter() at arrival."""

    def __init__(self, peer: Peer, topic: str) -> None:
        self.arrived: list[float] = []
        self.event = threading.Event()

        def on_message(_c, _u, _msg) -> None:
            self.arrived.append(time.perf_counter())
            self.event.set()

        peer.client.message_callback_add(topic, on_message)
        peer.subscribe(topic)


def broker_round_trip(port: int, n: int) -> list[float]:
    sender, receiver = Peer(port), Peer(port)
    stamp = Stamp(receiver, "bench/rtt")
    out = []
    for i in range(n):
        stamp.event.clear()
        t0 = time.perf_counter()
        sender.client.publish("bench/rtt", str(i), qos=1)
        stamp.event.wait(5)
        out.append((stamp.arrived[-1] - t0) * 1000)
    sender.close()
    receiver.close()
    return out


def timed_calls(port: int, n: int) -> list[tuple[float, float]]:
    """``n`` NEXT presses of counter 1, one at a time: (sent, the call received by a display), perf_counter s."""
    counter, display = Peer(port), Peer(port)
    stamp = Stamp(display, TOPICS.zone_call("hall"))
    out = []
    for i in range(n):
        stamp.event.clear()
        t0 = time.perf_counter()
        counter.client.publish(
            TOPICS.counter_command("1"), json.dumps({"v": 1, "id": f"n{t0}-{i}", "action": "next"}), qos=1
        )
        if not stamp.event.wait(10):
            raise RuntimeError("no call received")
        out.append((t0, stamp.arrived[-1]))
    counter.close()
    display.close()
    return out


def call_latency(port: int, n: int) -> list[float]:
    return [(arrived - t0) * 1000 for t0, arrived in timed_calls(port, n)]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(port: int, inflight: int, seconds: float, folder: Path, count: int = 0, client: str = "lean") -> dict:
    """Run kiosk load processes (``client``: bench/kiosk_load.py's lean one or paho); returns
    tickets/s, latencies (ms), client CPU."""
    procs = min(inflight, 4)
    share = [inflight // procs + (1 if i < inflight % procs else 0) for i in range(procs)]
    outs, running = [], []
    for i, k in enumerate(share):
        out = folder / f"load-{i}-{time.monotonic_ns()}.json"
        cmd = [sys.executable, str(HERE / "kiosk_load.py"), "--port", str(port), "--kiosk", f"bench{i}"]
        cmd += ["--inflight", str(k), "--seconds", str(seconds), "--out", str(out), "--client", client]
        if count:
            cmd += ["--count", str(count // procs)]
        running.append(subprocess.Popen(cmd))
        outs.append(out)
    for p in running:
        if p.wait(seconds + 300) != 0:
            raise RuntimeError("a load process failed")
    cell, results = load_results(outs, "refused or lost requests: {first}")
    numbers = [n for r in results for n in r["numbers"]]
    if len(set(numbers)) != len(numbers):  # every answer a new ticket, not a remembered reply
        raise RuntimeError(f"{len(numbers) - len(set(numbers))} answers repeated a ticket already issued")
    return {**cell, "numbers": numbers}


def load_results(outs: list[Path], refused: str) -> tuple[dict, list[dict]]:
    """What the load processes wrote, summed: tickets/s, every latency in ms, the load's CPU per
    second; and each process's own result. ``refused`` (with ``{n}`` and ``{first}``) is the error
    raised when any request was not answered with a ticket."""
    results = [json.loads(o.read_text()) for o in outs]
    errors = [e for r in results for e in r["errors"]]
    if errors:
        raise RuntimeError(refused.format(n=len(errors), first=errors[:3]))
    latencies = [x * 1000 for r in results for x in r["latencies"]]
    elapsed = max(r["elapsed"] for r in results)
    cell = {
        "rate": len(latencies) / elapsed,
        "lat": latencies,
        "client_cpu": sum(r["cpu_s"] for r in results) / elapsed,
    }
    return cell, results


class Office:
    """A broker and a fresh server (optionally on one slowed core) for one cell."""

    def __init__(
        self,
        folder: Path,
        pi: bool,
        quota: int,
        code: Path | None = None,
        period_us: int = 0,
        env: dict[str, str] | None = None,
    ) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.broker = Broker(folder).start()
        cfg = write_config(
            folder / "office.toml", self.broker.port, free_port(), limit=9999, kiosk_rate="100000/second"
        )
        port = int(cfg.read_text().split("[http]")[1].split("port = ")[1].split()[0])
        self.server = ServerProcess(cfg, port, args=["--log-level", "WARNING"], cwd=code, env=env).start()
        if pi:
            for task in Path(f"/proc/{self.server.proc.pid}/task").iterdir():  # every thread, not only the first
                os.sched_setaffinity(int(task.name), {0})
            CGROUP.mkdir(exist_ok=True)
            (CGROUP / "cpu.cfs_quota_us").write_text("-1")  # a period below the quota is refused
            period_us = period_us or 1000 * 100 // quota  # the kernel's smallest quota is 1 ms
            (CGROUP / "cpu.cfs_period_us").write_text(str(period_us))
            (CGROUP / "cpu.cfs_quota_us").write_text(str(period_us * quota // 100))
            (CGROUP / "cgroup.procs").write_text(str(self.server.proc.pid))

    @property
    def port(self) -> int:
        return self.broker.port

    def close(self) -> None:
        self.server.stop()
        self.broker.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0, help="per tickets/s cell")
    ap.add_argument("--inflight", default="1,4,16,64")
    ap.add_argument("--waiting", default="0,10000")
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--pi", action="store_true", help="server on one core with a CPU quota (see --quota)")
    ap.add_argument("--quota", type=int, default=25, help="percent of one core for --pi (default 25)")
    ap.add_argument("--period", type=int, default=0, help="µs per quota period for --pi (default: shortest allowed)")
    ap.add_argument("--before", type=Path, help="an older server's code (git archive of a commit), run interleaved")
    ap.add_argument("--after", type=Path, help="this side's server code from a directory (default: this checkout)")
    ap.add_argument(
        "--client",
        default="lean",
        help="kiosk load client(s), bench/kiosk_load.py's lean (default) or paho; lean,paho: both, cell by cell",
    )
    args = ap.parse_args()
    print(f"load average (1 min) at the start: {os.getloadavg()[0]:.1f}", flush=True)
    codes: list[tuple[str, Path | None]] = [("after" if args.before else "", args.after)]
    if args.before:
        codes.append(("before", args.before))
    if args.pi:
        os.sched_setaffinity(0, {1})  # the load clients on the other core
    clients = args.client.split(",")
    if not set(clients) <= {"lean", "paho"}:
        raise SystemExit(f"--client: lean, paho or both, not {args.client}")
    inflights = [int(x) for x in args.inflight.split(",")]
    waitings = [int(x) for x in args.waiting.split(",")]
    cells: dict[tuple[str, str, int, int], list[dict]] = {}
    rtt_all: list[float] = []
    calls_all: dict[str, list[float]] = {}
    fsync_all: list[float] = []
    server_cpu: dict[tuple[str, str, int, int], list[float]] = {}
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(dir=HERE) as tmp:
            folder = Path(tmp)
            fsync_all += fsync_floor(folder)
            for waiting in waitings:
                for inflight in inflights:
                    for (label, code), client in [(c, k) for c in codes for k in clients]:
                        office = Office(
                            folder / f"c{label}{client}{waiting}-{inflight}", args.pi, args.quota, code, args.period
                        )
                        try:
                            if not rtt_all or waiting == waitings[0] and inflight == inflights[0] and not label:
                                rtt_all += broker_round_trip(office.port, 1000)
                            filled = (
                                load(office.port, 64, 0, office.folder, count=waiting, client=clients[0])
                                if waiting
                                else None
                            )
                            cpu0 = cpu_seconds(office.server.proc.pid)
                            broker0 = cpu_seconds(office.broker.proc.pid)
                            result = load(office.port, inflight, args.seconds, office.folder, client=client)
                            cpu1 = cpu_seconds(office.server.proc.pid)
                            result["broker_cpu"] = (cpu_seconds(office.broker.proc.pid) - broker0) / args.seconds
                            if filled is not None and set(filled["numbers"]) & set(result["numbers"]):
                                raise RuntimeError("the load was answered with tickets of the fill: not new tickets")
                        finally:
                            office.close()
                        cells.setdefault((label, client, waiting, inflight), []).append(result)
                        server_cpu.setdefault((label, client, waiting, inflight), []).append(
                            (cpu1 - cpu0) / args.seconds
                        )
                        print(
                            f"run {run + 1} {label:6} {client:4} waiting {waiting:>5} in flight {inflight:>2}: "
                            f"{result['rate']:7,.0f} tickets/s  p50 {statistics.median(result['lat']):6.2f} ms"
                            f"  p99 {pct(result['lat'], 99):6.2f} ms  load clients "
                            f"{1000 * result['client_cpu'] / result['rate']:.3f} ms CPU per ticket  "
                            f"load average {os.getloadavg()[0]:.1f}",
                            flush=True,
                        )
            for label, code in codes:
                office = Office(folder / f"calls{label}", args.pi, args.quota, code, args.period)
                try:
                    load(office.port, 64, 0, office.folder, count=10000 + args.calls, client=clients[0])
                    calls_all.setdefault(label, []).extend(call_latency(office.port, args.calls))
                finally:
                    office.close()
                print(
                    f"run {run + 1} {label:6} call latency p50 {statistics.median(calls_all[label]):.2f} ms", flush=True
                )
    print()
    rtt50 = statistics.median(rtt_all)
    print(f"broker round trip: p50 {rtt50:.3f} ms, p99 {pct(rtt_all, 99):.3f} ms (n={len(rtt_all)})")
    print(f"fsync (one commit): p50 {statistics.median(fsync_all):.3f} ms, p99 {pct(fsync_all, 99):.3f} ms")
    for label, calls in calls_all.items():
        print(
            f"call latency{' ' + label if label else ''}, NEXT → display, 10,000 waiting: "
            f"p50 {statistics.median(calls):.2f} ms, p99 {pct(calls, 99):.2f} ms (n={len(calls)}); "
            f"{statistics.median(calls) / rtt50:.1f}× the broker round trip at p50"
        )
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f}")
    print()
    head = "| waiting | in flight | tickets/s (median of runs) | p50 ms | p99 ms | server CPU | load clients CPU |"
    head += " broker CPU | CPU ms per ticket: server + clients + broker |"

    def row(label: str, client: str, waiting: int, inflight: int) -> tuple[float, str]:
        results = cells[(label, client, waiting, inflight)]
        lat = [x for r in results for x in r["lat"]]
        rate = statistics.median(r["rate"] for r in results)
        return rate, f"{rate:,.0f} | {statistics.median(lat):.2f} | {pct(lat, 99):.2f}"

    for client in clients:
        if len(clients) > 1:
            print(f"\nload client: {client}\n")
        print(head + (" before tickets/s | before p50 ms | before p99 ms | ratio tickets/s |" if args.before else ""))
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---|" + ("---:|---:|---:|---:|" if args.before else ""))
        for label, _client, waiting, inflight in sorted(k for k in cells if k[0] == codes[0][0] and k[1] == client):
            rate, figures = row(label, client, waiting, inflight)
            got = cells[(label, client, waiting, inflight)]
            server = statistics.median(server_cpu[(label, client, waiting, inflight)])
            clients_cpu = statistics.median(r["client_cpu"] for r in got)
            broker = statistics.median(r["broker_cpu"] for r in got)
            per = [
                1000 * x / rate for x in (server, clients_cpu, broker)
            ]  # CPU ms per ticket: where a 2-core machine's time goes
            line = (
                f"| {waiting:,} | {inflight} | {figures} | {server:.0%} | {clients_cpu:.0%} | {broker:.0%} | "
                f"{per[0]:.2f} + {per[1]:.2f} + {per[2]:.2f} = {sum(per):.2f} |"
            )
            if args.before:
                before, before_figures = row("before", client, waiting, inflight)
                line += f" {before_figures} | {rate / before:.2f} |"
            print(line)


if __name__ == "__main__":
    main()
