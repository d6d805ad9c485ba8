"""The server's MQTT side: messages in as jobs for the worker, messages out as they are handed over.

Nothing here touches the queue state: :meth:`MqttGateway._on_message` runs on the network
thread and only turns a message into a :class:`~server.worker.Job` on the worker's inbox
(routing by topic); :meth:`MqttGateway.publish` is called by the worker after its commit.
Availability and fault messages go through the inbox too, so every piece of server state
has one writer, the worker thread.

**The network loop is ours, not paho's** (paho's external-loop API: ``loop_read``,
``loop_write``, ``loop_misc``, ``reconnect``). Why: paho's own thread (``loop_start``) makes
every ``publish`` write a byte to a socket pair to wake that thread, and the thread then writes
each packet with a syscall of its own that, on loopback with Nagle off, runs the broker's side
of TCP too. A ticket is several messages (the reply, the state, PUBACKs), so that was 15 % of
the worker during calls and a third of the server's CPU in paho's thread (docs/performance.md,
issue 14). Now the worker queues a batch's messages and :meth:`MqttGateway.flush` writes them
itself, at once, corked into as few TCP segments as fit (``TCP_CORK``); the network thread is
woken only if it is busy with the socket at that moment. One lock, ``_io``, makes sure that only
one thread at a time is inside paho's reading, writing, keepalive or reconnecting (with TLS,
that is also OpenSSL's rule: one connection, one thread at a time).
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from protocol.mqtt import BrokerConfig, connect_properties, make_client, reply_properties
from protocol.topics import OFFLINE, RouteKind, Topics
from server.jobs import Job, Out

log = logging.getLogger(__name__)

_JOBS = {
    RouteKind.COUNTER_COMMAND: "counter",
    RouteKind.KIOSK_REQUEST: "kiosk",
    RouteKind.KIOSK_FAULT: "fault",
    RouteKind.DEVICE_AVAILABILITY: "availability",
    RouteKind.REPLICA_CONFIG: "config_push",
}
"""What a device's message is to the worker (server/worker.py, ``Worker.HANDLERS``)."""

RECONNECT_MIN_S = 1.0
RECONNECT_MAX_S = 5.0
"""Wait between attempts to reach the broker, doubling from the first to the second (as
``make_client``'s ``reconnect_delay_set`` does for the devices' paho threads)."""
IDLE_WAIT_S = 1.0
"""The longest the network thread sleeps without traffic: keepalive (``loop_misc``) runs at least this often."""
MISC_EVERY_S = 0.25
"""...and at most this often under traffic (the keepalive is at least 2 s, ``BrokerConfig``)."""


