"""A sender process that stops right after a gateway took a message, before the answer is recorded.

    python -m tests.notify_crash_child DB gammu SMSDRC STAGING
    python -m tests.notify_crash_child DB http URL IDEMPOTENT

It runs the real Outbox over the real SQLite file with the real gateway, wrapped so that,
once ``send`` has returned, it prints ``HANDED <gateway id>`` and waits: the test then kills
it with SIGKILL — the crash between send and record that must not cause a second SMS.
"""

from __future__ import annotations

import sys
from pathlib import Path

from notify.config import GammuConfig, HttpSmsConfig, NotifySettings
from notify.gateways import Gateway
from notify.message import Delivery, Message, SendResult
from notify.outbox import Outbox, Route, connect

SETTINGS = NotifySettings(office="Starostwo Łódź", quiet_hours=None)


class StopsAfterSend:
    def __init__(self, inner: Gateway) -> None:
        self.inner = inner
        self.channel = inner.channel
        self.idempotent = inner.idempotent

    def send(self, message: Message) -> SendResult:
        result = self.inner.send(message)
        print(f"HANDED {result.gateway_id}", flush=True)
        sys.stdin.readline()  # blocks until the test kills this process
        return result

    def status(self, gateway_id: str) -> Delivery | None:
        return self.inner.status(gateway_id)

    def close(self) -> None:
        self.inner.close()


def main() -> None:
    db, kind, *args = sys.argv[1:]
    gateway: Gateway
    if kind == "gammu":
        from notify.gateways.gammu import GammuGateway

        gateway = GammuGateway(GammuConfig(smsdrc=Path(args[0]), staging=Path(args[1])))
    else:
        from notify.gateways.http_sms import HttpSmsGateway

        config = HttpSmsConfig.model_validate(
            {
                "url": args[0],
                "token": "t0ken-123",
                "sender": "Starostwo",
                "id_path": "list.0.id",
                "idempotent": args[1] == "1",
            }
        )
        gateway = HttpSmsGateway(config)
    outbox = Outbox(connect(db), SETTINGS, {gateway.channel: Route(kind, StopsAfterSend(gateway))})
    outbox.recover()
    outbox.run_once()


if __name__ == "__main__":
    main()
