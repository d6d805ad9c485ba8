"""``numerek-central``: the centre's ingester (docs/multi-branch.md).

Subscribes on the central broker to every branch's ``<base>/replica/+/events`` with a
persistent MQTT session and *manual* acknowledgement: a batch is acknowledged to the broker
only after its PostgreSQL transaction has committed. An ingester killed in between, or a
PostgreSQL that is restarting, leaves the batch with the broker, which delivers it again;
the (branch, seq) key makes the second copy harmless.

After each commit, and every second when idle, it looks for branches whose unbroken run of
events stops below the newest id they announced, and asks each on
``<base>/replica/<branch>/resend`` to send again after it (at most every ``RESEND_S``).
"""

from __future__ import annotations

import argparse
import logging
import queue
import signal
import sys
import threading
import time
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import ValidationError

from central.config import CentralConfig, load_config
from central.store import CentralStore
from protocol.config import ConfigError
from protocol.mqtt import _no_delay
from protocol.replica import ConfigResult, EventBatch, ResendRequest
from protocol.topics import RouteKind, Topics

log = logging.getLogger("numerek.central")

RESEND_S = 3.0
"""A branch still behind this long after a re-send request is asked again."""
SESSION_EXPIRY_S = 7 * 24 * 3600
"""The broker keeps the ingester's subscription and unacknowledged batches this long."""
MAX_GROUP = 64
ROLL_UP_S = 60.0
"""How often the closed office days are summed into the daily roll-up (central/rollup.py)."""


