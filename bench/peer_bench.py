"""Numerek side by side with open-source peer queue systems, on one machine, cell by cell (issue 14).

    .venv/bin/python bench/peer_bench.py --peer fqm=/tmp/peers/FQM --runs 2 --seconds 4

Each system issues tickets to the same closed-loop load: 1/4/16/64 "take a ticket" requests in
flight for ``--seconds``, on loopback, with a fresh database per cell. The cells run interleaved
(every system at 1 in flight, then every system at 4, ...; the systems' order turns each run) so all
see the same load of a shared machine. Figures per cell: tickets/s, p50/p99 request latency, the
server's CPU (from /proc, per ticket too) and the load clients' CPU.

* **Numerek**: the real server with Mosquitto, exactly as bench/server_bench.py starts them (WAL,
  synchronous=FULL: a ticket is answered after its fsynced commit), loaded by bench/kiosk_load.py
  (MQTT 5 request/response, as a kiosk does); the broker's CPU is counted with the server's.
* **a peer** (``--peer NAME=DIR``: a checkout of that project, its Python dependencies in
  ``DIR/.venv``, never in ours): its own server, started the way its documentation starts it,
  loaded by bench/http_kiosk_load.py with the request its touch screen sends (keep-alive, up to 4
  client processes). Every answer is checked; the new tickets are counted in the peer's database
  after the cell, and a cell whose database does not hold one new, distinct ticket per answer
  counted stops the benchmark. Known peers: ``fqm`` (FQM, github.com/mrf345/FQM).

docs/performance.md says which commit of each peer was measured, how to get it and what each
does (or skips) per ticket.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from server_bench import Office, cpu_seconds, load, load_results, pct  # noqa: E402

from tests.harness import free_port  # noqa: E402

HERE = Path(__file__).resolve().parent

FQM_TEMPLATE = """
import os
from app.main import create_app, create_db
from app.middleware import db
from app.database import Office, Task, Serial, Display_store

app = create_app()
create_db(app)
with app.app_context():
    # What FQM's admin pages do for "add office" and "add task" (app/views/manage.py office_a, task_a):
    office = Office('Bench', 'A')
    db.session.add(office)
    db.session.commit()
    task = Task('Take a ticket', False)
    db.session.add(task)
    db.session.commit()
    task.offices.append(office)
    db.session.commit()
    db.session.add(Serial(office_id=office.id, task_id=task.id, p=True))  # FQM's initial ticket, number 100
    # No spoken announcements: FQM makes them with Google's text-to-speech over the internet (none here).
    Display_store.get().announce = 'false'
    db.session.commit()
    print(task.id)
