"""Loaded by every Python started with this folder on PYTHONPATH (bench/gc_bench.py does so for
the server only): logs each garbage collection's generation, pause and wall-clock time.

Only in ``numerek-server`` (``python -m server.cli``); a line per collection to the file named
by ``NUMEREK_GC_LOG`` plus the process id."""

import gc
import os
import sys
import time

if "server.cli" in sys.orig_argv and os.environ.get("NUMEREK_GC_LOG"):
    _started = [0.0]
    _log = open(f"{os.environ['NUMEREK_GC_LOG']}.{os.getpid()}", "w", buffering=1)  # noqa: SIM115

    def _probe(phase: str, info: dict) -> None:
        if phase == "start":
            _started[0] = time.perf_counter()
        else:
            pause = (time.perf_counter() - _started[0]) * 1000
            _log.write(f"{time.time():.4f} {info['generation']} {pause:.3f} {info['collected']}\n")

    gc.callbacks.append(_probe)
