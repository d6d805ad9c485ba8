"""A long soak: kiosks, counters and the public's HTTP reads together, for minutes.

    .venv/bin/python bench/soak_bench.py --minutes 10

The suite's soak test (tests/test_reliability.py) runs a minute's worth of this; here it runs
as long as asked, against the real server process, the real broker and SQLite, and reports:
tickets/s and HTTP reads/s with their p50/p99, server exits (must be 0), 5xx answers (must
be 0) and acknowledged tickets missing from the file (must be 0).

Load: 4 kiosk processes (bench/kiosk_load.py, 4 in flight each) issue tickets as fast as the
server answers; 3 counters press NEXT in a loop; 8 reader threads fetch ticket pages (known
and unknown tokens), /api/queues, /api/services, /health, and a clerk's Basic-auth reads.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protocol.topics import Topics  # noqa: E402
from tests.harness import ALWAYS_OPEN, Broker, Peer, ServerProcess, free_port, write_config  # noqa: E402

HERE = Path(__file__).resolve().parent
TOPICS = Topics("numerek")
EXTRA_PREFIXES = "CDEFGHJKLMNSTUVW"
SERVICES = ",".join(["rej", "pj", "pasz", *(f"x{p.lower()}" for p in EXTRA_PREFIXES)])


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))] if s else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    args = ap.parse_args()
    seconds = args.minutes * 60
    with tempfile.TemporaryDirectory(dir=HERE) as tmp:
        folder = Path(tmp)
        broker = Broker(folder).start()
        cfg = write_config(folder / "office.toml", broker.port, free_port(), limit=9999, kiosk_rate="100000/second")
        # Each service numbers at most 9,999 tickets a day (protocol/): at full speed the three
        # test services run out in minutes, so the soak adds services until the numbers last.
        text = cfg.read_text()
        head, counters = text.split("[[counters]]", 1)
        extra = "".join(
            f'[[services]]\nid = "x{p.lower()}"\nprefix = "{p}"\nname = {{ pl = "Sprawa {p}", en = "Service {p}" }}\n'
            f'zone = "hall"\nhours = {ALWAYS_OPEN}\n\n'
            for p in EXTRA_PREFIXES
        )
        served = ", ".join(f'"x{p.lower()}"' for p in EXTRA_PREFIXES)
        cfg.write_text(
            head
            + extra
            + "[[counters]]"
            + counters
            + f'\n[[counters]]\nid = "9"\nname = "Stanowisko 9"\nzone = "hall"\nservices = [{served}]\n'
        )
        port = int(cfg.read_text().split("[http]")[1].split("port = ")[1].split()[0])
        server = ServerProcess(cfg, port).start()
        pid = server.proc.pid
        stop = threading.Event()
        reads: list[float] = []
        errors: list[str] = []
        presses = [0]

        def counter(cid: str) -> None:
            peer = Peer(broker.port)
            peer.subscribe(TOPICS.counter_reply(cid, "#"))
            n = 0
            while not stop.is_set():
                n += 1
                reply = peer.request(
                    TOPICS.counter_command(cid),
                    {"v": 1, "id": f"c{cid}-{n}", "action": "next"},
                    TOPICS.counter_reply(cid, f"s{n}"),
                    timeout=60,
                )
                presses[0] += 1
                if not reply["ok"]:
                    errors.append(str(reply["error"]))
            peer.close()

        def reader(kind: int) -> None:
            public = httpx.Client(base_url=server.url, timeout=60)
            clerk = httpx.Client(base_url=server.url, timeout=60, auth=server.CLERK)
            n = 0
            while not stop.is_set():
                n += 1
                who, path = [
                    (public, f"/t/{uuid.uuid4().hex}"),
                    (public, "/api/queues"),
                    (public, "/health"),
                    (clerk, "/api/queues"),
                    (clerk, "/api/counters/1"),
                    (public, "/api/services"),
                ][(n + kind) % 6]
                t0 = time.perf_counter()
                r = who.get(path)
                reads.append((time.perf_counter() - t0) * 1000)
                if r.status_code >= 500:
                    errors.append(f"GET {path}: {r.status_code}")

        threads = [threading.Thread(target=counter, args=(c,)) for c in ("1", "2", "3")]
        threads += [threading.Thread(target=reader, args=(i,)) for i in range(8)]
        loads = []
        for i in range(4):
            out = folder / f"load-{i}.json"
            cmd = [sys.executable, str(HERE / "kiosk_load.py"), "--port", str(broker.port), "--kiosk", f"soak{i}"]
            cmd += ["--services", SERVICES]
            loads.append(
                (subprocess.Popen([*cmd, "--inflight", "4", "--seconds", str(seconds), "--out", str(out)]), out)
            )
        started = time.perf_counter()
        for t in threads:
            t.start()
        for proc, _ in loads:
            proc.wait()
        stop.set()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        results = [json.loads(out.read_text()) for _, out in loads]
        exited = server.proc.poll() is not None or server.proc.pid != pid
        server.stop()
        broker.stop()
        db = sqlite3.connect(folder / "numerek.db")
        issued = db.execute("SELECT count(*), count(DISTINCT day || number) FROM tickets").fetchone()
        db.close()
        latencies = [x * 1000 for r in results for x in r["latencies"]]
        tickets = sum(r["ok"] for r in results)
        refused = sum(r["refused"] for r in results)
        errors += [e for r in results for e in r["errors"]]
    print(f"soak of {elapsed / 60:.1f} min")
    print(
        f"tickets: {tickets:,} acknowledged ({tickets / elapsed:,.0f}/s), {refused:,} refused; "
        f"request p50 {statistics.median(latencies):.1f} ms, p99 {pct(latencies, 99):.1f} ms; "
        f"{issued[0]:,} in the file (must equal the acknowledged), {issued[0] - issued[1]} duplicate numbers"
    )
    print(f"NEXT presses: {presses[0]:,}")
    print(
        f"HTTP reads: {len(reads):,} ({len(reads) / elapsed:,.0f}/s), p50 {statistics.median(reads):.1f} ms, "
        f"p99 {pct(reads, 99):.1f} ms"
    )
    print(f"server exits: {int(exited)}; errors: {len(errors)} {errors[:3]}")


if __name__ == "__main__":
    main()
