"""The request memory: the reply given to each device request id, for exactly-once effects.

MQTT QoS 1 delivers at least once and devices retry with the same id, so the server must
answer a known (device, id) with its first answer and do nothing again. The memory is
in RAM for speed and in the ``commands`` table (written in the same transaction as the
request's effects) so that it survives a restart.

Why a reused id with a *different* body gets the first answer too: the id is the device's
promise that it is the same request; a device that reuses ids for new requests has a bug
that must show (its new request is not carried out), not a second ticket (docs/protocol.md).
"""

from __future__ import annotations

from datetime import datetime, timedelta

REPLY_MEMORY = timedelta(days=2)
"""How long a reply is remembered for deduplication (memory and the ``commands`` table).

Why two days: QoS 1 redeliveries come within seconds and a device's own retries within
minutes, so two days is far more than needed, yet bounds memory and the file."""
PRUNE_EVERY = timedelta(hours=1)
"""How often (server clock) replies older than :data:`REPLY_MEMORY` are dropped."""

Key = tuple[str, str]  # ("kiosk/<id>" or "counter/<id>", request id)
Row = tuple[str, str, float, str]  # device, request id, time stored, reply JSON


class RequestMemory:
    def __init__(self, stored: dict[Key, tuple[float, str]], now: datetime) -> None:
        self._replies = dict(stored)
        self._prune_at = now  # the first batch prunes what piled up while stopped

    def __contains__(self, key: Key) -> bool:
        return key in self._replies

    def reply(self, key: Key) -> str | None:
        found = self._replies.get(key)
        return found[1] if found else None

    def remember(self, rows: list[Row]) -> None:
        """Keep replies that are on disk now (called after the batch's commit)."""
        for device, rid, at, text in rows:
            self._replies[(device, rid)] = (at, text)

    def prune_due(self, now: datetime) -> datetime | None:
        """The cut-off to prune at if an hourly pruning is due, else None.

        Why hourly and driven by the server clock: the dict and the ``commands`` table would
        otherwise grow with every ticket and press, forever; one comparison per batch is cheap.
        """
        if now < self._prune_at:
            return None
        self._prune_at = now + PRUNE_EVERY
        cutoff = now - REPLY_MEMORY
        limit = cutoff.timestamp()
        self._replies = {k: v for k, v in self._replies.items() if v[0] >= limit}
        return cutoff
