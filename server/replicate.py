"""``numerek-replicate``: a branch's event log, published to the centre (docs/multi-branch.md).

A separate process beside ``numerek-server``, not a thread in it: the office's write path
(one worker thread, fsynced commits) stays exactly as it is, and a replicator that fails,
waits on a broker or is not installed at all never slows a kiosk or a counter. It reads the
events table through its own read-only SQLite connection (WAL lets it read while the worker
writes) after a cursor kept in a small file, and publishes batches QoS 1 to the branch's
OWN broker. Mosquitto's bridge (``numerek-replicate bridge-config``) carries them to the
central broker, store-and-forward: while the link is down the branch broker queues them,
persistently, and the cursor only moves when the local broker has acknowledged a batch.

On a broker closed by ``numerek-provision`` the replicator signs in with its own account
(``numerek-provision add replicator wola``, ``--account``): the ``replicator`` role of
``Topics.acl`` lets it publish its branch's batches, read the re-send requests and the
devices' availability, and nothing else. The server's account may not do that.

The centre asks for a re-send on ``<base>/replica/<branch>/resend`` when it sees a hole
(a queue that overflowed, a broker that lost its queue): the replicator moves its cursor
back and publishes from there. Whatever is published twice the centre stores once.

Commands::

    numerek-replicate --config office.toml --branch wola            # run (systemd unit)
    numerek-replicate --config office.toml --branch wola --account replicator.toml   # own account
    numerek-replicate --config office.toml --branch wola bridge-config --central-host ...
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sqlite3
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import BaseModel, ConfigDict, ValidationError

from protocol import config as config_file
from protocol.config import ConfigError
from protocol.mqtt import BrokerConfig, BrokerSettings, _no_delay
from protocol.replica import MAX_BATCH, BookingOffer, EventBatch, ReplicaEvent, ResendRequest
from protocol.topics import _ID, RouteKind, Topics, device_name, parse_availability
from server.booking.store import BookingStore

if TYPE_CHECKING:
    from server.config import SiteConfig

log = logging.getLogger("numerek.replicate")

HEARTBEAT_S = 5.0
"""An empty batch with the branch's newest id this often: the centre sees a lost last batch
and knows the link is alive (its live view shows "last heard")."""
POLL_S = 0.2
"""How often the replicator looks for new events when idle (SQLite cannot notify another
process; ``PRAGMA data_version`` makes a look cost next to nothing)."""
ACK_TIMEOUT_S = 10.0
BOOKING_EVERY_S = 60.0
"""How often the booking offer (each service's next free times) is looked at and sent."""

_COLUMNS = "id, at, day, kind, ticket_id, ticket, service, counter, data"
REFUSED_RETRY_S = 5.0
"""How long to wait before publishing again when the broker refused a batch (its ACL)."""


class ReplicatorAccount(BaseModel):
    """The replicator's own account file, as ``numerek-provision add replicator <branch>``
    writes it: the ``[mqtt]`` section every role's config file has."""

    model_config = ConfigDict(extra="forbid")

    mqtt: BrokerConfig


def load_account(path: Path, branch: str, topic_base: str) -> BrokerSettings:
    """The broker settings of ``--account``; an account of another branch, or a topic base
    other than the site config's, is refused here rather than by the broker later."""
    account = config_file.load(path, ReplicatorAccount).mqtt
    want = device_name("replicator", branch)
    if account.username != want:
        raise config_file.problem(path, "mqtt.username", f"is {account.username!r}; branch {branch}'s is {want!r}")
    if account.topic_base != topic_base:
        raise config_file.problem(
            path, "mqtt.topic_base", f"is {account.topic_base!r} but the site config's is {topic_base!r}"
        )
    return account.settings()


class Cursor:
    """The id of the last event the branch broker has acknowledged, in a file beside the
    database (written atomically: a crash leaves the old or the new value, never half)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> int:
        try:
            return int(json.loads(self.path.read_text())["after"])
        except FileNotFoundError:
            return 0
        except (ValueError, KeyError, TypeError):
            log.warning("%s is unreadable; replicating from the first event (the centre ignores repeats)", self.path)
            return 0

    def save(self, after: int) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w") as f:
            f.write(json.dumps({"after": after}))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


class EventLog:
    """The branch's events table, read-only."""

    def __init__(self, database: str) -> None:
        self.path = database
        self.inode = os.stat(database).st_ino
        uri = Path(os.path.abspath(database)).as_uri() + "?mode=ro"
        self.conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA busy_timeout=5000")

    def head(self) -> int:
        return int(self.conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0])

    def after(self, after: int, limit: int) -> list[ReplicaEvent]:
        rows = self.conn.execute(f"SELECT {_COLUMNS} FROM events WHERE id > ? ORDER BY id LIMIT ?", (after, limit))
        return [
            ReplicaEvent(
                id=r["id"],
                at=r["at"],
                day=r["day"],
                kind=r["kind"],
                ticket_id=r["ticket_id"],
                ticket=r["ticket"],
                service=r["service"],
                counter=r["counter"],
                data=json.loads(r["data"]) if r["data"] else None,
            )
            for r in rows
        ]

    def replaced(self) -> bool:
        """The file at the path is another one (``numerek-db restore`` put a backup there):
        this connection still reads the old one."""
        try:
            return os.stat(self.path).st_ino != self.inode
        except FileNotFoundError:
            return False

    def version(self) -> int:
        return int(self.conn.execute("PRAGMA data_version").fetchone()[0])

    def close(self) -> None:
        self.conn.close()


