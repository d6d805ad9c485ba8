"""The outbox's rules as a plain model: quiet hours, rate limits, backoff, expiry, crash recovery."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from notify.config import NotifySettings
from notify.message import Channel, NoticeKind, SendResult
from notify.policy import Action, Policy, Row, State

WARSAW = ZoneInfo("Europe/Warsaw")
SETTINGS = NotifySettings.model_validate(
    {
        "office": "Starostwo Łódź",
        "quiet_hours": {"start": "20:00", "end": "07:00"},
        "rate_limit": {"messages": 3, "per_minutes": 60},
        "backoff": {"first_s": 30, "factor": 2, "max_s": 600, "max_attempts": 5},
    }
)
policy = Policy(SETTINGS)


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=WARSAW).timestamp()


def row(
    kind: NoticeKind = NoticeKind.TURN_NEAR, expires: float | None = None, attempts: int = 0, not_before: float = 0.0
) -> Row:
    return Row(
        1,
        "ticket:1:near",
        "+48600100200",
        Channel.SMS,
        kind,
        "pl",
        "k1",
        not_before,
        expires,
        State.PENDING,
        attempts,
        0.0,
    )


def test_a_notice_due_in_quiet_hours_waits_until_morning_but_a_call_goes_at_once():
    evening = at("2026-12-07T21:15")
    decision = policy.decide(row(NoticeKind.DOCUMENT_READY), evening, [])
    assert decision.action is Action.DEFER and decision.at == at("2026-12-08T07:00")
    assert decision.reason == "quiet hours"
    assert policy.decide(row(NoticeKind.CALLED), evening, []).action is Action.SEND
    early = policy.decide(row(NoticeKind.BOOKING_REMINDER), at("2026-12-08T06:59"), [])
    assert early.at == at("2026-12-08T07:00")
    assert policy.decide(row(), at("2026-12-08T07:00"), []).action is Action.SEND
    assert policy.decide(row(), at("2026-12-08T19:59"), []).action is Action.SEND


def test_quiet_hours_end_at_seven_by_the_office_clock_across_the_spring_time_change():
    night = at("2026-03-29T01:30")  # the clocks go forward at 02:00 that night
    assert policy.decide(row(), night, []).at == datetime(2026, 3, 29, 7, 0, tzinfo=WARSAW).timestamp()


def test_a_notice_that_quiet_hours_would_hold_past_its_moment_expires():
    evening = at("2026-12-07T21:00")
    decision = policy.decide(row(expires=at("2026-12-07T23:00")), evening, [])
    assert decision.action is Action.EXPIRE and "quiet hours" in decision.reason


def test_a_notice_whose_moment_passed_expires_and_one_not_yet_due_waits():
    noon = at("2026-12-07T12:00")
    assert policy.decide(row(expires=noon), noon, []).action is Action.EXPIRE
    later = policy.decide(row(not_before=noon + 60), noon, [])
    assert (later.action, later.at) == (Action.DEFER, noon + 60)


def test_a_number_gets_at_most_its_rate_and_then_waits_for_the_window():
    noon = at("2026-12-07T12:00")
    recent = [noon - 3000, noon - 600, noon - 60]
    decision = policy.decide(row(), noon, recent)
    assert decision.action is Action.DEFER and decision.at == noon - 3000 + 3600
    assert policy.decide(row(), noon, recent[1:]).action is Action.SEND
    assert policy.decide(row(), noon, [noon - 3700, *recent[1:]]).action is Action.SEND  # one left the window


def test_retries_back_off_then_give_up():
    now = 1000.0
    waits = [
        policy.after(row(attempts=n), SendResult.retry("busy"), now, False).next_attempt_at - now for n in (1, 2, 3, 4)
    ]
    assert waits == [30, 60, 120, 240]
    assert policy.backoff(10) == 600
    last = policy.after(row(attempts=5), SendResult.retry("busy"), now, False)
    assert last.state is State.FAILED and "5 attempts" in last.reason


def test_a_providers_retry_after_longer_than_the_backoff_is_honoured():
    t = policy.after(row(attempts=1), SendResult.retry("429", after=300), 1000.0, False)
    assert (t.state, t.next_attempt_at) == (State.PENDING, 1300.0)


def test_a_retry_that_would_land_after_the_notices_moment_expires_it():
    t = policy.after(row(attempts=1, expires=1010.0), SendResult.retry("busy"), 1000.0, False)
    assert t.state is State.EXPIRED


def test_an_unknown_outcome_is_never_resent_unless_the_gateway_has_idempotency_keys():
    unknown = SendResult.unknown("timeout after sending")
    assert policy.after(row(attempts=1), unknown, 0.0, idempotent=False).state is State.UNKNOWN
    assert policy.after(row(attempts=1), unknown, 0.0, idempotent=True).state is State.PENDING
    assert policy.after(row(attempts=1), SendResult.failed("bad number"), 0.0, True).state is State.FAILED
    assert policy.after(row(attempts=1), SendResult.accepted("id-1"), 0.0, False).state is State.SENT


def test_a_row_left_sending_by_a_crash_becomes_unknown_or_is_retried_with_its_key():
    assert policy.recover(row(), 5.0, idempotent=False).state is State.UNKNOWN
    again = policy.recover(row(), 5.0, idempotent=True)
    assert (again.state, again.next_attempt_at) == (State.PENDING, 5.0)
