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
        """Say ``offline`` on a clean stop (the last will covers unclean ones), then disconnect."""
        try:
            self.client.publish(self.topics.server_availability, OFFLINE, qos=1, retain=True).wait_for_publish(2)
        except (RuntimeError, ValueError):
            pass
        self.client.disconnect()
        self.client.loop_stop()

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
