"""A device's estimate of the server's clock: the one implementation every role uses.

Why devices need it: a Raspberry Pi has no real-time clock, and every time in the protocol
is the server's (docs/protocol.md, "Times"). A device that shows the time (display, kiosk)
or sends a deadline (``expires_at`` of counter commands and ticket requests) therefore
keeps an offset between the server's time and its own ``time.monotonic()``.

The rules, in one place:

- Only a **live** message teaches the offset. A retained copy was stamped when the server
  last published it, which may be minutes or, after a server outage, hours ago: learnt from,
  it would make a hall display show an old time and give deadlines that have long passed.
  So :meth:`ServerClock.learn` insists on being told whether the message was retained.
- Each live ``server_time`` is a lower bound of the server's time on arrival (it was
  stamped before it travelled), so the highest offset seen wins; a message that was slow
  on the way never pulls the estimate back.
- :meth:`ServerClock.forget` when the connection drops or the server goes offline: the
  server may come back with its clock stepped (NTP after a reboot), and the highest-offset
  rule would otherwise never let a clock that was ahead come back down.

Standard library only: imported by counter units, kiosks and displays alike.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, tzinfo


class ServerClock:
    """Server time = this machine's monotonic clock + the highest offset learnt from live messages.

    Thread-safe: MQTT callbacks learn on the network thread while the UI reads :meth:`now`.
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.monotonic = monotonic  # public: the display times its highlight with the same clock
        self._offset: float | None = None  # server epoch seconds minus monotonic seconds
        self._tz: tzinfo | None = None
        self._lock = threading.Lock()

    def learn(self, server_time: datetime, *, retained: bool) -> bool:
        """Take ``server_time`` of a message just received; True if it moved the estimate.

        ``retained`` is the MQTT retain flag of that message: retained copies teach nothing
        (see the module docstring), nor does a time without a UTC offset, which cannot be
        placed (the protocol always sends one).
        """
        if retained or server_time.utcoffset() is None:
            return False
        offset = server_time.timestamp() - self.monotonic()
        with self._lock:
            if self._offset is not None and offset <= self._offset:
                return False
            self._offset = offset
            self._tz = server_time.tzinfo
            return True

    def forget(self) -> None:
        """Drop the estimate (connection lost, server offline): no time until the next live message."""
        with self._lock:
            self._offset = None
            self._tz = None

    @property
    def known(self) -> bool:
        with self._lock:
            return self._offset is not None

    def now(self) -> datetime | None:
        """The server's time now, in the server's UTC offset; None before the first live message."""
        with self._lock:
            if self._offset is None:
                return None
            return datetime.fromtimestamp(self._offset + self.monotonic(), self._tz)


__all__ = ["ServerClock"]
