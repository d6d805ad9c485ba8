"""The kiosk's MQTT side: services in, ticket requests out, printer faults out.

Kept free of Kivy so it can be reasoned about (and used) on its own. The connection is the
one every device uses (:class:`protocol.device.DeviceConnection`): its ordered hand-over runs
every callback on the UI thread the app names with ``wake``.

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

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from protocol.clock import ServerClock
from protocol.device import DeviceConnection, Incoming
from protocol.messages import FaultReport, ServicesMessage, TicketRequest, TicketResponse
from protocol.mqtt import BrokerConfig, response_properties
from protocol.topics import RouteKind, device_name

log = logging.getLogger(__name__)


@dataclass
class Pending:
    request: TicketRequest
    correlation: bytes
    on_done: Callable[[TicketResponse | None], None]
    timer: threading.Timer | None = None
    done: bool = False
    on_ticket: Callable[[TicketResponse], None] | None = None
    arrived: bool = False
    """The ticket came (``on_ticket`` ran on the network thread): the timeout no longer applies."""


class KioskLink:
    """The kiosk's messages over one :class:`protocol.device.DeviceConnection`.

    Every callback (``on_services``, ``on_connection``, ``on_late_response`` and a request's
    ``on_done``) runs where the connection hands over to: the UI thread when ``wake`` is
    given (the app passes Kivy's trigger), else the thread the event happened on.
    """

    def __init__(
        self,
        kiosk_id: str,
        mqtt_settings: BrokerConfig,
        on_services: Callable[[ServicesMessage], None],
        on_connection: Callable[[bool, bool], None],
        on_late_response: Callable[[TicketResponse], None] | None = None,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self.kiosk_id = kiosk_id
        self.settings = mqtt_settings
        self.device = device_name("kiosk", kiosk_id)
        self.conn = DeviceConnection(mqtt_settings, self.device, wake=wake)
        self.topics = self.conn.topics
        self.response_topic = self.topics.kiosk_response(kiosk_id, uuid.uuid4().hex[:12])
        self.on_services = on_services
        self.on_connection = on_connection  # (broker connected, server online)
        self.on_late_response = on_late_response
        self.connected = False
        self.server_online = False
        self.server_known = False
        self._pending: dict[bytes, Pending] = {}
        self._abandoned: dict[bytes, str] = {}  # correlation -> request id, answers we gave up on
        self._lock = threading.Lock()
        self._fault_wanted: tuple[str, str] | None = None
        self._fault_sent: tuple[str, str] | None = None
        c = self.conn
        c.on(RouteKind.SERVICES, self._services)
        c.on(RouteKind.KIOSK_RESPONSE, self._response, at_once=self._ticket_at_once)
        c.on_connection = self._broker
        c.on_server = self._server
        c.subscribe(self.topics.services)
        c.subscribe(self.response_topic)

    @property
    def clock(self) -> ServerClock:
        """The server's time, for expires_at and the home screen's clock (live messages only)."""
        return self.conn.clock

    def drain(self) -> None:
        """Run the callbacks handed over to the UI thread (the app's ``wake`` trigger calls this)."""
        self.conn.drain()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.conn.start()

    def stop(self) -> None:
        with self._lock:
            timers = [p.timer for p in self._pending.values() if p.timer]
        for timer in timers:
            timer.cancel()
        self.conn.stop()

    def _broker(self, connected: bool) -> None:
        self.connected = connected
        self.on_connection(connected, self.server_online)
        if not connected:
            self._fault_sent = None
            return
        with self._lock:
            again = [p for p in self._pending.values() if not p.done]
        for p in again:  # lost in the drop? same id again; the server will not repeat the ticket
            self._publish(p)
        self._flush_fault()

    def _server(self, online: bool) -> None:
        self.server_online = online
        self.server_known = True
        self.on_connection(self.connected, online)

    # ------------------------------------------------------------------ incoming

    def _services(self, m: Incoming) -> None:
        self.on_services(m.message)

    def _ticket_at_once(self, m: Incoming) -> None:
        """On the network thread: an issued ticket for a request still waiting goes to its
        ``on_ticket`` now (the printer), before the UI thread's next frame hears of it."""
        response: TicketResponse = m.message
        if m.route.topic != self.response_topic or m.correlation is None or not response.ok or not response.ticket:
            return
        with self._lock:
            p = self._pending.get(m.correlation)
            if p is None or p.done or p.arrived or p.on_ticket is None or p.request.id != response.id:
                return
            p.arrived = True
        if p.timer:
            p.timer.cancel()
        p.on_ticket(response)

    def _response(self, m: Incoming) -> None:
        if m.route.topic != self.response_topic:
            return  # another session's (a restarted kiosk's) answer
        response: TicketResponse = m.message
        corr = m.correlation
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
        service: str | None,
        priority: bool,
        lang: str,
        timeout_s: float,
        on_done: Callable[[TicketResponse | None], None],
        booking: str | None = None,
        pickup: str | None = None,
        phone: str | None = None,
        on_ticket: Callable[[TicketResponse], None] | None = None,
    ) -> str | None:
        """Ask for a ticket (for ``service``, or a ``booking``'s check-in); ``on_done`` gets the
        response, or None when none came in time.

        ``on_ticket`` gets an issued ticket on the network thread the moment it arrives, before
        ``on_done`` (on the UI thread): the kiosk starts printing there, so the paper does not
        wait for the UI's frame (issue 14). Once it ran the request cannot time out.

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
            booking=booking,
            pickup=pickup,
            phone=phone,
        )
        p = Pending(req, uuid.uuid4().bytes, on_done, on_ticket=on_ticket)
        p.timer = threading.Timer(timeout_s, lambda: self.conn.hand_over(self._expire, p))
        p.timer.daemon = True
        with self._lock:
            self._pending[p.correlation] = p
        p.timer.start()
        self._publish(p)
        return req.id

    def _publish(self, p: Pending) -> None:
        self.conn.publish(
            self.topics.kiosk_request(self.kiosk_id),
            p.request.to_json(),
            properties=response_properties(self.response_topic, p.correlation),
        )

    def _expire(self, p: Pending) -> None:
        with self._lock:
            if p.done or p.arrived:
                return
            p.done = True
            self._pending.pop(p.correlation, None)
            self._abandoned[p.correlation] = p.request.id
            while len(self._abandoned) > 20:
                self._abandoned.pop(next(iter(self._abandoned)))
        p.on_done(None)

    def hand_over(self, fn: Callable[..., None], *args: object) -> None:
        """Run ``fn(*args)`` where the callbacks run, after everything handed over before it
        (a print's outcome after the answer that started the print)."""
        self.conn.hand_over(fn, *args)

    def report_fault(self, fault: str, message: str = "") -> None:
        """Publish the printer state (retained) when it changes; sent again after a reconnect."""
        self._fault_wanted = (fault, message[:200])
        self.conn.hand_over(self._flush_fault)

    def _flush_fault(self) -> None:
        wanted = self._fault_wanted
        if wanted is None or wanted == self._fault_sent or not self.connected:
            return
        report = FaultReport(device=self.kiosk_id, fault=wanted[0], message=wanted[1])
        if self.conn.publish(self.topics.kiosk_fault(self.kiosk_id), report.to_json(), retain=True):
            self._fault_sent = wanted
