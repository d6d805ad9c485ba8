"""Python's cyclic garbage collector and a server that keeps its whole office in memory.

Why this exists: CPython's full (generation 2) collection walks every container object the
process holds. After start-up that is several hundred thousand objects that never die (the
modules of FastAPI, pydantic, Jinja2, the config, the restored queue), and a full collection
runs whenever the objects that survived since the last one reach a quarter of that number, so
a busy office pays it again and again: measured at 100-200 ms per full collection under the
benchmark's ticket load on the shared 2-core machine (bench/gc_bench.py), every thread stopped
meanwhile, calls included.

:func:`settle` moves everything alive at that moment into the collector's permanent
generation (``gc.freeze()``), after a collection so no garbage is frozen with it. Frozen
objects are still freed by reference counting the moment nothing uses them (a finished
ticket's objects form no reference cycle: tests/test_gc_policy.py); they are only left out of
the cyclic collector's walks. The server settles once start-up is done and again at every
tick (server/service.py, every ``TICK_SECONDS``), so a collection walks what was created since
the last tick, never the server's code nor the whole queue: its pause does not grow with the
number of tickets waiting.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)


def settle() -> int:
    """Collect, then freeze what survives; returns how many objects are frozen now."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.debug("froze %d objects out of the garbage collector's walks", frozen)
    return frozen
