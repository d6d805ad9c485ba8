"""The HTTP server: uvicorn, guarded against slow, half-open and too many connections.

Why this exists: uvicorn closes idle keep-alive connections, but a connection that never
finishes its request head stays open for ever, and it caps nothing. 1,100 such connections
(a few lines of script, or a crowd of phones on a broken Wi-Fi) held a server with the
usual limit of 1,024 open files at that limit: ``/health`` failed and asyncio logged
"Too many open files" with a traceback some 10,000 lines a second, an SD card's enemy.

So uvicorn runs here with :class:`GuardedH11Protocol` (uvicorn accepts a protocol class for
``http=``) and a :class:`ConnectionGuard` that it consults:

* **a deadline per request** (``[http] request_timeout_s``, 10 s): from the moment a
  connection opens, or the first byte of the next request on a kept-alive one, the whole
  request (head and body) must arrive within it, or the connection is closed (with a 408
  when the client can still read one). An idle kept-alive connection is closed by uvicorn
  after 5 s, as before;
* **a cap in total** (``[http] max_connections``), lowered at start to what the process's
  file-descriptor limit leaves after the server's own files (:data:`RESERVED_FDS`) and the
  accept queue (:data:`BACKLOG`), so the limit itself is never reached. When the cap is
  reached, the connection that has waited longest without sending a request is closed to
  make room for the new one, so half-open connections cannot lock everybody out; if every
  connection is busy with a request, the new one gets a 503 and is closed;
* **a cap per client address** (``[http] max_connections_per_client``): over it, a 503 and
  close. Behind a reverse proxy every connection comes from the proxy's address: addresses
  in ``[http] trusted_proxies`` are counted against the total cap only, and the per-client
  limits and header timeouts are the proxy's job (Caddy and nginx have both; nginx's
  ``limit_conn``, docs/deployment.md "Security");
* **logging that cannot flood**: what the guard does is summed up in one line a minute at
  most, and repeated identical messages of asyncio and uvicorn (an accept error, an invalid
  request) are logged once a minute with a count (:class:`OncePerMinute`).

``LimitNOFILE=`` in systemd/numerek-server.service sets the limit the caps are fitted to.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import threading
import time
from collections import Counter, OrderedDict
from ipaddress import ip_address, ip_network
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from server.config import Http

log = logging.getLogger(__name__)

RESERVED_FDS = 256
"""Files the server keeps for itself: SQLite (the database, its -wal and -shm, once for the
worker and once per web thread that reads), the MQTT socket, pipes, logs."""
BACKLOG = 128
"""The kernel's queue of connections not yet accepted; asyncio accepts up to this many at once."""
KEEP_ALIVE_S = 5
REPORT_EVERY_S = 60
REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 10\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: 21\r\n\r\n"
    b"too many connections\n"
)
TIMED_OUT = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


def connection_budget(wanted: int, nofile: int) -> int:
    """How many connections fit in ``nofile`` open files next to the server's own."""
    if nofile == resource.RLIM_INFINITY:
        return wanted
    return max(16, min(wanted, nofile - RESERVED_FDS - BACKLOG))


