"""What a gateway is given and what it answers: one vocabulary for every gateway.

Why these four outcomes: the outbox has to decide, after every send, whether the message
may be sent again. "Failed" (never retry: a bad number, refused content), "retry" (nothing
went out: try later) and "accepted" are safe to act on; "unknown" is the honest answer when
the gateway may have taken the message but we cannot tell (a timeout after the request was
written). Only a gateway with idempotency keys may see an unknown message again.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Channel(StrEnum):
    SMS = "sms"
    EMAIL = "email"


@dataclass(frozen=True)
class Attachment:
    """A file sent with an e-mail (the monthly report's PDF and XLSX)."""

    filename: str
    media_type: str  # "application/pdf"
    content: bytes

    def __post_init__(self) -> None:
        if not self.filename or "/" in self.filename or "\\" in self.filename:
            raise ValueError("an attachment needs a plain file name (no folders)")
        if self.media_type.count("/") != 1:
            raise ValueError(f"an attachment's media type is 'type/subtype', not {self.media_type!r}")


@dataclass(frozen=True)
class Message:
    """One message to one recipient.

    ``key`` is stable for a (notice, recipient) pair: a gateway that supports idempotency
    keys turns a second send with the same key into the first one's answer. ``urgent``
    marks a call ("you are called"), which jumps a gateway's own queue where it has one.
    ``attachments`` are for e-mail only: an SMS cannot carry a file, so such a message is
    refused when it is made, not discovered later by a gateway that would drop the files.
    """

    channel: Channel
    recipient: str
    text: str
    subject: str = ""
    html: str | None = None
    key: str | None = None
    urgent: bool = False
    attachments: tuple[Attachment, ...] = ()

    def __post_init__(self) -> None:
        if self.attachments and self.channel is not Channel.EMAIL:
            raise ValueError("an SMS cannot carry attachments (files go by e-mail only)")


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    FAILED = "failed"
    RETRY = "retry"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class SendResult:
    """A gateway's answer to :meth:`Gateway.send`.

    ``reason`` is for the clerk or the IT person (it never contains the recipient);
    ``retry_after`` is the gateway's own hint in seconds (HTTP 429's Retry-After).
    """

    outcome: Outcome
    gateway_id: str | None = None
    reason: str = ""
    retry_after: float | None = None

    @classmethod
    def accepted(cls, gateway_id: str, reason: str = "") -> SendResult:
        return cls(Outcome.ACCEPTED, gateway_id=gateway_id, reason=reason)

    @classmethod
    def failed(cls, reason: str) -> SendResult:
        return cls(Outcome.FAILED, reason=reason)

    @classmethod
    def retry(cls, reason: str, after: float | None = None) -> SendResult:
        return cls(Outcome.RETRY, reason=reason, retry_after=after)

    @classmethod
    def unknown(cls, reason: str) -> SendResult:
        return cls(Outcome.UNKNOWN, reason=reason)


class Delivery(StrEnum):
    """What became of an accepted message, as far as the gateway can tell later."""

    QUEUED = "queued"  # the gateway holds it and has not passed it on yet
    SENT = "sent"  # handed to the network (the SMS centre, the next mail server)
    DELIVERED = "delivered"  # the handset confirmed it
    FAILED = "failed"  # the gateway or the network gave up on it
    UNKNOWN = "unknown"  # the gateway does not know this id (any more)


class NoticeKind(StrEnum):
    """What a notice tells the resident; the outbox treats a call differently (quiet hours, priority)."""

    TURN_NEAR = "turn_near"
    CALLED = "called"
    DOCUMENT_READY = "document_ready"
    BOOKING_CONFIRMED = "booking_confirmed"
    BOOKING_REMINDER = "booking_reminder"
    OPTOUT_CONFIRMED = "optout_confirmed"
    """The one answer to a resident's "STOP" (notify/optout.py): the only SMS an opted-out number gets."""
    TEST = "test"
