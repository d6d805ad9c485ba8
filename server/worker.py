"""The worker: the one thread that changes the office's state, in batches, with group commit.

MQTT messages (via server/gateway.py) and web commands (via server/office.py) are put on one
inbox. The worker takes what has arrived, up to :data:`BATCH` jobs, runs each through its
handler (:attr:`Worker.HANDLERS`), writes the whole batch in one fsynced transaction and only
then answers: calls first (they are what people wait for), then replies, then the retained
state. So nothing is acknowledged before it is on disk, and a busy moment costs one fsync
per batch instead of one per ticket.

A write that fails (a full disk, a damaged file, a disk that went read-only) is not a reason
to exit: every request of the batch gets an ``unavailable`` error instead of its reply, the
engine goes back to what is on disk, the problem is logged and shown on /health and the
managers' live view, and the next batch tries again. Exiting instead made systemd restart
the server every few seconds forever while nothing could be written anyway.

Parsing is defensive and strict: a payload that is too large (over MQTT or HTTP), not
JSON, nested too deeply, without ``v`` or of another protocol version, or with wrong or
wrongly typed fields gets an error reply and changes nothing (docs/protocol.md, "Errors").
No type coercion: ``"priority": "yes"`` or ``"rating": "5"`` is refused, not guessed at,
because a device that sends them has a bug its developer should see at once.
"""

from __future__ import annotations

import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from pydantic import ValidationError

from protocol.messages import (
    MAX_PAYLOAD_BYTES,
    PROTOCOL_VERSION,
    CounterCommand,
    CounterReply,
    ErrorCode,
    ErrorInfo,
    ErrorMessage,
    FaultReport,
    PhoneOutcome,
    ServicesMessage,
    TicketRequest,
    TicketResponse,
)
from protocol.replica import ConfigPush, ConfigResult
from protocol.topics import Topics, device_name, parse_availability
from server.booking.checkin import check_in
from server.domain import Command, ConfigChange, Refusal
from server.engine import Changes, QueueEngine
from server.jobs import Job, Out
from server.kiosk_cases import KioskCases, KioskStaging
from server.ratelimit import SlidingWindow
from server.requests import RequestMemory, Row
from server.store import Store, describe_write_error
from server.wire import Wire

log = logging.getLogger(__name__)

BATCH = 256
TICK_SECONDS = 15.0
STATE_INTERVAL_S = 0.1
"""Retained state (counter states, boards, the services list) is published at most this often.

Why: every ticket changes the waiting counts that every counter serving its service, the
zone's board and the services list show; publishing them per batch made one ticket cost six
messages. Now a change publishes at once if the last publication is older than this (a quiet
office sees no delay), otherwise the changes gather and go out together this much later.
Calls and replies never wait: they leave right after their commit."""


@dataclass
class Answer:
    """What one job gets back once the batch is on disk: a reply to publish or a future to resolve."""

    job: Job
    payload: bytes
    model: Any  # the reply model (for HTTP futures), or None to send ``payload`` as it is


@dataclass
class Batch:
    answers: list[Answer] = field(default_factory=list)
    replies: list[Row] = field(default_factory=list)  # to remember (requests.py), written with the batch
    config: list[ConfigChange] = field(default_factory=list)
    config_before: Any = None  # the config to go back to if the write fails
    results: list[tuple[Job, Any]] = field(default_factory=list)  # HTTP config jobs: their result
    republish: bool = False
    kiosk: KioskStaging = field(default_factory=KioskStaging)  # contacts and pick-ups of kiosk requests
    audit: list[ConfigChange] = field(default_factory=list)  # change-log rows only (a pushed config's outcome)
    outs: list[Out] = field(default_factory=list)  # published once the batch is on disk


class BatchListener(Protocol):
    """A part of the server that keeps its own tables in step with the queue (notifications,
    bookings, ...): it writes in the batch's own transaction, so what it records is on disk
    exactly when the events that caused it are, never one without the other.

    ``write`` runs inside the transaction, after the engine's changes, with the worker's
    connection: INSERT/UPDATE only, quickly, no network. A SQLite error fails the batch like
    any write (every request gets ``unavailable``); any other exception is a bug in the
    listener, logged, and does not hold up the office. ``committed`` runs after the commit
    (e.g. to wake a sender thread); it must not block.
    """

    def write(self, conn: sqlite3.Connection, changes: Changes, engine: QueueEngine) -> None: ...

    def committed(self, changes: Changes) -> None: ...


