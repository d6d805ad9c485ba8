"""Python's cyclic garbage collector and a server that keeps its whole office in memory.

Why this exists: CPython's full (generation 2) collection walks every container object the
process holds. After start-up that is several hundred thousand objects that never die (the
modules of FastAPI, pydantic, Jinja2, the config, the restored queue), and a full collection
runs whenever the objects that survived since the last one reach a quarter of that number, so
a busy office pays it again and again: measured at 100-250 ms per full collection under the
benchmark's ticket load on the shared 2-core machine (bench/gc_bench.py), every thread stopped
meanwhile, calls included.

:meth:`Collector.settle` moves everything alive at that moment into the collector's permanent
generation (``gc.freeze()``), after a collection so no garbage is frozen with it. Frozen
objects are still freed by reference counting the moment nothing uses them (a finished
ticket's objects form no reference cycle: tests/test_gc_policy.py); they are only left out of
the cyclic collector's walks. The server settles once start-up is done and again at every
tick (server/service.py, every ``TICK_SECONDS``), so a collection walks what was created since
the last tick, never the server's code nor the whole queue: its pause does not grow with the
number of tickets waiting.

The price: an object frozen while alive that later dies inside a reference cycle (an HTTP
connection's asyncio objects, say) is not reclaimed while frozen. So every ``full_every``-th
settle (an hour of ticks) thaws everything first and collects it all: one full walk an hour
instead of several a minute under load, and such garbage lives at most an hour.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)

FULL_EVERY = 240
"""Settles between two full collections: 240 ticks of 15 s, an hour."""


class Collector:
    def __init__(self, full_every: int = FULL_EVERY) -> None:
        self.full_every = full_every
        self.settled = 0

    def settle(self) -> int:
        """Collect, then freeze what survives; returns how many objects are frozen now."""
        if self.settled and self.settled % self.full_every == 0:
            gc.unfreeze()  # the hourly full walk: garbage cycles among frozen objects are reclaimed too
        self.settled += 1
        gc.collect()
        gc.freeze()
        frozen = gc.get_freeze_count()
        log.debug("froze %d objects out of the garbage collector's walks", frozen)
        return frozen
