"""The outbox's rules as a plain model: what to send now, when to try again, when to give up.

No SQL and no clock of its own — every function takes the row and ``now`` (epoch seconds,
from the server's clock), so the rules are tested alone and the SQLite outbox
(notify.outbox) only applies them. The state machine::

    pending ──claim──> sending ──accepted──> sent
       ^                  │ ──failed────> failed          (permanent: bad number, refused text)
       │                  │ ──unknown───> unknown         (may have gone out: never resent…)
       └──retry/backoff───┘                               (…unless the gateway has idempotency keys)
    pending ──its moment passed──> expired      pending ──the cause went away──> cancelled

A crash while a row is ``sending`` (between handing it to the gateway and recording the
answer) is found at the next start: :func:`recover` makes it ``unknown`` — visible to the
clerk, never sent again — or, when the gateway turns a repeated key into the first send's
answer, ``pending`` again, to be retried with the same key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from notify.config import NotifySettings
from notify.message import Channel, NoticeKind, Outcome, SendResult


class State(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


FINAL = frozenset({State.SENT, State.FAILED, State.UNKNOWN, State.EXPIRED, State.CANCELLED})
MAY_HAVE_GONE_OUT = (State.SENDING, State.SENT, State.UNKNOWN)
"""States whose rows count against a number's rate limit."""


@dataclass(frozen=True)
class Row:
    id: int
    notice: str
    recipient: str
    channel: Channel
    kind: NoticeKind
    lang: str
    key: str
    not_before: float
    expires_at: float | None
    state: State
    attempts: int
    next_attempt_at: float
    payload: dict[str, Any] = field(default_factory=dict)


class Action(StrEnum):
    SEND = "send"
    DEFER = "defer"
    EXPIRE = "expire"


@dataclass(frozen=True)
class Decision:
    action: Action
    at: float | None = None
    reason: str = ""


@dataclass(frozen=True)
class Transition:
    state: State
    next_attempt_at: float | None = None
    reason: str = ""


class Policy:
    def __init__(self, settings: NotifySettings) -> None:
        self.settings = settings
        self.zone = settings.zone

    # -- when ---------------------------------------------------------------------------
    def quiet_until(self, now: float) -> float | None:
        """The end of the quiet hours ``now`` falls in (office time), or None outside them."""
        quiet = self.settings.quiet_hours
        if quiet is None or quiet.start == quiet.end:
            return None
        local = datetime.fromtimestamp(now, self.zone)
        t = local.time().replace(tzinfo=None)
        crosses_midnight = quiet.start > quiet.end
        inside = (t >= quiet.start or t < quiet.end) if crosses_midnight else (quiet.start <= t < quiet.end)
        if not inside:
            return None
        day = local.date() if t < quiet.end else local.date() + timedelta(days=1)
        return datetime.combine(day, quiet.end, tzinfo=self.zone).timestamp()

    def rate_free_at(self, now: float, recent: list[float]) -> float | None:
        """None if the number may get another message now; else when its oldest counted send leaves the window."""
        limit = self.settings.rate_limit
        window = limit.per_minutes * 60.0
        inside = sorted(t for t in recent if t > now - window)
        if len(inside) < limit.messages:
            return None
        return inside[len(inside) - limit.messages] + window

    def decide(self, row: Row, now: float, recent: list[float]) -> Decision:
        """For a pending row that is due: send it now, put it off (until ``at``), or expire it.

        ``recent``: when this recipient's messages that may have gone out were handed over.
        """
        if row.expires_at is not None and now >= row.expires_at:
            return Decision(Action.EXPIRE, reason="its moment passed before it could be sent")
        if now < row.not_before:
            return Decision(Action.DEFER, row.not_before, "not yet")
        if row.kind is NoticeKind.OPTOUT_CONFIRMED:  # the answer to the resident's own "STOP", once: at once
            return Decision(Action.SEND)
        later: list[tuple[float, str]] = []
        if row.kind is not NoticeKind.CALLED:  # a call is the one message worth waking someone for
            quiet_end = self.quiet_until(now)
            if quiet_end is not None:
                later.append((quiet_end, "quiet hours"))
        free = self.rate_free_at(now, recent)
        if free is not None:
            later.append((free, "rate limit for this number"))
        if not later:
            return Decision(Action.SEND)
        at, reason = max(later)
        if row.expires_at is not None and at >= row.expires_at:
            return Decision(Action.EXPIRE, reason=f"{reason} would hold it past its moment")
        return Decision(Action.DEFER, at, reason)

    # -- after a send -------------------------------------------------------------------
    def backoff(self, attempts: int) -> float:
        b = self.settings.backoff
        return min(b.max_s, b.first_s * b.factor ** max(0, attempts - 1))

    def _again(self, row: Row, now: float, reason: str, hint: float | None) -> Transition:
        if row.attempts >= self.settings.backoff.max_attempts:
            return Transition(State.FAILED, reason=f"gave up after {row.attempts} attempts: {reason}")
        at = now + max(self.backoff(row.attempts), hint or 0.0)
        if row.expires_at is not None and at >= row.expires_at:
            return Transition(State.EXPIRED, reason=f"its moment passed while retrying: {reason}")
        return Transition(State.PENDING, at, reason)

    def after(self, row: Row, result: SendResult, now: float, idempotent: bool) -> Transition:
        """The row's next state once the gateway answered (``row.attempts`` counts this attempt)."""
        match result.outcome:
            case Outcome.ACCEPTED:
                return Transition(State.SENT, reason=result.reason)
            case Outcome.FAILED:
                return Transition(State.FAILED, reason=result.reason)
            case Outcome.RETRY:
                return self._again(row, now, result.reason, result.retry_after)
            case Outcome.UNKNOWN if idempotent:
                return self._again(row, now, result.reason, result.retry_after)
            case _:
                return Transition(State.UNKNOWN, reason=result.reason)

    def recover(self, row: Row, now: float, idempotent: bool) -> Transition:
        """A row found ``sending`` at start: the process stopped between send and record."""
        why = "the sender stopped between handing it to the gateway and recording the answer"
        if idempotent:
            return Transition(State.PENDING, now, f"{why}; retried with the same key")
        return Transition(State.UNKNOWN, reason=why)
