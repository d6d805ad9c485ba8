"""Rendered report files (SVG charts, XLSX, PDF) kept in memory, drawn once per content.

Why: on a busy Raspberry Pi one chart takes seconds to draw, and a dashboard has five;
an XLSX of a month or the monthly PDF takes longer. Figures of a past period never change,
so a chart is drawn once per (figures, language, chart) — the key holds the figures'
digest, so a chart of changed figures is a new key, never a stale one — and kept. The
dashboard asks for its charts to be drawn in the background as soon as it has its figures
(:meth:`RenderCache.prefetch`), so the page is there first, and a request for a chart being
drawn waits for that drawing instead of starting a second one.

This module does not import matplotlib: the page must not wait for that import either.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor

from server.reports.models import Summary


def chart_key(s: Summary, lang: str, name: str) -> tuple[str, str, str, str]:
    return ("chart", s.digest(), lang, name)


class RenderCache:
    """Rendered bytes (SVG charts, exports, PDFs) by key: least recently used out beyond ``max_bytes``.

    ``get`` returns the kept bytes, or waits for a drawing of the same key already under way,
    or renders in the caller's thread; ``prefetch`` renders in one background thread, in the
    order asked (the first chart of the page first).
    """

    def __init__(self, max_bytes: int = 32 << 20) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._kept: OrderedDict[Hashable, bytes] = OrderedDict()
        self._size = 0
        self._pending: dict[Hashable, Future[bytes]] = {}
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="reports-render")
        self.rendered = 0  # how many renders ran (tests and the bench read it)
        self.hits = 0

    def cached(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._kept

    def get(self, key: Hashable, render: Callable[[], bytes]) -> bytes:
        with self._lock:
            body = self._kept.get(key)
            if body is not None:
                self._kept.move_to_end(key)
                self.hits += 1
                return body
            future = self._pending.get(key)
            mine = future is None
            if future is None:
                future = self._pending[key] = Future()
        if not mine:
            return future.result()
        try:
            body = render()
        except BaseException as exc:
            future.set_exception(exc)
            raise
        finally:
            with self._lock:
                self._pending.pop(key, None)
        with self._lock:
            self.rendered += 1
            if len(body) <= self.max_bytes:
                self._kept[key] = body
                self._size += len(body)
                while self._size > self.max_bytes:
                    _, old = self._kept.popitem(last=False)
                    self._size -= len(old)
        future.set_result(body)
        return body

    def prefetch(self, key: Hashable, render: Callable[[], bytes]) -> None:
        """Render in the background unless kept or under way (errors surface at the next ``get``)."""
        with self._lock:
            if key in self._kept or key in self._pending:
                return

        def run() -> None:
            try:
                self.get(key, render)
            except Exception:  # noqa: BLE001  # the request that needs it renders again and reports
                pass

        self._worker.submit(run)

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()
            self._size = 0
