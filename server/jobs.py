"""What flows through the worker: jobs in (from MQTT and HTTP), messages out (to MQTT).

Plain data shared by server/gateway.py, server/worker.py and server/office.py, so none of
them needs to import another to speak to it.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from protocol.topics import Route


@dataclass
class Job:
    """One piece of work for the worker thread.

    ``kind`` selects the handler in :attr:`server.worker.Worker.HANDLERS`: ``counter``,
    ``kiosk``, ``fault``, ``availability`` and ``unknown`` come from MQTT; ``counter`` and
    ``config`` from HTTP (with a ``future`` the web thread waits on); ``tick`` and
    ``republish`` from the worker and the gateway themselves.
    """

    kind: str
    device: str = ""
    topic: str = ""
    payload: bytes = b""
    response_topic: str | None = None
    correlation: bytes | None = None
    route: Route | None = None  # the parsed topic (MQTT), so the worker need not parse it again
    future: Future[Any] | None = None  # HTTP: resolved with the reply (a model, a dict or an error)
    data: Any = None  # HTTP: the already-parsed request


@dataclass
class Out:
    """One message to publish, built by the worker."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
    correlation: bytes | None = None