class Ingester:
    def __init__(self, cfg: CentralConfig, client_id: str = "numerek-central") -> None:
        self.cfg = cfg
        self.topics = Topics(cfg.mqtt.topic_base)
        self.inbox: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.stop_event = threading.Event()
        self.store: CentralStore | None = None
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=True
        )
        b = cfg.mqtt
        if b.username:
            self.client.username_pw_set(b.username, b.password)
        if b.tls_ca:
            self.client.tls_set(ca_certs=b.tls_ca)
        self.client.reconnect_delay_set(1, 5)
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, msg: self.inbox.put(msg)
        self.client.on_socket_open = _no_delay
        self.ingested = 0

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("central broker refused the ingester: %s", reason)
            return
        client.subscribe(
            [
                (self.topics.filter(RouteKind.REPLICA_EVENTS), 1),
                (self.topics.filter(RouteKind.REPLICA_CONFIG_RESULT), 1),
            ]
        )
        log.info("connected to the central broker")

    # --- the writer thread ----------------------------------------------------------------
    def run(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        self._connect_db()
        b = self.cfg.mqtt
        self.client.connect_async(b.host, b.port, keepalive=b.keepalive, clean_start=False, properties=props)
        self.client.loop_start()
        next_roll_up = time.monotonic() + 1.0
        try:
            while not self.stop_event.is_set():
                group = self._take()
                if group:
                    self._ingest(group)
                self._ask_for_gaps()
                if time.monotonic() >= next_roll_up:
                    self._roll_up()
                    next_roll_up = time.monotonic() + ROLL_UP_S
        finally:
            self.client.loop_stop()
            self.client.disconnect()
            if self.store is not None:
                self.store.close()

    def _take(self) -> list[mqtt.MQTTMessage]:
        try:
            first = self.inbox.get(timeout=1.0)
        except queue.Empty:
            return []
        group = [first]
        while len(group) < MAX_GROUP:
            try:
                group.append(self.inbox.get_nowait())
            except queue.Empty:
                break
        return group

    def _connect_db(self) -> None:
        said = False
        while not self.stop_event.is_set():
            try:
                self.store = CentralStore(self.cfg.database.dsn)
                self.store.migrate()
                if said:
                    log.warning("PostgreSQL is back")
                return
            except psycopg.Error as exc:
                self.store = None
                if not said:
                    log.warning("PostgreSQL unavailable, batches wait with the broker: %s", str(exc).strip())
                    said = True
                self.stop_event.wait(1.0)

    def _ingest(self, group: list[mqtt.MQTTMessage]) -> None:
        batches = []
        results = []
        for msg in group:
            if self.topics.parse(msg.topic).kind is RouteKind.REPLICA_CONFIG_RESULT:
                result = self._parse_result(msg)
                if result is not None:
                    results.append(result)
                continue
            batch = self._parse(msg)
            if batch is not None:
                batches.append(batch)
        while not self.stop_event.is_set():
            if self.store is None:
                self._connect_db()
                continue
            try:
                done = self.store.ingest(batches)
                for r in results:
                    if not self.store.config_answered(r.branch, r.id, r.applied, r.reasons, r.changed, r.at):
                        log.warning("branch %s answered a configuration %s the centre did not push", r.branch, r.id)
                    else:
                        log.info("branch %s %s configuration %s", r.branch, "applied" if r.applied else "refused", r.id)
                break
            except psycopg.OperationalError as exc:
                log.warning("PostgreSQL write failed, retrying: %s", str(exc).strip())
                try:
                    self.store.close()
                except psycopg.Error:
                    pass
                self.store = None
        else:
            return
        for msg in group:  # in the order received, as MQTT wants the acknowledgements
            self.client.ack(msg.mid, msg.qos)
        self.ingested += sum(d.new_events for d in done)

    def _parse(self, msg: mqtt.MQTTMessage) -> EventBatch | None:
        route = self.topics.parse(msg.topic)
        if route.kind is not RouteKind.REPLICA_EVENTS:
            log.warning("ignored a message on %s", msg.topic)
            return None
        try:
            batch = EventBatch.model_validate_json(msg.payload)
        except ValidationError as exc:
            log.warning("ignored a malformed batch on %s: %s", msg.topic, exc.errors()[0]["msg"])
            return None
        if batch.branch != route.id:
            # The broker's ACL lets a branch publish on its own topic only; the body must agree.
            log.warning("ignored a batch for branch %s on %s", batch.branch, msg.topic)
            return None
        return batch

    def _parse_result(self, msg: mqtt.MQTTMessage) -> ConfigResult | None:
        route = self.topics.parse(msg.topic)
        try:
            result = ConfigResult.model_validate_json(msg.payload)
        except ValidationError as exc:
            log.warning("ignored a malformed configuration answer on %s: %s", msg.topic, exc.errors()[0]["msg"])
            return None
        if result.branch != route.id:  # the ACL lets a branch answer on its own topic only
            log.warning("ignored an answer for branch %s on %s", result.branch, msg.topic)
            return None
        return result

    def _ask_for_gaps(self) -> None:
        if self.store is None:
            return
        try:
            gaps = self.store.gaps(datetime.now(UTC), RESEND_S)
        except psycopg.OperationalError:
            self.store = None
            return
        for branch, after in gaps:
            log.info("branch %s: events after %d are missing; asking for them again", branch, after)
            self.client.publish(self.topics.replica_resend(branch), ResendRequest(after=after).model_dump_json(), qos=1)

    def _roll_up(self) -> None:
        """Sum the closed days into ``ticket_days``; a failure leaves them marked for the next time."""
        if self.store is None:
            return
        try:
            n = self.store.roll_up()
        except psycopg.OperationalError:
            self.store = None
            return
        if n:
            log.info("rolled up %d branch-days", n)

    def stop(self) -> None:
        self.stop_event.set()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="numerek-central", description="the centre's ingester (docs/multi-branch.md)")
    p.add_argument("--config", required=True, help="central.toml")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"numerek-central: {exc}", file=sys.stderr)
        return 2
    ing = Ingester(cfg)
    signal.signal(signal.SIGTERM, lambda *_a: ing.stop())
    signal.signal(signal.SIGINT, lambda *_a: ing.stop())
    started = time.monotonic()
    ing.run()
    log.info("stopped after %.0f s, %d new events stored", time.monotonic() - started, ing.ingested)
    return 0


if __name__ == "__main__":
    sys.exit(main())
