"""The queue engine: the office's rules, with no I/O and no clock of its own.

Everything that happens goes through a method of :class:`QueueEngine`. A method either
refuses (raises :class:`~server.domain.Refusal` before touching any state) or changes the
state and records what it did as :class:`~server.domain.Event` rows in
:attr:`QueueEngine.pending`. The caller (``server.service``) writes those to disk, and only
then tells anyone: that is what makes "acknowledged means on disk" hold.

Time comes from the injected ``clock``; randomness (the tickets' status tokens) from the
injected ``token_factory``. Both make the engine deterministic under test and let the
simulator run a year of an office in seconds. The routing rule of :meth:`pick_next` is
documented in docs/queueing.md.
"""

from __future__ import annotations

import base64
import os
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from protocol.messages import MAX_TICKET_SEQ, CounterAction, CounterStatus, ErrorCode, ticket_number
from protocol.waits import round_outward
from server.config import Office, Service, SiteConfig
from server.domain import Command, CounterRuntime, Event, EventKind, Refusal, Ticket, TicketStatus
from server.estimate import HonestEstimator, WaitEstimate, WaitEstimator
from server.estimates.appointments import BookedVisit, Reserved, expected_appointments
from server.estimates.cutoff import runs_to_closing
from server.queues import WaitingQueues

Clock = Callable[[], datetime]


class TokenPool:
    """Tickets' status tokens (16 URL-safe characters, 96 random bits, as ``secrets.token_urlsafe(12)``).

    Why a pool: asking the kernel for 12 random bytes per ticket was a system call per ticket,
    ~3 % of the worker's time in a burst of tickets (docs/performance.md). The pool asks for
    ``batch`` tokens' worth at once from the same source (``os.urandom``) and hands them out in
    order; a forked child starts with an empty pool, so it never repeats its parent's tokens.
    """

    SIZE = 12

    def __init__(self, batch: int = 256) -> None:
        self.batch = batch
        self.draws = 0
        """How many times the kernel was asked (the tests count them)."""
        self._buf = b""
        self._pos = 0
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._buf, self._pos = b"", 0

    def __call__(self) -> str:
        # called under the engine's lock, like everything that issues a ticket
        if self._pos + self.SIZE > len(self._buf):
            self._buf, self._pos = os.urandom(self.SIZE * self.batch), 0
            self.draws += 1
        raw = self._buf[self._pos : self._pos + self.SIZE]
        self._pos += self.SIZE
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


default_token = TokenPool()


@dataclass
class Changes:
    """What the engine did since the last :meth:`QueueEngine.take_changes`."""

    events: list[Event] = field(default_factory=list)
    tickets: dict[int, Ticket] = field(default_factory=dict)
    counters: set[str] = field(default_factory=set)
    services: set[str] = field(default_factory=set)

    @property
    def calls(self) -> list[Event]:
        return [e for e in self.events if e.kind in (EventKind.CALL, EventKind.RECALL)]

    def __bool__(self) -> bool:
        return bool(self.events)


@dataclass
class Restored:
    """The state a store hands back after a restart (see ``server.store``)."""

    day: date | None
    tickets: list[Ticket]  # today's open tickets (waiting, called, serving)
    counters: list[CounterRuntime]
    last_seq: dict[str, int]  # prefix -> last number issued today
    issued: dict[str, int]  # service -> tickets issued today (for the daily limit)
    next_ticket_id: int
    next_event_id: int
    recent_calls: list[Event] = field(default_factory=list)  # today's latest per zone, oldest first
    service_times: list[tuple[str, float]] = field(default_factory=list)
    last_finished: list[Ticket] = field(default_factory=list)  # each counter's last, for ratings
    last_event_at: datetime | None = None  # the newest time stamp on disk (a restarted clock starts no earlier)


def _refuse_if_expired(expires_at: datetime | None, now: datetime, told: str) -> None:
    """A request read at or after its deadline is refused: its device gave up on it already."""
    if expires_at is not None and now >= expires_at:
        late = (now - expires_at).total_seconds()
        raise Refusal(
            ErrorCode.EXPIRED,
            f"the request expired {late:.1f} s before the server read it (at {expires_at.isoformat()}); "
            f"{told}, so nothing was done",
        )


