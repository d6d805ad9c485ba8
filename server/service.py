"""The running server: MQTT in, engine, SQLite, MQTT out.

One worker thread owns every change. MQTT messages (from paho's network thread) and
clerk-panel requests (from HTTP) are put on one inbox; the worker takes what has
arrived, up to :data:`BATCH`, runs each through the engine, writes the whole batch in one
fsynced transaction (group commit) and only then publishes replies, calls and retained
state. So nothing is acknowledged before it is on disk, and a busy moment costs one fsync
per batch instead of one per ticket.

Parsing is defensive and strict: a payload that is too large (over MQTT or HTTP), not
JSON, nested too deeply, without ``v`` or of another protocol version, or with wrong or
wrongly typed fields gets an error reply and changes nothing (docs/protocol.md, "Errors").
No type coercion: ``"priority": "yes"`` or ``"rating": "5"`` is refused, not guessed at,
because a device that sends them has a bug its developer should see at once.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions
from pydantic import ValidationError

from protocol import sdnotify
from protocol.messages import (
    MAX_PAYLOAD_BYTES,
    PROTOCOL_VERSION,
    BoardMessage,
    CallMessage,
    CounterCommand,
    CounterReply,
    CounterState,
    ErrorCode,
    ErrorInfo,
    ErrorMessage,
    FaultReport,
    ServiceInfo,
    ServicesMessage,
    TicketInfo,
    TicketIssued,
    TicketRequest,
    TicketResponse,
)
from protocol.mqtt import connect_properties, make_client, reply_properties
from protocol.topics import OFFLINE, ONLINE, Topics
from server.config import Hours, SiteConfig
from server.domain import Event, Refusal, Ticket
from server.engine import Changes, Clock, QueueEngine
from server.estimate import WaitEstimator
from server.store import Store

log = logging.getLogger(__name__)

BATCH = 256
TICK_SECONDS = 15.0
REPLY_MEMORY = timedelta(days=2)
"""How long a reply is remembered for deduplication (memory and the ``commands`` table).

