"""The kiosk's MQTT side: services in, ticket requests out, printer faults out.

Kept free of Kivy so it can be reasoned about (and used) on its own. Callbacks run on
paho's network thread or a timer thread; the app hops them onto its UI thread.

Request/response follows the protocol: each request has its own id and MQTT 5
correlation data and asks for the answer on ``<base>/kiosk/<id>/response/<session>``.
If the broker connection drops and comes back while a request is waiting, the same
request (same id) is published again; the server answers a known id with its first
answer, so a redelivery never makes a second ticket.

Every request carries ``expires_at``: the moment, on the server's clock, when the kiosk
stops waiting and tells the resident no ticket was issued. A server that froze (or a broker
that stalled) and reads the request later refuses it with ``expired`` instead of issuing a
ticket nobody holds. The Pi has no real-time clock, so :attr:`KioskLink.clock` learns the
server's from live services messages and ticket responses; before the first one, a request
goes without a deadline (as before).
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import paho.mqtt.client as mqtt
from pydantic import ValidationError

from protocol.clock import ServerClock
from protocol.messages import FaultReport, ServicesMessage, TicketRequest, TicketResponse
from protocol.mqtt import connect_properties, make_client, response_properties, shutdown
from protocol.topics import ONLINE, Topics, device_name

log = logging.getLogger(__name__)


@dataclass
class Pending:
    request: TicketRequest
    correlation: bytes
    on_done: Callable[[TicketResponse | None], None]
    timer: threading.Timer | None = None
    done: bool = False


class KioskLink:
    def __init__(
        self,
        kiosk_id: str,
        mqtt_settings,  # protocol.mqtt.BrokerConfig
        on_services: Callable[[ServicesMessage], None],
        on_connection: Callable[[bool, bool], None],
        on_late_response: Callable[[TicketResponse], None] | None = None,
    ) -> None:
        self.kiosk_id = kiosk_id
        self.settings = mqtt_settings
        self.topics = Topics(mqtt_settings.topic_base)
        self.device = device_name("kiosk", kiosk_id)
        self.response_topic = self.topics.kiosk_response(kiosk_id, uuid.uuid4().hex[:12])
        self.on_services = on_services
        self.on_connection = on_connection  # (broker connected, server online)
        self.on_late_response = on_late_response
        self.connected = False
        self.server_online = False
        self.server_known = False
        self.clock = ServerClock()  # the server's time, for expires_at and the home screen's clock
        self._pending: dict[bytes, Pending] = {}
        self._abandoned: dict[bytes, str] = {}  # correlation -> request id, answers we gave up on
        self._lock = threading.Lock()
        self._fault_wanted: tuple[str, str] | None = None
        self._fault_sent: tuple[str, str] | None = None
        self.client = make_client(
            f"numerek-{self.device}-{uuid.uuid4().hex[:6]}",
            mqtt_settings.settings(),
            self.topics.device_availability(self.device),
            on_connect=self._on_connect,
            on_disconnect=self._on_disconnect,
        )
        self.client.on_message = self._on_message

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        s = self.settings
        self.client.connect_async(s.host, s.port, keepalive=10, clean_start=True, properties=connect_properties())
        self.client.loop_start()

    def stop(self) -> None:
        shutdown(self.client, self.topics.device_availability(self.device))

    def _on_connect(self, client: mqtt.Client) -> None:
        client.subscribe([(self.topics.services, 1), (self.topics.server_availability, 1), (self.response_topic, 1)])
        self.connected = True
        self.on_connection(True, self.server_online)
        with self._lock:
            again = [p for p in self._pending.values() if not p.done]
        for p in again:  # lost in the drop? same id again; the server will not repeat the ticket
            self._publish(p)
        self._fault_sent = None
        self._flush_fault()

    def _on_disconnect(self, _client: mqtt.Client) -> None:
        self.connected = False
        self.clock.forget()  # the server may restart meanwhile, its clock stepped
        self.on_connection(False, self.server_online)

    # ------------------------------------------------------------------ incoming

    def _on_message(self, _c, _u, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == self.topics.server_availability:
            self.server_online = msg.payload.decode(errors="replace") == ONLINE
            self.server_known = True
            if not self.server_online:
                self.clock.forget()
            self.on_connection(self.connected, self.server_online)
            return
        if msg.topic == self.topics.services:
            try:
                services = ServicesMessage.model_validate_json(msg.payload)
            except ValidationError as exc:
                log.warning("ignoring a services message I cannot read: %s", exc)
                return
            self.clock.learn(services.server_time, retained=msg.retain)  # retained: maybe hours old
            self.on_services(services)
            return
        if msg.topic == self.response_topic:
            self._response(msg)

    def _response(self, msg: mqtt.MQTTMessage) -> None:
        props = getattr(msg, "properties", None)
        corr = getattr(props, "CorrelationData", None)
        try:
            response = TicketResponse.model_validate(json.loads(msg.payload))
        except (ValueError, ValidationError) as exc:
            log.warning("ignoring a ticket response I cannot read: %s", exc)
            return
        self.clock.learn(response.server_time, retained=msg.retain)
        with self._lock:
            pending = self._pending.pop(corr, None) if corr is not None else None
            late = corr is not None and self._abandoned.pop(corr, None) == response.id
        if pending is not None and not pending.done and pending.request.id == response.id:
            pending.done = True
            if pending.timer:
                pending.timer.cancel()
            pending.on_done(response)
        elif late and self.on_late_response is not None:
            self.on_late_response(response)

    # ------------------------------------------------------------------ outgoing

    def request_ticket(
        self,
        service: str,
        priority: bool,
        lang: str,
        timeout_s: float,
        on_done: Callable[[TicketResponse | None], None],
    ) -> str | None:
        """Ask for a ticket; ``on_done`` gets the response, or None when none came in time.

        Returns the request id, or None (and calls nothing) when the broker is not
        connected: then there is no point in waiting. The request expires (server time)
        when ``timeout_s`` is up, so a server that reads it only after ``on_done(None)``
        told the resident "no ticket" issues none; without a clock estimate yet it goes
        without a deadline.
        """
        if not self.connected:
            return None
        server_now = self.clock.now()
        expires_at = server_now + timedelta(seconds=timeout_s) if server_now is not None else None
        req = TicketRequest(
            id=f"{self.kiosk_id}-{uuid.uuid4().hex[:16]}",
            service=service,
            priority=priority,
            lang=lang,
            expires_at=expires_at,
        )  # type: ignore[arg-type]
        p = Pending(req, uuid.uuid4().bytes, on_done)
        p.timer = threading.Timer(timeout_s, self._expire, args=(p,))
        p.timer.daemon = True
        with self._lock:
            self._pending[p.correlation] = p
        p.timer.start()
        self._publish(p)
        return req.id

    def _publish(self, p: Pending) -> None:
        self.client.publish(
            self.topics.kiosk_request(self.kiosk_id),
            p.request.to_json(),
            qos=1,
            properties=response_properties(self.response_topic, p.correlation),
        )

    def _expire(self, p: Pending) -> None:
        with self._lock:
            if p.done:
                return
            p.done = True
            self._pending.pop(p.correlation, None)
            self._abandoned[p.correlation] = p.request.id
            while len(self._abandoned) > 20:
                self._abandoned.pop(next(iter(self._abandoned)))
        p.on_done(None)

    def report_fault(self, fault: str, message: str = "") -> None:
        """Publish the printer state (retained) when it changes; sent again after a reconnect."""
        self._fault_wanted = (fault, message[:200])
        self._flush_fault()

    def _flush_fault(self) -> None:
        wanted = self._fault_wanted
        if wanted is None or wanted == self._fault_sent or not self.connected:
            return
        report = FaultReport(device=self.kiosk_id, fault=wanted[0], message=wanted[1])  # type: ignore[arg-type]
        self.client.publish(self.topics.kiosk_fault(self.kiosk_id), report.to_json(), qos=1, retain=True)
        self._fault_sent = wanted