class ConnectionGuard:
    """Who may hold a connection: the caps, and which connection makes room when full.

    A plain model (no sockets): the protocol tells it when a connection opens, when a request
    has begun (the connection is busy), when it is waiting for a request again (idle) and when
    it is gone; it answers whether a new connection may stay, and closes the one that must
    make room through its ``evict()``.
    """

    def __init__(
        self,
        max_total: int,
        max_per_client: int,
        trusted_proxies: list[str] | tuple[str, ...] = (),
        timeout_s: float = 10,
        clock: Any = time.monotonic,
    ) -> None:
        self.max_total = max_total
        self.max_per_client = max_per_client
        self.timeout_s = timeout_s
        self.trusted = [ip_network(p, strict=False) for p in trusted_proxies]
        self.clock = clock
        self.open: dict[Any, str] = {}  # connection -> client address
        self.per_client: Counter[str] = Counter()
        self.idle: OrderedDict[Any, None] = OrderedDict()  # waiting for a request, oldest first
        self.counts: Counter[str] = Counter()  # since the last report: refused, evicted, timed_out
        self._last_report = -1e9
        self._report_pending = False

    def _is_proxy(self, host: str) -> bool:
        try:
            address = ip_address(host)
        except ValueError:
            return False
        return any(address in net for net in self.trusted)

    def admit(self, conn: Any, host: str) -> bool:
        """May ``conn`` from ``host`` stay open? Makes room by closing the longest-idle one if needed."""
        if not self._is_proxy(host) and self.per_client[host] >= self.max_per_client:
            self.note("refused")
            return False
        if len(self.open) >= self.max_total:
            if not self.idle:
                self.note("refused")
                return False
            victim = next(iter(self.idle))
            self.gone(victim)
            victim.evict()
            self.note("evicted")
        self.open[conn] = host
        self.per_client[host] += 1
        self.idle[conn] = None
        return True

    def busy(self, conn: Any) -> None:
        self.idle.pop(conn, None)

    def waiting(self, conn: Any) -> None:
        if conn in self.open:
            self.idle[conn] = None
            self.idle.move_to_end(conn)

    def gone(self, conn: Any) -> None:
        host = self.open.pop(conn, None)
        self.idle.pop(conn, None)
        if host is not None:
            self.per_client[host] -= 1
            if self.per_client[host] <= 0:
                del self.per_client[host]

    def note(self, what: str) -> None:
        """Count what happened; say so in the log at most once a minute (the first at once, the
        rest summed up when the minute is over)."""
        self.counts[what] += 1
        now = self.clock()
        if now - self._last_report >= REPORT_EVERY_S:
            self._report(now)
        elif not self._report_pending:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # not on the server's loop (a test of the model): the next event reports
                return
            self._report_pending = True
            loop.call_later(REPORT_EVERY_S - (now - self._last_report), self._report_later)

    def _report_later(self) -> None:
        self._report_pending = False
        if self.counts:
            self._report(self.clock())

    def _report(self, now: float) -> None:
        self._last_report = now
        counts, self.counts = self.counts, Counter()
        level = logging.WARNING if counts["refused"] or counts["evicted"] else logging.INFO
        log.log(
            level,
            "connections: %d refused (over %d from one address or %d in all), %d closed to make room, "
            "%d closed for not sending a whole request within %g s; %d open now (at most one such line a minute)",
            counts["refused"],
            self.max_per_client,
            self.max_total,
            counts["evicted"],
            counts["timed_out"],
            self.timeout_s,
            len(self.open),
        )


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a request deadline and the :class:`ConnectionGuard`'s caps."""

    guard: ClassVar[ConnectionGuard]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._deadline: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        if not self.guard.admit(self, self.client[0] if self.client else ""):
            transport.write(REFUSED)
            transport.close()
            return
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._deadline is None and self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._arm()  # the next request on a kept-alive connection has begun
        super().data_received(data)
        self._after_read()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE:
            self.guard.waiting(self)
        self._after_read()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.guard.gone(self)
        super().connection_lost(exc)

    def _after_read(self) -> None:
        state = self.conn.their_state
        if state is not h11.IDLE:
            self.guard.busy(self)  # a request has begun: never closed to make room
        if state not in (h11.IDLE, h11.SEND_BODY):
            self._disarm()  # the whole request is in (or the connection is ending)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.guard.timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        self.guard.note("timed_out")
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(TIMED_OUT)  # nothing else is being answered on it
        self.guard.gone(self)
        self.transport.close()

    def evict(self) -> None:
        """Closed to make room for a new connection (it had sent no request)."""
        self._disarm()
        if not self.transport.is_closing():
            self.transport.close()


def protocol_for(guard: ConnectionGuard) -> type[GuardedH11Protocol]:
    """The protocol class to give uvicorn, bound to ``guard``."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"guard": guard})


class OncePerMinute(logging.Filter):
    """Lets an identical message through once a minute, then says how many were dropped.

    Installed on the loggers of asyncio and uvicorn, whose messages about bad connections
    (an accept that failed, an invalid request) repeat as often as a client makes them.
    """

    def __init__(self, every_s: float = 60, remember: int = 512, clock: Any = time.monotonic) -> None:
        super().__init__()
        self.every_s = every_s
        self.remember = remember
        self.clock = clock
        self._seen: OrderedDict[tuple[str, int, str], tuple[float, int]] = OrderedDict()
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else ""
        key = (record.name, record.levelno, record.getMessage()[:300] + exc)
        now = self.clock()
        with self._lock:
            last, dropped = self._seen.get(key, (None, 0))
            if last is not None and now - last < self.every_s:
                self._seen[key] = (last, dropped + 1)
                return False
            self._seen[key] = (now, 0)
            self._seen.move_to_end(key)
            while len(self._seen) > self.remember:
                self._seen.popitem(last=False)
        if dropped:
            record.msg = f"{record.getMessage()} ({dropped} more like this in the last minute were not logged)"
            record.args = ()
        return True


LIMITED_LOGGERS = ("asyncio", "uvicorn", "uvicorn.error", "uvicorn.asgi")


def limit_logging() -> OncePerMinute:
    only_once = OncePerMinute()
    for name in LIMITED_LOGGERS:
        logging.getLogger(name).addFilter(only_once)
    return only_once


def serve(app: Any, http: Http, log_level: str = "info") -> None:
    """Run ``app`` on ``[http] host:port`` until stopped (SIGTERM, Ctrl+C)."""
    import uvicorn

    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    budget = connection_budget(http.max_connections, nofile)
    if budget < http.max_connections:
        log.info(
            "[http] max_connections %d lowered to %d: this process may open %d files (LimitNOFILE) "
            "and keeps %d for itself and %d for the accept queue",
            http.max_connections,
            budget,
            nofile,
            RESERVED_FDS,
            BACKLOG,
        )
    guard = ConnectionGuard(budget, http.max_connections_per_client, http.trusted_proxies, http.request_timeout_s)
    limit_logging()
    uvicorn.run(
        app,
        host=http.host,
        port=http.port,
        http=protocol_for(guard),
        log_level=log_level.lower(),
        log_config=None,  # the server's own logging (server/cli.py): one format in the journal
        access_log=False,
        proxy_headers=True,
        forwarded_allow_ips=list(http.trusted_proxies),
        backlog=BACKLOG,
        timeout_keep_alive=KEEP_ALIVE_S,
        server_header=False,
    )
