"""End-to-end server benchmark on loopback: call latency and durable ticket throughput.

    .venv/bin/python bench/server_bench.py --calls 2000 --tickets 5000 --runs 3
    .venv/bin/python bench/server_bench.py --calls 500 --tickets 500 --runs 2 --devices-without-nodelay

Everything real: Debian's mosquitto on a free port, ``numerek-server`` as a subprocess
with its SQLite file (WAL, synchronous=FULL), paho clients. Three figures:

* **broker round trip** — a message published by one client and received by another,
  through mosquitto only: the floor no server can beat;
* **call latency** — a counter's NEXT published → the call received by a display client,
  through the server's parse, engine, fsynced commit and publish; one call at a time;
* **tickets/s** — kiosk requests sent as fast as the broker takes them; time until the
  last durable response.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protocol.topics import Topics  # noqa: E402
from tests.harness import Broker, Peer, ServerProcess, free_port, write_config  # noqa: E402

TOPICS = Topics()


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


class Stamp:
    """Receives messages on one topic and records perf_counter() at arrival."""

    def __init__(self, peer: Peer, topic: str) -> None:
        self.arrived: list[tuple[float, bytes]] = []
        self.event = threading.Event()
        client = peer.client

        def on_message(_c, _u, msg):
            self.arrived.append((time.perf_counter(), msg.payload))
            self.event.set()

        client.message_callback_add(topic, on_message)
        client.subscribe(topic, qos=1)
        time.sleep(0.2)


def broker_round_trip(port: int, n: int) -> list[float]:
    sender, receiver = Peer(port), Peer(port)
    stamp = Stamp(receiver, "bench/rtt")
    out = []
    for i in range(n):
        stamp.event.clear()
        t0 = time.perf_counter()
        sender.client.publish("bench/rtt", str(i), qos=1)
        stamp.event.wait(5)
        out.append((stamp.arrived[-1][0] - t0) * 1000)
    sender.close()
    receiver.close()
    return out


def issue_tickets(port: int, n: int, service: str = "rej", window: int = 100) -> float:
    """Issue ``n`` tickets with ``window`` requests in flight (as many kiosks at once).

    Returns durable tickets per second. Why a window: a flood of thousands of unanswered
    QoS 1 messages exceeds mosquitto's per-client queue (``max_queued_messages``, 1000 by
    default) and the broker drops the excess; real kiosks each wait for their answer.
    """
    kiosk = Peer(port)
    done = threading.Event()
    slots = threading.Semaphore(window)
    count = [0]

    def on_response(_c, _u, msg):
        if json.loads(msg.payload)["ok"]:
            count[0] += 1
            slots.release()
            if count[0] == n:
                done.set()

    kiosk.client.message_callback_add(TOPICS.kiosk_response("bench"), on_response)
    kiosk.client.subscribe(TOPICS.kiosk_response("bench"), qos=1)
    time.sleep(0.2)
    stamp = time.perf_counter()
    for i in range(n):
        if not slots.acquire(timeout=30):
            raise RuntimeError(f"no answer for 30 s after {count[0]} tickets")
        kiosk.client.publish(
            TOPICS.kiosk_request("bench"), json.dumps({"v": 1, "id": f"t{stamp}-{i}", "service": service}), qos=1
        )
    if not done.wait(120):
        raise RuntimeError(f"only {count[0]} of {n} tickets answered")
    elapsed = time.perf_counter() - stamp
    kiosk.close()
    return n / elapsed


def call_latency(port: int, n: int, nodelay: bool = True) -> list[float]:
    counter, display = Peer(port), Peer(port)
    if not nodelay:  # a third party's device whose MQTT library leaves Nagle's algorithm on
        for device in (counter, display):
            device.client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
    # Like a counter unit: its reply and retained state come back with QoS 1, so it sends a
    # PUBACK for each, and the next press follows them on the same socket.
    counter.subscribe(TOPICS.counter_reply("1"), TOPICS.counter_state("1"))
    stamp = Stamp(display, TOPICS.zone_call("hall"))
    out = []
    for i in range(n):
        stamp.event.clear()
        t0 = time.perf_counter()
        counter.client.publish(
            TOPICS.counter_command("1"), json.dumps({"v": 1, "id": f"n{t0}-{i}", "action": "next"}), qos=1
        )
        if not stamp.event.wait(5):
            raise RuntimeError("no call received")
        out.append((stamp.arrived[-1][0] - t0) * 1000)
    counter.close()
    display.close()
    return out


def summary(name: str, values: list[float], unit: str = "ms") -> str:
    return (
        f"{name:<22} n={len(values):>5}  p50={statistics.median(values):7.3f} {unit}  "
        f"p90={pct(values, 90):7.3f}  p99={pct(values, 99):7.3f}  max={max(values):7.3f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--tickets", type=int, default=5000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--devices-without-nodelay",
        action="store_true",
        help="the counter and display clients leave TCP_NODELAY off (a device whose library does not set it)",
    )
    args = ap.parse_args()
    rtt_all, call_all, rates = [], [], []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(dir=Path(__file__).parent) as tmp:
            broker = Broker(Path(tmp)).start()
            cfg = write_config(Path(tmp) / "office.toml", broker.port, free_port(), limit=9999)
            http_port = int(cfg.read_text().split("[http]")[1].split("port = ")[1].split()[0])
            server = ServerProcess(cfg, http_port).start()
            try:
                rtt = broker_round_trip(broker.port, args.calls)
                rate = issue_tickets(broker.port, args.tickets)
                # enough waiting tickets for every call: top up beyond what the rate run left
                if args.calls > args.tickets:
                    issue_tickets(broker.port, args.calls - args.tickets)
                calls = call_latency(broker.port, args.calls, nodelay=not args.devices_without_nodelay)
            finally:
                server.stop()
                broker.stop()
        print(f"run {run + 1}: " + summary("call latency", calls) + f"  | tickets/s {rate:,.0f}", flush=True)
        rtt_all += rtt
        call_all += calls
        rates.append(rate)
    print()
    print(summary("broker round trip", rtt_all))
    print(summary("call latency", call_all))
    print(f"{'call/broker p50 ratio':<22} {statistics.median(call_all) / statistics.median(rtt_all):.1f}x")
    print(
        f"{'tickets/s (durable)':<22} median={statistics.median(rates):,.0f}  min={min(rates):,.0f}  runs={len(rates)}"
    )


if __name__ == "__main__":
    main()
