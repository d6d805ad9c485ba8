"""Rate limits for devices, on the worker's hot path: a sliding window of recent requests.

Why not the ``limits`` library's memory storage here (it parses the configured rates, and the
web logins use it): it starts a timer thread to expire each window, which cost 0.4 ms per
ticket request on the worker thread (measured with cProfile, docs/performance.md). Here each
key keeps the times of its last requests (at most the largest allowance), so the check is a
few comparisons, with the exact meaning of the setting: at most ``amount`` requests in any
``period``, whether they come in a burst or spread out.
"""

from __future__ import annotations

import bisect
import time
from collections import deque
from collections.abc import Callable

from limits import parse_many


class SlidingWindow:
    def __init__(self, rates: str, clock: Callable[[], float] = time.monotonic) -> None:
        """``rates`` as in the site config: "5/10 seconds;20/minute"."""
        self._limits = [(item.amount, float(item.get_expiry())) for item in parse_many(rates)]
        self._keep = max(amount for amount, _ in self._limits)
        self._clock = clock
        self._recent: dict[str, deque[float]] = {}

    def hit(self, key: str) -> bool:
        """Count a request for ``key`` if every limit allows it; False (and nothing counted) if not."""
        now = self._clock()
        times = self._recent.setdefault(key, deque(maxlen=self._keep))
        for amount, period in self._limits:
            if len(times) - bisect.bisect_right(times, now - period) >= amount:
                return False
        times.append(now)
        if len(self._recent) > 10_000:  # forget keys that have long been quiet
            longest = max(period for _, period in self._limits)
            self._recent = {k: v for k, v in self._recent.items() if v and v[-1] > now - longest}
        return True
