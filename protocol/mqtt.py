"""One way to make a broker client, for every role (devices connect through protocol/device.py).

Why a helper: every Numerek client must speak MQTT 5 (the kiosk's request/response needs
response topics and correlation data), set a retained ``offline`` last will on its
availability topic and publish ``online`` after each (re)connect. Doing that in one place
keeps the availability convention identical across the server and all devices.
"""

from __future__ import annotations

import copy
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties, VariableByteIntegers, writeBytes
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import BaseModel, ConfigDict, Field

from protocol.topics import OFFLINE, ONLINE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BrokerSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls_ca: str | None = None  # path to a CA file: TLS on when set
    keepalive: int = 10


class BrokerConfig(BaseModel):
    """The broker section of every role's config file (``[mqtt]``; ``[broker]`` for counters).

    One model for all roles, so the server and every device validate the connection the
    same way (docs/configuration.md; docs/deployment.md for credentials and TLS).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    username: str | None = None
    password: str | None = None
    tls_ca: str | None = None
    """Path to a CA certificate: connect with TLS when set."""
    topic_base: Annotated[str, Field(pattern=r"^[a-z0-9_-]{1,32}$")] = "numerek"
    keepalive: Annotated[int, Field(ge=2, le=120)] = 10

    def settings(self) -> BrokerSettings:
        return BrokerSettings(self.host, self.port, self.username, self.password, self.tls_ca, self.keepalive)


def make_client(
    client_id: str,
    broker: BrokerSettings,
    availability_topic: str,
    on_connect: Callable[[mqtt.Client], None] | None = None,
    on_disconnect: Callable[[mqtt.Client], None] | None = None,
) -> mqtt.Client:
    """A paho MQTT 5 client with a retained last will on ``availability_topic``.

    ``on_connect`` runs after every successful (re)connect, after ``online`` is published;
    put subscriptions there so they survive a broker restart. The caller starts the
    network loop (``loop_start``/``loop_forever``) and calls ``connect_async``.
    """
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5,
    )
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    if broker.tls_ca:
        client.tls_set(ca_certs=broker.tls_ca)
    client.will_set(availability_topic, OFFLINE, qos=1, retain=True)
    client.reconnect_delay_set(min_delay=1, max_delay=5)

    def _on_connect(c: mqtt.Client, _u: object, _flags: object, reason_code: ReasonCode, _props: object) -> None:
        if reason_code.is_failure:
            log.warning("broker refused connection: %s", reason_code)
            return
        c.publish(availability_topic, ONLINE, qos=1, retain=True)
        if on_connect is not None:
            on_connect(c)

    def _on_disconnect(c: mqtt.Client, _u: object, _flags: object, reason_code: ReasonCode, _props: object) -> None:
        log.info("disconnected from broker: %s", reason_code)
        if on_disconnect is not None:
            on_disconnect(c)

    client.on_connect = _on_connect
    client.on_disconnect = _on_disconnect
    client.on_socket_open = _no_delay
    return client


def _no_delay(_client: mqtt.Client, _userdata: object, sock: Any) -> None:
    """Turn off Nagle's algorithm on the broker connection.

    Why: a call is several small packets in a row (call, reply, retained state). With
    Nagle on, the second waits for the TCP ACK of the first, which the peer delays by up
    to 40 ms; measured, that made a call take ~90 ms instead of a few (docs/performance.md).
    """
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass  # not a TCP socket (e.g. a websocket wrapper): nothing to tune


def connect_properties() -> Properties:
    """CONNECT properties: a clean start with no session kept, so no stale backlog."""
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 0
    return props


def response_properties(response_topic: str, correlation: bytes) -> Properties:
    """PUBLISH properties for an MQTT 5 request that expects a response."""
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.ResponseTopic = response_topic
    props.CorrelationData = correlation
    return props


def reply_properties(correlation: bytes | None) -> Properties | None:
    """The properties of a reply: the request's correlation data, nothing else (the server's every reply)."""
    if correlation is None:
        return None
    props: Properties = copy.copy(_REPLY)
    object.__setattr__(props, "CorrelationData", bytes(correlation))  # bytes: nothing for paho's setter to check
    return props


class _ReplyProperties(Properties):
    """PUBLISH properties with only ``CorrelationData``, packed in one step.

    Why: paho builds a Properties object's tables afresh for each one (~20 µs) and packs it by
    walking all ~40 property names with ``hasattr`` (~30 µs), for every reply the server sends
    (issue 14: ~8 % of the worker's time per ticket). A copy of one template shares the tables,
    and a reply's properties are always one binary property, so its packing is written out. The
    bytes are paho's own (tests/test_gateway_io.py compares them)."""

    def pack(self) -> bytes:
        data = getattr(self, "CorrelationData", None)
        if data is None or len(self.__dict__) != _REPLY_FIELDS + 1:
            return bytes(super().pack())  # type: ignore[no-untyped-call]  # anything else set: paho's packing
        body: bytes = VariableByteIntegers.encode(_CORRELATION_DATA) + writeBytes(data)  # type: ignore[no-untyped-call]
        return bytes(VariableByteIntegers.encode(len(body))) + body  # type: ignore[no-untyped-call]


_REPLY = _ReplyProperties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
_REPLY_FIELDS = len(_REPLY.__dict__)
_CORRELATION_DATA = _REPLY.getIdentFromName("CorrelationData")  # type: ignore[no-untyped-call]
