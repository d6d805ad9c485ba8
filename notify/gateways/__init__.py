"""One interface for every way out: Gammu's SMS daemon, an HTTP SMS provider, SMTP.

Why a Protocol and not a base class: each gateway is a thin adapter over a real component
with nothing to share but the shape; the outbox only needs ``send``, ``status``, whether a
retried send with the same key is safe (``idempotent``) and which channel it serves.
"""

from __future__ import annotations

from typing import Protocol

from notify.config import GammuConfig, GatewayConfig, HttpSmsConfig
from notify.message import Channel, Delivery, Message, SendResult


class Gateway(Protocol):
    channel: Channel
    idempotent: bool
    """True when a second ``send`` with the same ``Message.key`` never makes a second message."""

    def send(self, message: Message) -> SendResult: ...

    def status(self, gateway_id: str) -> Delivery | None:
        """What became of an accepted message; None when this gateway cannot tell by asking."""
        ...

    def close(self) -> None: ...


def open_gateway(config: GatewayConfig) -> Gateway:
    """The gateway a config section describes (imports only the one it needs)."""
    if isinstance(config, GammuConfig):
        from notify.gateways.gammu import GammuGateway

        return GammuGateway(config)
    if isinstance(config, HttpSmsConfig):
        from notify.gateways.http_sms import HttpSmsGateway

        return HttpSmsGateway(config)
    from notify.gateways.smtp import SmtpGateway

    return SmtpGateway(config)
