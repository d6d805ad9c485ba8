"""Loaded by every Python started with this folder on PYTHONPATH (bench/call_stages.py does so for
the server only): stamps the stages of each batch that carries a counter command.

Only in ``numerek-server`` (``python -m server.cli``) with ``NUMEREK_CALL_LOG`` set. The stamps
are ``time.perf_counter()`` (CLOCK_MONOTONIC on Linux: the same clock in every process, so the
benchmark's own stamps of the NEXT sent and the call received line up with these). One JSON line
per batch with a counter command: when its MQTT message arrived on the network thread, when the
batch started and what it held, the commit, the call published and flushed, the batch's end; and
every garbage collection with its pause."""

import gc
import importlib.abc
import importlib.util
import json
import os
import sys
import threading
import time

if "server.cli" in sys.orig_argv and os.environ.get("NUMEREK_CALL_LOG"):
    now = time.perf_counter
    _out = open(f"{os.environ['NUMEREK_CALL_LOG']}.{os.getpid()}", "w", buffering=1)  # noqa: SIM115
    _lock = threading.Lock()
    _arrived: dict[bytes, float] = {}
    _batch: dict = {}
    _gc_start = [0.0]

    def _gc(phase: str, info: dict) -> None:
        if phase == "start":
            _gc_start[0] = now()
        else:
            with _lock:
                _out.write(
                    json.dumps({"gc": info["generation"], "at": _gc_start[0], "ms": (now() - _gc_start[0]) * 1000})
                    + "\n"
                )

    gc.callbacks.append(_gc)

    def _patch_gateway(m) -> None:
        on_message, publish, flush = (
            m.MqttGateway._on_message,
            m.MqttGateway.publish,
            getattr(m.MqttGateway, "flush", None),
        )

        def _on_message(self, client, userdata, msg):
            if "/counter/" in msg.topic:
                _arrived[bytes(msg.payload)] = now()
            return on_message(self, client, userdata, msg)

        def _publish(self, out):
            if out.topic.endswith("/call") and _batch:
                _batch.setdefault("call_queued", now())
            return publish(self, out)

        m.MqttGateway._on_message = _on_message
        m.MqttGateway.publish = _publish
        if flush is not None:

            def _flush(self):
                flush(self)
                if _batch and "call_queued" in _batch:
                    _batch.setdefault("call_flushed", now())

            m.MqttGateway.flush = _flush

    def _patch_worker(m) -> None:
        process = m.Worker._process
        handlers = dict(m.Worker.HANDLERS)
        on_counter = handlers["counter"]

        def _on_counter(self, job, batch):
            _batch.setdefault("arrived", []).append(_arrived.pop(job.payload, None))
            return on_counter(self, job, batch)

        def _process(self, jobs):
            outer = not _batch
            if outer:
                _batch["start"] = now()
                _batch["jobs"] = [j.kind for j in jobs]
            try:
                return process(self, jobs)
            finally:
                if outer:
                    _batch["end"] = now()
                    with _lock:
                        if "arrived" in _batch:
                            _out.write(json.dumps(_batch) + "\n")
                        else:  # another batch (state, tick): when, how long, what
                            _out.write(
                                json.dumps(
                                    {"other": _batch["jobs"][:4], "start": _batch["start"], "end": _batch["end"]}
                                )
                                + "\n"
                            )
                    _batch.clear()

        m.Worker.HANDLERS["counter"] = _on_counter
        m.Worker._process = _process

    def _patch_store(m) -> None:
        commit = m.Store.commit

        def _commit(self, *a, **kw):
            t0 = now()
            try:
                return commit(self, *a, **kw)
            finally:
                if _batch:
                    _batch["commit"] = (t0, now())

        m.Store.commit = _commit

    _PATCH = {"server.gateway": _patch_gateway, "server.worker": _patch_worker, "server.store": _patch_store}

    class _Hook(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name not in _PATCH:
                return None
            sys.meta_path.remove(self)
            try:
                spec = importlib.util.find_spec(name)
            finally:
                sys.meta_path.insert(0, self)
            if spec is None or spec.loader is None:
                return spec
            run = spec.loader.exec_module

            def exec_module(module, run=run, name=name):
                run(module)
                _PATCH[name](module)

            spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, _Hook())