"""


class FqmServer:
    """FQM as its README's standard setup runs it: ``python run.py --cli`` (one process, gevent's WSGI server)."""

    label = "FQM"
    kind = "fqm"

    def __init__(self, code: Path, folder: Path) -> None:
        self.code = code
        self.python = str(code / ".venv" / "bin" / "python")
        self.folder = folder
        self.template = folder / "fqm-template.sqlite"
        env = {**os.environ, "DATABASE_URI": self.uri(self.template)}
        out = subprocess.run(
            [self.python, "-c", FQM_TEMPLATE], cwd=code, env=env, capture_output=True, text=True, check=True
        )
        self.task = int(out.stdout.split()[-1])
        self.proc: subprocess.Popen | None = None

    @staticmethod
    def uri(path: Path) -> str:
        return f"sqlite:///{path}?check_same_thread=False"

    def start(self, cell: Path) -> None:
        cell.mkdir(parents=True, exist_ok=True)
        self.db = cell / "data.sqlite"
        shutil.copy(self.template, self.db)  # a fresh database: the office and its task, no tickets
        self.port = free_port()
        env = {**os.environ, "DATABASE_URI": self.uri(self.db)}
        cmd = [self.python, "run.py", "--cli", "--quiet", "--ip", "127.0.0.1", "--port", str(self.port)]
        self.log = open(cell / "fqm.log", "w")
        self.proc = subprocess.Popen(cmd, cwd=self.code, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/touch/0", timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"FQM did not start: {(cell / 'fqm.log').read_text()[-500:]}") from None
                time.sleep(0.1)

    @property
    def pids(self) -> list[int]:
        assert self.proc is not None, "not started"
        return [self.proc.pid]

    def tickets(self) -> list[int]:
        """The numbers of the tickets taken at the kiosk (FQM's initial ticket 100 is not one)."""
        db = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            return [n for (n,) in db.execute("SELECT number FROM serials WHERE name IS NOT NULL")]
        finally:
            db.close()

    def close(self) -> None:
        if self.proc:  # started (or failed to answer): stop it, whatever happened
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.log.close()
            self.proc = None


PEER_SERVERS = {"fqm": FqmServer}


def http_load(server, inflight: int, seconds: float, folder: Path) -> dict:
    """bench/http_kiosk_load.py processes against a peer (as server_bench.load does for Numerek).

    Every kiosk first loads the peer's ticket form (its browser would, once); the timed load and the
    server's CPU count start together once every process has its forms, so neither counts them.
    """
    procs = min(inflight, 4)
    share = [inflight // procs + (1 if i < inflight % procs else 0) for i in range(procs)]
    outs, readies, running = [], [], []
    go = folder / f"go-{time.monotonic_ns()}"
    for i, k in enumerate(share):
        out = folder / f"http-load-{i}-{time.monotonic_ns()}.json"
        ready = out.with_suffix(".ready")
        cmd = [sys.executable, str(HERE / "http_kiosk_load.py"), "--peer", server.kind, "--port", str(server.port)]
        cmd += ["--task", str(server.task), "--kiosk", f"k{i}", "--inflight", str(k), "--seconds", str(seconds)]
        cmd += ["--ready", str(ready), "--go", str(go), "--out", str(out)]
        running.append(subprocess.Popen(cmd))
        outs.append(out)
        readies.append(ready)
    deadline = time.monotonic() + 600
    while not all(r.exists() for r in readies):
        if any(p.poll() not in (None, 0) for p in running) or time.monotonic() > deadline:
            raise RuntimeError("an HTTP load process failed before the load")
        time.sleep(0.01)
    cpu0 = sum(cpu_seconds(p) for p in server.pids)
    go.touch()
    for p in running:
        if p.wait(seconds + 600) != 0:
            raise RuntimeError("an HTTP load process failed")
    server_cpu = sum(cpu_seconds(p) for p in server.pids) - cpu0
    cell, results = load_results(outs, f"{server.label}: {{n}} answers were not tickets: {{first}}")
    elapsed = max(r["elapsed"] for r in results)
    return {**cell, "server_cpu": server_cpu / elapsed, "answers": len(cell["lat"])}


def check_new_tickets(label: str, answers: int, numbers: list[int]) -> None:
    """Every answer counted as a ticket is one new ticket in the peer's database, none repeated."""
    if len(set(numbers)) != len(numbers):
        raise RuntimeError(f"{label}: {len(numbers) - len(set(numbers))} ticket numbers issued twice")
    if len(numbers) != answers:
        raise RuntimeError(f"{label}: {answers} answers counted as tickets, {len(numbers)} tickets in its database")


def numerek_cell(folder: Path, inflight: int, seconds: float) -> dict:
    office = Office(folder, pi=False, quota=25)
    try:
        assert office.server.proc is not None and office.broker.proc is not None
        pids = [office.server.proc.pid, office.broker.proc.pid]  # Numerek's side: its server and Mosquitto
        cpu0 = sum(cpu_seconds(p) for p in pids)
        result = load(office.port, inflight, seconds, office.folder)  # refuses repeated tickets itself
        result["server_cpu"] = sum(cpu_seconds(p) for p in pids) - cpu0
    finally:
        office.close()
    result["server_cpu"] /= max(seconds, 1e-9)
    return result


def peer_cell(server, folder: Path, inflight: int, seconds: float) -> dict:
    try:
        server.start(folder)
        result = http_load(server, inflight, seconds, folder)
        check_new_tickets(server.label, result["answers"], server.tickets())
    finally:
        server.close()
    return result


def traced_syncs(pid: int, run) -> tuple[int, int]:
    """(tickets, fsync-class system calls) of one process, all its threads, while ``run()`` issues tickets.

    What "durable" costs each system: a ticket answered only after its commit reached the disk
    shows at least one fsync/fdatasync per ticket. Needs strace (and ptrace permission).
    """
    calls = "fsync,fdatasync,sync_file_range,syncfs,msync"
    strace = subprocess.Popen(
        ["strace", "-c", "-f", "-e", f"trace={calls}", "-p", str(pid)], stderr=subprocess.PIPE, text=True
    )
    assert strace.stderr is not None
    first = strace.stderr.readline()  # "strace: Process N attached ...": tracing from here on
    if "attached" not in first:
        strace.kill()
        raise RuntimeError(f"strace could not attach: {first.strip()}")
    tickets = run()
    strace.send_signal(2)
    summary = strace.communicate(timeout=60)[1]
    synced = sum(
        int(line.split()[3])
        for line in summary.splitlines()
        if line.split()[-1:] and line.split()[-1] in calls.split(",")
    )
    return tickets, synced


def sync_report(peers: list[tuple[str, Path]], seconds: float) -> None:
    """One traced cell per system at 1 in flight: fsync-class calls per ticket."""
    print()
    with tempfile.TemporaryDirectory(dir=HERE) as tmp:
        folder = Path(tmp)
        office = Office(folder / "numerek", pi=False, quota=25)
        try:
            assert office.server.proc is not None
            got = traced_syncs(office.server.proc.pid, lambda: len(load(office.port, 1, seconds, office.folder)["lat"]))
        finally:
            office.close()
        print(f"Numerek: {got[1]} fsync-class calls for {got[0]} tickets: {got[1] / got[0]:.2f} per ticket")
        for name, code in peers:
            server = PEER_SERVERS[name](code, folder)
            try:
                server.start(folder / name)
                got = traced_syncs(server.pids[0], lambda s=server: http_load(s, 1, seconds, folder)["answers"])
                check_new_tickets(server.label, got[0], server.tickets())
            finally:
                server.close()
            print(f"{server.label}: {got[1]} fsync-class calls for {got[0]} tickets: {got[1] / got[0]:.2f} per ticket")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peer", action="append", default=[], help="NAME=DIR: a peer's checkout (its venv in DIR/.venv)")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=4.0, help="per cell")
    ap.add_argument("--inflight", default="1,4,16,64")
    ap.add_argument("--syncs", action="store_true", help="also count each server's fsyncs per ticket (strace)")
    args = ap.parse_args()
    peers = []
    for spec in args.peer:
        name, _, code = spec.partition("=")
        if name not in PEER_SERVERS or not code:
            ap.error(f"--peer {spec!r}: NAME=DIR with NAME one of {sorted(PEER_SERVERS)}")
        peers.append((name, Path(code).resolve()))
    inflights = [int(x) for x in args.inflight.split(",")]
    loads = [os.getloadavg()[0]]
    print(f"load average (1 min) at the start: {loads[0]:.1f}", flush=True)
    cells: dict[tuple[str, int], list[dict]] = {}
    labels = ["Numerek"]
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(dir=HERE) as tmp:
            folder = Path(tmp)
            servers: dict[str, FqmServer | None] = {"Numerek": None}
            for name, code in peers:
                server = PEER_SERVERS[name](code, folder)
                servers[server.label] = server
                if server.label not in labels:
                    labels.append(server.label)
            order = labels[run % len(labels) :] + labels[: run % len(labels)]  # no system always first
            for inflight in inflights:
                for label in order:
                    cell = folder / f"{label}-{inflight}"
                    if label == "Numerek":
                        result = numerek_cell(cell, inflight, args.seconds)
                    else:
                        result = peer_cell(servers[label], cell, inflight, args.seconds)
                    cells.setdefault((label, inflight), []).append(result)
                    loads.append(os.getloadavg()[0])
                    print(
                        f"run {run + 1} {label:8} in flight {inflight:>2}: {result['rate']:7,.1f} tickets/s"
                        f"  p50 {statistics.median(result['lat']):7.2f} ms  p99 {pct(result['lat'], 99):7.2f} ms"
                        f"  server CPU {result['server_cpu']:4.0%}  clients CPU {result['client_cpu']:4.0%}",
                        flush=True,
                    )
    print(
        f"load average (1 min) at the end: {os.getloadavg()[0]:.1f}; during the run {min(loads):.1f}–{max(loads):.1f}"
    )
    print()
    print(
        "| in flight | system | tickets/s (median of runs) | tickets (all runs) | p50 ms | p99 ms | server CPU "
        "| clients CPU | server CPU ms per ticket | Numerek ÷ this (tickets/s) |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for inflight in inflights:
        numerek = statistics.median(r["rate"] for r in cells[("Numerek", inflight)])
        for label in labels:
            got = cells[(label, inflight)]
            lat = [x for r in got for x in r["lat"]]
            rate = statistics.median(r["rate"] for r in got)
            server = statistics.median(r["server_cpu"] for r in got)
            clients = statistics.median(r["client_cpu"] for r in got)
            ratio = "" if label == "Numerek" else f"{numerek / rate:.1f}×"
            print(
                f"| {inflight} | {label} | {rate:,.1f} | {len(lat):,} | {statistics.median(lat):.2f} | {pct(lat, 99):.2f} "
                f"| {server:.0%} | {clients:.0%} | {1000 * server / rate:.2f} | {ratio} |"
            )
    if args.syncs:
        sync_report(peers, args.seconds)


if __name__ == "__main__":
    main()
