"""What a counter's display and LED say in each state, without GPIO (counter/presenter.py).

The gpiozero wiring, the broker and the server are in tests/test_counter_unit.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from counter.presenter import LED_COLOURS, Indicator, Presenter, Refusal
from protocol.messages import CounterAction, CounterReply, CounterState, CounterStatus, TicketInfo

T0 = datetime(2031, 5, 6, 9, 30, tzinfo=timezone(timedelta(hours=2)))


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def state(status: CounterStatus = CounterStatus.OPEN, ticket: str | None = None) -> CounterState:
    ref = TicketInfo(number=ticket, service="rej", status="called", issued_at=T0) if ticket else None
    return CounterState(
        counter="1",
        name="Stanowisko 1",
        zone="hall",
        status=status,
        ticket=ref,
        services=["rej"],
        waiting={"rej": 0},
        server_time=T0,
    )


def presenter(**kw) -> Presenter:
    return Presenter(cols=16, message_s=2.0, monotonic=FakeMonotonic(), **kw)


def test_before_the_state_comes_the_display_says_connecting_and_the_led_blinks_offline():
    p = presenter()
    assert p.lines(online=False) == ("Numerek".center(16).rstrip(), "Brak polaczenia")
    assert p.indicator(online=False) == Indicator.OFFLINE
    assert p.lines(online=True)[1] == "Laczenie..."
    assert p.indicator(online=True) == Indicator.OFFLINE


def test_each_counter_state_has_its_line_for_the_client_and_its_led_colour():
    cases = [
        (state(CounterStatus.CLOSED), "Nieczynne", Indicator.CLOSED, (1, 1, 0)),
        (state(CounterStatus.PAUSED), "Przerwa", Indicator.PAUSED, (1, 1, 0)),
        (state(), "Zapraszamy", Indicator.READY, (0, 1, 0)),
        (state(ticket="A001"), "Numer A001", Indicator.SERVING, (0, 0, 1)),
    ]
    for st, top, indicator, colour in cases:
        p = presenter(state=st)
        assert p.lines(online=True) == (top.center(16).rstrip(), "Stanowisko 1")
        assert p.indicator(online=True) == indicator and LED_COLOURS[indicator] == colour


def test_the_configured_name_wins_over_the_servers():
    assert presenter(state=state(), name="Okienko 7").lines(online=True)[1] == "Okienko 7"


def test_a_refused_press_turns_the_led_red_and_says_why_until_the_notice_expires():
    p = presenter(state=state(ticket="A001"))
    assert p.refused("queue_empty", CounterAction.NEXT) == Refusal.ERROR
    assert p.lines(online=True) == ("   Numer A001", "Kolejka pusta")
    assert p.indicator(online=True) == Indicator.ERROR
    p.monotonic.now += 2.1  # type: ignore[attr-defined]
    p.expire()
    assert p.lines(online=True)[1] == "Stanowisko 1" and p.indicator(online=True) == Indicator.SERVING


def test_an_unknown_refusal_code_is_still_said():
    p = presenter(state=state())
    p.refused("internal")
    assert p.lines(online=True)[1] == "Blad internal"


def test_gentle_refusals_and_a_clients_rating_keep_the_led_colour():
    for code, action, text, how in (
        ("too_soon", CounterAction.RECALL, "Juz wywolano", Refusal.GENTLE),
        ("stale", CounterAction.NEXT, "Stan zmieniony", Refusal.GENTLE),
        ("not_allowed", CounterAction.RATE, "Juz oceniono", Refusal.RATING),
        ("expired", CounterAction.RATE, "Brak do oceny", Refusal.RATING),
    ):
        p = presenter(state=state())
        assert p.refused(code, action) == how
        assert p.lines(online=True)[1] == text and p.indicator(online=True) == Indicator.READY


def test_offline_is_shown_and_a_refused_press_while_offline_shows_red():
    p = presenter(state=state(ticket="A003"))
    assert p.lines(online=False) == ("   Numer A003", "Brak polaczenia")
    assert p.indicator(online=False) == Indicator.OFFLINE
    p.refused("offline", CounterAction.NEXT)
    assert p.lines(online=False)[1] == "Nie wyslano!" and p.indicator(online=False) == Indicator.ERROR


def test_a_display_that_does_not_work_shows_red_on_the_led():
    assert presenter(state=state()).indicator(online=True, display_ok=False) == Indicator.ERROR


def test_accepted_presses_say_what_happened_when_the_state_alone_would_not():
    p = presenter(state=state())
    p.accepted(CounterAction.NEXT, CounterReply(id="x", ok=True, action="next", ticket=None, server_time=T0))
    assert p.lines(online=True)[1] == "Kolejka pusta" and p.indicator(online=True) == Indicator.READY
    p.accepted(CounterAction.TRANSFER, CounterReply(id="y", ok=True, action="transfer", server_time=T0), "Do: pj")
    assert p.lines(online=True)[1] == "Do: pj"
    p.accepted(CounterAction.RATE, CounterReply(id="z", ok=True, action="rate", server_time=T0))
    assert p.lines(online=True)[1] == "Dziekujemy!"
