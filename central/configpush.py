"""Configuration pushed from the centre to branches (docs/multi-branch.md).

The centre publishes a :class:`~protocol.replica.ConfigPush` on each chosen branch's
``replica/<branch>/config`` topic of the central broker, **retained and QoS 1**; the branch's
bridge carries it to the branch broker (and, for a branch offline, when its link is back:
the bridge's persistent session queues it, and the retained copy is there for a new
subscription). The branch server validates it with its own config loader, applies it whole
or refuses it with reasons, writes it in its change log, and answers on
``replica/<branch>/config-result``, which the ingester records here.

Why the centre does not validate the content itself: only the branch knows its own file,
its counters and what its admin changed; the branch's verdict is the one that counts, and
the centre shows it. The centre checks the shape (the message model) before sending.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from psycopg.types.json import Jsonb

from protocol.mqtt import BrokerConfig
from protocol.replica import ConfigEdit, ConfigPush
from protocol.topics import Topics

PUBLISH_TIMEOUT_S = 10.0


class PushError(RuntimeError):
    """The central broker did not take the push (nothing was recorded as sent)."""


@dataclass(frozen=True)
class PushRow:
    id: str
    branch: str
    pushed_by: str
    pushed_at: datetime
    changes: list[dict[str, Any]]
    status: str
    reasons: list[str] | None
    changed: int | None
    answered_at: datetime | None


def _publish(broker: BrokerConfig, topics: Topics, messages: list[tuple[str, str]]) -> None:
    """Publish retained, QoS 1, and wait for the broker's acknowledgement of each."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"numerek-central-push-{secrets.token_hex(4)}", protocol=mqtt.MQTTv5
    )
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    if broker.tls_ca:
        client.tls_set(ca_certs=broker.tls_ca)
    try:
        client.connect(broker.host, broker.port, keepalive=30)
    except OSError as exc:
        raise PushError(f"the central broker is unreachable: {exc}") from None
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=1, retain=True) for topic, payload in messages]
        deadline = time.monotonic() + PUBLISH_TIMEOUT_S
        for info in infos:
            info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            if not info.is_published():
                raise PushError("the central broker did not acknowledge the configuration")
    finally:
        client.disconnect()
        client.loop_stop()


def push(
    conn: psycopg.Connection[Any],
    broker: BrokerConfig,
    topics: Topics,
    branches: list[str],
    changes: list[ConfigEdit],
    by: str,
) -> list[str]:
    """Send ``changes`` to each of ``branches`` (a push id each); recorded as ``sent`` once the
    broker has them. Returns the ids."""
    now = time.time()
    pushes = [ConfigPush(id=secrets.token_hex(8), by=by, at=now, changes=changes) for _ in branches]
    with conn.transaction():
        for branch, p in zip(branches, pushes, strict=True):
            conn.execute(
                "INSERT INTO config_pushes (id, branch, pushed_by, pushed_at, changes) "
                "VALUES (%s, %s, %s, to_timestamp(%s), %s)",
                (p.id, branch, by, now, Jsonb([c.model_dump() for c in changes])),
            )
        # Inside the transaction: a push the broker refused is not recorded as sent.
        _publish(
            broker,
            topics,
            [(topics.replica_config(b), p.model_dump_json()) for b, p in zip(branches, pushes, strict=True)],
        )
    return [p.id for p in pushes]


def history(conn: psycopg.Connection[Any], limit: int = 200) -> list[PushRow]:
    rows = conn.execute(
        "SELECT id, branch, pushed_by, pushed_at, changes, status, reasons, changed, answered_at "
        "FROM config_pushes ORDER BY pushed_at DESC, branch LIMIT %s",
        (limit,),
    ).fetchall()
    return [PushRow(*r) for r in rows]
