"""The waiting tickets, kept sorted so routing and "who is ahead" cost O(log n), not O(n).

One sorted list per (service, priority class), and one per counter for tickets transferred
to that very counter. Each list is ordered by (queue time, ticket id). Why this shape: every
key of the routing rule (docs/queueing.md) is monotone in queue time *within* such a list
(all its tickets share a service, hence a target wait, and a class), so:

* NEXT compares only the heads of the lists a counter serves;
* a service's queue length is the sum of two list lengths;
* "how many are ahead of this ticket" is a few binary searches (:meth:`ahead_in_service`),
  and gives exactly the order NEXT calls them in, because it is derived from the same keys.

Plain data and no clock: the engine passes the "overdue since" cut-off in.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from datetime import datetime

from server.domain import Ticket

Entry = tuple[datetime, int]  # (queued_at, ticket id)
_AFTER_ANY_ID = 2**63  # sorts after every ticket id at the same queue time


class WaitingQueues:
    def __init__(self, services: Iterable[str], counters: Iterable[str]) -> None:
        self._service: dict[tuple[str, bool], list[Entry]] = {(s, p): [] for s in services for p in (False, True)}
        self._personal: dict[str, list[Entry]] = {c: [] for c in counters}
        # Checked-in appointments per service, by booked time (their queue time), then id.
        self._appointments: dict[str, list[Entry]] = {s: [] for s in services}

    # ------------------------------------------------------------------ membership

    def _list(self, t: Ticket) -> list[Entry]:
        if t.target_counter is not None:
            return self._personal[t.target_counter]
        if t.is_appointment:
            return self._appointments[t.service]
        return self._service[(t.service, t.priority)]

    def add(self, t: Ticket) -> None:
        bisect.insort(self._list(t), (t.queued_at, t.id))

    def remove(self, t: Ticket) -> None:
        entries = self._list(t)
        i = bisect.bisect_left(entries, (t.queued_at, t.id))
        if i == len(entries) or entries[i] != (t.queued_at, t.id):
            raise AssertionError(f"{t.number} is not in its queue")  # a bug, never a user error
        del entries[i]

    # ------------------------------------------------------------------ sizes and heads

    def count(self, service: str, priority: bool | None = None) -> int:
        """Tickets waiting for ``service`` (not those sent to a particular counter)."""
        if priority is None:
            return len(self._service[(service, False)]) + len(self._service[(service, True)])
        return len(self._service[(service, priority)])

    def personal_count(self, counter: str) -> int:
        """Tickets transferred to ``counter`` itself, still waiting."""
        return len(self._personal[counter])

    def personal_head(self, counter: str) -> int | None:
        entries = self._personal[counter]
        return entries[0][1] if entries else None

    def appointment_head(self, service: str) -> Entry | None:
        """The checked-in appointment of ``service`` with the earliest booked time."""
        entries = self._appointments[service]
        return entries[0] if entries else None

    def appointment_ids(self, service: str) -> list[int]:
        return [i for _, i in self._appointments[service]]

    def ahead_in_appointments(self, service: str, entry: Entry) -> int:
        return self._before(self._appointments[service], entry)

    def head(self, service: str, priority: bool) -> Entry | None:
        entries = self._service[(service, priority)]
        return entries[0] if entries else None

    def entries(self, service: str, priority: bool) -> list[Entry]:
        """The (queue time, id) list of one service and class, in order (read it, do not change it)."""
        return self._service[(service, priority)]

    def oldest(self, service: str) -> datetime | None:
        """Queue time of the longest-waiting ticket of ``service`` (either class)."""
        heads = [e[0] for e in (self.head(service, False), self.head(service, True)) if e is not None]
        return min(heads) if heads else None

    def service_ids(self, service: str) -> list[int]:
        """Every waiting ticket of ``service``, ordinary then priority (each by queue time)."""
        return [i for p in (False, True) for _, i in self._service[(service, p)]]

    def personal_ids(self, counter: str) -> list[int]:
        return [i for _, i in self._personal[counter]]

    # ------------------------------------------------------------------ who is ahead

    def _before(self, entries: list[Entry], entry: Entry) -> int:
        return bisect.bisect_left(entries, entry)

    def ahead_in_service(self, service: str, priority: bool, entry: Entry, overdue_before: datetime) -> int:
        """How many tickets of ``service`` the routing rule calls before a ticket with ``entry``
        (its queue time and id) in class ``priority``; ``overdue_before`` is the queue time
        before which a ticket is over the service's target wait.

        The rule within one service (docs/queueing.md): overdue tickets first, the longest
        waiting first; then priority tickets; then first come, first served. Within a service
        every ticket has the same target, so "more overdue" is "queued earlier".
        """
        ordinary, prio = self._service[(service, False)], self._service[(service, True)]
        queued_at = entry[0]
        if queued_at < overdue_before:
            # Overdue itself: the longer-waiting ones of either class; at an equal queue time
            # (a rush in one batch) priority first, then issue order.
            earlier, up_to = (queued_at, -1), (queued_at, _AFTER_ANY_ID)
            if priority:
                return self._before(ordinary, earlier) + self._before(prio, entry)
            return self._before(ordinary, entry) + self._before(prio, up_to)
        overdue_ordinary = self._before(ordinary, (overdue_before, -1))
        if priority:  # overdue ordinary tickets, then the priority tickets queued earlier
            return overdue_ordinary + self._before(prio, entry)
        # every priority ticket (overdue or not, it goes first), then ordinary ones queued earlier
        return len(prio) + self._before(ordinary, entry)

    def ahead_in_personal(self, counter: str, entry: Entry) -> int:
        return self._before(self._personal[counter], entry)