class QueueEngine:
    RECENT_CALLS = 10
    RATING_WINDOW_S: float = Office.model_fields["rating_window_s"].default
    """The leaving window: this soon after a service ended, and until the next client's service
    starts, a rating is for the client who just left (see :meth:`_rated_ticket`)."""
    RECALL_GUARD_S: float = Office.model_fields["recall_guard_s"].default
    """A recall this soon after the ticket's last call is refused: that announcement still plays."""

    def __init__(
        self,
        config: SiteConfig,
        clock: Clock,
        estimator: WaitEstimator | None = None,
        token_factory: Callable[[], str] = default_token,
        rating_window_s: float | None = None,
        recall_guard_s: float | None = None,
    ) -> None:
        """``rating_window_s`` / ``recall_guard_s``: the site config's ``[office]`` values unless given."""
        rating_window_s = config.office.rating_window_s if rating_window_s is None else rating_window_s
        recall_guard_s = config.office.recall_guard_s if recall_guard_s is None else recall_guard_s
        if rating_window_s <= 0 or recall_guard_s < 0:
            raise ValueError("rating_window_s must be positive and recall_guard_s not negative")
        self.config = config
        self.clock = clock
        self.rating_window = timedelta(seconds=rating_window_s)
        self.recall_guard = timedelta(seconds=recall_guard_s)
        self.estimator: WaitEstimator = estimator or HonestEstimator()
        self.token_factory = token_factory
        self.tz = config.office.tz
        self.services: dict[str, Service] = {s.id: s for s in config.services}
        self.counter_config = {c.id: c for c in config.counters}
        self.day: date | None = None
        self.tickets: dict[int, Ticket] = {}  # today's open tickets and current ones
        self.counters: dict[str, CounterRuntime] = {c.id: CounterRuntime(c.id) for c in config.counters}
        self.last_seq: dict[str, int] = {}
        self.issued: dict[str, int] = {}
        self.next_ticket_id = 1
        self.next_event_id = 1
        # Today's latest calls and recalls, per zone (oldest first): each hall's board keeps its
        # own history however busy the other halls are.
        self.zone_calls: dict[str, deque[Event]] = {}
        self.pending = Changes()
        self._latest: datetime | None = None  # the latest time now() gave (it never goes back)
        self._by_number: dict[str, int] = {}
        # Each counter's last finished ticket, while a rating may still land on it: set when a
        # service ends, dropped when the next client's service starts (START) or a no-show happens.
        self._finished: dict[str, Ticket] = {}
        self._by_token: dict[str, int] = {}
        # Waiting tickets in the routing rule's order (server/queues.py).
        self.queues = WaitingQueues(self.services, self.counters)
        # Service.auto_cutoff's answer per service, for one state of the queues and one minute.
        self._auto_cutoff: dict[str, tuple[tuple[int, int, date | None], datetime | None]] = {}
        # Today's bookings not checked in yet, as plain values (server/estimates/appointments.py),
        # handed in by the server (server/booking/feed.py) or the simulator; the estimator reads them.
        self.booked_visits: dict[str, tuple[BookedVisit, ...]] = {}
        self.booked_version = 0

    # ------------------------------------------------------------------ state in/out

    def restore(self, state: Restored, observe: bool = True) -> None:
        """Load the state a store kept; the next command then rolls the day if needed.

        Also how the server throws away changes it could not write (a full disk): it restores
        what is on disk again (``observe=False``: the estimator has seen those services).
        """
        self.pending = Changes()
        self.counters = {c.id: CounterRuntime(c.id) for c in self.config.counters}
        self.day = state.day
        self.tickets = {t.id: t for t in state.tickets}
        self.queues = WaitingQueues(self.services, self.counters)
        for t in self.tickets.values():
            if t.status == TicketStatus.WAITING:
                self.queues.add(t)
        self._by_number = {t.number: t.id for t in state.tickets}
        self._by_token = {t.token: t.id for t in state.tickets}
        for c in state.counters:
            if c.id in self.counters:
                self.counters[c.id] = c
        self.last_seq = dict(state.last_seq)
        self.issued = dict(state.issued)
        self.next_ticket_id = state.next_ticket_id
        self.next_event_id = state.next_event_id
        self.zone_calls = {}
        for ev in state.recent_calls:
            self._remember_call(ev)
        by_id = {t.id: t for t in state.last_finished if t.day == state.day}
        self._finished = {
            c.id: by_id[c.last_finished]
            for c in self.counters.values()
            if c.last_finished is not None and c.last_finished in by_id
        }
        if observe:
            for service, seconds in state.service_times:
                self.estimator.observe(service, seconds)

    def take_changes(self) -> Changes:
        changes, self.pending = self.pending, Changes()
        return changes

    def now(self) -> datetime:
        """The clock, never earlier than a time it already gave.

        Why: a Pi without a real-time clock can boot with a stale time and then step it
        back or forth when NTP answers. Time running backwards would reorder the queue
        (an earlier queue time jumps ahead) or roll the office day back and repeat numbers.
        """
        now = self.clock()
        if now.tzinfo is None:
            raise ValueError("the engine's clock must return aware datetimes")
        if self._latest is not None and now < self._latest:
            return self._latest
        self._latest = now
        return now

    def is_idle(self) -> bool:
        """No ticket is open: nothing waits, is called or is being served (a safe moment to
        take over a step of the system clock, see server/clock.py)."""
        return not self.tickets

    def time_adjusted(self) -> None:
        """The clock was set to the system's time while idle: forget what was measured on the
        old timeline (the floor under :meth:`now`, the ratings window of finished clients)."""
        self._latest = None
        self._finished = {}

    def office_day(self, now: datetime) -> date:
        start = self.config.office.day_starts
        local = now.astimezone(self.tz) - timedelta(hours=start.hour, minutes=start.minute)
        return local.date()

    # ------------------------------------------------------------------ events

    def _event(self, kind: EventKind, now: datetime, ticket: Ticket | None = None, **kw: Any) -> Event:
        ev = Event(
            id=self.next_event_id,
            kind=kind,
            at=now,
            day=self.day or self.office_day(now),
            ticket_id=ticket.id if ticket else None,
            ticket=ticket.number if ticket else None,
            service=kw.pop("service", ticket.service if ticket else None),
            **kw,
        )
        self.next_event_id += 1
        self.pending.events.append(ev)
        if ticket is not None:
            self.pending.tickets[ticket.id] = ticket
            self.pending.services.add(ticket.service)
        if ev.counter:
            self.pending.counters.add(ev.counter)
        if kind in (EventKind.CALL, EventKind.RECALL):
            self._remember_call(ev)
        self.estimator.on_event(ev, self)  # estimator hook (issue 15): it learns from every event
        return ev

    ZONE_CALL_MEMORY = RECENT_CALLS * 8
    """Calls kept per zone: enough for RECENT_CALLS distinct tickets even with many recalls."""

    def _remember_call(self, ev: Event) -> None:
        zone = str(ev.data.get("zone", ""))
        self.zone_calls.setdefault(zone, deque(maxlen=self.ZONE_CALL_MEMORY)).append(ev)

    # ------------------------------------------------------------------ the office day

    def roll_day(self) -> datetime:
        """Start a new office day if the clock passed ``day_starts``; returns now.

        Tickets left from the previous day are cancelled (their holders went home) and
        counters close, so the new day starts at A001 with every counter closed.
        """
        now = self.now()
        today = self.office_day(now)
        if self.day is not None and today <= self.day:  # never back to an earlier day (a restart with a stale clock)
            return now
        if self.day is not None:
            for t in sorted(self.tickets.values(), key=lambda t: t.id):
                if t.status.is_open:
                    t.status = TicketStatus.CANCELLED
                    t.finished_at = now
                    self._event(EventKind.CANCEL, now, t, counter=t.counter, data={"reason": "day_end"})
            for c in self.counters.values():
                if c.status != CounterStatus.CLOSED:
                    self._event(EventKind.COUNTER_CLOSE, now, counter=c.id, data={"reason": "day_end"})
                if c.clerk:
                    self._event(EventKind.SIGN_OUT, now, counter=c.id, clerk=c.clerk)
                self.counters[c.id] = CounterRuntime(c.id)
                self.pending.counters.add(c.id)
            self.pending.services.update(self.services)
        self.day = today
        self.tickets = {}
        self.queues = WaitingQueues(self.services, self.counters)
        self._by_number = {}
        self._by_token = {}
        self._finished = {}
        self.last_seq = {}
        self.issued = {}
        self.zone_calls = {}
        return now

    # ------------------------------------------------------------------ availability

    def availability(
        self, service: Service, now: datetime, walk_in: WaitEstimate | None = None
    ) -> tuple[ErrorCode | None, str]:
        """Why a ticket for ``service`` cannot be taken now, or (None, "") if it can.

        ``walk_in``: the estimator's prediction for a walk-in ticket taken now, when the caller
        has it already (the services message, a walk-in ticket): ``auto_cutoff`` reuses it."""
        local = now.astimezone(self.tz)
        hours = service.hours_on(local.weekday())
        t = local.time()
        if hours is None or t < hours.opens or t >= hours.closes:
            return ErrorCode.SERVICE_CLOSED, f"{service.name.en} is closed now"
        cutoff = (datetime.combine(local.date(), hours.closes) - timedelta(minutes=service.cutoff_min)).time()
        if t >= cutoff:
            return ErrorCode.CUT_OFF, (
                f"{service.name.en}: no new tickets in the last {service.cutoff_min} min before closing"
            )
        if service.daily_limit is not None and self.issued.get(service.id, 0) >= service.daily_limit:
            return ErrorCode.LIMIT_REACHED, f"{service.name.en}: today's {service.daily_limit} tickets are all taken"
        if service.auto_cutoff and (closes := self._runs_to_closing(service, now, walk_in)) is not None:
            return ErrorCode.CUT_OFF, (
                f"{service.name.en}: the people already waiting fill the time until "
                f"{closes.astimezone(self.tz):%H:%M}; no new tickets today"
            )
        return None, ""

    def _runs_to_closing(self, service: Service, now: datetime, walk_in: WaitEstimate | None) -> datetime | None:
        """``auto_cutoff``: the closing time if the queue already runs to it (server/estimates/cutoff.py).

        Why cached: availability is asked for every services message and every ticket. The
        answer changes with the queues and counters (each change is an event) and slowly with
        the time, so it is kept per service for one event count and one minute. Only the
        default estimator advises; with another one the fixed ``cutoff_min`` alone applies.
        """
        if not isinstance(self.estimator, HonestEstimator):
            return None
        key = (self.next_event_id, int(now.timestamp()) // 60, self.day)
        memo = self._auto_cutoff.get(service.id)
        if memo is not None and memo[0] == key:
            return memo[1]
        closes = runs_to_closing(self.estimator, self, service.id, walk_in)
        self._auto_cutoff[service.id] = (key, closes)
        return closes

    # ------------------------------------------------------------------ queries

    def waiting(self, service: str | None = None) -> list[Ticket]:
        return [
            t
            for t in self.tickets.values()
            if t.status == TicketStatus.WAITING and (service is None or t.service == service)
        ]

    def waiting_counts(self) -> dict[str, int]:
        """People waiting per service (not counting tickets sent to a specific counter)."""
        return {s: self.queues.count(s) for s in self.services}

    def personal_waiting(self, counter_id: str) -> int:
        """Tickets transferred to this very counter and waiting there."""
        return self.queues.personal_count(counter_id)

    def being_served(self, service: str) -> int:
        """Tickets of ``service`` called or in service now (each is some counter's current one)."""
        return sum(
            1 for c in self.counters.values() if c.current is not None and self._service_of(c.current) == service
        )

    def _service_of(self, ticket_id: int) -> str | None:
        t = self.tickets.get(ticket_id)
        return t.service if t else None

    def longest_wait_s(self, service: str) -> int:
        """Seconds the longest-waiting ticket of ``service`` has waited (0 if nobody waits)."""
        oldest = self.queues.oldest(service)
        return max(0, int((self.now() - oldest).total_seconds())) if oldest else 0

    def ticket_by_token(self, token: str) -> Ticket | None:
        """Today's open ticket with this status-page token, or None (the store has the rest)."""
        tid = self._by_token.get(token)
        return self.tickets.get(tid) if tid is not None else None

    def current_ticket(self, counter_id: str) -> Ticket | None:
        cur = self.counters[counter_id].current
        return self.tickets.get(cur) if cur is not None else None

    def ticket_by_number(self, number: str) -> Ticket | None:
        tid = self._by_number.get(number)
        return self.tickets.get(tid) if tid is not None else None

    def open_counters(self, service: str) -> list[str]:
        return [
            cid
            for cid, c in self.counters.items()
            if c.status == CounterStatus.OPEN and service in self.counter_config[cid].services
        ]

    def free_counters(self, service: str) -> int:
        """Open counters serving ``service`` with nobody at them (called or being served):
        with nobody ahead, a resident there is called at once (the estimate's 0 min)."""
        return sum(1 for cid in self.open_counters(service) if self.counters[cid].current is None)

    def capacity(self, service: str) -> float:
        """Counters' worth serving ``service``: a counter shared by k services counts 1/k.

        Why: a counter that also serves two other busy services gives this one only a
        part of its time. The share is taken among the services that have people
        waiting, since an empty queue takes no counter time.
        """
        counts = self.waiting_counts()
        total = 0.0
        for cid in self.open_counters(service):
            busy = [s for s in self.counter_config[cid].services if counts.get(s, 0) > 0 or s == service]
            total += 1.0 / len(busy)
        return total

    def _overdue_before(self, service: str, now: datetime) -> datetime:
        """Tickets of ``service`` queued before this are over its target wait (routing rule 2)."""
        return now - timedelta(minutes=self.services[service].target_wait_min)

    def people_ahead(self, service: str, priority: bool) -> int:
        """How many tickets the routing rule calls before a ticket of ``service`` taken now.

        A priority ticket goes after the overdue ordinary tickets (the routing rule calls
        those first) and the other priority tickets; an ordinary one after everybody.
        """
        now = self.now()
        return self.queues.ahead_in_service(
            service, priority, (now, self.next_ticket_id), self._overdue_before(service, now)
        )

    def people_ahead_of(self, ticket: Ticket) -> int | None:
        """How many tickets are called before this waiting ticket, in the order NEXT takes them.

        The one answer to "who is ahead" for the ticket page, the kiosk and the clerk panel
        (server/office.py), derived from the same keys as :meth:`pick_next`. None for a
        ticket that is not waiting.
        """
        if ticket.status != TicketStatus.WAITING:
            return None
        entry = (ticket.queued_at, ticket.id)
        if ticket.target_counter is not None:
            return self.queues.ahead_in_personal(ticket.target_counter, entry)
        if ticket.is_appointment:  # appointments booked earlier (walk-ins do not go ahead of it)
            return self.queues.ahead_in_appointments(ticket.service, entry)
        now = self.now()
        return self.queues.ahead_in_service(
            ticket.service, ticket.priority, entry, self._overdue_before(ticket.service, now)
        )

    def estimate_for(self, ticket: Ticket) -> WaitEstimate | None:
        """The live estimate for this waiting ticket (its status page), None if it is not waiting."""
        if ticket.status != TicketStatus.WAITING:
            return None
        return self.ticket_wait(ticket)

    def callable_by(self, counter_id: str, limit: int = 200) -> list[Ticket]:
        """The tickets this counter may call, in the order NEXT would take them (the first is
        :meth:`pick_next`'s). At most ``limit``: a clerk reads the top of the list."""
        now = self.now()
        ids = self.queues.personal_ids(counter_id)
        personal = [self.tickets[i] for i in ids]
        cfg = self.counter_config[counter_id]
        due = sorted(
            (self.tickets[i] for s in cfg.services for i in self.queues.appointment_ids(s)),
            key=lambda t: (t.queued_at, t.id),
        )
        personal += [t for t in due if self._appointment_due(t, now)]
        others = [(pref, self.tickets[i]) for pref, s in enumerate(cfg.services) for i in self.queues.service_ids(s)]
        others.sort(key=lambda head: self._routing_key(head, now))
        return (personal + [t for _, t in others])[:limit]

    # -- estimator hooks (issue 15): the estimator reads the engine through server.estimates.base.EngineView

    def estimate_wait(self, service: str, priority: bool = False) -> int:
        """Seconds, one number (``estimated_wait_min`` for devices that know no range)."""
        return self.estimator.predict(service, priority, self).point_s

    def estimate_wait_range(self, service: str, priority: bool = False) -> tuple[int, int] | None:
        """Minutes [lo, hi] rounded outward, or None: "we cannot estimate the wait now"."""
        return self.estimator.predict(service, priority, self).range_min

    def ticket_wait(self, ticket: Ticket) -> WaitEstimate:
        """The live estimate for a waiting ticket (its status page), from its place in the queue."""
        if ticket.is_appointment:  # called at its booked time: the wait is the time until then
            assert ticket.appointment_at is not None
            left = max(0, int((ticket.appointment_at - self.now()).total_seconds()))
            return WaitEstimate(
                point_s=left, range_min=round_outward(left, left), ahead=self.people_ahead_of(ticket) or 0
            )
        return self.estimator.predict(ticket.service, ticket.priority, self, ticket=ticket)

    def set_booked_visits(self, visits: Iterable[BookedVisit]) -> None:
        """Today's bookings not checked in yet (all of them: the previous set is replaced).

        Why the engine keeps them: the walk-ins' estimate must leave room for the appointments
        still to come (rule 1a), and the engine stays pure, so the bookings come in as values
        from whoever reads the bookings table (docs/estimates.md, "Appointments").
        """
        by_service: dict[str, list[BookedVisit]] = {}
        for v in visits:
            by_service.setdefault(v.service, []).append(v)
        self.booked_visits = {s: tuple(sorted(vs, key=lambda v: v.at)) for s, vs in by_service.items()}
        self.booked_version += 1

    def _forget_booked(self, service: str, code: str) -> None:
        """A booking just checked in is a ticket now: no longer a visit to come."""
        visits = self.booked_visits.get(service)
        if visits and any(v.code == code for v in visits):
            self.booked_visits[service] = tuple(v for v in visits if v.code != code)
            self.booked_version += 1

    def expected_appointments(self, service: str) -> list[Reserved]:
        """The service's appointments still to be called today, checked in or booked (EngineView)."""
        waiting = [self.tickets[i].appointment_at for i in self.queues.appointment_ids(service)]
        booked = self.booked_visits.get(service, ())
        if not waiting and not booked:
            return []
        rules = self.config.booking
        # no scan of the tickets for checked-in codes: check_in drops its visit (_forget_booked), and
        # the feed rereads only committed rows, where that booking is already marked checked in
        return expected_appointments(
            [at for at in waiting if at is not None], booked, set(), self.now(), rules.call_window_min, rules.late_min
        )

    def waiting_queue(self, service: str, priority: bool) -> list[tuple[datetime, int]]:
        """(queue time, ticket id) of the service's waiting tickets of one class, in call order. Do not modify."""
        return self.queues.entries(service, priority)

    # ------------------------------------------------------------------ issuing

    def issue(
        self,
        service_id: str,
        priority: bool = False,
        origin: str | None = None,
        expires_at: datetime | None = None,
        booking: str | None = None,
    ) -> tuple[Ticket, int]:
        """Issue a ticket; returns it and the number of people ahead of it (``booking``: the code
        of a booking checked in too late, which joins the walk-ins, docs/queueing.md)."""
        now = self.roll_day()
        _refuse_if_expired(expires_at, now, "the kiosk has told the resident no ticket was issued")
        service = self.services.get(service_id)
        if service is None:
            raise Refusal(ErrorCode.UNKNOWN_SERVICE, f"no service {service_id!r}")
        # auto_cutoff asks for the walk-in estimate; a walk-in ticket prints that same one
        walk_in = self.estimator.predict(service.id, False, self) if service.auto_cutoff and not priority else None
        code, why = self.availability(service, now, walk_in)
        if code is not None:
            raise Refusal(code, why)
        seq = self.last_seq.get(service.prefix, 0) + 1
        if seq > MAX_TICKET_SEQ:  # the protocol's widest number (docs/protocol.md, "Ticket numbers")
            raise Refusal(
                ErrorCode.LIMIT_REACHED, f"{service.name.en}: every number of prefix {service.prefix} is taken today"
            )
        ahead = self.people_ahead(service.id, priority)
        estimate = walk_in or self.estimator.predict(service.id, priority, self)  # estimator hook (issue 15)
        number = ticket_number(service.prefix, seq)
        ticket = Ticket(
            id=self.next_ticket_id,
            day=self.day,  # type: ignore[arg-type]
            number=number,
            service=service.id,
            priority=priority,
            token=self.token_factory(),
            issued_at=now,
            queued_at=now,
            estimated_wait_s=estimate.point_s,
            estimated_wait_range_min=estimate.range_min,
            origin=origin,
            booking=booking,
        )
        self.next_ticket_id += 1
        self.last_seq[service.prefix] = seq
        self.issued[service.id] = self.issued.get(service.id, 0) + 1
        self.tickets[ticket.id] = ticket
        self.queues.add(ticket)
        self._by_number[number] = ticket.id
        self._by_token[ticket.token] = ticket.id
        self._event(
            EventKind.ISSUE,
            now,
            ticket,
            data={
                "priority": priority,
                "estimated_wait_s": estimate.point_s,
                "estimated_wait_range_min": list(estimate.range_min) if estimate.range_min else None,
                "origin": origin,
                "ahead": ahead,
                **({"booking": booking} if booking else {}),
            },
        )
        self._touch_counters_serving(service.id)
        return ticket, ahead

    def check_in(
        self,
        service_id: str,
        appointment_at: datetime,
        booking: str,
        origin: str | None = None,
        expires_at: datetime | None = None,
    ) -> tuple[Ticket, int]:
        """A resident with a booking for ``appointment_at`` checks in (the kiosk, the reception).

        On time (from ``early_min`` before to ``late_min`` after the booked time): an
        appointment ticket (``[booking] prefix``, R001) that waits in its service's
        appointment queue and is called at its time ahead of walk-ins (:meth:`pick_next`).
        Later: a walk-in ticket of the service, or a refusal (``[booking] late``). Checking in
        again while its ticket is open gives the same ticket (a second print). The caller
        checked that the booking exists and is not cancelled (server/booking/checkin.py).
        """
        now = self.roll_day()
        _refuse_if_expired(expires_at, now, "the kiosk has told the resident no ticket was issued")
        service = self.services.get(service_id)
        if service is None:
            raise Refusal(ErrorCode.UNKNOWN_SERVICE, f"no service {service_id!r}")
        for t in self.tickets.values():
            if t.booking == booking:
                return t, self.people_ahead_of(t) or 0
        rules = self.config.booking
        booked = appointment_at.astimezone(self.tz)
        if booked.date() != now.astimezone(self.tz).date():
            raise Refusal(ErrorCode.BOOKING_OTHER_DAY, f"this booking is for {booked:%d.%m.%Y %H:%M}, not today")
        opens = appointment_at - timedelta(minutes=rules.early_min)
        if now < opens:
            raise Refusal(
                ErrorCode.BOOKING_TOO_EARLY,
                f"the visit is booked for {booked:%H:%M}; check in from {opens.astimezone(self.tz):%H:%M}",
            )
        if now > appointment_at + timedelta(minutes=rules.late_min):
            if rules.late == "refuse":
                raise Refusal(
                    ErrorCode.BOOKING_TOO_LATE,
                    f"the visit was booked for {booked:%H:%M}; check-in closed {rules.late_min} min after it",
                )
            return self.issue(service_id, False, origin, booking=booking)
        seq = self.last_seq.get(rules.prefix, 0) + 1
        if seq > MAX_TICKET_SEQ:
            raise Refusal(ErrorCode.LIMIT_REACHED, f"every number of prefix {rules.prefix} is taken today")
        ticket = Ticket(
            id=self.next_ticket_id,
            day=self.day,  # type: ignore[arg-type]
            number=ticket_number(rules.prefix, seq),
            service=service.id,
            priority=False,
            token=self.token_factory(),
            issued_at=now,
            queued_at=appointment_at,  # its place: the booked time (docs/queueing.md)
            origin=origin,
            appointment_at=appointment_at,
            booking=booking,
        )
        ahead = self.queues.ahead_in_appointments(service.id, (ticket.queued_at, ticket.id))
        self.next_ticket_id += 1
        self.last_seq[rules.prefix] = seq
        self.tickets[ticket.id] = ticket
        self.queues.add(ticket)
        self._forget_booked(service.id, booking)
        self._by_number[ticket.number] = ticket.id
        self._by_token[ticket.token] = ticket.id
        estimate = self.ticket_wait(ticket)
        ticket.estimated_wait_s, ticket.estimated_wait_range_min = estimate.point_s, estimate.range_min
        self._event(
            EventKind.ISSUE,
            now,
            ticket,
            data={
                "priority": False,
                "estimated_wait_s": estimate.point_s,
                "estimated_wait_range_min": list(estimate.range_min) if estimate.range_min else None,
                "origin": origin,
                "ahead": ahead,
                "booking": booking,
                "appointment_at": appointment_at.isoformat(),
            },
        )
        self._touch_counters_serving(service.id)
        return ticket, ahead

    def _appointment_due(self, ticket: Ticket, now: datetime) -> bool:
        """A checked-in appointment may be called: its booked time less ``call_window_min`` has come."""
        assert ticket.appointment_at is not None
        return now >= ticket.appointment_at - timedelta(minutes=self.config.booking.call_window_min)

    def _touch_counters_serving(self, service: str) -> None:
        for cid, cfg in self.counter_config.items():
            if service in cfg.services:
                self.pending.counters.add(cid)
        self.pending.services.add(service)

    # ------------------------------------------------------------------ routing

    def pick_next(self, counter_id: str) -> Ticket | None:
        """The ticket "next" calls at this counter (docs/queueing.md).

        1. tickets transferred to this very counter, oldest first;
        1a. checked-in appointments whose call window has come, the earliest booked time first;
        2. a ticket that has waited beyond its service's target, the most overdue first;
        3. priority tickets before others;
        4. the counter's preference order of services, then the service's priority;
        5. first come, first served (queue time, then issue order).
        """
        now = self.now()
        personal = self.queues.personal_head(counter_id)
        if personal is not None:
            return self.tickets[personal]
        cfg = self.counter_config[counter_id]
        due = [
            (head, preference)
            for preference, service in enumerate(cfg.services)
            if (head := self.queues.appointment_head(service)) is not None
            and self._appointment_due(self.tickets[head[1]], now)
        ]
        if due:
            return self.tickets[min(due)[0][1]]
        heads = [
            (preference, self.tickets[head[1]])
            for preference, service in enumerate(cfg.services)
            for head in (self.queues.head(service, True), self.queues.head(service, False))
            if head is not None
        ]
        if not heads:
            return None
        return min(heads, key=lambda head: self._routing_key(head, now))[1]

    def _routing_key(self, head: tuple[int, Ticket], now: datetime) -> tuple[int, float, int, int, int, datetime, int]:
        """Rules 2-5 of :meth:`pick_next` for a ticket at the counter's ``preference`` index."""
        preference, t = head
        target = self.services[t.service].target_wait_min * 60
        over = (now - t.queued_at).total_seconds() - target
        overdue = over > 0
        return (
            0 if overdue else 1,
            -over if overdue else 0,
            0 if t.priority else 1,
            preference,
            -self.services[t.service].priority,
            t.queued_at,
            t.id,
        )

    # ------------------------------------------------------------------ counter commands

    def command(self, counter_id: str, cmd: Command) -> Ticket | None:
        """Carry out a counter's command; returns the ticket it concerns (if any).

        The action's handler comes from :attr:`HANDLERS`, one method per action: to add an
        action, add it to ``protocol.messages.CounterAction``, write its ``_cmd_*`` method and
        list it there (docs/architecture.md walks through it).
        """
        now = self.roll_day()
        if counter_id not in self.counters:
            raise Refusal(ErrorCode.UNKNOWN_COUNTER, f"no counter {counter_id!r}")
        _refuse_if_expired(cmd.expires_at, now, "the device has told the clerk it failed")
        counter = self.counters[counter_id]
        current = self.current_ticket(counter_id)
        if cmd.current is not None:
            believed = cmd.current or None
            actual = current.number if current else None
            if believed != actual:
                raise Refusal(
                    ErrorCode.STALE,
                    f"counter {counter_id} serves {actual or 'nobody'}, not {believed or 'nobody'}",
                )
        return self.HANDLERS[cmd.action](self, counter, current, cmd, now)

    def _require_current(self, current: Ticket | None, counter: CounterRuntime) -> Ticket:
        if current is None:
            raise Refusal(ErrorCode.NO_CURRENT_TICKET, f"counter {counter.id} is not serving anyone")
        return current

    def _set_status(self, counter: CounterRuntime, status: CounterStatus, now: datetime) -> None:
        if counter.status == status:
            return
        kind = {
            CounterStatus.OPEN: EventKind.COUNTER_OPEN,
            CounterStatus.PAUSED: EventKind.COUNTER_PAUSE,
            CounterStatus.CLOSED: EventKind.COUNTER_CLOSE,
        }[status]
        counter.status = status
        self._event(kind, now, counter=counter.id, clerk=counter.clerk)
        for s in self.counter_config[counter.id].services:
            self.pending.services.add(s)

    def _end(self, counter: CounterRuntime, ticket: Ticket, status: TicketStatus, now: datetime) -> None:
        """Finish or no-show the counter's current ticket."""
        if status == TicketStatus.FINISHED:
            if ticket.started_at is None:
                ticket.started_at = ticket.called_at
            self.estimator.observe(ticket.service, (now - ticket.started_at).total_seconds())  # type: ignore[operator]
            kind = EventKind.FINISH
            counter.last_finished = ticket.id
            self._finished[counter.id] = ticket
        else:
            kind = EventKind.NO_SHOW
            self._forget_finished(counter)  # the next person at the counter is not the one served
        ticket.status = status
        ticket.finished_at = now
        counter.current = None
        self._event(kind, now, ticket, counter=counter.id, clerk=counter.clerk)
        del self.tickets[ticket.id]
        self._by_number.pop(ticket.number, None)
        self._by_token.pop(ticket.token, None)

    def _forget_finished(self, counter: CounterRuntime) -> None:
        """No rating can land on the counter's last finished ticket any more."""
        counter.last_finished = None
        self._finished.pop(counter.id, None)
        self.pending.counters.add(counter.id)

    def _call(self, counter: CounterRuntime, ticket: Ticket, now: datetime) -> Ticket:
        if counter.status != CounterStatus.OPEN:
            self._set_status(counter, CounterStatus.OPEN, now)
        self.queues.remove(ticket)
        ticket.status = TicketStatus.CALLED
        ticket.counter = counter.id
        ticket.target_counter = None
        ticket.called_at = now
        ticket.started_at = None
        if ticket.first_called_at is None:
            ticket.first_called_at = now
        ticket.clerk = counter.clerk
        counter.current = ticket.id
        self._event(
            EventKind.CALL,
            now,
            ticket,
            counter=counter.id,
            clerk=counter.clerk,
            data={"zone": self.counter_config[counter.id].zone},
        )
        self._touch_counters_serving(ticket.service)
        return ticket

    def _cmd_next(self, counter: CounterRuntime, current: Ticket | None, cmd: Command, now: datetime) -> Ticket | None:
        ticket = self.pick_next(counter.id)
        # The client this very press finishes (below) may still rate while leaving: the
        # rating rule (_rated_ticket) tells them from the client now called.
        if current is not None:  # (the current ticket is in no queue: the pick stands)
            self._end(counter, current, TicketStatus.FINISHED, now)
        if ticket is None:
            if counter.status != CounterStatus.OPEN:
                self._set_status(counter, CounterStatus.OPEN, now)
            self.pending.counters.add(counter.id)
            return None
        return self._call(counter, ticket, now)

    def _cmd_call(self, counter: CounterRuntime, current: Ticket | None, cmd: Command, now: datetime) -> Ticket:
        if cmd.ticket is None:
            raise Refusal(ErrorCode.INVALID_REQUEST, "call needs 'ticket'")
        ticket = self.ticket_by_number(cmd.ticket)
        if ticket is None or ticket.status != TicketStatus.WAITING:
            raise Refusal(ErrorCode.UNKNOWN_TICKET, f"{cmd.ticket} is not waiting")
        served_here = ticket.target_counter == counter.id or (
            ticket.target_counter is None and ticket.service in self.counter_config[counter.id].services
        )
        if not served_here:
            raise Refusal(ErrorCode.NOT_ALLOWED, f"counter {counter.id} does not serve {cmd.ticket}")
        if ticket.is_appointment and not self._appointment_due(ticket, now):
            assert ticket.appointment_at is not None
            raise Refusal(
                ErrorCode.NOT_ALLOWED,
                f"{cmd.ticket} is booked for {ticket.appointment_at.astimezone(self.tz):%H:%M} and is not called before "
                f"{self.config.booking.call_window_min} min ahead of it",
            )
        if current is not None:
            self._end(counter, current, TicketStatus.FINISHED, now)
        return self._call(counter, ticket, now)

    def _cmd_recall(self, counter: CounterRuntime, current: Ticket | None, cmd: Command, now: datetime) -> Ticket:
        ticket = self._require_current(current, counter)
        if ticket.status != TicketStatus.CALLED:
            raise Refusal(ErrorCode.NOT_ALLOWED, f"{ticket.number} is already being served")
        since = now - ticket.called_at if ticket.called_at else None
        if since is not None and since < self.recall_guard:
            # Why: a double press of RECALL (two ids, same current) would otherwise make the
            # hall announce the same number twice while the first announcement still plays.
            raise Refusal(
                ErrorCode.TOO_SOON,
                f"{ticket.number} was called {since.total_seconds():.0f} s ago and is still being announced; "
                f"recall again after {self.recall_guard.total_seconds():.0f} s",
            )
        ticket.recalls += 1
        ticket.called_at = now
        self._event(
            EventKind.RECALL,
            now,
            ticket,
            counter=counter.id,
            clerk=counter.clerk,
            data={"zone": self.counter_config[counter.id].zone, "recalls": ticket.recalls},
        )
        return ticket

    def _cmd_start(self, counter: CounterRuntime, current: Ticket | None, cmd: Command, now: datetime) -> Ticket:
        ticket = self._require_current(current, counter)
        if ticket.status != TicketStatus.CALLED:
            raise Refusal(ErrorCode.NOT_ALLOWED, f"{ticket.number} is already being served")
        ticket.status = TicketStatus.SERVING
        ticket.started_at = now
        self._forget_finished(counter)  # this client is at the buttons now: ratings are theirs
        self._event(EventKind.START, now, ticket, counter=counter.id, clerk=counter.clerk)
        return ticket

    def _cmd_finish(self, counter: CounterRuntime, current: Ticket | None, cmd: Command, now: datetime) -> Ticket:
        ticket = self._require_current(current, counter)
        self._end(counter, ticket, TicketStatus.FINISHED, now)
        return ticket

    def _cmd_no_show(self, counter: CounterRuntime, current: Ticket | None, cmd: Command, now: datetime) -> Ticket:
        ticket = self._require_current(current, counter)
        if ticket.status != TicketStatus.CALLED:
            raise Refusal(ErrorCode.NOT_ALLOWED, f"{ticket.number} came: finish it instead")
        self._end(counter, ticket, TicketStatus.NO_SHOW, now)
        return ticket

    def _cmd_transfer(self, counter: CounterRuntime, current: Ticket | None, cmd: Command, now: datetime) -> Ticket:
        ticket = self._require_current(current, counter)
        if (cmd.target_service is None) == (cmd.target_counter is None):
            raise Refusal(ErrorCode.INVALID_REQUEST, "transfer needs exactly one of target_service, target_counter")
        if cmd.target_service is not None:
            if cmd.target_service not in self.services:
                raise Refusal(ErrorCode.UNKNOWN_SERVICE, f"no service {cmd.target_service!r}")
            target_service, target_counter = cmd.target_service, None
        else:
            if cmd.target_counter not in self.counters:
                raise Refusal(ErrorCode.UNKNOWN_COUNTER, f"no counter {cmd.target_counter!r}")
            if cmd.target_counter == counter.id:
                raise Refusal(ErrorCode.NOT_ALLOWED, "cannot transfer a ticket to its own counter")
            target_service, target_counter = ticket.service, cmd.target_counter
        from_service = ticket.service
        ticket.status = TicketStatus.WAITING
        ticket.service = target_service
        ticket.target_counter = target_counter
        ticket.counter = None
        ticket.called_at = None
        ticket.started_at = None
        ticket.transfers += 1
        self.queues.add(ticket)
        counter.current = None
        self._event(
            EventKind.TRANSFER,
            now,
            ticket,
            counter=counter.id,
            clerk=counter.clerk,
            data={"from_service": from_service, "to_service": target_service, "to_counter": target_counter},
        )
        self.pending.services.add(from_service)
        self._touch_counters_serving(target_service)
        if target_counter:
            self.pending.counters.add(target_counter)
        return ticket

    def _cmd_pause(self, counter: CounterRuntime, current: Ticket | None, cmd: Command, now: datetime) -> Ticket | None:
        if counter.status == CounterStatus.CLOSED:
            raise Refusal(ErrorCode.COUNTER_CLOSED, f"counter {counter.id} is closed")
        self._set_status(counter, CounterStatus.PAUSED, now)
        self.pending.counters.add(counter.id)
        return current

    def _cmd_open(self, counter: CounterRuntime, current: Ticket | None, cmd: Command, now: datetime) -> Ticket | None:
        self._set_status(counter, CounterStatus.OPEN, now)
        self.pending.counters.add(counter.id)
        return current

    def _cmd_close(self, counter: CounterRuntime, current: Ticket | None, cmd: Command, now: datetime) -> None:
        # START is optional, so a called client counts as served when the counter closes.
        if current is not None:
            self._end(counter, current, TicketStatus.FINISHED, now)
        self._set_status(counter, CounterStatus.CLOSED, now)
        self.pending.counters.add(counter.id)
        return None

    def _cmd_sign_in(
        self, counter: CounterRuntime, current: Ticket | None, cmd: Command, now: datetime
    ) -> Ticket | None:
        if not cmd.clerk:
            raise Refusal(ErrorCode.INVALID_REQUEST, "sign_in needs 'clerk'")
        if counter.clerk == cmd.clerk:
            return current
        if counter.clerk:
            self._event(EventKind.SIGN_OUT, now, counter=counter.id, clerk=counter.clerk)
        counter.clerk = cmd.clerk
        self._event(EventKind.SIGN_IN, now, counter=counter.id, clerk=cmd.clerk)
        return current

    def _cmd_sign_out(
        self, counter: CounterRuntime, current: Ticket | None, cmd: Command, now: datetime
    ) -> Ticket | None:
        if counter.clerk:
            self._event(EventKind.SIGN_OUT, now, counter=counter.id, clerk=counter.clerk)
            counter.clerk = None
        return current

    def _rated_ticket(self, counter: CounterRuntime, current: Ticket | None, now: datetime) -> Ticket:
        """Whose service a rating press at ``counter`` is about: the client most plausibly at the buttons.

        * The client who just left (the counter's last finished ticket) while still "leaving":
          within ``rating_window_s`` of the end of their service, and only while the next
          client's service has not started (START forgets the finished ticket; a called client
          may still be walking up).
        * Otherwise the client at the counter now (its current ticket, called or in service).
        * Otherwise nobody: ``expired`` if a service ended too long ago, else ``unknown_ticket``.

        Why: NEXT finishes one client and calls the next at once; a rule "the last finished
        ticket for 2 minutes" put the next client's rating on the previous one. Everything
        used here (last_finished with its finished_at, the current ticket's status) is stored,
        so a restarted server attributes the same press the same way.
        """
        finished = self._finished.get(counter.id)
        age = None
        if finished is not None:
            assert finished.finished_at is not None  # set by _end
            age = now - finished.finished_at
            leaving = age <= self.rating_window
            if leaving and (current is None or current.status == TicketStatus.CALLED):
                return finished
        if current is not None:
            return current
        if age is not None and finished is not None:
            raise Refusal(
                ErrorCode.EXPIRED,
                f"{finished.number} finished {age.total_seconds():.0f} s ago; a rating counts within "
                f"{self.rating_window.total_seconds():.0f} s of the end of the service, and nobody is "
                f"at counter {counter.id} now",
            )
        raise Refusal(
            ErrorCode.UNKNOWN_TICKET, f"counter {counter.id} has nobody to rate: no client now or just served"
        )

    def _cmd_rate(self, counter: CounterRuntime, current: Ticket | None, cmd: Command, now: datetime) -> Ticket:
        if cmd.rating is None:
            raise Refusal(ErrorCode.INVALID_REQUEST, "rate needs 'rating' (1-5)")
        ticket = self._rated_ticket(counter, current, now)
        if cmd.ticket is not None and cmd.ticket != ticket.number:
            raise Refusal(
                ErrorCode.UNKNOWN_TICKET,
                f"{cmd.ticket} is not the ticket a rating at counter {counter.id} is for now ({ticket.number})",
            )
        if ticket.rating is not None:
            raise Refusal(ErrorCode.NOT_ALLOWED, f"{ticket.number} has already been rated")
        ticket.rating = cmd.rating
        self._event(EventKind.RATING, now, ticket, counter=counter.id, clerk=ticket.clerk, data={"rating": cmd.rating})
        return ticket

    def _cmd_sync(self, counter: CounterRuntime, current: Ticket | None, cmd: Command, now: datetime) -> Ticket | None:
        return current

    HANDLERS: dict[CounterAction, Callable[..., Ticket | None]] = {
        CounterAction.NEXT: _cmd_next,
        CounterAction.CALL: _cmd_call,
        CounterAction.RECALL: _cmd_recall,
        CounterAction.START: _cmd_start,
        CounterAction.FINISH: _cmd_finish,
        CounterAction.NO_SHOW: _cmd_no_show,
        CounterAction.TRANSFER: _cmd_transfer,
        CounterAction.PAUSE: _cmd_pause,
        CounterAction.OPEN: _cmd_open,
        CounterAction.CLOSE: _cmd_close,
        CounterAction.SIGN_IN: _cmd_sign_in,
        CounterAction.SIGN_OUT: _cmd_sign_out,
        CounterAction.RATE: _cmd_rate,
        CounterAction.SYNC: _cmd_sync,
    }
    """Each counter action and the method that carries it out (the only dispatch)."""

    # ------------------------------------------------------------------ other inputs

    def record_fault(self, device: str, component: str, fault: str, message: str) -> None:
        now = self.roll_day()
        self._event(
            EventKind.DEVICE_FAULT,
            now,
            data={"device": device, "component": component, "fault": fault, "message": message},
        )

    def calls_for_zone(self, zone: str, limit: int = RECENT_CALLS) -> list[Event]:
        """The zone's latest calls, newest first, one per ticket (a recall replaces its call)."""
        seen: set[str] = set()
        out: list[Event] = []
        for ev in reversed(self.zone_calls.get(zone, ())):
            if ev.ticket in seen:
                continue
            seen.add(ev.ticket or "")
            out.append(ev)
            if len(out) == limit:
                break
        return out

    def zones(self) -> Iterable[str]:
        return sorted({c.zone for c in self.config.counters} | {s.zone for s in self.config.services})

    def apply_config(self, new: SiteConfig) -> None:
        """Take an edited config (server/admin.py) while the office runs.

        Only what does not reshape the state may change: hours, limits, targets, priorities,
        counters' profiles and names. The waiting queues are keyed by service id and counter id,
        tickets carry prefixes and calls carry zones, so those must stay (else ValueError and
        nothing changes).
        """

        def shape(c: SiteConfig) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]], str]:
            return (
                [(s.id, s.prefix, s.zone) for s in c.services],
                [(k.id, k.zone) for k in c.counters],
                c.office.timezone,
            )

        if shape(new) != shape(self.config):
            raise ValueError("service ids, prefixes, zones, counter ids and the time zone cannot change while running")
        self.config = new
        self.services = {s.id: s for s in new.services}
        self._auto_cutoff = {}  # hours and counters' profiles may have changed
        self.counter_config = {c.id: c for c in new.counters}