Why two days: QoS 1 redeliveries come within seconds and a device's own retries within
minutes, so two days is far more than needed, yet bounds memory and the file."""
PRUNE_EVERY = timedelta(hours=1)
"""How often (server clock) replies older than :data:`REPLY_MEMORY` are dropped."""

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


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Job:
    kind: str  # "counter" | "kiosk" | "fault" | "unknown" | "tick"
    device: str = ""
    topic: str = ""
    payload: bytes = b""
    response_topic: str | None = None
    correlation: bytes | None = None
    future: Future | None = None  # set for HTTP requests: resolved with the reply model
    data: dict[str, Any] | None = None  # already-parsed request (HTTP)


@dataclass
class _Out:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
    correlation: bytes | None = None


@dataclass
class _Batch:
    publish: list[_Out] = field(default_factory=list)
    replies: list[tuple[str, str, float, str]] = field(default_factory=list)
    futures: list[tuple[Future, Any]] = field(default_factory=list)


class NumerekServer:
    def __init__(
        self,
        config: SiteConfig,
        clock: Clock = utc_now,
        estimator: WaitEstimator | None = None,
        client_id: str = "numerek-server",
    ) -> None:
        self.config = config
        self.topics = Topics(config.mqtt.topic_base)
        self.tz = config.office.tz
        self.store = Store(config.storage.database)
        # The default estimator is told which counters are free (see RecentMedianEstimator).
        self.engine = QueueEngine(config, clock, estimator)
        self.engine.restore(self.store.load())
        self.replies = self.store.recent_replies(since=self.engine.now() - REPLY_MEMORY)
        self._prune_at = self.engine.now()  # the first batch prunes what piled up while stopped
        self.lock = threading.RLock()
        self.inbox: queue.Queue[Job | None] = queue.Queue()
        self.devices: dict[str, str] = {}  # device id -> online/offline
        self.faults: dict[str, FaultReport] = self._load_faults()
        self.connected = threading.Event()
        self._worker: threading.Thread | None = None
        self._stopping = threading.Event()
        self._next_tick = 0.0
        self._last_beat = time.monotonic()
        self._ready_sent = False
        self._stop_watchdog = lambda: None
        m = config.mqtt
        self.client = make_client(
            client_id,
            m.settings(),
            self.topics.server_availability,
            on_connect=self._on_connect,
            on_disconnect=lambda _c: self.connected.clear(),
        )
        self.client.on_message = self._on_message

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._worker = threading.Thread(target=self._run, name="numerek-worker", daemon=True)
        self._worker.start()
        m = self.config.mqtt
        self.client.connect_async(m.host, m.port, keepalive=10, clean_start=True, properties=connect_properties())
        self.client.loop_start()
        self._stop_watchdog = sdnotify.start_watchdog(self.healthy)

    def healthy(self) -> bool:
        """The worker is alive and has finished a batch or a tick lately (systemd watchdog)."""
        alive = self._worker is not None and self._worker.is_alive()
        return alive and time.monotonic() - self._last_beat < 4 * TICK_SECONDS

    def stop(self) -> None:
        sdnotify.stopping()
        self._stop_watchdog()
        self._stopping.set()
        self.inbox.put(None)
        if self._worker:
            self._worker.join(timeout=5)
        try:
            self.client.publish(self.topics.server_availability, OFFLINE, qos=1, retain=True).wait_for_publish(2)
        except (RuntimeError, ValueError):
            pass
        self.client.disconnect()
        self.client.loop_stop()
        self.store.close()

    def _on_connect(self, client: mqtt.Client) -> None:
        # QoS 1 in, so a command published while we were busy is not lost. The whole tree,
        # so that a device's typo (numerek/counter/4, numerek/kiosk/k1/reqest) gets an
        # unknown_topic error instead of silence. One filter, not several overlapping ones:
        # Mosquitto delivers a message once per matching filter, which would run every
        # command twice. No Local: our own live publications do not come back to us (our
        # retained ones still do after a reconnect; topic_kind() ignores those).
        client.subscribe([(self.topics.everything, SubscribeOptions(qos=1, noLocal=True))])
        self.connected.set()
        self.inbox.put(Job("republish"))

    def _on_message(self, _client, _userdata, msg: mqtt.MQTTMessage) -> None:
        levels = self.topics.split(msg.topic)
        props = getattr(msg, "properties", None)
        response_topic = getattr(props, "ResponseTopic", None) if props else None
        correlation = getattr(props, "CorrelationData", None) if props else None
        kind = topic_kind(levels) if levels else None
        if kind is None:
            return  # our own output, seen through the wildcard
        if kind == "availability":
            if msg.payload:
                self.devices[levels[1]] = msg.payload.decode("utf-8", "replace")
            else:  # the retained copy was cleared (``numerek-provision revoke``/``clear``): forget the device
                self.devices.pop(levels[1], None)
            return
        if msg.retain and kind != "fault":
            # Stored on the broker, delivered because we (re)subscribed: not a live request.
            # A ticket request or counter command published with the retain flag (a third-party
            # device's mistake) would otherwise be carried out again at every restart once its
            # id is forgotten; a kiosk's fault report is retained on purpose. Whoever published
            # it live got the reply or error then (live messages arrive with retain cleared).
            return
        device = levels[1] if len(levels) > 1 else ""
        self.inbox.put(Job(kind, device, msg.topic, msg.payload, response_topic, correlation))

    # ------------------------------------------------------------------ HTTP entry

    def submit_counter_command(self, counter_id: str, data: dict[str, Any]) -> Future:
        """The clerk panel's way in: the same inbox, engine path and replies as MQTT.

        ``data`` goes through the same checks as an MQTT payload, the size limit included
        (:meth:`_parse` measures its JSON encoding), so HTTP is no way around them.
        """
        fut: Future = Future()
        self.inbox.put(Job("counter", counter_id, self.topics.counter_command(counter_id), future=fut, data=data))
        return fut

    # ------------------------------------------------------------------ the worker

    def _run(self) -> None:
        while not self._stopping.is_set():
            timeout = max(0.0, self._next_tick - time.monotonic())
            try:
                first = self.inbox.get(timeout=timeout)
            except queue.Empty:
                first = Job("tick")
            if first is None:
                return
            jobs = [first]
            if first.kind != "tick" and time.monotonic() >= self._next_tick:
                jobs.append(Job("tick"))  # busy for a long time: still roll the day, refresh, feed the watchdog
            while len(jobs) < BATCH:
                try:
                    nxt = self.inbox.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._stopping.set()
                    break
                jobs.append(nxt)
            try:
                self._process(jobs)
            except Exception:  # a failed write: our state may be ahead of the disk
                log.critical("could not process a batch; exiting so a restart reloads from disk", exc_info=True)
                os._exit(70)

    def _process(self, jobs: list[Job]) -> None:
        batch = _Batch()
        republish = False
        with self.lock:
            self._prune_replies()
            for job in jobs:
                if job.kind in ("tick", "republish"):
                    republish = True
                    continue
                try:
                    self._handle(job, batch)
                except Exception:
                    log.exception("error handling %s on %s", job.kind, job.topic)
                    self._error(batch, job, None, ErrorCode.INTERNAL, "internal error; nothing was changed")
            if republish:
                self.engine.roll_day()
                self._next_tick = time.monotonic() + TICK_SECONDS
            self._last_beat = time.monotonic()
            changes = self.engine.take_changes()
            if changes or batch.replies:
                touched = [self.engine.counters[c] for c in sorted(changes.counters)]
                self.store.commit(changes, touched, batch.replies)
            state = self._state_messages(changes, everything=republish)
        # Durable now: tell the world. Calls first, they are what people wait for.
        for out in self._call_messages(changes) + batch.publish + state:
            props = reply_properties(out.correlation)
            self.client.publish(out.topic, out.payload, qos=out.qos, retain=out.retain, properties=props)
        for fut, value in batch.futures:
            if not fut.done():
                fut.set_result(value)
        if republish and not self._ready_sent:
            # Ready without waiting for the broker: HTTP works and MQTT reconnects by itself;
            # a broker down at boot must not make systemd restart the server in a loop.
            broker = "broker connected" if self.online else "broker not connected yet, retrying"
            self._ready_sent = sdnotify.ready(f"serving {self.config.office.name}; {broker}")

    # ------------------------------------------------------------------ requests

    def _prune_replies(self) -> None:
        """Forget replies older than :data:`REPLY_MEMORY`, in memory and in the file, hourly.

        Why: every request id is remembered for deduplication; without pruning, the dict
        and the ``commands`` table grow with every ticket and press, forever. Checked at
        the start of every batch (cheap: one comparison) so it follows the server clock.
        """
        now = self.engine.now()
        if now < self._prune_at:
            return
        self._prune_at = now + PRUNE_EVERY
        cutoff = now - REPLY_MEMORY
        self.store.prune_commands(cutoff)
        limit = cutoff.timestamp()
        self.replies = {k: v for k, v in self.replies.items() if v[0] >= limit}

    def _parse(self, job: Job) -> tuple[dict[str, Any] | None, bytes, str | None, str]:
        """(data, raw JSON, request id, error text); data is None when the payload is unusable.

        An HTTP request's already-parsed body is encoded back to JSON first, so that both
        ways in share one size limit and one strict validation of the same bytes.
        """
        raw = job.payload
        if job.data is not None:
            try:
                raw = json.dumps(job.data, ensure_ascii=False, separators=(",", ":")).encode()
            except (RecursionError, ValueError, TypeError) as exc:
                return None, b"", None, f"request body cannot be read as JSON: {exc}"
        if len(raw) > MAX_PAYLOAD_BYTES:
            return None, raw, None, f"payload of {len(raw)} bytes is over the {MAX_PAYLOAD_BYTES}-byte limit"
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return None, raw, None, f"payload is not JSON: {exc}"
        except RecursionError:  # e.g. "[[[[…" well within the size limit
            return None, raw, None, "payload is nested too deeply"
        if not isinstance(data, dict):
            return None, raw, None, "payload must be a JSON object"
        rid = data.get("id")
        return data, raw, rid if isinstance(rid, str) else None, ""

    @staticmethod
    def _version_problem(data: dict[str, Any]) -> tuple[ErrorCode, str] | None:
        """Why ``v`` is unacceptable, or None. Required, and exactly the integer 1.

        Why explicit: pydantic's ``Literal[1]`` accepts ``true`` and ``1.0`` even in strict
        mode, and the models default ``v`` for the server's own messages.
        """
        if "v" not in data:
            return ErrorCode.INVALID_REQUEST, f"v: field required (the protocol version, {PROTOCOL_VERSION})"
        v = data["v"]
        if type(v) is not int:
            return ErrorCode.INVALID_REQUEST, f"v: must be the integer {PROTOCOL_VERSION}, not {json.dumps(v)}"
        if v != PROTOCOL_VERSION:
            return ErrorCode.UNSUPPORTED_VERSION, f"this server speaks protocol v{PROTOCOL_VERSION}"
        return None

    @staticmethod
    def _details(exc: ValidationError) -> str:
        """Every problem, each naming its field: ``priority: Input should be a valid boolean``."""
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'payload'}: {e['msg']}" for e in exc.errors())

    def _handle(self, job: Job, batch: _Batch) -> None:
        if job.kind == "unknown":
            self._error(batch, job, None, ErrorCode.UNKNOWN_TOPIC, f"Numerek does not listen on {job.topic}")
            return
        if job.kind == "fault" and not job.payload:  # the retained fault was cleared (a revoked kiosk)
            self.faults.pop(f"kiosk-{job.device}", None)
            return
        data, raw, rid, problem = self._parse(job)
        if data is None:
            self._error(batch, job, None, ErrorCode.INVALID_REQUEST, problem)
            return
        refusal = self._version_problem(data)
        if refusal is not None:
            self._error(batch, job, rid, *refusal)
            return
        if job.kind == "fault":
            self._fault(job, raw, batch)
            return
        model = CounterCommand if job.kind == "counter" else TicketRequest
        try:
            # Strict JSON mode: no coercion ("yes" is not a bool, "5" not an int), while enum
            # values arrive as their JSON strings as they should.
            request = model.model_validate_json(raw, strict=True)
        except ValidationError as exc:
            self._error(batch, job, rid, ErrorCode.INVALID_REQUEST, self._details(exc))
            return
        key = (f"{job.kind}/{job.device}", request.id)
        if key in self.replies:  # a redelivery or a repeated request: same answer, no action
            self._send(batch, job, self.replies[key][1].encode(), None, remember=False)
            return
        if job.kind == "counter":
            reply = self._counter(job.device, request)  # type: ignore[arg-type]
        else:
            reply = self._kiosk(job.device, request)  # type: ignore[arg-type]
        self._send(batch, job, reply.to_json(), reply, remember=True, rid=request.id)

    def _counter(self, counter_id: str, cmd: CounterCommand) -> CounterReply:
        now = self.engine.now()
        try:
            ticket = self.engine.command(counter_id, cmd)
        except Refusal as r:
            return CounterReply(
                id=cmd.id,
                ok=False,
                action=cmd.action,
                error=ErrorInfo(code=r.code, message=r.message),
                server_time=self.local(now),
            )
        return CounterReply(
            id=cmd.id,
            ok=True,
            action=cmd.action,
            ticket=self.ticket_info(ticket) if ticket else None,
            server_time=self.local(now),
        )

    def _kiosk(self, kiosk_id: str, req: TicketRequest) -> TicketResponse:
        now = self.engine.now()
        try:
            ticket, ahead = self.engine.issue(req.service, req.priority, origin=kiosk_id, expires_at=req.expires_at)
        except Refusal as r:
            return TicketResponse(
                id=req.id, ok=False, error=ErrorInfo(code=r.code, message=r.message), server_time=self.local(now)
            )
        service = self.engine.services[ticket.service]
        issued = TicketIssued(
            number=ticket.number,
            service=ticket.service,
            service_name=service.name.as_dict(),
            priority=ticket.priority,
            issued_at=self.local(ticket.issued_at),
            people_ahead=ahead,
            estimated_wait_min=round((ticket.estimated_wait_s or 0) / 60),
            token=ticket.token,
            status_path=f"/t/{ticket.token}",
        )
        return TicketResponse(id=req.id, ok=True, ticket=issued, server_time=self.local(now))

    def _fault(self, job: Job, raw: bytes, batch: _Batch) -> None:
        try:
            report = FaultReport.model_validate_json(raw, strict=True)
        except ValidationError as exc:
            self._error(batch, job, None, ErrorCode.INVALID_REQUEST, self._details(exc))
            return
        device = f"kiosk-{job.device}"  # the topic says who it is (the broker's ACL checks that), not the payload
        previous = self.faults.get(device)
        if previous is not None and previous.fault == report.fault:
            return  # the retained copy, seen again after a reconnect
        self.faults[device] = report
        self.engine.record_fault(device, report.component, report.fault, report.message)
        if report.fault == "ok":
            log.info("%s: %s working again", device, report.component)
        else:  # in the journal too, for whoever watches it; managers see it on /reports/live
            log.warning("%s: %s %s %s", device, report.component, report.fault, report.message)

    def _load_faults(self) -> dict[str, FaultReport]:
        out: dict[str, FaultReport] = {}
        rows = self.store.db.query("SELECT data FROM events WHERE kind = 'device_fault' ORDER BY id")
        for row in rows:
            d = json.loads(row["data"])
            out[d["device"]] = FaultReport(device=d["device"], fault=d["fault"], message=d.get("message", ""))
        return out

    def _reply_topic(self, job: Job) -> str:
        """Where the answer to ``job`` goes: its MQTT 5 response topic only if that lies
        under the device's own reply topic, else that default.

        Why the restriction: the server may publish anywhere in the tree, so an arbitrary
        response topic would let a device make the server publish a forged call onto a
        hall display's topic, which the broker's ACL cannot stop.
        """
        if job.kind == "counter":
            default = self.topics.counter_reply(job.device)
        elif job.kind == "kiosk":
            default = self.topics.kiosk_response(job.device)
        else:
            return self.topics.errors
        rt = job.response_topic
        if rt and (rt == default or rt.startswith(default + "/")) and "+" not in rt and "#" not in rt:
            return rt
        return default

    def _send(
        self, batch: _Batch, job: Job, payload: bytes, reply: Any, remember: bool, rid: str | None = None
    ) -> None:
        if remember and rid is not None:
            key = (f"{job.kind}/{job.device}", rid)
            text = payload.decode()
            at = self.engine.now().timestamp()
            self.replies[key] = (at, text)
            batch.replies.append((key[0], key[1], at, text))
        if job.future is not None:
            batch.futures.append((job.future, reply if reply is not None else json.loads(payload)))
            return
        batch.publish.append(_Out(self._reply_topic(job), payload, correlation=job.correlation))

    def _error(self, batch: _Batch, job: Job, rid: str | None, code: ErrorCode, message: str) -> None:
        now = self.local(self.engine.now())
        info = ErrorInfo(code=code, message=message)
        log.info("refused %s on %s: %s", code.value, job.topic, message)
        if job.kind == "counter":
            reply: Any = CounterReply(id=rid, ok=False, error=info, server_time=now)
        elif job.kind == "kiosk":
            reply = TicketResponse(id=rid, ok=False, error=info, server_time=now)
        else:
            reply = ErrorMessage(topic=job.topic, id=rid, error=info, server_time=now)
        self._send(batch, job, reply.to_json(), reply, remember=False)

    # ------------------------------------------------------------------ outgoing state

    def local(self, value: datetime) -> datetime:
        return value.astimezone(self.tz)

    def ticket_info(self, t: Ticket) -> TicketInfo:
        loc = lambda v: self.local(v) if v else None  # noqa: E731
        return TicketInfo(
            number=t.number,
            service=t.service,
            status=t.status.value,
            priority=t.priority,
            issued_at=self.local(t.issued_at),
            called_at=loc(t.called_at),
            started_at=loc(t.started_at),
            recalls=t.recalls,
            counter=t.counter,
        )

    def call_message(self, ev: Event) -> CallMessage:
        counter = self.engine.counter_config[ev.counter or ""]
        return CallMessage(
            seq=ev.id,
            ticket=ev.ticket or "",
            service=ev.service or "",
            counter=counter.id,
            counter_name=counter.name,
            zone=counter.zone,
            recall=ev.kind.value == "recall",
            at=self.local(ev.at),
        )

    def _call_messages(self, changes: Changes) -> list[_Out]:
        """The zone calls to announce; none while the broker is unreachable.

        Why: paho queues QoS 1 publishes while disconnected and sends them on reconnect, so a
        call made during an outage (from the clerk panel) would be announced minutes late as
        a burst. The retained board republished on reconnect shows those calls silently.
        """
        if not self.online:
            return []
        out = []
        for ev in changes.calls:
            msg = self.call_message(ev)
            out.append(_Out(self.topics.zone_call(msg.zone), msg.to_json()))
        return out

    def counter_state(self, counter_id: str) -> CounterState:
        e = self.engine
        cfg = e.counter_config[counter_id]
        rt = e.counters[counter_id]
        counts = e.waiting_counts()
        current = e.current_ticket(counter_id)
        personal = sum(1 for t in e.tickets.values() if t.status == "waiting" and t.target_counter == counter_id)
        return CounterState(
            counter=cfg.id,
            name=cfg.name,
            zone=cfg.zone,
            status=rt.status,
            clerk=rt.clerk,
            ticket=self.ticket_info(current) if current else None,
            services=list(cfg.services),
            waiting={s: counts[s] for s in cfg.services},
            personal_waiting=personal,
            server_time=self.local(e.now()),
        )

    def board(self, zone: str) -> BoardMessage:
        e = self.engine
        calls = [self.call_message(ev) for ev in e.calls_for_zone(zone)]
        counts = e.waiting_counts()
        return BoardMessage(
            zone=zone,
            seq=max((c.seq for c in calls), default=0),
            calls=calls,
            waiting={s.id: counts[s.id] for s in e.services.values() if s.zone == zone},
            server_time=self.local(e.now()),
        )

    def services_message(self) -> ServicesMessage:
        e = self.engine
        now = e.now()
        counts = e.waiting_counts()
        infos = []
        for s in e.services.values():
            code, _ = e.availability(s, now)
            hours = s.hours_on(now.astimezone(self.tz).weekday())
            infos.append(
                ServiceInfo(
                    id=s.id,
                    prefix=s.prefix,
                    name=s.name.as_dict(),
                    zone=s.zone,
                    available=code is None,
                    reason=code,
                    waiting=counts[s.id],
                    estimated_wait_min=round(e.estimate_wait(s.id) / 60),
                    open_counters=len(e.open_counters(s.id)),
                    priority_ahead=e.people_ahead(s.id, True),
                    priority_estimated_wait_min=round(e.estimate_wait(s.id, priority=True) / 60),
                    opens_at=Hours.clock(hours.opens) if hours else None,
                    closes_at=Hours.clock(hours.closes) if hours else None,
                )
            )
        return ServicesMessage(office=self.config.office.name, services=infos, server_time=self.local(now))

    def _state_messages(self, changes: Changes, everything: bool = False) -> list[_Out]:
        e, t = self.engine, self.topics
        counters = set(e.counters) if everything else changes.counters
        zones: set[str] = set(e.zones()) if everything else set()
        for ev in changes.calls:
            zones.add(ev.data.get("zone", ""))
        for s in changes.services:
            zones.add(e.services[s].zone)
        out = [_Out(t.counter_state(c), self.counter_state(c).to_json(), retain=True) for c in sorted(counters)]
        out += [_Out(t.zone_board(z), self.board(z).to_json(), retain=True) for z in sorted(zones) if z]
        if everything or changes.services:
            out.append(_Out(t.services, self.services_message().to_json(), retain=True))
        return out

    # ------------------------------------------------------------------ HTTP reads

    def device_status(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {d: {"availability": a} for d, a in self.devices.items()}
        for d, f in self.faults.items():
            out.setdefault(d, {"availability": "unknown"}).update({"fault": f.fault, "message": f.message})
        return out

    @property
    def online(self) -> bool:
        return self.connected.is_set()


__all__ = ["NumerekServer", "ONLINE", "OFFLINE"]
