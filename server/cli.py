"""``numerek-server``: run the central server (MQTT worker + HTTP) from a site config."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import datetime

from server.clock import ServerClock
from server.config import EXAMPLE_CONFIG, ConfigError, load_config
from server.engine import Clock


def shifted_clock(start: datetime) -> Clock:
    """A clock that starts at ``start`` and runs at real speed (demo at any hour).

    Only for demos and tests: production runs on the system clock, kept by NTP.
    """
    offset = start.timestamp() - time.time()
    return ServerClock(wall=lambda: time.time() + offset, synchronized=lambda: True)


def parse_clock_start(text: str, tz) -> datetime:
    now = datetime.now(tz)
    if len(text) <= 5:  # "HH:MM" today
        hh, mm = (int(x) for x in text.split(":"))
        return now.replace(hour=hh, minute=mm, second=0, microsecond=0)
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=tz)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="numerek-server", description=__doc__)
    p.add_argument("--config", default=str(EXAMPLE_CONFIG), help="site config (TOML); default: the example office")
    p.add_argument("--check", action="store_true", help="validate the config and exit")
    p.add_argument("--database", help="override storage.database")
    p.add_argument("--mqtt-port", type=int, help="override mqtt.port")
    p.add_argument("--http-port", type=int, help="override http.port")
    p.add_argument("--clock-start", help="demo only: pretend the time is HH:MM today (or an ISO time)")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    updates = {}
    if args.database:
        updates["storage"] = cfg.storage.model_copy(update={"database": args.database})
    if args.mqtt_port:
        updates["mqtt"] = cfg.mqtt.model_copy(update={"port": args.mqtt_port})
    if args.http_port:
        updates["http"] = cfg.http.model_copy(update={"port": args.http_port})
    cfg = cfg.model_copy(update=updates)
    if args.check:
        print(f"{args.config}: OK — {len(cfg.services)} services, {len(cfg.counters)} counters")
        return 0

    from server.http import build_app
    from server.httpserver import serve
    from server.service import NumerekServer

    clock = shifted_clock(parse_clock_start(args.clock_start, cfg.office.tz)) if args.clock_start else ServerClock()
    server = NumerekServer(cfg, clock=clock)
    app = build_app(server)
    serve(app, cfg.http, args.log_level)  # uvicorn with the connection guard (server/httpserver.py)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
