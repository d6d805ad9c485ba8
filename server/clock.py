"""The server's clock: intervals on the monotonic clock, steps of the system clock taken only when safe.

Why: a Raspberry Pi has no real-time clock. It boots with a stale time and NTP corrects it
later, in a step, forwards or backwards. Following such a step at once broke the office:
a step forward of a day rolled the office day over (the waiting tickets were cancelled and
numbering restarted at A001), and a step back froze every time stamp for as long as the
step (waits and service times read 0), because the engine never lets time run backwards.

So the engine's time here is a *timeline*: the monotonic clock plus an offset. It runs on
without jumps whatever the system clock does, so every interval (a wait, a service, the
recall guard) is right. The system clock is compared at every reading:

* a difference within :data:`TOLERANCE_S` is drift and is followed (forwards at once; a
  small step back is absorbed, so the timeline never runs backwards);
* a larger difference is a *step*: logged once as a warning, shown on /health and the
  managers' live view, and never a reason to cancel a ticket. It is taken over (the
  offset changes) only when the office is idle, i.e. no ticket is open, so no queue order,
  wait or service spans the jump; an office that closes for the day is idle at the latest
  then, before the next day's first ticket.

Trust: the kernel says whether the system clock is synchronised (``adjtimex``: the flag
``timedatectl``'s "System clock synchronized" shows, set by systemd-timesyncd, chrony or
ntpd). It is reported on /health ("clock_synchronized") so the IT person sees when NTP is
missing; it does not change the rule above. At boot the office is idle, so the step with
which NTP corrects a stale boot time is taken over at once; a step that comes while tickets
are open (a restart mid-day, NTP arriving late) waits until the last one is closed, which
at the latest is the end of the office day.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

TOLERANCE_S = 5.0
"""A difference between the system clock and the timeline above this is a step, not drift."""


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h>: only ``status`` is read; the rest is room for the kernel.
    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("_rest", ctypes.c_byte * 512),
    ]


_TIME_ERROR = 5  # adjtimex's return value while the clock is not synchronised


TIMESYNC_FLAG = Path("/run/systemd/timesync/synchronized")
"""systemd-timesyncd creates this file once it has synchronised the clock."""


def kernel_clock_synchronized() -> bool | None:
    """True if the kernel's clock is synchronised (NTP), False if not, None if it cannot tell.

    ``adjtimex`` read-only first (any NTP daemon sets the kernel's flag); where the service's
    seccomp filter denies it (systemd's ProtectClock=), systemd-timesyncd's flag file.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        state = libc.adjtimex(ctypes.byref(_Timex()))
    except (OSError, AttributeError):
        state = -1
    if isinstance(state, int) and state >= 0:
        return state != _TIME_ERROR
    return True if TIMESYNC_FLAG.exists() else None


@dataclass(frozen=True)
class ClockStatus:
    synchronized: bool | None  # what the kernel says (None: cannot tell, or trust is configured)
    pending_step_s: float | None  # the system clock differs from the server's by this much (not taken yet)
    last_step_s: float | None  # the last step seen, taken or not
    last_step_at: datetime | None  # when it was seen (server time)


class ServerClock:
    """A callable clock for the engine (returns aware UTC datetimes), with step handling.

    ``wall`` and ``mono`` are the system's realtime and monotonic clocks (injectable for
    tests and for the demo's shifted clock); ``synchronized`` tells whether ``wall`` is
    trusted (``lambda: True`` for a machine with a real-time clock or when configured so).
    """

    def __init__(
        self,
        wall: Callable[[], float] = time.time,
        mono: Callable[[], float] = time.monotonic,
        synchronized: Callable[[], bool | None] = kernel_clock_synchronized,
        tolerance_s: float = TOLERANCE_S,
    ) -> None:
        self._wall = wall
        self._mono = mono
        self._synchronized = synchronized
        self._tolerance = tolerance_s
        self._offset = wall() - mono()
        self._pending: float | None = None
        self._last_step: tuple[float, datetime] | None = None

    def _safe_synced(self) -> bool | None:
        try:
            return self._synchronized()
        except Exception:  # noqa: BLE001  # a probe that fails says nothing
            return None

    def __call__(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp(), UTC)

    def timestamp(self) -> float:
        m = self._mono()
        t = m + self._offset
        diff = self._wall() - t
        if abs(diff) <= self._tolerance:
            if diff > 0:  # drift forwards: follow
                self._offset += diff
                t += diff
            self._pending = None
            return t
        if self._pending is None or abs(diff - self._pending) > self._tolerance:
            self._pending = diff
            self._last_step = (diff, datetime.fromtimestamp(t, UTC))
            log.warning(
                "the system clock stepped by %+.0f s; server time keeps running on its own timeline "
                "and takes the step over when no ticket is open (docs/deployment.md, 'Time')",
                diff,
            )
        return t

    def adopt_pending(self) -> float | None:
        """Take over a pending step (call only when no ticket is open); returns it, or None."""
        self.timestamp()
        step = self._pending
        if step is None:
            return None
        self._offset += step
        self._pending = None
        log.warning("server time now follows the system clock again (step of %+.0f s taken over)", step)
        return step

    def not_before(self, moment: datetime) -> None:
        """Start the timeline no earlier than ``moment`` (the last time stamp on disk).

        Why: a Pi that reboots with a stale clock must not stamp new tickets before the ones
        it already has (an earlier queue time would jump the queue). The difference becomes
        a pending step, taken over when the office is idle.
        """
        behind = moment.timestamp() - (self._mono() + self._offset)
        if behind > 0:
            self._offset += behind
            self.timestamp()  # records the system clock's difference as a step

    def status(self) -> ClockStatus:
        self.timestamp()
        last = self._last_step
        return ClockStatus(
            synchronized=self._safe_synced(),
            pending_step_s=self._pending,
            last_step_s=last[0] if last else None,
            last_step_at=last[1] if last else None,
        )