class MqttGateway:
    def __init__(self, broker: BrokerConfig, topics: Topics, submit: Callable[[Job], None], client_id: str) -> None:
        self.broker = broker
        self.topics = topics
        self.submit = submit
        self.connected = threading.Event()
        self.client = make_client(
            client_id,
            broker.settings(),
            topics.server_availability,
            on_connect=self._on_connect,
            on_disconnect=lambda _c: self.connected.clear(),
        )
        self.client.on_message = self._on_message
        # paho writes a packet itself, on the publishing thread, when no external loop says
        # it will; this one does (flush, the network thread), so paho is told only "noted".
        self.client.on_socket_register_write = _noted
        self._io = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._attempts = 0  # failed connection attempts in a row (the backoff)
        self._queued = 0  # messages published since the last flush (the worker's)
        self.wakes = 0
        """How often another thread had to wake the network thread to write (the tests count it)."""

    @property
    def online(self) -> bool:
        return self.connected.is_set()

    def start(self) -> None:
        b = self.broker
        self.client.connect_async(
            b.host, b.port, keepalive=b.keepalive, clean_start=True, properties=connect_properties()
        )
        self._thread = threading.Thread(target=self._network, name="mqtt-network", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Say ``offline`` on a clean stop (the last will covers unclean ones), then disconnect."""
        try:
            info = self.client.publish(self.topics.server_availability, OFFLINE, qos=1, retain=True)
            self.flush()
            info.wait_for_publish(2)
        except (RuntimeError, ValueError):
            pass
        self._stopping.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(5)
        self.client.disconnect()
        with self._io:  # the network thread is gone: the DISCONNECT is written here
            self._write()
        self._wake_r.close()
        self._wake_w.close()

    def publish(self, out: Out) -> None:
        """Queue a message; it leaves at the next :meth:`flush` (the worker flushes after each batch)."""
        self.client.publish(
            out.topic, out.payload, qos=out.qos, retain=out.retain, properties=reply_properties(out.correlation)
        )
        self._queued += 1

    def flush(self) -> None:
        """Write what is queued now, on this thread, in as few TCP segments as fit.

        If the network thread is inside paho at this moment (reading a request, say), it is
        woken instead and writes as soon as it is done: never two threads in paho's I/O at once.
        """
        if self._thread is not None and threading.current_thread() is self._thread:
            return  # the network thread writes at the end of its turn anyway
        several, self._queued = self._queued > 1, 0
        if not self._io.acquire(blocking=False):
            self._wake()
            return
        try:
            self._write(cork=several)
            left = self.client.want_write()  # the socket's buffer is full: the network thread waits for room
        finally:
            self._io.release()
        if left:
            self._wake()

    def _wake(self) -> None:
        self.wakes += 1
        try:
            self._wake_w.send(b"w")
        except (BlockingIOError, OSError):
            pass  # already full of wake-ups (it will wake), or closed at stop

    def _write(self, cork: bool = False) -> None:
        """paho's ``loop_write``; with ``cork`` the packets of a batch leave as one TCP segment, not one each.

        Why: with Nagle off (``protocol/mqtt.py``, ``_no_delay``) every ``send`` on loopback
        runs the whole TCP path to the broker and wakes it; corked, the sends only copy into
        the socket's buffer and uncorking pushes them out together. Not for one packet: the
        uncorking ``setsockopt`` does that send's work while holding the GIL (``send`` lets
        it go), and costs two more system calls. Held: ``_io``."""
        sock = self.client.socket()
        if sock is None:
            return
        corked = cork and _cork(sock, True)
        try:
            self.client.loop_write()
        finally:
            if corked:
                _cork(sock, False)

    def _network(self) -> None:
        """The network thread: read, keep alive, reconnect, and write what the worker could not."""
        misc_at = 0.0
        buffered = False  # TLS: bytes already decrypted wake no select(); asked under _io, as all TLS calls are
        while not self._stopping.is_set():
            sock = self.client.socket()
            if sock is None:
                self._connect()
                continue
            wait = 0.0 if buffered else IDLE_WAIT_S
            buffered = False
            try:
                readable, _, _ = select.select(
                    [sock, self._wake_r], [sock] if self.client.want_write() else [], [], wait
                )
            except (OSError, ValueError):  # closed under us (a write failed): reconnect
                readable = []
            if self._wake_r in readable:
                try:
                    self._wake_r.recv(4096)
                except (BlockingIOError, OSError):
                    pass
            with self._io:
                if self.client.socket() is not sock:
                    continue
                if sock in readable or wait == 0.0:
                    self.client.loop_read()
                if self.client.socket() is not None and self.client.want_write():
                    self._write()
                if self.client.socket() is not None and time.monotonic() >= misc_at:
                    self.client.loop_misc()  # keepalive: seconds matter, not every packet
                    misc_at = time.monotonic() + MISC_EVERY_S
                pending = getattr(self.client.socket(), "pending", None)
                buffered = pending is not None and pending() > 0

    def _connect(self) -> None:
        """(Re)connect, after a growing pause if the last attempts failed or the connection was lost."""
        if self._stopping.is_set():
            return
        if self._attempts and self._stopping.wait(min(RECONNECT_MAX_S, RECONNECT_MIN_S * 2 ** (self._attempts - 1))):
            return
        self._attempts += 1
        with self._io:
            try:
                self.client.reconnect()
            except OSError as exc:  # refused, unreachable, TLS handshake: try again later
                log.debug("broker not reachable: %s", exc)

    def _on_connect(self, client: mqtt.Client) -> None:
        # QoS 1 in, so a command published while we were busy is not lost. The whole tree,
        # so that a device's typo (numerek/counter/4, numerek/kiosk/k1/reqest) gets an
        # unknown_topic error instead of silence. One filter, not several overlapping ones:
        # Mosquitto delivers a message once per matching filter, which would run every
        # command twice. No Local: our own live publications do not come back to us (our
        # retained ones still do after a reconnect; topic_kind() ignores those).
        client.subscribe([(self.topics.everything, SubscribeOptions(qos=1, noLocal=True))])
        self._attempts = 0
        self.connected.set()
        self.submit(Job("republish"))

    def _on_message(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        route = self.topics.parse(msg.topic)
        if route.from_server:
            return  # our own output (retained, after a reconnect), seen through the wildcard
        kind = _JOBS.get(route.kind, "unknown")  # a device's typo gets an unknown_topic error
        if msg.retain and kind not in ("fault", "availability", "config_push"):
            # Stored on the broker, delivered because we (re)subscribed: not a live request.
            # A ticket request or counter command published with the retain flag (a third-party
            # device's mistake) would otherwise be carried out again at every restart once its
            # id is forgotten; a kiosk's fault report and availability are retained on purpose, and
            # so is the centre's pushed configuration (a branch that was offline gets it; its id
            # makes a second delivery harmless).
            return
        props = getattr(msg, "properties", None)
        self.submit(
            Job(
                kind,
                device=route.id or "",
                route=route,
                topic=msg.topic,
                payload=bytes(msg.payload),
                response_topic=getattr(props, "ResponseTopic", None) if props else None,
                correlation=getattr(props, "CorrelationData", None) if props else None,
            )
        )


def _noted(_client: mqtt.Client, _userdata: object, _sock: object) -> None:
    """paho's "there is something to write": the worker flushes, the network thread writes the rest."""


def _cork(sock: object, on: bool) -> bool:
    """Hold (or release) small writes to be sent together; False where the socket has no cork (not Linux)."""
    cork = getattr(socket, "TCP_CORK", None)
    if cork is None:
        return False
    try:
        sock.setsockopt(socket.IPPROTO_TCP, cork, 1 if on else 0)  # type: ignore[attr-defined]
    except (OSError, AttributeError):
        return False
    return True
