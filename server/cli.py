"""``numerek-server``: run the central server (MQTT worker + HTTP) from a site config."""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime, tzinfo
from typing import Any

from protocol.bootstrap import Bootstrap
from server.clock import ServerClock
from server.config import EXAMPLE_CONFIG, ConfigError, load_config
from server.engine import Clock


def shifted_clock(start: datetime) -> Clock:
    """A clock that starts at ``start`` and runs at real speed (demo at any hour).

    Only for demos and tests: production runs on the system clock, kept by NTP.
    """
    offset = start.timestamp() - time.time()
    return ServerClock(wall=lambda: time.time() + offset, synchronized=lambda: True)


def parse_clock_start(text: str, tz: tzinfo) -> datetime:
    now = datetime.now(tz)
    if len(text) <= 5:  # "HH:MM" today
        hh, mm = (int(x) for x in text.split(":"))
        return now.replace(hour=hh, minute=mm, second=0, microsecond=0)
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=tz)


def main(argv: list[str] | None = None) -> int:
    boot = Bootstrap("numerek-server", __doc__ or "", default_config=EXAMPLE_CONFIG)
    p = boot.parser
    p.add_argument("--database", help="override storage.database")
    p.add_argument("--mqtt-port", type=int, help="override mqtt.port")
    p.add_argument("--http-port", type=int, help="override http.port")
    p.add_argument("--clock-start", help="demo only: pretend the time is HH:MM today (or an ISO time)")
    args = boot.parse(argv)
    cfg = boot.load(load_config)
    updates: dict[str, Any] = {}
    if args.database:
        updates["storage"] = cfg.storage.model_copy(update={"database": args.database})
    if args.mqtt_port:
        updates["mqtt"] = cfg.mqtt.model_copy(update={"port": args.mqtt_port})
    if args.http_port:
        updates["http"] = cfg.http.model_copy(update={"port": args.http_port})
    cfg = cfg.model_copy(update=updates)
    if args.check:
        return boot.ok(f"{len(cfg.services)} services, {len(cfg.counters)} counters")

    from server.dbtool import ToolError, server_lock
    from server.http import build_app
    from server.httpserver import serve
    from server.service import NumerekServer
    from server.store import folder_problem

    os.umask(0o077)  # the database, its -wal/-shm and the lock file: readable by the service only
    problem = folder_problem(cfg.storage.database)
    if problem is not None:  # an installation mistake: say so once (exit 2: systemd does not retry)
        print(f"numerek-server: {problem}", file=sys.stderr)
        return 2
    try:
        lock = server_lock(cfg.storage.database)
    except (ToolError, OSError) as exc:
        print(f"numerek-server: {exc}", file=sys.stderr)
        return 2
    clock = shifted_clock(parse_clock_start(args.clock_start, cfg.office.tz)) if args.clock_start else ServerClock()
    try:
        server = NumerekServer(cfg, clock=clock)
    except ConfigError as exc:  # e.g. the [notify] config file (docs/notifications.md)
        print(f"numerek-server: {exc}", file=sys.stderr)
        return 2
    app = build_app(server)
    try:
        serve(app, cfg.http, args.log_level)  # uvicorn with the connection guard (server/httpserver.py)
    finally:
        os.close(lock)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
