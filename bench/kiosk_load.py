"""One kiosk load process for bench/server_bench.py: closed loop, N requests in flight.

    python bench/kiosk_load.py --port P --kiosk k1 --inflight 16 --seconds 5 --out result.json

Each request is a real ticket request (MQTT 5, response topic and correlation data, QoS 1);
a new one is sent as soon as an answer arrives, so exactly ``inflight`` are outstanding, as
that many kiosks each waiting for their ticket. Latency is publish → answer, per request.
Run as a separate process so that the load client is never the bottleneck (its CPU time is
reported with the figures).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import threading
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
from protocol.topics import Topics  # noqa: E402

BASE = "numerek"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--kiosk", required=True)
    ap.add_argument("--inflight", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--count", type=int, default=0, help="stop after this many answers instead of a duration")
    ap.add_argument(
        "--services", default="rej,pj,pasz", help="taken in turn (each prefix has at most 9999 numbers a day)"
    )
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    topics = Topics(BASE)
    response_topic = topics.kiosk_response(args.kiosk, "load")
    services = args.services.split(",")
    sent: dict[bytes, float] = {}
    latencies: list[float] = []
    errors: list[str] = []
    ok = [0]
    lock = threading.Lock()
    done = threading.Event()
    ready = threading.Event()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"load-{args.kiosk}-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5
    )
    client.on_socket_open = lambda _c, _u, sock: sock.setsockopt(6, 1, 1)  # TCP_NODELAY
    counter = [0]
    deadline = [0.0]
    run = uuid.uuid4().hex[:8]  # request ids unique per process: a repeated id is answered from memory, no ticket
    numbers: list[str] = []

    def send() -> None:
        counter[0] += 1
        corr = uuid.uuid4().bytes
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = response_topic
        props.CorrelationData = corr
        service = services[counter[0] % len(services)]
        payload = json.dumps({"v": 1, "id": f"{args.kiosk}-{run}-{counter[0]}", "service": service})
        sent[corr] = time.perf_counter()
        client.publish(topics.kiosk_request(args.kiosk), payload, qos=1, properties=props)

    def on_message(_c, _u, msg) -> None:
        now = time.perf_counter()
        corr = getattr(msg.properties, "CorrelationData", None)
        with lock:
            start = sent.pop(corr, None)
            if start is None:
                return
            if b'"ok":true' in msg.payload:
                ok[0] += 1
                at = msg.payload.find(b'"number":"') + 10
                numbers.append(msg.payload[at : msg.payload.index(b'"', at)].decode())
            else:
                errors.append(msg.payload.decode()[:200])
            latencies.append(now - start)
            finished = len(latencies) >= args.count if args.count else now >= deadline[0]
            if finished:
                if not sent:
                    done.set()
                return
            send()

    client.on_message = on_message
    client.on_subscribe = lambda *a: ready.set()
    client.connect("127.0.0.1", args.port, keepalive=30)
    client.loop_start()
    client.subscribe(response_topic, qos=1)
    if not ready.wait(10):
        raise SystemExit("no SUBACK")
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    deadline[0] = started + args.seconds
    with lock:
        for _ in range(args.inflight):
            send()
    if not done.wait(args.seconds + 120):
        errors.append(f"{len(sent)} requests unanswered")
    elapsed = time.perf_counter() - started
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    client.disconnect()
    client.loop_stop()
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    with open(args.out, "w") as f:
        json.dump(
            {
                "latencies": latencies,
                "elapsed": elapsed,
                "ok": ok[0],
                "refused": len(errors),
                "errors": errors[:20],
                "cpu_s": cpu,
                "numbers": numbers,
            },
            f,
        )


if __name__ == "__main__":
    main()
