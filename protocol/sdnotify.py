"""Tell systemd how the process is doing (``sd_notify``), without any dependency.

Why: the units run the server as ``Type=notify`` with ``WatchdogSec=``. systemd then treats
the service as started only once it says ``READY=1`` (so units ordered after it wait for a
server that is really connected), and restarts it when the ``WATCHDOG=1`` pings stop (a hung
worker thread is restarted instead of leaving the office without calls).

Outside systemd (``$NOTIFY_SOCKET`` unset: the demo, tests, a developer's terminal) every
function is a silent no-op, so callers never need to check where they run.

Typical use in a role's main loop::

    from protocol import sdnotify

    sdnotify.ready("connected to the broker")
    stop = sdnotify.start_watchdog(lambda: worker.is_alive())   # pings only while healthy
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


def notify(*assignments: str) -> bool:
    """Send ``KEY=value`` lines to systemd; False when not under systemd or the send failed."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address or not assignments:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        log.debug("unsupported NOTIFY_SOCKET %r", address)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto("\n".join(assignments).encode("utf-8"), address)
    except OSError as exc:
        log.debug("sd_notify failed: %s", exc)
        return False
    return True


def ready(status: str | None = None) -> bool:
    """The service is up (for the server: config loaded, store open, broker connected)."""
    return notify("READY=1", *([f"STATUS={_one_line(status)}"] if status else []))


def status(text: str) -> bool:
    """A one-line status shown by ``systemctl status`` (e.g. "broker offline, retrying")."""
    return notify(f"STATUS={_one_line(text)}")


def stopping() -> bool:
    return notify("STOPPING=1")


def watchdog() -> bool:
    """One liveness ping; systemd restarts the unit when none arrives within ``WatchdogSec=``."""
    return notify("WATCHDOG=1")


def watchdog_interval() -> float | None:
    """Seconds between pings systemd expects (``WatchdogSec``), or None when no watchdog is set.

    ``WATCHDOG_PID``, when set, names the process the watchdog is for; a child process
    (a helper started by the service) must not ping on the parent's behalf.
    """
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec:
        return None
    if pid and pid != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1_000_000 if value > 0 else None


def start_watchdog(healthy: Callable[[], bool] = lambda: True) -> Callable[[], None]:
    """Ping the watchdog from a daemon thread every half interval while ``healthy()`` is true.

    ``healthy`` should check the thing that can hang (the server's worker thread, the MQTT
    loop), not merely that Python runs: a ping that is always sent hides exactly the hang
    the watchdog is for. Returns a function that stops the pings. No thread is started when
    systemd set no watchdog.
    """
    interval = watchdog_interval()
    stop = threading.Event()
    if interval is None:
        return stop.set

    def run() -> None:
        while not stop.wait(interval / 2):
            try:
                alive = healthy()
            except Exception:  # a failing health check is an unhealthy process, not a crash here
                log.exception("health check failed")
                alive = False
            if alive:
                watchdog()
            else:
                log.warning("not healthy: withholding the watchdog ping, systemd will restart us")

    threading.Thread(target=run, name="sd-watchdog", daemon=True).start()
    return stop.set


def _one_line(text: str) -> str:
    return " ".join(text.split())
