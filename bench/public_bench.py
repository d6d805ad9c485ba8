"""Public status under a crowd: requests/s, p99 latency and server CPU, while the office issues
tickets and calls clients at its peak.

    .venv/bin/python bench/public_bench.py --seconds 20

Everything real: Debian's mosquitto on a free port, ``numerek-server`` as a subprocess with
its SQLite file, a kiosk and two counters as paho clients (the office's peak, ``--tickets-per-s``
and ``--calls-per-s``), and the crowd as asyncio clients on raw sockets (HTTP/1.1, so the
load generator costs little next to the server). Server CPU is read from /proc/<pid>/stat.

Two parts:

* **capacity**: ``--connections`` keep-alive clients ask as fast as they can for each URL,
  once as browsers revalidating (``If-None-Match``: a 304 while nothing changed) and once
  without (a 200 with the body each time);
* **phones polling**: ``--phones`` phones each ask every ``--poll-s`` seconds on a new
  connection (a phone's keep-alive has lapsed after 10 s), with the ETag it has: the
  steady state of a crowd on /kolejka.

Server-sent events were measured against polling with this bench at commit 7fbb5b2 (its
``--sse`` part and the server's experimental stream were removed after): docs/performance.md.

Also measured throughout: the kiosk's ticket round trip (request → durable answer), so the
crowd's cost to the office itself shows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protocol.topics import Topics  # noqa: E402
from tests.harness import Broker, Peer, ServerProcess, free_port, write_config  # noqa: E402

TOPICS = Topics("numerek")
TICKS = os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))] if s else float("nan")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


class OfficePeak:
    """A kiosk issuing tickets and counters calling NEXT at fixed rates; records ticket round trips."""

    def __init__(self, port: int, tickets_per_s: float, calls_per_s: float) -> None:
        self.kiosk, self.counter = Peer(port), Peer(port)
        self.tickets_per_s, self.calls_per_s = tickets_per_s, calls_per_s
        self.sent: dict[str, float] = {}
        self.round_trips: list[float] = []
        self.stop = threading.Event()
        self.kiosk.client.message_callback_add(TOPICS.kiosk_response("peak"), self._answer)
        self.kiosk.subscribe(TOPICS.kiosk_response("peak"))

    def _answer(self, _c, _u, msg) -> None:
        data = json.loads(msg.payload)
        t0 = self.sent.pop(data.get("id") or "", None)
        if t0 is not None and data.get("ok"):
            self.round_trips.append((time.perf_counter() - t0) * 1000)

    def _run(self, every: float, send) -> None:
        i, start = 0, time.perf_counter()
        while not self.stop.is_set():
            send(i)
            i += 1
            self.stop.wait(max(0.0, start + i * every - time.perf_counter()))

    def _ticket(self, i: int) -> None:
        rid = f"p{i}"
        self.sent[rid] = time.perf_counter()
        body = {"v": 1, "id": rid, "service": ("rej", "pj", "pasz")[i % 3]}
        self.kiosk.client.publish(TOPICS.kiosk_request("peak"), json.dumps(body), qos=1)

    def _call(self, i: int) -> None:
        counter = ("1", "2", "3")[i % 3]
        body = {"v": 1, "id": f"n{time.time()}-{i}", "action": "next"}
        self.counter.client.publish(TOPICS.counter_command(counter), json.dumps(body), qos=1)

    def start(self) -> OfficePeak:
        self.threads = [
            threading.Thread(target=self._run, args=(1 / self.tickets_per_s, self._ticket), daemon=True),
            threading.Thread(target=self._run, args=(1 / self.calls_per_s, self._call), daemon=True),
        ]
        for t in self.threads:
            t.start()
        return self

    def finish(self) -> list[float]:
        self.stop.set()
        for t in self.threads:
            t.join(5)
        self.kiosk.close()
        self.counter.close()
        out, self.round_trips = self.round_trips, []
        return out


# --------------------------------------------------------------------------- HTTP on raw sockets


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


def request(path: str, etag: str | None, close: bool = False) -> bytes:
    extra = f"If-None-Match: {etag}\r\n" if etag else ""
    conn = "Connection: close\r\n" if close else ""
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: identity\r\n{extra}{conn}\r\n".encode()


async def closed_loop(port: int, path: str, seconds: float, connections: int, revalidate: bool) -> dict:
    """``connections`` keep-alive clients, each asking again as soon as it has an answer."""
    latencies: list[float] = []
    codes: dict[int, int] = {}
    end = time.perf_counter() + seconds

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        etag = None
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            writer.write(request(path, etag if revalidate else None))
            status, headers, _ = await read_response(reader)
            latencies.append((time.perf_counter() - t0) * 1000)
            codes[status] = codes.get(status, 0) + 1
            etag = headers.get("etag", etag)
        writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    elapsed = time.perf_counter() - t0
    return {"rps": len(latencies) / elapsed, "p50": pct(latencies, 50), "p99": pct(latencies, 99), "codes": codes}


async def phones_polling(port: int, path: str, seconds: float, phones: int, poll_s: float) -> dict:
    """Each phone asks every ``poll_s`` seconds on a new connection, with the ETag it has."""
    latencies: list[float] = []
    codes: dict[int, int] = {}
    end = time.perf_counter() + seconds
    errors = [0]

    async def phone() -> None:
        etag = None
        await asyncio.sleep(random.uniform(0, poll_s))
        while time.perf_counter() < end:
            t0 = time.perf_counter()
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(request(path, etag, close=True))
                status, headers, _ = await read_response(reader)
                writer.close()
            except (OSError, asyncio.IncompleteReadError):
                errors[0] += 1
                await asyncio.sleep(poll_s)
                continue
            latencies.append((time.perf_counter() - t0) * 1000)
            codes[status] = codes.get(status, 0) + 1
            etag = headers.get("etag", etag)
            await asyncio.sleep(max(0.0, poll_s - (time.perf_counter() - t0)))

    t0 = time.perf_counter()
    await asyncio.gather(*(phone() for _ in range(phones)))
    elapsed = time.perf_counter() - t0
    return {
        "rps": len(latencies) / elapsed,
        "p50": pct(latencies, 50),
        "p99": pct(latencies, 99),
        "codes": codes,
        "errors": errors[0],
    }


# --------------------------------------------------------------------------- runs


def measure(server: ServerProcess, broker: Broker, args, label: str, coro_factory) -> dict:
    peak = OfficePeak(broker.port, args.tickets_per_s, args.calls_per_s).start()
    time.sleep(1.0)  # the office is busy before the crowd arrives
    cpu0, wall0 = cpu_seconds(server.proc.pid), time.perf_counter()
    result = asyncio.run(coro_factory())
    cpu1, wall1 = cpu_seconds(server.proc.pid), time.perf_counter()
    trips = peak.finish()
    result["server_cpu_%"] = 100 * (cpu1 - cpu0) / (wall1 - wall0)
    result["ticket_p50"] = pct(trips, 50)
    result["ticket_p99"] = pct(trips, 99)
    result["tickets"] = len(trips)
    print(f"{label:<46} " + "  ".join(f"{k}={_fmt(v)}" for k, v in result.items()), flush=True)
    return result


def _fmt(v) -> str:
    return f"{v:.1f}" if isinstance(v, float) else str(v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--connections", type=int, default=32, help="keep-alive clients for the capacity part")
    ap.add_argument("--phones", type=int, default=2000)
    ap.add_argument("--poll-s", type=float, default=10.0)
    ap.add_argument("--tickets-per-s", type=float, default=2.0, help="the office's peak: tickets issued per second")
    ap.add_argument("--calls-per-s", type=float, default=1.0, help="NEXT presses per second over three counters")
    ap.add_argument("--skip-capacity", action="store_true")
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(Path(tmp)).start()
        http_port = free_port()
        cfg = write_config(Path(tmp) / "office.toml", broker.port, http_port, limit=9999)
        server = ServerProcess(cfg, http_port=http_port).start(login=False)
        port = http_port
        try:
            idle0, wall0 = cpu_seconds(server.proc.pid), time.perf_counter()
            trips = OfficePeak(broker.port, args.tickets_per_s, args.calls_per_s).start()
            time.sleep(args.seconds / 2)
            t = trips.finish()
            print(
                f"{'office peak alone':<46} server_cpu_%={100 * (cpu_seconds(server.proc.pid) - idle0) / (time.perf_counter() - wall0):.1f}"
                f"  ticket_p50={pct(t, 50):.1f}  ticket_p99={pct(t, 99):.1f}  tickets={len(t)}",
                flush=True,
            )
            paths = ("/kolejka", "/api/public/v1/status", "/api/public/warszawa")
            if not args.skip_capacity:
                for path in paths:
                    for revalidate in (True, False):
                        measure(
                            server,
                            broker,
                            args,
                            f"capacity {path} {'304' if revalidate else '200'}",
                            lambda p=path, r=revalidate: closed_loop(port, p, args.seconds, args.connections, r),
                        )
            measure(
                server,
                broker,
                args,
                f"{args.phones} phones polling /kolejka every {args.poll_s:g}s",
                lambda: phones_polling(port, "/kolejka", args.seconds, args.phones, args.poll_s),
            )
        finally:
            server.stop()
            broker.stop()
    print(f"load average after: {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
