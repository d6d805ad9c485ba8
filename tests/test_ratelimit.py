"""The devices' rate limit: at most N requests in any period, in a burst or spread out."""

from __future__ import annotations

from server.ratelimit import SlidingWindow


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_a_burst_gets_its_allowance_and_no_more():
    clock = Clock()
    limit = SlidingWindow("5/10 seconds", clock)
    assert [limit.hit("k1") for _ in range(7)] == [True] * 5 + [False] * 2


def test_the_allowance_comes_back_at_the_limits_pace():
    clock = Clock()
    limit = SlidingWindow("5/10 seconds", clock)
    for _ in range(5):
        limit.hit("k1")
    clock.t += 9.9
    assert not limit.hit("k1")
    clock.t += 0.2  # ten seconds since the burst: a new allowance
    assert sum(limit.hit("k1") for _ in range(7)) == 5


def test_every_limit_must_allow_and_a_refusal_counts_nothing():
    clock = Clock()
    limit = SlidingWindow("5/10 seconds;20/minute", clock)
    allowed = 0
    for _ in range(600):  # ten minutes at one request a second
        allowed += limit.hit("k1")
        clock.t += 1.0
    assert allowed == 200  # the per-minute limit rules: 20 in any minute
    clock.t += 3600
    assert sum(limit.hit("k1") for _ in range(10)) == 5  # a long pause restores the burst, not more


def test_kiosks_are_counted_apart():
    clock = Clock()
    limit = SlidingWindow("1/10 seconds", clock)
    assert limit.hit("k1") and limit.hit("k2") and not limit.hit("k1")
