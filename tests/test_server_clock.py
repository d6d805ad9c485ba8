"""The devices' shared estimate of the server's clock (protocol/clock.py): counter units,
kiosks and displays all use this one class, so its rules are tested once, here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import counter.unit
import display.board
import kiosk.link
from protocol.clock import ServerClock

WARSAW = timezone(timedelta(hours=1))


class Monotonic:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_no_estimate_before_the_first_live_message_so_requests_go_without_a_deadline():
    clock = ServerClock(Monotonic())
    assert clock.now() is None and not clock.known


def test_estimate_runs_on_with_the_devices_own_monotonic_time_in_the_servers_offset():
    mono = Monotonic()
    clock = ServerClock(mono)
    assert clock.learn(datetime(2026, 11, 23, 9, 15, 0, tzinfo=WARSAW), retained=False)
    mono.t += 2.5
    now = clock.now()
    assert now == datetime(2026, 11, 23, 9, 15, 2, 500000, tzinfo=WARSAW)
    assert now.utcoffset() == timedelta(hours=1)


def test_a_retained_copy_teaches_nothing_it_may_be_hours_old():
    mono = Monotonic()
    clock = ServerClock(mono)
    assert not clock.learn(datetime(2026, 11, 23, 6, 0, tzinfo=UTC), retained=True)
    assert clock.now() is None, "a retained server_time alone must not give a time"
    clock.learn(datetime(2026, 11, 23, 8, 15, tzinfo=UTC), retained=False)
    assert not clock.learn(datetime(2026, 11, 23, 9, 0, tzinfo=UTC), retained=True)  # not even a later one
    assert clock.now() == datetime(2026, 11, 23, 8, 15, tzinfo=UTC)


def test_a_message_delayed_on_the_way_does_not_pull_the_estimate_back():
    """Each server_time is a lower bound of the server's time; the highest bound wins."""
    mono = Monotonic()
    clock = ServerClock(mono)
    clock.learn(datetime(2026, 11, 23, 8, 15, 0, tzinfo=UTC), retained=False)
    mono.t += 10
    assert not clock.learn(datetime(2026, 11, 23, 8, 15, 7, tzinfo=UTC), retained=False)  # stamped 3 s before
    assert clock.now() == datetime(2026, 11, 23, 8, 15, 10, tzinfo=UTC)
    assert clock.learn(datetime(2026, 11, 23, 8, 15, 12, tzinfo=UTC), retained=False)  # the server is ahead
    assert clock.now() == datetime(2026, 11, 23, 8, 15, 12, tzinfo=UTC)


def test_a_time_without_utc_offset_is_ignored_it_cannot_be_placed():
    clock = ServerClock(Monotonic())
    assert not clock.learn(datetime(2026, 11, 23, 8, 15), retained=False)
    assert clock.now() is None


def test_forget_drops_the_estimate_after_a_server_restart_or_a_lost_connection():
    clock = ServerClock(Monotonic())
    clock.learn(datetime(2026, 11, 23, 8, 15, tzinfo=UTC), retained=False)
    clock.forget()
    assert clock.now() is None
    clock.learn(datetime(2026, 11, 23, 7, 0, tzinfo=UTC), retained=False)  # back with an earlier clock
    assert clock.now() == datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


def test_counter_kiosk_and_display_share_this_one_clock():
    """One implementation: a fix to the rules reaches every device (through the one device connection)."""
    import protocol.device

    assert protocol.device.ServerClock is ServerClock
    assert counter.unit.DeviceConnection is protocol.device.DeviceConnection
    assert kiosk.link.DeviceConnection is protocol.device.DeviceConnection
    assert display.board.ServerClock is ServerClock
