"""Domain → wire: the protocol messages built from the engine's state.

One place turns tickets, counters, calls and services into ``protocol.messages`` models, so
the MQTT state, the HTTP API and the clerk panel describe the same ticket the same way
(times in the office's zone, names from the live config). No I/O and no locking: the
caller holds the engine lock while it builds (server/worker.py, server/office.py).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from protocol.messages import (
    BoardMessage,
    CallMessage,
    CounterAction,
    CounterReply,
    CounterState,
    ErrorCode,
    ErrorInfo,
    ServiceInfo,
    ServicesMessage,
    TicketInfo,
    TicketIssued,
)
from server.config import Hours
from server.domain import Event, EventKind, Ticket
from server.engine import QueueEngine
from server.estimates.cutoff import next_opening


class Wire:
    def __init__(self, engine: QueueEngine) -> None:
        self.engine = engine

    @property
    def tz(self) -> ZoneInfo:
        return self.engine.tz

    def local(self, value: datetime) -> datetime:
        return value.astimezone(self.engine.tz)

    def now(self) -> datetime:
        return self.local(self.engine.now())

    # ------------------------------------------------------------------ tickets and calls

    def ticket_info(self, t: Ticket) -> TicketInfo:
        loc = self.local
        return TicketInfo(
            number=t.number,
            service=t.service,
            status=t.status.value,
            priority=t.priority,
            issued_at=loc(t.issued_at),
            called_at=loc(t.called_at) if t.called_at else None,
            started_at=loc(t.started_at) if t.started_at else None,
            recalls=t.recalls,
            counter=t.counter,
        )

    def ticket_issued(self, t: Ticket, ahead: int) -> TicketIssued:
        service = self.engine.services[t.service]
        return TicketIssued(
            number=t.number,
            service=t.service,
            service_name=service.name.as_dict(),
            priority=t.priority,
            issued_at=self.local(t.issued_at),
            people_ahead=ahead,
            estimated_wait_min=round((t.estimated_wait_s or 0) / 60),
            estimated_wait_range_min=t.estimated_wait_range_min,
            token=t.token,
            status_path=f"/t/{t.token}",
            appointment_at=self.local(t.appointment_at) if t.appointment_at else None,
        )

    def call(self, ev: Event) -> CallMessage:
        counter = self.engine.counter_config[ev.counter or ""]
        return CallMessage(
            seq=ev.id,
            ticket=ev.ticket or "",
            service=ev.service or "",
            counter=counter.id,
            counter_name=counter.name,
            zone=counter.zone,
            recall=ev.kind == EventKind.RECALL,
            at=self.local(ev.at),
            place=self.counter_place(counter.id),
        )

    def counter_place(self, counter_id: str) -> dict[str, str] | None:
        """Where a counter's calls send people: its own ``place``, else its zone's name for
        residents, else nothing (a display then shows the counter's name only)."""
        counter = self.engine.counter_config[counter_id]
        named = counter.place or self.engine.config.public.zone_names.get(counter.zone)
        return named.as_dict() if named else None

    def counter_reply(self, cmd_id: str | None, action: CounterAction, ticket: Ticket | None) -> CounterReply:
        return CounterReply(
            id=cmd_id,
            ok=True,
            action=action,
            ticket=self.ticket_info(ticket) if ticket else None,
            server_time=self.now(),
        )

    @staticmethod
    def error(code: ErrorCode, message: str) -> ErrorInfo:
        return ErrorInfo(code=code, message=message)

    # ------------------------------------------------------------------ retained state

    def counter_state(self, counter_id: str) -> CounterState:
        """A counter's retained state. O(services it serves): nothing here scans the queues."""
        e = self.engine
        cfg = e.counter_config[counter_id]
        rt = e.counters[counter_id]
        current = e.current_ticket(counter_id)
        return CounterState(
            counter=cfg.id,
            name=cfg.name,
            zone=cfg.zone,
            status=rt.status,
            clerk=rt.clerk,
            ticket=self.ticket_info(current) if current else None,
            services=list(cfg.services),
            waiting={s: e.queues.count(s) for s in cfg.services},
            personal_waiting=e.personal_waiting(counter_id),
            server_time=self.now(),
        )

    def board(self, zone: str) -> BoardMessage:
        e = self.engine
        calls = [self.call(ev) for ev in e.calls_for_zone(zone)]
        return BoardMessage(
            zone=zone,
            seq=max((c.seq for c in calls), default=0),
            calls=calls,
            waiting={s.id: e.queues.count(s.id) for s in e.services.values() if s.zone == zone},
            server_time=self.now(),
        )

    def service_info(self, service_id: str, now: datetime) -> ServiceInfo:
        e = self.engine
        s = e.services[service_id]
        walk_in = e.estimator.predict(s.id, False, e)  # one prediction per class (the estimator caches per state)
        code, _ = e.availability(s, now, walk_in)
        hours = s.hours_on(now.astimezone(e.tz).weekday())
        priority = e.estimator.predict(s.id, True, e)
        return ServiceInfo(
            id=s.id,
            prefix=s.prefix,
            name=s.name.as_dict(),
            zone=s.zone,
            available=code is None,
            reason=code,
            waiting=e.queues.count(s.id),
            estimated_wait_min=round(walk_in.point_s / 60),
            estimated_wait_range_min=walk_in.range_min,
            open_counters=len(e.open_counters(s.id)),
            priority_ahead=e.people_ahead(s.id, True),
            priority_estimated_wait_min=round(priority.point_s / 60),
            priority_estimated_wait_range_min=priority.range_min,
            opens_at=Hours.clock(hours.opens) if hours else None,
            closes_at=Hours.clock(hours.closes) if hours else None,
            place=self.zone_place(s.zone),
            next_opening=next_opening(s, now, e.tz),
        )

    def zone_place(self, zone: str) -> dict[str, str] | None:
        """The zone's name for residents (``[public] zone_names``): where to go for a service."""
        named = self.engine.config.public.zone_names.get(zone)
        return named.as_dict() if named is not None else None

    def services(self) -> ServicesMessage:
        e = self.engine
        now = e.now()
        return ServicesMessage(
            office=e.config.office.name,
            services=[self.service_info(s, now) for s in e.services],
            server_time=self.local(now),
        )