@dataclass
class Health:
    """What the worker knows about its own health, read by /health and the live view."""

    store_error: str | None = None  # why the last write failed, until one succeeds
    store_error_at: datetime | None = None
    last_batch_mono: float = field(default_factory=time.monotonic)


class Worker:
    def __init__(
        self,
        engine: QueueEngine,
        store: Store | None,
        memory: RequestMemory,
        topics: Topics,
        publish: Callable[[Out], None],
        online: Callable[[], bool],
        lock: threading.RLock,
        kiosk_rate: str = "5/10 seconds;20/minute",
        on_batch: Callable[[ServicesMessage | None], None] | None = None,
        writable: Callable[[], str | None] = lambda: None,
        path: str = "the database",
        flush: Callable[[], None] = lambda: None,
    ) -> None:
        """``on_batch(services)`` runs after retained state is published (the web's snapshot;
        ``services`` is the new services message when it changed, else None).
        ``writable()`` says why the store must not be written now (e.g. damaged at start), or None.
        ``publish`` queues a message, ``flush`` sends what is queued (server/gateway.py): once
        after a batch's calls, once after the rest, not once per message."""
        self.engine = engine
        self.store = store
        self.path = path
        self.memory = memory
        self.topics = topics
        self.wire = Wire(engine)
        self.publish = publish
        self.flush = flush
        self.online = online
        self.lock = lock
        self.on_batch = on_batch
        self.writable = writable
        self.inbox: queue.SimpleQueue[Job | None] = queue.SimpleQueue()  # C: no Python-level lock per job
        self.health = Health()
        self.devices: dict[str, str] = {}  # device id -> online/offline
        self.faults: dict[str, FaultReport] = {}
        self.alerts: dict[str, tuple[datetime, str]] = {}  # device -> (when, what): shown on the live view
        self._kiosk_rate = SlidingWindow(kiosk_rate)
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._next_tick = 0.0
        self._dirty = _Dirty()
        self._state_at = 0.0  # monotonic time of the last state publication
        self.on_ready: Callable[[], None] | None = None
        self.listeners: list[BatchListener] = []
        self.before_batch: list[Callable[[], None]] = []
        """Called under the lock before each batch's jobs (server/booking/feed.py: today's bookings)."""
        self.cases: KioskCases | None = None  # phone numbers and pick-ups in kiosk requests (server/kiosk_cases.py)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="numerek-worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self.inbox.put(None)
        if self._thread:
            self._thread.join(timeout=5)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def submit(self, job: Job) -> None:
        self.inbox.put(job)

    def _run(self) -> None:
        while not self._stopping.is_set():
            wake = self._next_tick
            if self._dirty:
                wake = min(wake, self._state_at + STATE_INTERVAL_S)
            try:
                first = self.inbox.get(timeout=max(0.0, wake - time.monotonic()))
            except queue.Empty:
                first = Job("tick" if time.monotonic() >= self._next_tick else "flush")
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
            except Exception:  # a bug: log it, answer nobody wrongly, keep serving
                log.critical("unexpected error in a batch; its requests get no answer", exc_info=True)
                with self.lock:
                    self._reload()
            finally:
                self.flush()  # the batch's replies and state (or its errors) leave together

    def _reload(self) -> None:
        """Go back to what is on disk (after a batch that could not be written)."""
        if self.store is None:
            self.engine.take_changes()
            return
        try:
            self.engine.restore(self.store.load(), observe=False)
        except (sqlite3.Error, OSError):
            log.error("could not read the state back from %s either", self.store.path, exc_info=True)
            self.engine.take_changes()

    # ------------------------------------------------------------------ one batch

    def _process(self, jobs: list[Job]) -> None:
        batch = Batch()
        with self.lock:
            now = self.engine.now()
            prune = self.memory.prune_due(now)
            for before in self.before_batch:
                before()
            for job in jobs:
                try:
                    self.HANDLERS[job.kind](self, job, batch)
                except Exception:
                    log.exception("error handling %s on %s", job.kind, job.topic)
                    self._without(job, jobs, batch)
                    return
            if batch.republish:
                self._take_clock_step()
                self.engine.roll_day()
                self._next_tick = time.monotonic() + TICK_SECONDS
            changes = self.engine.take_changes()
            if changes or batch.replies or batch.config or batch.audit or prune is not None:
                refused = self.writable()
                try:
                    if refused is not None or self.store is None:
                        raise sqlite3.DatabaseError(refused or "no database")
                    touched = [self.engine.counters[c] for c in sorted(changes.counters)]
                    staged = batch.kiosk.writes
                    extra = self._listeners_write(changes, staged) if (self.listeners or staged) and changes else None
                    if batch.audit:
                        extra = _with_audit(extra, batch.audit)
                    self.store.commit(changes, touched, batch.replies, batch.config, prune, extra)
                except (sqlite3.Error, OSError) as exc:
                    self._write_failed(exc, batch)
                    return
                if self.health.store_error is not None:
                    log.warning("the database accepts writes again")
                    self.health.store_error = None
                self.memory.remember(batch.replies)
                for step in batch.kiosk.after if changes else ():
                    step()
                for listener in self.listeners if changes else ():
                    try:
                        listener.committed(changes)
                    except Exception:
                        log.exception("%s failed after a commit", type(listener).__name__)
            self.health.last_batch_mono = time.monotonic()
        # Durable now: tell the world. The call first: it is what people wait for (docs/performance.md).
        calls = self._call_messages(changes)
        for out in calls:
            self.publish(out)
        if calls:
            self.flush()  # on its way before the replies are even built
        self._answer(batch)
        for out in batch.outs:
            self.publish(out)
        self._dirty.add(self.engine, changes, everything=batch.republish)
        if self._dirty and (batch.republish or time.monotonic() >= self._state_at + STATE_INTERVAL_S):
            self._publish_state()
        if batch.republish and self.on_ready is not None:
            self.on_ready()

    def _publish_state(self) -> None:
        dirty, self._dirty = self._dirty, _Dirty()
        self._state_at = time.monotonic()
        state, services = self._state_messages(dirty)
        for out in state:
            self.publish(out)
        if self.on_batch is not None:
            self.on_batch(services)

    def _listeners_write(
        self, changes: Changes, staged: Sequence[Callable[[sqlite3.Connection], None]] = ()
    ) -> Callable[[sqlite3.Connection], None]:
        """The batch's extra writes: each listener's, then what kiosk requests staged (a contact, a
        pick-up's arrival; after the listeners, so a contact's "near" is not reset by its listener).
        A staged write's SQLite error fails the batch: the ticket it belongs to is not issued either."""

        def write(conn: sqlite3.Connection) -> None:
            for listener in self.listeners:
                conn.execute("SAVEPOINT listener")  # a listener's bug undoes its own writes, not the batch
                try:
                    listener.write(conn, changes, self.engine)
                except sqlite3.Error:
                    raise
                except Exception:
                    log.exception("%s failed to record a batch; the queue goes on without it", type(listener).__name__)
                    conn.execute("ROLLBACK TO listener")
                conn.execute("RELEASE listener")
            for step in staged:
                step(conn)

        return write

    def _take_clock_step(self) -> None:
        """Take over a pending step of the system clock while no ticket is open (server/clock.py)."""
        adopt = getattr(self.engine.clock, "adopt_pending", None)
        if adopt is not None and self.engine.is_idle() and adopt() is not None:
            self.engine.time_adjusted()

    def _answer(self, batch: Batch) -> None:
        for a in batch.answers:
            if a.job.future is not None:
                if not a.job.future.done():
                    a.job.future.set_result(a.model if a.model is not None else json.loads(a.payload))
            else:
                self.publish(Out(self._reply_topic(a.job), a.payload, correlation=a.job.correlation))
        for job, result in batch.results:
            if job.future is not None and not job.future.done():
                job.future.set_result(result)

    def _without(self, failed: Job, jobs: list[Job], batch: Batch) -> None:
        """A handler raised (a bug) part-way through ``failed``: what it did to the engine may be
        half done, and nothing of the batch is on disk yet. Go back to the state on disk, tell
        that request "nothing was changed" (now true) and run the others again without it.

        Why not just answer it with an error: a ticket issued before the reply failed to build
        would then be on disk while its kiosk says no ticket was issued (seen in a soak)."""
        if batch.config_before is not None:
            self.engine.apply_config(batch.config_before)
        self._reload()
        answer = Batch()
        self._error(answer, failed, None, ErrorCode.INTERNAL, "internal error; nothing was changed")
        self._answer(answer)
        rest = [j for j in jobs if j is not failed]
        if rest:
            self._process(rest)

    def _write_failed(self, exc: BaseException, batch: Batch) -> None:
        """Nothing of the batch is on disk: answer every request with ``unavailable`` and go
        back to the state on disk. Logged once per new problem, not once per batch."""
        why = describe_write_error(exc)
        if self.health.store_error != why:
            log.critical("could not write to %s: %s; nothing in this batch was acknowledged", self.path, why)
        self.health.store_error = why
        self.health.store_error_at = self.engine.now()
        if batch.config_before is not None:
            self.engine.apply_config(batch.config_before)
        self._reload()
        message = f"the server could not save this ({why}); nothing was done, try again later"
        failed = Batch()
        for a in batch.answers:
            if a.model is None and a.job.future is None:
                failed.answers.append(a)  # a repeated reply, already on disk
            else:
                self._error(failed, a.job, _request_id(a.model), ErrorCode.UNAVAILABLE, message)
        for job, _ in batch.results:
            failed.results.append((job, RuntimeError(message)))
        self._answer(failed)

    # ------------------------------------------------------------------ handlers

    def _on_tick(self, job: Job, batch: Batch) -> None:
        batch.republish = True

    def _on_flush(self, job: Job, batch: Batch) -> None:
        """Nothing to do: the batch ends by publishing the state that was waiting (STATE_INTERVAL_S)."""

    def _on_unknown(self, job: Job, batch: Batch) -> None:
        self._error(batch, job, None, ErrorCode.UNKNOWN_TOPIC, f"Numerek does not listen on {job.topic}")

    def _on_availability(self, job: Job, batch: Batch) -> None:
        try:
            value = parse_availability(job.payload)
        except ValueError as exc:
            self._error(batch, job, None, ErrorCode.INVALID_REQUEST, str(exc))
            return
        if value is None:  # the retained copy was cleared (``numerek-provision revoke``/``clear``): forget it
            self.devices.pop(job.device, None)
        else:
            self.devices[job.device] = value.value

    def _on_fault(self, job: Job, batch: Batch) -> None:
        device = device_name("kiosk", job.device)  # the topic says who it is (the broker's ACL checks that)
        if not job.payload:  # the retained fault was cleared (a revoked kiosk)
            self.faults.pop(device, None)
            return
        data, raw, _rid, problem = self._parse(job)
        if data is None or (refusal := self._version_problem(data)) is not None:
            code, text = (ErrorCode.INVALID_REQUEST, problem) if data is None else refusal  # type: ignore[misc]
            self._error(batch, job, None, code, text)
            return
        try:
            report = FaultReport.model_validate_json(raw, strict=True)
        except ValidationError as exc:
            self._error(batch, job, None, ErrorCode.INVALID_REQUEST, _details(exc))
            return
        previous = self.faults.get(device)
        if previous is not None and previous.fault == report.fault:
            return  # the retained copy, seen again after a reconnect
        self.faults[device] = report
        self.engine.record_fault(device, report.component, report.fault, report.message)
        if report.fault == "ok":
            log.info("%s: %s working again", device, report.component)
        else:  # in the journal too, for whoever watches it; managers see it on /reports/live
            log.warning("%s: %s %s %s", device, report.component, report.fault, report.message)

    def _request(self, job: Job, batch: Batch, model: type[CounterCommand] | type[TicketRequest]) -> Any:
        """Parse, check the version, validate strictly and deduplicate; None if answered already."""
        data, raw, rid, problem = self._parse(job)
        if data is None:
            self._error(batch, job, None, ErrorCode.INVALID_REQUEST, problem)
            return None
        refusal = self._version_problem(data)
        if refusal is not None:
            self._error(batch, job, rid, *refusal)
            return None
        try:
            # Strict JSON mode: no coercion ("yes" is not a bool, "5" not an int), while enum
            # values arrive as their JSON strings as they should.
            request = model.model_validate_json(raw, strict=True)
        except ValidationError as exc:
            self._error(batch, job, rid, ErrorCode.INVALID_REQUEST, _details(exc))
            return None
        previous = self.memory.reply((f"{job.kind}/{job.device}", request.id))
        if previous is not None:  # a redelivery or a repeated request: same answer, no action
            batch.answers.append(Answer(job, previous.encode(), None))
            return None
        return request

    def _on_counter(self, job: Job, batch: Batch) -> None:
        cmd: CounterCommand | None = self._request(job, batch, CounterCommand)
        if cmd is None:
            return
        try:
            ticket = self.engine.command(job.device, _domain_command(cmd))
            reply = self.wire.counter_reply(cmd.id, cmd.action, ticket)
        except Refusal as r:
            error = ErrorInfo(code=r.code, message=r.message)
            reply = CounterReply(id=cmd.id, ok=False, action=cmd.action, error=error, server_time=self.wire.now())
        self._reply(batch, job, cmd.id, reply)

    def _on_kiosk(self, job: Job, batch: Batch) -> None:
        req: TicketRequest | None = self._request(job, batch, TicketRequest)
        if req is None:
            return
        try:
            self._check_rate(job.device)
            conn = self.store.conn if self.store is not None else None
            phone: PhoneOutcome | None = None
            if req.booking is not None:  # check-in with a booking code (server/booking/checkin.py)
                ticket, ahead = check_in(self.engine, conn, req.booking, job.device, req.expires_at)
            elif req.pickup is not None:  # a ready document's case reference (server/kiosk_cases.py)
                if self.cases is None:
                    raise Refusal(ErrorCode.PICKUP_UNKNOWN, "this server has no document pick-ups")
                ticket, ahead = self.cases.pickup(
                    batch.kiosk, self.engine, conn, req.pickup, job.device, req.expires_at
                )
            else:
                assert req.service is not None  # TicketRequest's validator: one of the three
                ticket, ahead = self.engine.issue(
                    req.service, req.priority, origin=job.device, expires_at=req.expires_at
                )
                if req.phone is not None:  # SMS notices: the contact is written with the ticket
                    phone = "unavailable"
                    if self.cases is not None:
                        phone = self.cases.subscribe(batch.kiosk, ticket, req.phone, req.lang, job.device)
            reply = TicketResponse(
                id=req.id,
                ok=True,
                ticket=self.wire.ticket_issued(ticket, ahead),
                server_time=self.wire.now(),
                phone=phone,
            )
        except Refusal as r:
            reply = TicketResponse(
                id=req.id, ok=False, error=ErrorInfo(code=r.code, message=r.message), server_time=self.wire.now()
            )
        self._reply(batch, job, req.id, reply)

    def _check_rate(self, kiosk: str) -> None:
        """Refuse a kiosk's ticket request beyond ``[limits] kiosk_tickets``.

        Why: a person needs seconds per ticket; a kiosk account that asks faster is a script
        or a stuck button, and could empty a service's daily limit in a second. The refusal
        is logged and shown on the managers' live view, once per minute per kiosk.
        """
        if self._kiosk_rate.hit(kiosk):
            return
        now = self.engine.now()
        name = device_name("kiosk", kiosk)
        last = self.alerts.get(name)
        if last is None or (now - last[0]).total_seconds() >= 60:
            log.warning("kiosk %s asks for tickets faster than a person can; refusing the excess", kiosk)
        self.alerts[name] = (now, "too many ticket requests")
        raise Refusal(ErrorCode.RATE_LIMITED, "this kiosk asked for tickets too quickly; wait a few seconds")

    def _on_config(self, job: Job, batch: Batch) -> None:
        """An admin's edit (server/admin.py): validate, apply, and write with the batch."""
        from server.admin import AdminError, plan_change

        user, target, values = job.data
        old = self.engine.config
        try:
            new, changes = plan_change(old, target, values, user, self.engine.now().timestamp())
            if changes:
                self.engine.apply_config(new)
        except AdminError as exc:
            batch.results.append((job, exc))
            return
        except ValueError as exc:
            batch.results.append((job, AdminError([f"{target}: {exc}"])))
            return
        if changes:
            batch.config_before = batch.config_before or old
            batch.config.extend(changes)
            batch.republish = True
        batch.results.append((job, changes))

    def _on_config_push(self, job: Job, batch: Batch) -> None:
        """A configuration the centre pushed (docs/multi-branch.md): validated change by change
        as the admin page's edits are, with this branch's own config loader; applied whole
        or not at all, written with its change-log rows, answered on ``config-result``."""
        from server.admin import AdminError, plan_change

        branch = job.route.id if job.route is not None and job.route.id else ""
        try:
            push = ConfigPush.model_validate_json(job.payload)
        except ValidationError as exc:
            log.warning("ignored a malformed configuration on %s: %s", job.topic, exc.errors()[0]["msg"])
            return
        marker = f"push:{push.id}"
        user = f"centrala:{push.by}"
        at = self.engine.now().timestamp()

        def answer(applied: bool, reasons: list[str], changed: int) -> None:
            result = ConfigResult(id=push.id, branch=branch, applied=applied, reasons=reasons, changed=changed, at=at)
            batch.outs.append(Out(self.topics.replica_config_result(branch), result.model_dump_json().encode()))

        seen = self.store.pushed_config(marker) if self.store is not None else None
        if seen is not None:  # delivered again (retained, a reconnect): the same answer again
            answer(*seen)
            return
        old = cfg = self.engine.config
        changes: list[ConfigChange] = []
        problems: list[str] = []
        for edit in push.changes:
            try:
                cfg, done = plan_change(cfg, edit.target, edit.values, user, at)
                changes += done
            except AdminError as exc:
                problems += exc.problems
            except ValueError as exc:
                problems.append(f"{edit.target}: {exc}")
        if not problems and changes:
            try:
                self.engine.apply_config(cfg)
            except ValueError as exc:
                problems.append(str(exc))
        asked = json.dumps([e.model_dump() for e in push.changes], ensure_ascii=False)
        if problems:
            log.warning("refused the configuration %s from the centre: %s", push.id, "; ".join(problems))
            batch.audit.append(
                ConfigChange(marker, "refused", asked, json.dumps(problems, ensure_ascii=False), user, at)
            )
            answer(False, problems, 0)
            return
        if changes:
            batch.config_before = batch.config_before or old
            batch.config.extend(changes)
            batch.republish = True
        batch.audit.append(ConfigChange(marker, "applied", asked, json.dumps(len(changes)), user, at))
        answer(True, [], len(changes))

    HANDLERS: dict[str, Callable[[Worker, Job, Batch], None]] = {
        "counter": _on_counter,
        "kiosk": _on_kiosk,
        "fault": _on_fault,
        "availability": _on_availability,
        "unknown": _on_unknown,
        "config": _on_config,
        "config_push": _on_config_push,
        "tick": _on_tick,
        "republish": _on_tick,
        "flush": _on_flush,
    }
    """Each kind of job and its handler (the only dispatch)."""

    # ------------------------------------------------------------------ parsing and answering

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

    def _reply(self, batch: Batch, job: Job, rid: str, reply: CounterReply | TicketResponse) -> None:
        """A request's answer: remembered (written with the batch) and sent after the commit."""
        payload = reply.to_json()
        batch.replies.append((f"{job.kind}/{job.device}", rid, self.engine.now().timestamp(), payload.decode()))
        batch.answers.append(Answer(job, payload, reply))

    def _error(self, batch: Batch, job: Job, rid: str | None, code: ErrorCode, message: str) -> None:
        info = ErrorInfo(code=code, message=message)
        log.info("refused %s on %s: %s", code.value, job.topic or job.kind, message)
        now = self.wire.now()
        if job.kind == "counter":
            reply: Any = CounterReply(id=rid, ok=False, error=info, server_time=now)
        elif job.kind == "kiosk":
            reply = TicketResponse(id=rid, ok=False, error=info, server_time=now)
        else:
            reply = ErrorMessage(topic=job.topic, id=rid, error=info, server_time=now)
        batch.answers.append(Answer(job, reply.to_json(), reply))

    def _reply_topic(self, job: Job) -> str:
        """Where the answer to ``job`` goes: its MQTT 5 response topic if the protocol allows it
        (at or below the device's own reply topic: protocol/topics.py, ``Topics.reply_topic``)."""
        return self.topics.reply_topic(job.route or self.topics.parse(job.topic), job.response_topic)

    # ------------------------------------------------------------------ outgoing state

    def _call_messages(self, changes: Changes) -> list[Out]:
        """The zone calls to announce; none while the broker is unreachable.

        Why: paho queues QoS 1 publishes while disconnected and sends them on reconnect, so a
        call made during an outage (from the clerk panel) would be announced minutes late as
        a burst. The retained board republished on reconnect shows those calls silently.
        """
        if not self.online():
            return []
        out = []
        for ev in changes.calls:
            msg = self.wire.call(ev)
            out.append(Out(self.topics.zone_call(msg.zone), msg.to_json()))
        return out

    def _state_messages(self, dirty: _Dirty) -> tuple[list[Out], ServicesMessage | None]:
        """Retained state for what changed: O(what changed), never O(waiting tickets).

        Built after the calls and replies are out, without the engine lock: this thread is
        the only one that changes the engine, and readers only read.
        """
        t, w = self.topics, self.wire
        out = [Out(t.counter_state(c), w.counter_state(c).to_json(), retain=True) for c in sorted(dirty.counters)]
        out += [Out(t.zone_board(z), w.board(z).to_json(), retain=True) for z in sorted(dirty.zones) if z]
        services = w.services() if dirty.services else None
        if services is not None:
            out.append(Out(t.services, services.to_json(), retain=True))
        return out, services


