"""The server's MQTT side: messages in as jobs for the worker, messages out as they are handed over.

Nothing here touches the queue state: :meth:`MqttGateway._on_message` runs on paho's network
thread and only turns a message into a :class:`~server.worker.Job` on the worker's inbox
(routing by topic); :meth:`MqttGateway.publish` is called by the worker after its commit.
Availability and fault messages go through the inbox too, so every piece of server state
has one writer, the worker thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

from protocol.mqtt import BrokerConfig, connect_properties, make_client, reply_properties, shutdown
from protocol.topics import Topics
from server.jobs import Job, Out

log = logging.getLogger(__name__)

_INBOUND = {("counter", "command"): "counter", ("kiosk", "request"): "kiosk", ("kiosk", "fault"): "fault"}
_OUTBOUND_LEAVES = {("counter", "state"), ("zone", "call"), ("zone", "board")}
_OUTBOUND_TREES = {("counter", "reply"), ("kiosk", "response")}  # also MQTT 5 response topics below them
_OUTBOUND_TOP = (["services"], ["server", "availability"], ["server", "errors"])


def topic_kind(levels: list[str]) -> str | None:
    """What a message on a topic (levels below the base) is to the server.

    A job kind (``counter``, ``kiosk``, ``fault``), ``availability`` for a device's
    availability, ``None`` for what the server itself publishes (seen again through the
    ``<base>/#`` subscription, e.g. its retained state after a reconnect), and ``unknown``
    for everything else, which a device's typo gets an ``unknown_topic`` error for.
    """
    if levels in _OUTBOUND_TOP:
        return None
    if len(levels) >= 3 and levels[1]:
        pair = (levels[0], levels[2])
        if pair in _OUTBOUND_TREES:
            return None
        if len(levels) == 3:
            if pair == ("device", "availability"):
                return "availability"
            if pair in _INBOUND:
                return _INBOUND[pair]
            if pair in _OUTBOUND_LEAVES:
                return None
    return "unknown"


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

    @property
    def online(self) -> bool:
        return self.connected.is_set()

    def start(self) -> None:
        b = self.broker
        self.client.connect_async(
            b.host, b.port, keepalive=b.keepalive, clean_start=True, properties=connect_properties()
        )
        self.client.loop_start()

    def stop(self) -> None:
        shutdown(self.client, self.topics.server_availability)

    def publish(self, out: Out) -> None:
        self.client.publish(
            out.topic, out.payload, qos=out.qos, retain=out.retain, properties=reply_properties(out.correlation)
        )

    def _on_connect(self, client: mqtt.Client) -> None:
        # QoS 1 in, so a command published while we were busy is not lost. The whole tree,
        # so that a device's typo (numerek/counter/4, numerek/kiosk/k1/reqest) gets an
        # unknown_topic error instead of silence. One filter, not several overlapping ones:
        # Mosquitto delivers a message once per matching filter, which would run every
        # command twice. No Local: our own live publications do not come back to us (our
        # retained ones still do after a reconnect; topic_kind() ignores those).
        client.subscribe([(self.topics.everything, SubscribeOptions(qos=1, noLocal=True))])
        self.connected.set()
        self.submit(Job("republish"))

    def _on_message(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        levels = self.topics.split(msg.topic)
        kind = topic_kind(levels) if levels else None
        if kind is None:
            return  # our own output, seen through the wildcard
        if msg.retain and kind not in ("fault", "availability"):
            # Stored on the broker, delivered because we (re)subscribed: not a live request.
            # A ticket request or counter command published with the retain flag (a third-party
            # device's mistake) would otherwise be carried out again at every restart once its
            # id is forgotten; a kiosk's fault report and availability are retained on purpose.
            return
        props = getattr(msg, "properties", None)
        self.submit(
            Job(
                kind,
                device=levels[1] if len(levels) > 1 else "",
                topic=msg.topic,
                payload=bytes(msg.payload),
                response_topic=getattr(props, "ResponseTopic", None) if props else None,
                correlation=getattr(props, "CorrelationData", None) if props else None,
            )
        )