class Replicator:
    """Publishes batches after the cursor, one at a time, waiting for the broker's PUBACK."""

    def __init__(
        self,
        database: str,
        branch: str,
        broker: BrokerSettings,
        topics: Topics,
        cursor: Path,
        batch: int = 200,
        heartbeat_s: float = HEARTBEAT_S,
        config: SiteConfig | None = None,
        booking_every_s: float = BOOKING_EVERY_S,
    ) -> None:
        """``config``: the branch's site config (its file); with it, the booking offer is sent too."""
        if not _ID.match(branch):
            raise ValueError(f"branch id {branch!r} must be 1-32 letters, digits, '-' or '_'")
        self.branch = branch
        self.topics = topics
        self.database = database
        self.cursor = Cursor(cursor)
        self.after = self.cursor.load()
        self.batch = max(1, min(batch, MAX_BATCH))
        self.heartbeat_s = heartbeat_s
        self.stop_event = threading.Event()
        self.wake = threading.Event()
        self._lock = threading.Lock()
        self._rewind: int | None = None
        self._devices: dict[str, str] = {}  # device id -> online/offline, from the branch broker's retained topics
        self._devices_known = False
        self._devices_sent: list[str] | None = None
        self.config = config
        self._booking: list[BookingOffer] | None = None  # looked at, not sent yet
        self._booking_at = float("-inf")
        self.booking_every_s = booking_every_s
        self.connected = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"replicator-{branch}-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5
        )
        if broker.username:
            self.client.username_pw_set(broker.username, broker.password)
        if broker.tls_ca:
            self.client.tls_set(ca_certs=broker.tls_ca)
        self.client.reconnect_delay_set(1, 5)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_a: self.connected.clear()
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self._refused: dict[int, str] = {}  # mid -> the broker's reason, for a PUBACK that refused
        self._said_refused = False
        self.client.on_socket_open = _no_delay
        self.broker = broker

    # --- MQTT callbacks (paho's network thread) --------------------------------------
    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, reason: Any, _p: object) -> None:
        if reason.is_failure:
            log.warning("broker refused the replicator: %s", reason)
            return
        client.subscribe(
            [(self.topics.replica_resend(self.branch), 1), (self.topics.filter(RouteKind.DEVICE_AVAILABILITY), 1)]
        )
        self.connected.set()
        self.wake.set()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        route = self.topics.parse(msg.topic)
        if route.kind is RouteKind.DEVICE_AVAILABILITY and route.id is not None:
            self._on_availability(route.id, bytes(msg.payload))
            return
        try:
            req = ResendRequest.model_validate_json(msg.payload)
        except ValidationError as exc:
            log.warning("ignored a malformed re-send request: %s", exc.errors()[0]["msg"])
            return
        with self._lock:
            self._rewind = req.after if self._rewind is None else min(self._rewind, req.after)
        self.wake.set()

    def _on_publish(self, _c: mqtt.Client, _u: object, mid: int, reason: Any, _p: object) -> None:
        if reason.is_failure:
            with self._lock:
                self._refused[mid] = str(reason)

    def _on_subscribe(self, _c: mqtt.Client, _u: object, _mid: int, _codes: object, _p: object) -> None:
        """Subscribed: the devices' retained availabilities follow; none at all is news too
        (an office without devices, all revoked), so from now on the list is known."""
        with self._lock:
            self._devices_known = True
        self.wake.set()

    def _on_availability(self, device: str, payload: bytes) -> None:
        """A device's retained availability (its ``online``, its last will's ``offline``), read
        the way the branch server reads it (server/worker.py): the centre's live view shows
        the devices offline as the branch knows them. A change is sent at once."""
        try:
            value = parse_availability(payload)
        except ValueError:
            return  # the server answers the broken client; nothing to tell the centre
        with self._lock:
            if value is None:  # cleared: the device was revoked
                self._devices.pop(device, None)
            else:
                self._devices[device] = value.value
            self._devices_known = True
        self.wake.set()

    def devices_offline(self) -> list[str] | None:
        with self._lock:
            if not self._devices_known:
                return None
            return sorted(d for d, v in self._devices.items() if v == "offline")

    # --- the loop ---------------------------------------------------------------------
    def run(self) -> None:
        self.client.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive)
        self.client.loop_start()
        self.log = self._open()
        log.info("replicating branch %s after event %d", self.branch, self.after)
        last_sent = 0.0
        seen_version = -1
        try:
            while not self.stop_event.is_set():
                if not self.connected.wait(1.0):
                    continue
                with self._lock:
                    rewind, self._rewind = self._rewind, None
                if rewind is not None and rewind < self.after:
                    log.info("the centre asked for events after %d again (sent up to %d)", rewind, self.after)
                    self.after = rewind
                    self.cursor.save(self.after)
                if self.log.replaced():
                    log.warning("%s was replaced (a restore?); reopening it", self.database)
                    self.log.close()
                    self.log = self._open()
                    seen_version = -1
                version = self.log.version()
                events = self.log.after(self.after, self.batch) if version != seen_version or rewind else []
                if not events and version != seen_version:
                    self._behind_the_cursor()
                if not events:
                    seen_version = version
                now = time.time()
                devices_changed = self.devices_offline() != self._devices_sent
                if self.config is not None and now - self._booking_at >= self.booking_every_s:
                    self._booking_at = now
                    self._booking = self._booking_offer()
                if events or devices_changed or self._booking is not None or now - last_sent >= self.heartbeat_s:
                    if not self._publish(events):
                        continue  # not acknowledged: the same events again after the reconnect
                    last_sent = now
                    if events:
                        self.after = events[-1].id
                        self.cursor.save(self.after)
                        continue  # more may be waiting: no pause while behind
                self.wake.wait(POLL_S)
                self.wake.clear()
        finally:
            self.client.loop_stop()
            self.client.disconnect()
            self.log.close()

    def _behind_the_cursor(self) -> None:
        """A database older than the cursor (restored from a backup): its new events reuse
        ids the centre already has. Publish it again from the start: the centre stores what
        it has once and sets aside, counts and shows the events that differ (where the
        restored file's history parts from what was replicated is not known here)."""
        head = self.log.head()
        if head < self.after:
            log.warning(
                "the database ends at event %d but %d were replicated (restored from a backup?); "
                "replicating it again from the start: the centre will report the reused ids",
                head,
                self.after,
            )
            self.after = 0
            self.cursor.save(self.after)

    def _open(self) -> EventLog:
        """The event log, once the server has created the database (the two may start together)."""
        said = False
        while True:
            try:
                event_log = EventLog(self.database)
                event_log.head()
                return event_log
            except sqlite3.Error as exc:
                if not said:
                    log.warning("waiting for %s (%s)", self.database, exc)
                    said = True
                if self.stop_event.wait(1.0):
                    raise SystemExit(0) from None

    def _publish(self, events: list[ReplicaEvent]) -> bool:
        offline = self.devices_offline()
        batch = EventBatch(
            branch=self.branch,
            head=max(self.log.head(), self.after),
            sent_at=time.time(),
            events=events,
            devices_offline=offline,
            booking=self._booking,
        )
        info = self.client.publish(self.topics.replica_events(self.branch), batch.model_dump_json(), qos=1)
        try:
            info.wait_for_publish(ACK_TIMEOUT_S)
        except (RuntimeError, ValueError):
            return False
        with self._lock:
            refused = self._refused.pop(info.mid, None)
        if refused is not None:
            # The ACL of a closed broker (numerek-provision): the batch is not taken, so the
            # cursor stays and the same events go again once the account may publish them.
            if not self._said_refused:
                log.warning(
                    "the broker refused the batch on %s (%s): is numerek-replicate signed in with the branch's "
                    "replicator account (numerek-provision add replicator %s, --account)?",
                    self.topics.replica_events(self.branch),
                    refused,
                    self.branch,
                )
                self._said_refused = True
            self.stop_event.wait(REFUSED_RETRY_S)
            return False
        if info.is_published():
            self._said_refused = False
            self._devices_sent = offline
            self._booking = None
            return True
        return False

    def _booking_offer(self) -> list[BookingOffer] | None:
        """Each service that takes bookings and its next free times, by the branch's own
        booking desk (server/booking/desk.py: the same rules as its booking site) over the
        read-only connection, with the admin's and the centre's changes laid over the file."""
        from server.admin import apply_overrides
        from server.booking.desk import BookingDesk

        assert self.config is not None
        try:
            rows = self.log.conn.execute("SELECT target, field, value FROM config_overrides").fetchall()
            cfg = apply_overrides(self.config, [(t, f, json.loads(v)) for t, f, v in rows])
            desk = BookingDesk(BookingStore(self.log.path, conn=self.log.conn), lambda: cfg, lambda: datetime.now(UTC))
            offers = []
            for service in desk.services():
                times: list[float] = []
                for day in desk.days(service):
                    times += [s.start.timestamp() for s in desk.slots(service, day) if s.free]
                    if len(times) >= 3:
                        break
                svc = cfg.service(service)
                names = svc.name.as_dict() if svc is not None else {}
                offers.append(BookingOffer(service=service, name=names, next_free=times[:3]))
            return offers
        except (sqlite3.Error, ValueError) as exc:  # an old database without bookings, a config that does not fit
            log.warning("the booking offer could not be read: %s", exc)
            return None

    def stop(self) -> None:
        self.stop_event.set()
        self.wake.set()