@dataclass
class _Dirty:
    """What retained state is out of date since it was last published."""

    counters: set[str] = field(default_factory=set)
    zones: set[str] = field(default_factory=set)
    services: bool = False

    def add(self, e: QueueEngine, changes: Changes, everything: bool) -> None:
        if everything:
            self.counters.update(e.counters)
            self.zones.update(e.zones())
            self.services = True
            return
        self.counters |= changes.counters
        for ev in changes.calls:
            self.zones.add(str(ev.data.get("zone", "")))
        for s in changes.services:
            self.zones.add(e.services[s].zone)
        self.services = self.services or bool(changes.services)

    def __bool__(self) -> bool:
        return bool(self.counters or self.zones or self.services)


def _with_audit(
    extra: Callable[[sqlite3.Connection], None] | None, rows: list[ConfigChange]
) -> Callable[[sqlite3.Connection], None]:
    """The batch's extra writes, then change-log rows that are not overrides (a push's outcome)."""

    def write(conn: sqlite3.Connection) -> None:
        if extra is not None:
            extra(conn)
        Store.write_audit(conn, rows)

    return write


def _details(exc: ValidationError) -> str:
    """Every problem, each naming its field: ``priority: Input should be a valid boolean``."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'payload'}: {e['msg']}" for e in exc.errors())


def _request_id(model: Any) -> str | None:
    return getattr(model, "id", None)


def _domain_command(cmd: CounterCommand) -> Command:
    """The wire command as the engine's input (the engine knows no protocol message)."""
    return Command(
        action=cmd.action,
        current=cmd.current,
        ticket=cmd.ticket,
        target_service=cmd.target_service,
        target_counter=cmd.target_counter,
        clerk=cmd.clerk,
        rating=cmd.rating,
        expires_at=cmd.expires_at,
    )
