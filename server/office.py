"""The office, as every web page, report and API sees it: one façade over the engine.

Why one interface: the ticket page, the kiosk, the clerk panel and the managers' live view
must agree with what NEXT does. They once each computed "who is ahead" and "live queues"
from the engine's dicts with their own rules, and the ticket page told A001's holder that
nobody was ahead while NEXT called the priority ticket A002. Now every answer here comes
from the engine's own methods (``people_ahead_of``, ``callable_by``, ``pick_next``), and
every change goes through the worker's inbox like an MQTT message.

Threads: web threads call these methods. Reads of the live state take the engine lock
briefly; public figures (services, queues) come from snapshots the worker refreshes after
each batch that changes them, so thousands of phones polling never touch the lock; past
tickets come from a read-only connection per thread (server/store.py, ``ReadStore``).
Nothing here writes to the database.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel

from protocol.messages import CounterState, ServiceInfo, ServicesMessage
from server.config import SiteConfig
from server.domain import ConfigChange, Ticket, TicketStatus
from server.engine import QueueEngine
from server.estimate import WaitEstimate
from server.jobs import Job
from server.store import ReadStore
from server.wire import Wire


class QueueStatus(BaseModel):
    service: str
    name: dict[str, str]
    waiting: int
    being_served: int
    open_counters: int
    longest_wait_s: int
    target_wait_s: int
    over_target: bool


class TicketStatusOut(BaseModel):
    number: str
    service: str
    service_name: dict[str, str]
    status: str
    people_ahead: int | None
    estimated_wait_min: int | None  # one number, for clients written before ranges
    estimated_wait_range_min: list[int] | None = None  # [lo, hi] minutes, rounded outward; None: cannot estimate
    counter: str | None
    counter_name: str | None
    issued_at: datetime
    called_at: datetime | None


class WaitingEntry(BaseModel):
    """One line of a clerk's list: what the counter may call, in NEXT's order."""

    number: str
    service: str
    priority: bool
    personal: bool
    waited_s: int
    next: bool


@dataclass(frozen=True)
class _QueueFacts:
    """A service's figures at the last batch that changed them (the worker's snapshot)."""

    service: str
    name: dict[str, str]
    waiting: int
    being_served: int
    open_counters: tuple[str, ...]
    oldest: datetime | None
    target_wait_s: int


@dataclass(frozen=True)
class PublicCall:
    """The number a service called last today, and where (a place, never a clerk)."""

    number: str
    counter_name: str
    at: datetime


def _without_time(services: ServicesMessage) -> dict[str, Any]:
    return services.model_dump(exclude={"server_time"})


@dataclass(frozen=True)
class PublicSnapshot:
    """What the public pages and feeds show, taken with the services message it belongs to.

    Why taken together, by the worker, when it publishes: "people waiting" (from the message)
    and "now called" (from the engine) then describe the same moment, and no request from
    the crowd ever takes the engine lock. ``version`` grows with every new snapshot, so a
    page or proxy can tell "nothing new" (ETag) without comparing contents; a republish that
    changes nothing but the time keeps the version."""

    version: int
    services: ServicesMessage
    last_called: dict[str, PublicCall]
    issued_today: dict[str, int]


class Office:
    def __init__(
        self,
        engine: QueueEngine,
        lock: threading.RLock,
        submit: Callable[[Job], None],
        reader: ReadStore,
        device_status: Callable[[], dict[str, dict[str, str]]],
        alerts: Callable[[], dict[str, tuple[datetime, str]]],
        health: Callable[[], dict[str, Any]] = dict,
    ) -> None:
        self._engine = engine
        self._lock = lock
        self._submit = submit
        self._reader = reader
        self._device_status = device_status
        self._alerts = alerts
        self._health = health
        self._wire = Wire(engine)
        self._services: ServicesMessage | None = None
        self._public: PublicSnapshot | None = None
        self._public_versions = itertools.count(1)

    # ------------------------------------------------------------------ refreshed by the worker

    def refresh(self, services: ServicesMessage | None) -> None:
        """After the worker published a new services list (worker thread): the web's copy of it.

        Why a copy: the kiosks' services list (with estimates for each service) is what
        phones and the office's web site read most; serving the message the worker already
        built costs them nothing and shows exactly what the kiosks show."""
        if services is not None:
            self._public = self._public_snapshot(services)  # before the services: readers take either
            self._services = services

    def _queue_facts(self) -> list[_QueueFacts]:
        """Each service's figures now (under the lock: O(services × counters), no ticket scan)."""
        e = self._engine
        serving: dict[str, int] = {}
        for c in e.counters.values():
            t = e.tickets.get(c.current) if c.current is not None else None
            if t is not None:
                serving[t.service] = serving.get(t.service, 0) + 1
        personal: dict[str, int] = {}
        for cid in e.counters:
            for tid in e.queues.personal_ids(cid):
                s = e.tickets[tid].service
                personal[s] = personal.get(s, 0) + 1
        return [
            _QueueFacts(
                service=s.id,
                name=s.name.as_dict(),
                waiting=e.queues.count(s.id) + personal.get(s.id, 0),
                being_served=serving.get(s.id, 0),
                open_counters=tuple(e.open_counters(s.id)),
                oldest=e.queues.oldest(s.id),
                target_wait_s=s.target_wait_min * 60,
            )
            for s in e.services.values()
        ]

    # ------------------------------------------------------------------ who and when

    @property
    def config(self) -> SiteConfig:
        """The live configuration (the site file with the admins' changes laid over it)."""
        return self._engine.config

    def now(self) -> datetime:
        """The server's time, in the office's zone."""
        return self._wire.now()

    def local(self, value: datetime) -> datetime:
        return self._wire.local(value)

    def counter_ids(self) -> list[str]:
        return list(self._engine.counter_config)

    def has_counter(self, counter_id: str) -> bool:
        return counter_id in self._engine.counter_config

    # ------------------------------------------------------------------ public reads (snapshots)

    def services(self) -> list[ServiceInfo]:
        """Each service now, as the kiosks see it (availability, waiting, estimates)."""
        with self._lock:
            return list(self._wire.services().services)

    def published_services(self) -> ServicesMessage:
        """The services list as last published to the devices (at most STATE_INTERVAL_S old).

        Why a second way: a crowd of phones polling a public page must not take the engine
        lock or rebuild every estimate per request; this is the message the worker already
        built, so it costs them nothing and shows exactly what the kiosks show."""
        snapshot = self._services
        if snapshot is None:  # before the worker's first publication
            with self._lock:
                snapshot = self._wire.services()
        return snapshot

    def queues(self) -> list[QueueStatus]:
        with self._lock:
            now = self._engine.now()
            facts = self._queue_facts()
        return [self._queue_status(q, now) for q in facts]

    @staticmethod
    def _queue_status(q: _QueueFacts, now: datetime) -> QueueStatus:
        longest = max(0, int((now - q.oldest).total_seconds())) if q.oldest else 0
        return QueueStatus(
            service=q.service,
            name=q.name,
            waiting=q.waiting,
            being_served=q.being_served,
            open_counters=len(q.open_counters),
            longest_wait_s=longest,
            target_wait_s=q.target_wait_s,
            over_target=longest > q.target_wait_s,
        )

    # ------------------------------------------------------------------ public status (open data)
    # Read by server/public.py for /kolejka, the open-data feeds and the widget. Nothing here
    # takes the engine lock per request: the snapshot is taken when the worker publishes.

    TYPICAL_WINDOW = 25
    """Finished services per service whose median is the "typical service time" (the Warsaw feed's czasObslugi)."""

    def public_snapshot(self) -> PublicSnapshot:
        """The public view of the queues as the worker last published it (no lock, no work)."""
        snapshot = self._public
        if snapshot is None:  # before the worker's first publication
            with self._lock:
                snapshot = self._public = self._public_snapshot(self._wire.services())
        return snapshot

    def _public_snapshot(self, services: ServicesMessage) -> PublicSnapshot:
        """Built on the worker thread right after it built ``services`` (nothing changes meanwhile),
        or under the lock: O(zones × calls remembered), no ticket scan."""
        e = self._engine
        last: dict[str, PublicCall] = {}
        newest: dict[str, int] = {}
        for calls in e.zone_calls.values():
            for ev in calls:  # oldest first: a later call of the service replaces an earlier one
                if ev.service and ev.ticket and ev.id > newest.get(ev.service, 0):
                    counter = e.counter_config.get(ev.counter or "")
                    newest[ev.service] = ev.id
                    last[ev.service] = PublicCall(ev.ticket, counter.name if counter else "", self.local(ev.at))
        issued = dict(e.issued)
        previous = self._public
        if (
            previous is not None
            and previous.last_called == last
            and previous.issued_today == issued
            and _without_time(previous.services) == _without_time(services)
        ):
            return previous  # the 15-second republish changed only the clock: keep the version (ETag)
        return PublicSnapshot(next(self._public_versions), services, last, issued)

    def typical_service_s(self, day: date) -> dict[str, float]:
        """Median of each service's last finished services on ``day`` (the read-only connection).

        Why from the file and not the estimator: it is a published figure with a plain meaning
        ("a visit takes about this long today"), whatever the estimator does inside."""
        rows = self._reader.query(
            "SELECT service, finished_at - started_at FROM tickets WHERE day = ? AND status = 'finished' "
            "AND started_at IS NOT NULL AND finished_at > started_at ORDER BY id DESC LIMIT 2000",
            (day.isoformat(),),
        )
        recent: dict[str, list[float]] = {}
        for service, seconds in rows:
            kept = recent.setdefault(service, [])
            if len(kept) < self.TYPICAL_WINDOW:
                kept.append(float(seconds))
        return {s: statistics.median(v) for s, v in recent.items()}

    def months_with_tickets(self, before: date) -> list[date]:
        """First days of the months before ``before`` that have tickets, newest first.

        One indexed look-up per month between the file's first and last day (``tickets(day)``)."""
        row = self._reader.query("SELECT min(day), max(day) FROM tickets WHERE day < ?", (before.isoformat(),))[0]
        if row[0] is None:
            return []
        first, month = date.fromisoformat(row[0]).replace(day=1), date.fromisoformat(row[1]).replace(day=1)
        out = []
        while month >= first:
            after = date(month.year + month.month // 12, month.month % 12 + 1, 1)
            if self._reader.query(
                "SELECT 1 FROM tickets WHERE day >= ? AND day < ? LIMIT 1", (month.isoformat(), after.isoformat())
            ):
                out.append(month)
            month = date(month.year - (month.month == 1), (month.month - 2) % 12 + 1, 1)
        return out

    # ------------------------------------------------------------------ a resident's ticket

    def ticket_status(self, token: str) -> TicketStatusOut | None:
        """A ticket's status page: today's open tickets from memory, the rest from the file."""
        e = self._engine
        with self._lock:
            ticket = e.ticket_by_token(token)
            ahead = e.people_ahead_of(ticket) if ticket is not None else None
            estimate = e.estimate_for(ticket) if ticket is not None and ahead is not None else None
            if ticket is not None:
                return self._ticket_view(ticket, ahead, estimate)
        ticket = self._reader.ticket_by_token(token)
        return self._ticket_view(ticket, None, None) if ticket is not None else None

    def _ticket_view(self, t: Ticket, ahead: int | None, estimate: WaitEstimate | None) -> TicketStatusOut:
        e = self._engine
        counter = e.counter_config.get(t.counter or "")
        service = e.services.get(t.service)
        return TicketStatusOut(
            number=t.number,
            service=t.service,
            service_name=service.name.as_dict() if service else {"pl": t.service, "en": t.service},
            status=t.status.value,
            people_ahead=ahead,
            estimated_wait_min=round(estimate.point_s / 60) if estimate is not None else None,
            estimated_wait_range_min=list(estimate.range_min) if estimate and estimate.range_min else None,
            counter=t.counter,
            counter_name=counter.name if counter else None,
            issued_at=self.local(t.issued_at),
            called_at=self.local(t.called_at) if t.called_at else None,
        )

    # ------------------------------------------------------------------ counters (clerk panel)

    def counter_state(self, counter_id: str) -> CounterState | None:
        if not self.has_counter(counter_id):
            return None
        with self._lock:
            return self._wire.counter_state(counter_id)

    def counter_queue(self, counter_id: str, limit: int = 200) -> list[WaitingEntry]:
        """What this counter may call, in the order NEXT takes it (the first one is NEXT's)."""
        e = self._engine
        with self._lock:
            now = e.now()
            tickets = e.callable_by(counter_id, limit)
            return [
                WaitingEntry(
                    number=t.number,
                    service=t.service,
                    priority=t.priority,
                    personal=t.target_counter == counter_id,
                    waited_s=max(0, int((now - t.queued_at).total_seconds())),
                    next=i == 0,
                )
                for i, t in enumerate(tickets)
            ]

    def appointment_times(self, counter_id: str) -> dict[str, str]:
        """Booked times ("10:30", office time) of the appointment tickets the clerk sees: the
        counter's current ticket and the ones it may call (the clerk panel marks them)."""
        e = self._engine
        with self._lock:
            tickets = e.callable_by(counter_id)
            current = e.current_ticket(counter_id)
            if current is not None:
                tickets = [*tickets, current]
            tz = e.config.office.tz
            return {
                t.number: t.appointment_at.astimezone(tz).strftime("%H:%M")
                for t in tickets
                if t.appointment_at is not None
            }

    def counter_command(self, counter_id: str, data: dict[str, Any]) -> Future[Any]:
        """A counter command from the web: the same inbox, checks and engine path as MQTT.

        ``data`` goes through the same checks as an MQTT payload, the size limit included
        (the worker measures its JSON encoding), so HTTP is no way around them.
        """
        fut: Future[Any] = Future()
        self._submit(Job("counter", counter_id, f"http:counter/{counter_id}/command", future=fut, data=data))
        return fut

    def issue_ticket(self, data: dict[str, Any], origin: str) -> Future[Any]:
        """A ticket asked for by the reception desk (a ``TicketRequest``: a service, or a booking
        code to check in): the kiosk's inbox, checks and engine path; ``origin`` is recorded."""
        fut: Future[Any] = Future()
        self._submit(Job("kiosk", origin, f"http:kiosk/{origin}/request", future=fut, data=data))
        return fut

    # ------------------------------------------------------------------ admin

    async def change_config(self, user: str, target: str, values: dict[str, Any], timeout: float) -> list[ConfigChange]:
        """An admin's edit, carried out by the worker (validated, applied, written with its audit row).

        Returns the audit rows (empty if nothing differed); raises ``server.admin.AdminError``
        when the result would not be a valid office, ``RuntimeError`` when it could not be saved.
        """
        fut: Future[Any] = Future()
        self._submit(Job("config", topic="http:admin", future=fut, data=(user, target, values)))
        result = await asyncio.wait_for(asyncio.wrap_future(fut), timeout)
        if isinstance(result, Exception):
            raise result
        changes: list[ConfigChange] = result
        return changes

    def admin_changes(self, limit: int = 500) -> list[Any]:
        return self._reader.admin_changes(limit)

    # ------------------------------------------------------------------ managers

    def live(self) -> dict[str, Any]:
        """The managers' live view: queues, counters, devices and alerts, now."""
        e = self._engine
        with self._lock:
            now = e.now()
            facts = self._queue_facts()
            counters = [
                {
                    "counter": cid,
                    "name": e.counter_config[cid].name,
                    "status": c.status.value,
                    "current": e.tickets[c.current].number if c.current in e.tickets else None,
                }
                for cid, c in e.counters.items()
            ]
            devices = self._device_status()
            alerts = dict(self._alerts())
        services = [
            {**self._queue_status(q, now).model_dump(), "open_counter_ids": list(q.open_counters)} for q in facts
        ]
        device_rows = [
            {
                "device": d,
                "availability": v.get("availability", "unknown"),
                "fault": v.get("fault"),
                "message": v.get("message", ""),
                "alert": v.get("availability") == "offline" or v.get("fault") not in (None, "ok", "paper_low"),
            }
            for d, v in sorted(devices.items())
        ]
        health = self._health()
        return {
            "server_time": self.now().isoformat(timespec="seconds"),
            "system": {
                k: health.get(k)
                for k in ("database", "database_advice", "disk_free_mb", "disk_low", "broker_connected")
                + ("clock_synchronized", "clock_step_pending_s")
            },
            "services": services,
            "counters": counters,
            "devices": device_rows,
            "alerts": [
                {"device": d, "at": self.local(at).isoformat(timespec="seconds"), "what": what}
                for d, (at, what) in sorted(alerts.items())
            ],
        }


__all__ = ["Office", "PublicCall", "PublicSnapshot", "QueueStatus", "TicketStatusOut", "WaitingEntry", "TicketStatus"]
