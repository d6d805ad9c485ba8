"""Outbox throughput and call-to-gateway latency, with the real gateways on this machine.

    .venv/bin/python bench/notify_bench.py --notices 2000 --latency 200 --runs 3

Everything is real: the SQLite file in WAL mode with synchronous=FULL (one fsync per message:
the next row's "sending" is committed with the previous row's answer), Gammu's
``gammu-smsd-inject`` and the atomic rename into a gammu-smsd outbox, an HTTP provider API on
loopback (tests/notify_support.Provider, which checks each request). Figures:

* **outbox alone** — an accept-everything gateway in process: the model, rendering and
  SQLite, i.e. the ceiling the outbox puts on any gateway;
* **gammu files backend** / **HTTP provider** — notices per second handed over;
* **call → handed to the gateway** — a CALLED notice enqueued (committed) to the gateway's
  ``send`` returning, one at a time, with an idle outbox polled right after the commit
  (the server would wake its sender the same way).
* **gammu-smsd transmitting** (``--transmit``) — how fast the daemon itself empties the
  outbox with the dummy driver (a real modem needs ~3–6 s per SMS, which dominates).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from notify.config import GammuConfig, HttpSmsConfig, NotifySettings  # noqa: E402
from notify.gateways import Gateway  # noqa: E402
from notify.gateways.gammu import GammuGateway  # noqa: E402
from notify.gateways.http_sms import HttpSmsGateway  # noqa: E402
from notify.message import Channel, Delivery, Message, NoticeKind, SendResult  # noqa: E402
from notify.outbox import Outbox, Route, connect, enqueue, migrate  # noqa: E402
from tests.harness import wait_for  # noqa: E402
from tests.notify_support import GammuDaemon, Provider  # noqa: E402

SETTINGS = NotifySettings.model_validate(
    {"office": "Starostwo Łódź", "quiet_hours": None, "rate_limit": {"messages": 1000, "per_minutes": 1}, "batch": 1000}
)
CALL = {"ticket": "A023", "counter": {"pl": "Stanowisko 4"}, "place": {"pl": "parter"}}


class AcceptAll:
    """Takes every message at once: what is left to measure is the outbox itself."""

    channel = Channel.SMS

    def __init__(self, idempotent: bool) -> None:
        self.idempotent = idempotent
        self.n = 0

    def send(self, message: Message) -> SendResult:
        self.n += 1
        return SendResult.accepted(f"a{self.n}")

    def status(self, gateway_id: str) -> Delivery | None:
        return None

    def close(self) -> None:
        pass


def fill(conn, n: int, start: int = 0) -> None:
    now = time.time()
    conn.execute("BEGIN IMMEDIATE")
    for i in range(start, start + n):
        enqueue(
            conn,
            notice=f"ticket:{i}:called",
            recipient=f"+48600{i % 1000000:06d}",
            channel=Channel.SMS,
            kind=NoticeKind.CALLED,
            lang="pl",
            payload=CALL,
            now=now,
        )
    conn.execute("COMMIT")


def throughput(workdir: Path, gateway: Gateway, n: int) -> float:
    conn = connect(str(workdir / f"bench-{time.monotonic_ns()}.db"))
    migrate(conn)
    fill(conn, n)
    outbox = Outbox(conn, SETTINGS, {Channel.SMS: Route("bench", gateway)})
    t0 = time.perf_counter()
    done = 0
    while done < n:
        done += outbox.run_once()
    elapsed = time.perf_counter() - t0
    assert outbox.counts() == {"sent": n}, outbox.counts()
    conn.close()
    return n / elapsed


def latency(workdir: Path, gateway: Gateway, n: int) -> list[float]:
    conn = connect(str(workdir / f"lat-{time.monotonic_ns()}.db"))
    migrate(conn)
    stamps: list[float] = []

    class Stamped:
        channel, idempotent = gateway.channel, gateway.idempotent

        def send(self, message: Message) -> SendResult:
            result = gateway.send(message)
            stamps.append(time.perf_counter())
            return result

        def status(self, gateway_id: str) -> Delivery | None:
            return None

        def close(self) -> None:
            pass

    outbox = Outbox(conn, SETTINGS, {Channel.SMS: Route("bench", Stamped())})
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        fill(conn, 1, start=i)  # the event's transaction, with its notice
        outbox.run_once()
        out.append((stamps[-1] - t0) * 1000)
    conn.close()
    return out


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--notices", type=int, default=2000)
    ap.add_argument("--latency", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--transmit", type=int, default=0, help="also time gammu-smsd sending this many")
    args = ap.parse_args()
    results: dict[str, list[float]] = {
        "outbox alone, gateway without keys (1 fsync a message)": [],
        "outbox alone, gateway with keys (claimed in groups)": [],
        "gammu files backend": [],
        "HTTP provider": [],
    }
    lat: dict[str, list[float]] = {"gammu files backend": [], "HTTP provider": []}
    provider = Provider()
    http_config = HttpSmsConfig.model_validate(
        {"url": provider.url, "token": provider.token, "sender": "Starostwo", "id_path": "list.0.id"}
    )
    try:
        for run in range(args.runs):
            with tempfile.TemporaryDirectory() as tmp:
                workdir = Path(tmp)
                smsd = GammuDaemon(workdir / "gammu")  # its folders and config; the daemon is not started
                gammu = GammuGateway(GammuConfig(smsdrc=smsd.rc, staging=smsd.root / "staging"))
                http = HttpSmsGateway(http_config)
                for keys, name in ((False, "without keys"), (True, "with keys")):
                    label = next(k for k in results if name in k)
                    results[label].append(throughput(workdir, AcceptAll(keys), args.notices))
                results["gammu files backend"].append(throughput(workdir, gammu, max(200, args.notices // 10)))
                results["HTTP provider"].append(throughput(workdir, http, args.notices))
                lat["gammu files backend"] += latency(workdir, gammu, args.latency)
                lat["HTTP provider"] += latency(workdir, http, args.latency)
                http.close()
                print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in results.items()), flush=True)
                if args.transmit and run == 0:
                    for f in (smsd.root / "outbox").iterdir():
                        f.unlink()
                    fresh = GammuGateway(GammuConfig(smsdrc=smsd.rc, staging=smsd.root / "staging"))
                    for i in range(args.transmit):
                        fresh.send(
                            Message(Channel.SMS, f"+48600{i:06d}", "Numer A023 – Stanowisko 4, parter.", key=f"t{i}")
                        )
                    t0 = time.perf_counter()
                    smsd.start()
                    sent_dir = smsd.root / "sent"

                    def transmitted(d: Path = sent_dir) -> bool:
                        return len(list(d.iterdir())) >= args.transmit

                    wait_for(transmitted, 600, "transmitted")
                    rate = args.transmit / (time.perf_counter() - t0)
                    smsd.stop()
                    print(f"gammu-smsd (dummy driver) transmitted {args.transmit} at {rate:,.1f}/s incl. start-up")
    finally:
        provider.stop()
    print()
    print("| path | runs | median notices/s | min |")
    print("| --- | ---: | ---: | ---: |")
    for k, v in results.items():
        print(f"| {k} | {len(v)} | {statistics.median(v):,.0f} | {min(v):,.0f} |")
    print()
    print("| call → handed to the gateway | n | p50 | p90 | p99 | max |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for k, v in lat.items():
        print(f"| {k} | {len(v)} | {pct(v, 50):.2f} ms | {pct(v, 90):.2f} ms | {pct(v, 99):.2f} ms | {max(v):.1f} ms |")
    version = subprocess.run(["gammu", "--version"], capture_output=True, text=True).stdout.splitlines()
    print(
        f"\n{next((line for line in version if 'Gammu version' in line), 'gammu ?')}, SQLite {__import__('sqlite3').sqlite_version}"
    )


if __name__ == "__main__":
    main()
