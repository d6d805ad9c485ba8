"""The counter unit's estimate of the server's clock (the Pi has no real-time clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from counter.unit import ServerClock

WARSAW = timezone(timedelta(hours=1))


class Monotonic:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_no_estimate_before_the_first_live_message_so_commands_go_without_a_deadline():
    assert ServerClock(Monotonic()).now() is None


def test_estimate_runs_on_with_the_units_own_monotonic_time_in_the_servers_offset():
    mono = Monotonic()
    clock = ServerClock(mono)
    clock.learn(datetime(2026, 11, 23, 9, 15, 0, tzinfo=WARSAW))
    mono.t += 2.5
    now = clock.now()
    assert now == datetime(2026, 11, 23, 9, 15, 2, 500000, tzinfo=WARSAW)
    assert now.utcoffset() == timedelta(hours=1)


def test_a_message_delayed_on_the_way_does_not_pull_the_estimate_back():
    """Each server_time is a lower bound of the server's time; the highest bound wins."""
    mono = Monotonic()
    clock = ServerClock(mono)
    clock.learn(datetime(2026, 11, 23, 8, 15, 0, tzinfo=UTC))
    mono.t += 10
    clock.learn(datetime(2026, 11, 23, 8, 15, 7, tzinfo=UTC))  # stamped 3 s before it arrived
    assert clock.now() == datetime(2026, 11, 23, 8, 15, 10, tzinfo=UTC)
    clock.learn(datetime(2026, 11, 23, 8, 15, 12, tzinfo=UTC))  # a faster one: the server is ahead
    assert clock.now() == datetime(2026, 11, 23, 8, 15, 12, tzinfo=UTC)


def test_forget_drops_the_estimate_after_a_server_restart_or_a_lost_connection():
    clock = ServerClock(Monotonic())
    clock.learn(datetime(2026, 11, 23, 8, 15, tzinfo=UTC))
    clock.forget()
    assert clock.now() is None
    clock.learn(datetime(2026, 11, 23, 7, 0, tzinfo=UTC))  # the server came back with an earlier clock
    assert clock.now() == datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
