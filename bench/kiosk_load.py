"""One kiosk load process for bench/server_bench.py: closed loop, N requests in flight.

    python bench/kiosk_load.py --port P --kiosk k1 --inflight 16 --seconds 5 --out result.json
    python bench/kiosk_load.py ... --client paho      # the earlier paho client, to compare

Each request is a real ticket request, as a kiosk sends it: MQTT 5, clean session, QoS 1 to
``numerek/kiosk/<id>/request`` with a Response Topic and Correlation Data, the kiosk's JSON
body; the answer (PUBACKed when the server sends it with QoS 1) is matched by its correlation
data, must say ``ok`` for this request's id, and its ticket number is recorded. A new request
is sent as soon as an answer arrives, so exactly ``inflight`` are outstanding, as that many
kiosks each waiting for their ticket. Latency is publish → answer, per request. Run as a
separate process; its CPU time is reported with the figures (``cpu_s``).

Why a client of its own (``--client lean``, the default): on the 2-core bench machine every
millisecond of the load client's CPU is taken from the server and the broker it measures.
With the same QoS 1 echo through mosquitto (docs/performance.md, 2026-12-07 night) paho costs
0.32 ms of CPU per request/answer pair (a network thread, a lock, a socket-pair wake-up and its
pure-Python property codec per packet), gmqtt (asyncio, pure Python) 0.13 ms, this client
0.024 ms. It is one thread blocking on one plain socket (TCP_NODELAY); the packets are read by
``mqtt5`` (a maintained sans-I/O MQTT 5 codec written in Rust, ~1 µs per packet), the request
PUBLISH is written from a template, and all PUBLISHes and PUBACKs due at one moment go out in
one ``send``. It honours the broker's Receive Maximum (mosquitto: 20 unacknowledged PUBLISHes
per client) by holding further requests until PUBACKs come.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import socket
import struct
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import mqtt5

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from protocol.topics import Topics  # noqa: E402

BASE = "numerek"
SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
IDLE_S = 2
"""A broker quiet this long gets a PINGREQ (the connection's keep-alive is 60 s)."""


class LoadFailed(Exception):
    """The run cannot go on (the broker closed the connection, refused us, or went silent)."""


@dataclass
class Outcome:
    """What one load process measured; written as JSON for bench/server_bench.py."""

    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    ok: int = 0
    errors: list[str] = field(default_factory=list)
    cpu_s: float = 0.0
    sys_s: float = 0.0
    """Of ``cpu_s``, the kernel's: on loopback a send also carries the packet to the broker."""
    numbers: list[str] = field(default_factory=list)
    wakeups: int = 0
    """Reads that returned (the lean client): each costs more CPU than the packets it brings."""

    def to_json(self) -> dict:
        return {
            "latencies": self.latencies,
            "elapsed": self.elapsed,
            "ok": self.ok,
            "refused": len(self.errors),
            "errors": self.errors[:20],
            "cpu_s": self.cpu_s,
            "sys_s": self.sys_s,
            "numbers": self.numbers,
            "wakeups": self.wakeups,
        }


def cpu_now() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def sys_now() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_stime


def judge(payload: bytes, request_id: str, outcome: Outcome) -> None:
    """Record one answer: a ticket for this very request, or an error with what the server said.

    The server's JSON is compact (pydantic), so a ticket answer has ``"ok":true`` and this
    request's ``"id":"…"`` byte for byte; anything else is parsed in full and judged field by
    field, so a refusal or a malformed answer is an error, never a ticket.
    """
    at = payload.find(b'"number":"')
    if at > 0 and b'"ok":true' in payload and b'"id":"%s"' % request_id.encode() in payload:
        at += 10
        outcome.numbers.append(payload[at : payload.index(b'"', at)].decode())
        outcome.ok += 1
        return
    try:
        body = json.loads(payload)
        if body.get("ok") is True and body.get("id") == request_id:
            outcome.numbers.append(body["ticket"]["number"])
            outcome.ok += 1
            return
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    outcome.errors.append(payload.decode(errors="replace")[:200])


def varint(n: int) -> bytes:
    """MQTT's variable byte integer (remaining length, property length)."""
    out = bytearray()
    while True:
        n, byte = n >> 7, n & 0x7F
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


VARINTS = [varint(n) for n in range(1 << 14)]  # every length of one or two bytes, looked up per packet


class RequestPacket:
    """The kiosk's ticket request PUBLISH, from a template: only packet id, correlation and body change.

    QoS 1, not retained; properties Response Topic (0x08) and Correlation Data (0x09). Written
    by hand because it is ~2 µs against ~5 µs for mqtt5's general encoder, on every request;
    tests/test_bench_kiosk_load.py reads packets made here back with mqtt5 and compares every field.
    """

    def __init__(self, topic: str, response_topic: str) -> None:
        self.topic = len(topic.encode()).to_bytes(2, "big") + topic.encode()
        self.response = b"\x08" + len(response_topic.encode()).to_bytes(2, "big") + response_topic.encode()

    def encode(self, packet_id: int, correlation: bytes, body: bytes) -> bytes:
        props = self.response + b"\x09" + len(correlation).to_bytes(2, "big") + correlation
        rest = self.topic + packet_id.to_bytes(2, "big") + VARINTS[len(props)] + props + body
        return b"\x32" + (VARINTS[len(rest)] if len(rest) < 1 << 14 else varint(len(rest))) + rest


class LeanKiosk:
    """A kiosk's ticket requests over one MQTT 5 connection, as cheaply as Python allows.

    One thread blocking on one socket: no lock, no wake-up pipe, no select. ``stall`` bounds how long
    the run waits for the broker to send anything while requests are outstanding.
    """

    def __init__(
        self, port: int, kiosk: str, services: list[str], host: str = "127.0.0.1", stall: float = 60.0
    ) -> None:
        topics = Topics(BASE)
        self.request_topic = topics.kiosk_request(kiosk)
        self.response_topic = topics.kiosk_response(kiosk, "load")
        for name in (kiosk, *services):
            if not SAFE_ID.fullmatch(name):
                raise LoadFailed(f"{name!r}: kiosk and service ids are letters, digits, '-' and '_'")
        self.kiosk = kiosk
        self.services = services
        self.template = RequestPacket(self.request_topic, self.response_topic)
        self.host, self.port, self.stall = host, port, stall
        self.run_id = uuid.uuid4().hex[:8]  # request ids unique per process: a repeated id gets a remembered reply
        self.corr_prefix = os.urandom(8)
        self.sock: socket.socket | None = None
        self.buffer = bytearray()
        self.receive_max = 65535
        self.unacked: dict[int, bytes] = {}  # packet id → correlation data, until the broker's PUBACK
        self.waiting: dict[bytes, tuple[float, str]] = {}  # correlation data → (sent at, request id)
        self.out: list[bytes] = []
        self.next_pid = 0
        self.sent = 0
        self.outcome = Outcome()
        self.handlers: dict[type, Callable] = {
            mqtt5.PubAckPacket: self._on_puback,
            mqtt5.PublishPacket: self._on_publish,
            mqtt5.PingRespPacket: lambda _p: None,
            mqtt5.DisconnectPacket: self._on_disconnect,
        }

    # --- connection -------------------------------------------------------------------
    def connect(self, keepalive: int = 60) -> None:
        """CONNECT with a clean start (no session kept), then SUBSCRIBE to the response topic."""
        self.sock = socket.create_connection((self.host, self.port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.keepalive = keepalive
        client_id = f"load-{self.kiosk}-{uuid.uuid4().hex[:6]}"
        self.sock.sendall(mqtt5.ConnectPacket(client_id, clean_start=True, keep_alive=keepalive).write())
        connack = self._expect(mqtt5.ConnAckPacket)
        if connack.reason_code != mqtt5.ConnAckReasonCode.SUCCESS:
            raise LoadFailed(f"the broker refused the connection: {connack.reason_code.name}")
        self.receive_max = connack.receive_max
        # the options a kiosk's paho subscription sends (mqtt5's default keeps the retain flag)
        topic = mqtt5.TopicFilter(self.response_topic, max_qos=mqtt5.QoS.AT_LEAST_ONCE, retain_as_published=False)
        self.sock.sendall(mqtt5.SubscribePacket(1, [topic]).write())
        suback = self._expect(mqtt5.SubAckPacket)
        if int(suback.reason_codes[0]) >= 0x80:
            raise LoadFailed(f"the broker refused the subscription: {suback.reason_codes[0].name}")
        self._quiet_wakeups()

    def _quiet_wakeups(self) -> None:
        """Blocking reads that wake the process only for an answer, not for each broker PUBACK.

        Every wake-up of a Python process costs more CPU than the packets it reads. The socket
        blocks in ``recv`` itself (no select/poll before each read): ``SO_RCVTIMEO`` returns from
        it when the broker has been quiet for ``IDLE_S`` (to ping it and check for a stall), and
        ``SO_RCVLOWAT`` of 5 bytes leaves a lone PUBACK of a request the broker took (4 bytes) in
        the socket until more comes, normally the answer; a refusing PUBACK (with its reason
        code, 5 bytes or more) wakes the process at once. ``SO_SNDTIMEO``: a send the broker
        does not take within ``stall`` fails the run instead of hanging it.
        """
        assert self.sock is not None
        self.sock.settimeout(None)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", IDLE_S, 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", int(self.stall), 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 5)

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.sendall(mqtt5.DisconnectPacket().write())
            except OSError:
                pass
            self.sock.close()
            self.sock = None

    def _expect(self, kind: type):
        deadline = time.monotonic() + 10
        while True:
            for packet in self._packets():
                if isinstance(packet, kind):
                    return packet
                if isinstance(packet, mqtt5.DisconnectPacket):
                    self._on_disconnect(packet)
                raise LoadFailed(f"expected {kind.__name__} from the broker, got {type(packet).__name__}")
            if time.monotonic() > deadline:
                raise LoadFailed(f"no {kind.__name__} from the broker in 10 s")
            self._receive()

    def _receive(self, flags: int = 0) -> None:
        assert self.sock is not None
        try:
            data = self.sock.recv(1 << 16, flags)
        except BlockingIOError:
            return
        except OSError as e:
            raise LoadFailed(f"the broker connection broke: {e} ({len(self.waiting)} requests unanswered)") from e
        if not data:
            raise LoadFailed(f"the broker closed the connection ({len(self.waiting)} requests unanswered)")
        self.buffer += data

    def _packets(self) -> list:
        """The complete packets in the buffer (an incomplete one stays for the next recv)."""
        buf = self.buffer
        packets: list = []
        at, end = 0, len(buf)
        with memoryview(buf) as view:
            while end - at >= 2:
                size, shift, i = 0, 0, at + 1  # the remaining length, a variable byte integer
                while i < end:
                    byte = buf[i]
                    size |= (byte & 0x7F) << shift
                    i += 1
                    if byte < 0x80:
                        break
                    shift += 7
                else:
                    break
                if i + size > end:
                    break
                packet, n = mqtt5.read(view[at : i + size])
                packets.append(packet)
                at += n
        del buf[:at]
        return packets

    # --- the load ---------------------------------------------------------------------
    def _request(self) -> None:
        self.sent += 1
        n = self.sent
        pid = self.next_pid % 65535 + 1
        while pid in self.unacked:
            pid = pid % 65535 + 1
        self.next_pid = pid
        corr = self.corr_prefix + n.to_bytes(8, "big")
        request_id = f"{self.kiosk}-{self.run_id}-{n}"
        # json.dumps's own output for {"v": 1, "id": …, "service": …}: ids and services are [a-z0-9_-]
        body = f'{{"v": 1, "id": "{request_id}", "service": "{self.services[n % len(self.services)]}"}}'
        self.out.append(self.template.encode(pid, corr, body.encode()))
        self.unacked[pid] = corr
        self.waiting[corr] = (time.perf_counter(), request_id)

    def _on_puback(self, packet: mqtt5.PubAckPacket) -> None:
        corr = self.unacked.pop(packet.packet_id, None)
        if packet.reason_code != mqtt5.PubAckReasonCode.SUCCESS:
            # refused, or nobody subscribed (no server): no answer will come for this one
            started = self.waiting.pop(corr, None) if corr is not None else None
            self.outcome.errors.append(f"PUBACK {packet.reason_code.name}")
            if started is not None:
                self.outcome.latencies.append(time.perf_counter() - started[0])

    def _on_publish(self, packet: mqtt5.PublishPacket) -> None:
        now = time.perf_counter()
        if packet.qos == mqtt5.QoS.AT_LEAST_ONCE:
            self.out.append(b"\x40\x02" + packet.packet_id.to_bytes(2, "big"))
        elif packet.qos == mqtt5.QoS.EXACTLY_ONCE:
            raise LoadFailed("the server answered with QoS 2, which no kiosk asks for")
        started = self.waiting.pop(packet.correlation_data, None)
        if started is None:
            return  # not an answer to one of ours (a duplicate, or another run's)
        self.outcome.latencies.append(now - started[0])
        judge(packet.payload, started[1], self.outcome)

    def _on_disconnect(self, packet: mqtt5.DisconnectPacket) -> None:
        raise LoadFailed(
            f"the broker disconnected us: {packet.reason_code.name} ({len(self.waiting)} requests unanswered)"
        )

    def run(self, inflight: int, seconds: float, count: int = 0) -> Outcome:
        """Keep ``inflight`` requests outstanding for ``seconds`` (or until ``count`` are sent),
        then wait for the outstanding answers."""
        assert self.sock is not None
        sock, out, waiting, unacked, handlers = self.sock, self.out, self.waiting, self.unacked, self.handlers
        cpu0, sys0 = cpu_now(), sys_now()
        started = time.perf_counter()
        deadline = started + seconds
        latencies = self.outcome.latencies
        chunk = bytearray(1 << 16)
        chunk_view = memoryview(chunk)
        answered, heard = 0, time.monotonic()
        while True:
            sending = self.sent < count if count else time.perf_counter() < deadline
            if sending:
                room = min(inflight - len(waiting), self.receive_max - len(unacked))
                for _ in range(room if not count else min(room, count - self.sent)):
                    self._request()
            if out:
                try:
                    sock.sendall(b"".join(out))  # everything due now in one send (and one TCP segment)
                except OSError as e:
                    raise LoadFailed(f"the broker connection broke: {e} ({len(waiting)} requests unanswered)") from e
                out.clear()
            if not waiting and not sending:
                break
            try:
                got = sock.recv_into(chunk)  # into a buffer kept for the run: no 256-KiB allocation per read
            except BlockingIOError:  # quiet for IDLE_S: whatever is below the low-water mark, and a ping
                got = -1
                self._receive(socket.MSG_DONTWAIT)
                out.append(mqtt5.PingReqPacket().write())
            except OSError as e:
                raise LoadFailed(f"the broker connection broke: {e} ({len(waiting)} requests unanswered)") from e
            if got == 0:
                raise LoadFailed(f"the broker closed the connection ({len(waiting)} requests unanswered)")
            if got > 0:
                self.buffer += chunk_view[:got]
                self.outcome.wakeups += 1
            for packet in self._packets():
                handler = handlers.get(type(packet))
                if handler is None:
                    raise LoadFailed(f"unexpected {type(packet).__name__} from the broker")
                handler(packet)
            if len(latencies) != answered:
                answered, heard = len(latencies), time.monotonic()
            elif time.monotonic() - heard > self.stall:
                raise LoadFailed(f"no answer in {self.stall:.0f} s ({len(waiting)} requests unanswered)")
        self.outcome.elapsed = time.perf_counter() - started
        self.outcome.cpu_s = cpu_now() - cpu0
        self.outcome.sys_s = sys_now() - sys0
        return self.outcome


def run_lean(args: argparse.Namespace) -> Outcome:
    kiosk = LeanKiosk(args.port, args.kiosk, args.services.split(","), stall=args.stall)
    kiosk.connect()
    try:
        return kiosk.run(args.inflight, args.seconds, args.count)
    finally:
        kiosk.close()


def run_paho(args: argparse.Namespace) -> Outcome:
    """The earlier client (paho, its network thread): kept to compare its cost with the lean one's."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    topics = Topics(BASE)
    response_topic = topics.kiosk_response(args.kiosk, "load")
    services = args.services.split(",")
    sent: dict[bytes, tuple[float, str]] = {}
    outcome = Outcome()
    lock = threading.Lock()
    done = threading.Event()
    ready = threading.Event()
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"load-{args.kiosk}-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5
    )
    client.on_socket_open = lambda _c, _u, sock: sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    counter = [0]
    deadline = [0.0]
    run = uuid.uuid4().hex[:8]

    def send() -> None:
        counter[0] += 1
        corr = uuid.uuid4().bytes
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = response_topic
        props.CorrelationData = corr
        service = services[counter[0] % len(services)]
        request_id = f"{args.kiosk}-{run}-{counter[0]}"
        payload = json.dumps({"v": 1, "id": request_id, "service": service})
        sent[corr] = (time.perf_counter(), request_id)
        client.publish(topics.kiosk_request(args.kiosk), payload, qos=1, properties=props)

    def on_message(_c, _u, msg) -> None:
        now = time.perf_counter()
        corr = getattr(msg.properties, "CorrelationData", None)
        with lock:
            start = sent.pop(corr, None)
            if start is None:
                return
            judge(msg.payload, start[1], outcome)
            outcome.latencies.append(now - start[0])
            finished = counter[0] >= args.count if args.count else now >= deadline[0]
            if finished:
                if not sent:
                    done.set()
                return
            send()

    client.on_message = on_message
    client.on_subscribe = lambda *a: ready.set()
    client.on_disconnect = lambda *a: done.set()
    client.connect("127.0.0.1", args.port, keepalive=30)
    client.loop_start()
    client.subscribe(response_topic, qos=1)
    if not ready.wait(10):
        raise LoadFailed("no SUBACK from the broker in 10 s")
    cpu0, sys0 = cpu_now(), sys_now()
    started = time.perf_counter()
    deadline[0] = started + args.seconds
    with lock:
        for _ in range(min(args.inflight, args.count) if args.count else args.inflight):
            send()
    if not done.wait(args.seconds + args.stall):
        outcome.errors.append(f"{len(sent)} requests unanswered")
    elif sent:
        raise LoadFailed(f"the broker closed the connection ({len(sent)} requests unanswered)")
    outcome.elapsed = time.perf_counter() - started
    outcome.cpu_s = cpu_now() - cpu0
    outcome.sys_s = sys_now() - sys0
    client.disconnect()
    client.loop_stop()
    return outcome


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--kiosk", required=True)
    ap.add_argument("--inflight", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--count", type=int, default=0, help="send this many requests instead of for a duration")
    ap.add_argument(
        "--services", default="rej,pj,pasz", help="taken in turn (each prefix has at most 9999 numbers a day)"
    )
    ap.add_argument("--client", choices=("lean", "paho"), default="lean")
    ap.add_argument("--stall", type=float, default=60.0, help="give up after this long without a packet (s)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    try:
        outcome = (run_lean if args.client == "lean" else run_paho)(args)
    except (LoadFailed, OSError) as e:
        raise SystemExit(f"kiosk_load {args.kiosk}: {e}") from None
    Path(args.out).write_text(json.dumps(outcome.to_json()))


if __name__ == "__main__":
    main()
