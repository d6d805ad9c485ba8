"""One device's connection to the broker: the plumbing kiosks, counters and displays share.

What every device needs, done once (docs/protocol.md, "Conventions" and "Availability"):

- **MQTT 5**, a clean start and no session (``SessionExpiryInterval = 0``): a reconnecting
  device gets the retained truth, never a backlog; TCP_NODELAY on the socket
  (:func:`protocol.mqtt.make_client`); ``keepalive`` from the role's ``[mqtt]`` table.
- A **retained last will** ``offline`` on ``<base>/device/<device>/availability`` and a
  retained ``online`` after every connect; ``offline`` said on a clean stop.
- A **fresh client for every connection**. paho re-sends unacknowledged QoS 1 messages after
  a reconnect; for a counter that would be a NEXT pressed before an outage carried out
  minutes later, when the clerk has long been told it failed. So nothing published before a
  drop is sent after it: a device that wants to retry (the kiosk's ticket request, with the
  same id) does so itself, knowingly. Reconnects are tried after 0.5 s, doubling to 5 s.
- **Subscriptions restored** on every reconnect (the broker then re-sends retained state).
- The **server's clock** learnt from the ``server_time`` (a call's ``at``) of live messages
  only, forgotten when the connection drops or the server goes offline
  (:class:`protocol.clock.ServerClock` has the rules).
- Payloads **validated on the network thread** with the model for their topic
  (:data:`MODELS`); a malformed one is logged and dropped, never handed on.
- An **ordered hand-over to the UI thread**: everything the device's code must react to
  (messages, the connection and the server going up or down, its own timers) goes into one
  thread-safe FIFO; the UI toolkit's scheduler drains it (``wake``; Kivy:
  ``Clock.create_trigger``). So a hall display sees a call before the board that follows
  it, and no widget is touched from paho's thread. Without ``wake`` the queue is drained
  at once on the thread that filled it (scripts, tests without a UI). A handler that raises
  is logged with its traceback and the next one runs: one bad message must not stop a device.

The device's code says what it handles in a table, by topic kind::

    conn = DeviceConnection(cfg.mqtt, "display-hall-1", wake=Clock.create_trigger(lambda _dt: conn.drain()))
    conn.on(RouteKind.ZONE_CALL, lambda m: self.call(m.message))
    conn.subscribe(conn.topics.zone_call("hall"))
    conn.on_connection = self.broker_changed      # (connected: bool), on the UI thread
    conn.on_server = self.server_changed          # (online: bool), on the UI thread
    conn.start()
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from pydantic import BaseModel, ValidationError

from protocol import sdnotify
from protocol.clock import ServerClock
from protocol.messages import (
    BoardMessage,
    CallMessage,
    CounterReply,
    CounterState,
    ServicesMessage,
    TicketResponse,
)
from protocol.mqtt import BrokerConfig, connect_properties, make_client
from protocol.topics import OFFLINE, Availability, Route, RouteKind, Topics, parse_availability

log = logging.getLogger(__name__)

MODELS: dict[RouteKind, type[BaseModel]] = {
    RouteKind.COUNTER_STATE: CounterState,
    RouteKind.COUNTER_REPLY: CounterReply,
    RouteKind.SERVICES: ServicesMessage,
    RouteKind.ZONE_CALL: CallMessage,
    RouteKind.ZONE_BOARD: BoardMessage,
    RouteKind.KIOSK_RESPONSE: TicketResponse,
}
"""What the server publishes to devices, by topic kind: the model each payload must match."""

RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 5.0
"""A lost broker is tried again after 0.5 s, then 1, 2, 4 and every 5 s: a device is back
within 5 s of its broker (docs/protocol.md, "Availability")."""
STOP_WAIT_S = 2.0
"""How long a clean stop waits for the broker to acknowledge ``offline``."""


@dataclass(frozen=True)
class Incoming:
    """One message from the server, validated, as a handler gets it (on the UI thread)."""

    route: Route
    message: Any  # the model of MODELS[route.kind]
    retained: bool
    correlation: bytes | None = None


Handler = Callable[[Incoming], None]


def server_time_of(message: object) -> datetime | None:
    """The server's time a message carries: ``server_time``, or a call's ``at``."""
    value = getattr(message, "server_time", None) or getattr(message, "at", None)
    return value if isinstance(value, datetime) else None


class DeviceConnection:
    """A device's MQTT connection, on a thread of its own (see the module docstring)."""

    def __init__(
        self,
        settings: BrokerConfig,
        device: str,
        *,
        wake: Callable[[], None] | None = None,
        clock: ServerClock | None = None,
        client_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.device = device
        self.client_id = client_id or f"numerek-{device}-{uuid.uuid4().hex[:6]}"
        self.topics = Topics(settings.topic_base)
        self.availability = self.topics.device_availability(device)
        self.clock = clock if clock is not None else ServerClock()
        self.connected = False
        """Connected to the broker now (the network thread's truth)."""
        self.server_online: bool | None = None
        """The server's retained availability: None until it has been read."""
        self.on_connection: Callable[[bool], None] | None = None
        self.on_server: Callable[[bool], None] | None = None
        self.on_failure: Callable[[BaseException], None] | None = None
        """Called (on the UI thread) if the network thread dies of an unexpected error: the
        device is then offline for good, so a role stops and exits non-zero for systemd's
        ``Restart=on-failure`` instead of showing "offline" until someone notices."""
        self.failure: BaseException | None = None
        """What ended the network thread, if not a stop request."""
        self._wake = wake
        self._handlers: dict[RouteKind, Handler] = {}
        self._at_once: dict[RouteKind, Handler] = {}
        self._subscriptions: dict[str, int] = {self.topics.server_availability: 1}
        self._inbox: deque[tuple[Callable[..., None], tuple[Any, ...]]] = deque()
        self._draining = threading.Lock()
        self._client: mqtt.Client | None = None
        self._client_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ the device's side

    def on(self, kind: RouteKind, handler: Handler, *, at_once: Handler | None = None) -> None:
        """Hand messages of ``kind`` (validated with ``MODELS[kind]``) to ``handler``.

        ``at_once`` (optional) sees each such message first, on paho's network thread, before
        the hand-over: for the one thing that must not wait for the UI's next frame (the
        kiosk's printer, issue 14). It must be short and touch no widget nor UI state."""
        if kind not in MODELS:
            raise ValueError(f"devices do not receive {kind.value} messages")
        self._handlers[kind] = handler
        if at_once is not None:
            self._at_once[kind] = at_once

    def subscribe(self, topic: str) -> None:
        """Subscribe now (when connected) and again after every reconnect; subscribing to a
        topic again makes the broker send its retained message again."""
        self._subscriptions[topic] = 1
        with self._client_lock:
            client = self._client if self.connected else None
        if client is not None:
            client.subscribe(topic, qos=1)

    def publish(
        self, topic: str, payload: bytes | str, *, retain: bool = False, properties: Properties | None = None
    ) -> bool:
        """Publish with QoS 1 now; False (nothing sent, nothing queued) when not connected."""
        with self._client_lock:
            client = self._client if self.connected else None
        if client is None:
            return False
        info = client.publish(topic, payload, qos=1, retain=retain, properties=properties)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    def hand_over(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` on the UI thread, after everything handed over before it."""
        self._inbox.append((fn, args))
        if self._wake is None:
            self.drain()
        else:
            self._wake()

    def drain(self) -> None:
        """Run what was handed over, in order (call it on the UI thread; ``wake`` says when)."""
        while True:
            if not self._draining.acquire(blocking=False):
                return  # another thread is draining (inline mode); it takes what we queued
            try:
                while True:
                    try:
                        fn, args = self._inbox.popleft()
                    except IndexError:
                        break
                    try:
                        fn(*args)
                    except Exception:
                        log.exception("unexpected error in %s; carrying on", getattr(fn, "__qualname__", fn))
            finally:
                self._draining.release()
            if not self._inbox:
                return

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> DeviceConnection:
        self._thread = threading.Thread(target=self._thread_main, name=f"mqtt-{self.device}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Say ``offline`` (retained), disconnect and end the network thread."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=STOP_WAIT_S + 3)

    @property
    def alive(self) -> bool:
        """The network thread runs (or has not been started); False after it died or stopped."""
        return self._thread is None or self._thread.is_alive()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    # ------------------------------------------------------------------ the network thread

    def _thread_main(self) -> None:
        try:
            self._run()
        except BaseException as exc:
            self.failure = exc
            log.critical(
                "the MQTT thread of %s failed; the device is offline until restarted", self.device, exc_info=True
            )
            if self.on_failure is not None:
                self.hand_over(self.on_failure, exc)
            raise

    def _run(self) -> None:
        s = self.settings
        delay = RECONNECT_MIN_S
        while not self._stop.is_set():
            client = make_client(
                self.client_id, s.settings(), self.availability, on_connect=self._connected_now
            )  # a fresh client per connection: nothing from before a drop is re-sent after it
            client.on_message = self._on_message
            try:
                client.connect(s.host, s.port, keepalive=s.keepalive, clean_start=True, properties=connect_properties())
            except (OSError, ValueError) as exc:
                log.debug("broker %s:%s unreachable: %s", s.host, s.port, exc)
                self._stop.wait(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)
                continue
            with self._client_lock:
                self._client = client
            while not self._stop.is_set():
                if client.loop(timeout=0.1) != mqtt.MQTT_ERR_SUCCESS:
                    break
            if self._stop.is_set():
                self._say_offline(client)
            was_connected = self._lost(client)
            if was_connected:
                delay = RECONNECT_MIN_S
            self._stop.wait(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)

    def _connected_now(self, client: mqtt.Client) -> None:
        """After CONNACK (``online`` is published by then): subscribe to everything, tell the UI."""
        self.clock.forget()  # while we were away the server may have restarted, its clock stepped
        client.subscribe(list(self._subscriptions.items()))
        with self._client_lock:
            self.connected = True
        log.info("connected to the broker %s:%s as %s", self.settings.host, self.settings.port, self.device)
        sdnotify.status(f"{self.device}: connected to the broker")
        if self.on_connection is not None:
            self.hand_over(self.on_connection, True)

    def _lost(self, client: mqtt.Client) -> bool:
        try:
            client.disconnect()
        except (OSError, ValueError):
            pass
        with self._client_lock:
            self._client = None
            was_connected, self.connected = self.connected, False
        self.clock.forget()
        if was_connected:
            if not self._stop.is_set():
                log.warning("lost the broker; reconnecting")
                sdnotify.status(f"{self.device}: broker unreachable, reconnecting")
            if self.on_connection is not None:
                self.hand_over(self.on_connection, False)
        return was_connected

    def _say_offline(self, client: mqtt.Client) -> None:
        if not self.connected:
            return
        info = client.publish(self.availability, OFFLINE, qos=1, retain=True)
        deadline = time.monotonic() + STOP_WAIT_S
        while not info.is_published() and time.monotonic() < deadline:
            if client.loop(timeout=0.05) != mqtt.MQTT_ERR_SUCCESS:
                break

    def _on_message(self, _client: mqtt.Client, _userdata: object, msg: mqtt.MQTTMessage) -> None:
        route = self.topics.parse(msg.topic)
        if route.kind is RouteKind.SERVER_AVAILABILITY:
            self._server_availability(bytes(msg.payload))
            return
        handler = self._handlers.get(route.kind)
        if handler is None:
            log.debug("no handler for %s (%s)", msg.topic, route.kind.value)
            return
        try:
            message = MODELS[route.kind].model_validate_json(msg.payload)
        except ValidationError as exc:
            log.warning("ignoring a malformed message on %s: %s", msg.topic, _first(exc))
            return
        stamp = server_time_of(message)
        if stamp is not None:
            self.clock.learn(stamp, retained=bool(msg.retain))  # a retained copy may be hours old
        props = getattr(msg, "properties", None)
        correlation = getattr(props, "CorrelationData", None) if props is not None else None
        incoming = Incoming(route, message, bool(msg.retain), correlation)
        first = self._at_once.get(route.kind)
        if first is not None:
            try:
                first(incoming)
            except Exception:  # the UI's handler still gets the message
                log.exception("the at-once handler of %s failed", msg.topic)
        self.hand_over(handler, incoming)

    def _server_availability(self, payload: bytes) -> None:
        try:
            value = parse_availability(payload)
        except ValueError as exc:
            log.warning("ignoring the server's availability: %s", exc)
            return
        online = value is Availability.ONLINE
        if not online:
            self.clock.forget()  # it may come back with its clock stepped
        self.server_online = online
        log.info("server is %s", "online" if online else "offline")
        if self.on_server is not None:
            self.hand_over(self.on_server, online)


def _first(exc: ValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return str(exc)
    e = errors[0]
    return f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}"


__all__ = ["MODELS", "DeviceConnection", "Handler", "Incoming"]
