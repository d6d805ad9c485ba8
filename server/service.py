"""The running server, assembled: store, engine, worker, MQTT gateway and the web's façade.

This module only wires the parts together and runs their lifecycle; each part has one job
(docs/architecture.md):

* server/engine.py — the office's rules (pure, injected clock);
* server/store.py — SQLite: the worker's writer connection, read-only readers for the web;
* server/worker.py — the one thread that changes state, in batches with group commit;
* server/gateway.py — MQTT in (jobs on the worker's inbox) and out;
* server/requests.py — the reply memory that makes redeliveries harmless;
* server/wire.py — domain → protocol messages;
* server/office.py — the one interface web pages, reports and admin use.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from protocol import sdnotify
from protocol.messages import FaultReport, ServicesMessage
from protocol.topics import OFFLINE, ONLINE, Topics
from server import gcpolicy
from server.booking.checkin import BookingCheckIns
from server.booking.feed import BookingFeed
from server.clock import ClockStatus
from server.config import SiteConfig
from server.engine import Clock, QueueEngine
from server.estimate import WaitEstimator
from server.gateway import MqttGateway
from server.jobs import Job
from server.kiosk_cases import KioskCases
from server.notices import Notices
from server.office import Office
from server.requests import REPLY_MEMORY, RequestMemory
from server.store import ReadStore, Store, StoreError, disk_free_bytes
from server.survey import Survey
from server.worker import TICK_SECONDS, Worker

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(UTC)


class NumerekServer:
    def __init__(
        self,
        config: SiteConfig,
        clock: Clock = utc_now,
        estimator: WaitEstimator | None = None,
        client_id: str = "numerek-server",
    ) -> None:
        self.topics = Topics(config.mqtt.topic_base)
        self.path = config.storage.database
        self.lock = threading.RLock()
        # Why not exit when the file cannot be used: the office must see what is wrong (on
        # /health, in the journal, on the live view) and devices must get a clear
        # "unavailable", rather than a service systemd restarts every few seconds forever.
        self.store: Store | None = None
        self.store_problem: StoreError | None = None
        try:
            self.store = Store(self.path, check=True)
            config = self._with_admin_changes(config, self.store)
        except StoreError as exc:
            log.critical("cannot use the database: %s", exc)
            self.store_problem = exc
        self.min_free_bytes = config.storage.min_free_mb * 1024 * 1024
        self.clock = clock
        self.engine = QueueEngine(config, clock, estimator)
        if self.store is not None:
            state = self.store.load()
            not_before = getattr(clock, "not_before", None)
            if not_before is not None and state.last_event_at is not None:
                not_before(state.last_event_at)  # a Pi rebooted with a stale clock stamps nothing earlier
            self.engine.restore(state)
            self._warm_estimator(config)
        stored = self.store.recent_replies(since=self.engine.now() - REPLY_MEMORY) if self.store else {}
        self.replies = RequestMemory(stored, self.engine.now())
        self.gateway = MqttGateway(config.mqtt, self.topics, self._submit, client_id)
        self.worker = Worker(
            self.engine,
            self.store,
            self.replies,
            self.topics,
            publish=self.gateway.publish,
            flush=self.gateway.flush,
            online=lambda: self.gateway.online,
            lock=self.lock,
            kiosk_rate=config.limits.kiosk_tickets,
            on_batch=self._after_batch,
            writable=lambda: self.store_problem.problem if self.store_problem else None,
            path=self.path,
        )
        self.worker.faults = self._load_faults()
        # SMS and e-mail ([notify]): notices written in the batch, sent by their own thread (server/notices.py)
        self.notices = Notices.from_site(config, self.engine, self.lock, clock) if self.store is not None else None
        if self.notices is not None:
            self.worker.listeners.append(self.notices.listener)
        self.survey = (  # the after-visit survey ([survey]), its own tables and connection (server/survey.py)
            Survey(self.path, config.survey.days, lambda: self.engine.office_day(self.engine.now()))
            if config.survey is not None and self.store is not None
            else None
        )
        self.worker.listeners.append(BookingCheckIns())  # a check-in marks its booking in the same commit
        if self.store is not None:  # the walk-ins' estimate leaves room for today's bookings (docs/estimates.md)
            self.worker.before_batch.append(BookingFeed(self.store.conn, self.engine).refresh)
        # a phone number or a case reference in a kiosk's request, written with its ticket (server/kiosk_cases.py)
        self.worker.cases = KioskCases(self.notices, self.store.conn if self.store is not None else None)
        self.worker.on_ready = self._ready
        self.reader = ReadStore(self.path)
        self.office = Office(
            self.engine,
            self.lock,
            self._submit,
            self.reader,
            self.device_status,
            lambda: self.worker.alerts,
            health=self.health,
        )
        self._ready_sent = False
        self.collector = gcpolicy.Collector()
        self._stop_watchdog: Callable[[], None] = lambda: None

    # ------------------------------------------------------------------ start-up

    @staticmethod
    def _with_admin_changes(config: SiteConfig, store: Store) -> SiteConfig:
        from server.admin import apply_overrides

        return apply_overrides(config, store.config_overrides())

    def _warm_estimator(self, config: SiteConfig) -> None:
        """Let the wait estimator relearn the office (breaks, pace, arrivals) from the last six
        weeks on disk, so a restart does not make it start from nothing."""
        warm = getattr(self.engine.estimator, "warm", None)
        if warm is None or self.store is None:
            return
        today = self.engine.office_day(self.engine.now())
        warm(self.store.recent_events(before=today + timedelta(days=1), days=42), config)

    def _load_faults(self) -> dict[str, FaultReport]:
        out: dict[str, FaultReport] = {}
        if self.store is None:
            return out
        for d in self.store.device_faults():
            out[d["device"]] = FaultReport(device=d["device"], fault=d["fault"], message=d.get("message", ""))
        return out

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.worker.start()
        self.gateway.start()
        if self.notices is not None:
            self.notices.start()
        self._stop_watchdog = sdnotify.start_watchdog(self.healthy)

    def stop(self) -> None:
        sdnotify.stopping()
        self._stop_watchdog()
        self.worker.stop()
        self.gateway.stop()
        if self.notices is not None:
            self.notices.stop()
        if self.survey is not None:
            self.survey.close()
        if self.store is not None:
            self.store.close()

    def healthy(self) -> bool:
        """The worker is alive and has finished a batch or a tick lately (systemd watchdog)."""
        return self.worker.alive() and time.monotonic() - self.worker.health.last_batch_mono < 4 * TICK_SECONDS

    def _submit(self, job: Job) -> None:
        self.worker.submit(job)

    def _after_batch(self, services: ServicesMessage | None) -> None:
        self.office.refresh(services)

    def _ready(self) -> None:
        # After start-up and then at each tick (every TICK_SECONDS, on the worker, outside the
        # lock): what lives on, the queue included, leaves the collector's walks (server/gcpolicy.py)
        self.collector.settle()
        if self._ready_sent:
            return
        # Ready without waiting for the broker: HTTP works and MQTT reconnects by itself;
        # a broker down at boot must not make systemd restart the server in a loop.
        broker = "broker connected" if self.online else "broker not connected yet, retrying"
        store = f"; DATABASE PROBLEM: {self.store_problem}" if self.store_problem else ""
        self._ready_sent = sdnotify.ready(f"serving {self.engine.config.office.name}; {broker}{store}")

    # ------------------------------------------------------------------ status

    @property
    def online(self) -> bool:
        return self.gateway.online

    @property
    def config(self) -> SiteConfig:
        return self.engine.config

    def clock_status(self) -> ClockStatus | None:
        """The system clock's trust and steps (None for a plain injected clock: tests, the simulator)."""
        status = getattr(self.clock, "status", None)
        return status() if status is not None else None

    def device_status(self) -> dict[str, dict[str, str]]:
        """Devices' availability and kiosks' printer state (the worker keeps both; read under the lock)."""
        with self.lock:
            out: dict[str, dict[str, str]] = {d: {"availability": a} for d, a in self.worker.devices.items()}
            for d, f in self.worker.faults.items():
                out.setdefault(d, {"availability": "unknown"}).update({"fault": f.fault, "message": f.message})
        return out

    def health(self) -> dict[str, Any]:
        """What /health reports: the broker, the database and the disk, and the server's time."""
        store_error = self.worker.health.store_error or (self.store_problem.problem if self.store_problem else None)
        try:
            free = disk_free_bytes(self.path)
        except OSError:
            free = 0
        try:
            schema = self.reader.schema_version() if self.store_problem is None else None
        except Exception:  # a damaged file: say so, never fail the health check itself
            schema = None
        disk_low = free < self.min_free_bytes
        ok = self.online and store_error is None and not disk_low and self.healthy()
        clock = self.clock_status()
        return {
            "status": "ok" if ok else "degraded",
            "broker_connected": self.online,
            "database": "ok" if store_error is None else store_error,
            "database_advice": self.store_problem.advice if self.store_problem else None,
            "disk_free_mb": free // (1024 * 1024),
            "disk_low": disk_low,
            "schema_version": schema,
            "clock_synchronized": clock.synchronized if clock else None,
            "clock_step_pending_s": round(clock.pending_step_s) if clock and clock.pending_step_s else None,
            "server_time": self.office.now(),
            "office": self.engine.config.office.name,
        }


__all__ = ["NumerekServer", "ONLINE", "OFFLINE", "utc_now"]