# --- the bridge's mosquitto.conf ---------------------------------------------------------


def bridge_config(
    topics: Topics,
    branch: str,
    central_host: str,
    central_port: int,
    username: str | None = None,
    password: str | None = None,
    tls_ca: str | None = None,
    central_base: str | None = None,
) -> str:
    """The lines a branch broker's mosquitto.conf needs to bridge its replica topics to the
    centre: a persistent session both ways (``cleansession false``), QoS 1, retries, TLS
    when a CA is given, the branch's own account on the central broker."""
    if not _ID.match(branch):
        raise ValueError(f"branch id {branch!r} must be 1-32 letters, digits, '-' or '_'")
    local = topics.base + "/"
    remote = (central_base or topics.base) + "/"
    lines = [
        f"# Numerek: branch {branch} -> the centre (numerek-replicate bridge-config; docs/multi-branch.md)",
        f"connection numerek-{branch}",
        f"address {central_host}:{central_port}",
        f"remote_clientid numerek-branch-{branch}",
        "cleansession false",
        "local_cleansession false",
        "bridge_attempt_unsubscribe false",
        "restart_timeout 1 10",
        "keepalive_interval 20",
        "notifications false",
        "try_private true",
    ]
    if username:
        lines.append(f"remote_username {username}")
    if password:
        lines.append(f"remote_password {password}")
    if tls_ca:
        lines += [f"bridge_cafile {tls_ca}", "bridge_insecure false"]
    for direction, topic in topics.bridge_topics(branch):
        lines.append(f"topic {topic} {direction} 1 {local} {remote}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from server.config import load_config

    p = argparse.ArgumentParser(prog="numerek-replicate", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="the branch's site config (numerek-server's)")
    p.add_argument("--branch", required=True, help="this branch's id at the centre, e.g. wola")
    p.add_argument("--database", help="override the site config's [storage] database")
    p.add_argument("--mqtt-port", type=int, help="override the site config's [mqtt] port")
    p.add_argument("--cursor", help="the cursor file (default: <database>.replica-cursor)")
    p.add_argument(
        "--account",
        help="its own broker account (numerek-provision add replicator <branch>, installed as "
        "/etc/numerek/replicator.toml); default: the site config's [mqtt] account",
    )
    p.add_argument("--batch", type=int, default=200, help=f"events per message, at most {MAX_BATCH}")
    p.add_argument("--heartbeat", type=float, default=HEARTBEAT_S, help="seconds between heartbeats when idle")
    p.add_argument(
        "--booking-every", type=float, default=BOOKING_EVERY_S, help="seconds between looks at the booking offer"
    )
    p.add_argument("--log-level", default="INFO")
    sub = p.add_subparsers(dest="command")
    b = sub.add_parser("bridge-config", help="print the branch broker's bridge section for mosquitto.conf")
    b.add_argument("--central-host", required=True)
    b.add_argument("--central-port", type=int, default=8883)
    b.add_argument("--username", help="this branch's account on the central broker (default branch-<id>)")
    b.add_argument("--password-file", help="a file holding that account's password")
    b.add_argument("--tls-ca", help="the CA that signed the central broker's certificate (TLS)")
    b.add_argument("--central-base", help="the topic base at the centre (default: the branch's)")
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(Path(args.config))
    except ConfigError as exc:
        print(f"numerek-replicate: {exc}", file=sys.stderr)
        return 2
    topics = Topics(cfg.mqtt.topic_base)
    if not _ID.match(args.branch):
        print(f"numerek-replicate: branch id {args.branch!r} must be 1-32 letters, digits, '-' or '_'", file=sys.stderr)
        return 2
    if args.command == "bridge-config":
        password = Path(args.password_file).read_text().strip() if args.password_file else None
        print(
            bridge_config(
                topics,
                args.branch,
                args.central_host,
                args.central_port,
                args.username or f"branch-{args.branch}",
                password,
                args.tls_ca,
                args.central_base,
            ),
            end="",
        )
        return 0
    database = args.database or cfg.storage.database
    broker = cfg.mqtt.settings()
    if args.account:
        try:
            broker = load_account(Path(args.account), args.branch, cfg.mqtt.topic_base)
        except ConfigError as exc:
            print(f"numerek-replicate: {exc}", file=sys.stderr)
            return 2
    if args.mqtt_port:
        broker = dataclasses.replace(broker, port=args.mqtt_port)
    if not os.path.isfile(database):
        # Status 1, not 2: the server makes its database at its first start, so systemd's restart
        # (RestartPreventExitStatus=2 stops only for a wrong config) tries again in 3 s.
        print(
            f"numerek-replicate: no database at {database} (numerek-server creates it at its first start)",
            file=sys.stderr,
        )
        return 1
    cursor = Path(args.cursor) if args.cursor else Path(database + ".replica-cursor")
    rep = Replicator(
        database,
        args.branch,
        broker,
        topics,
        cursor,
        batch=args.batch,
        heartbeat_s=args.heartbeat,
        config=cfg,
        booking_every_s=args.booking_every,
    )
    signal.signal(signal.SIGTERM, lambda *_a: rep.stop())
    signal.signal(signal.SIGINT, lambda *_a: rep.stop())
    rep.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
