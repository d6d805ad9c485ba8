"""The counter unit daemon: clerk buttons in, commands to the server, LED and display out.

The unit holds no queue state of its own. What it shows comes from the server's retained
``CounterState``; a press becomes one ``CounterCommand`` carrying the ticket the unit shows
as ``current``, so the server refuses (``stale``) a press that was about a ticket that is no
longer current. That is what makes a bouncing contact or a nervous double press call one
ticket, not two: the unit adds only two cheap local filters in front of it (contact bounce,
and a second press of the same button within ``double_press_s`` re-using the first press's
``current``).

Offline is shown, never hidden: when the broker or the server is unreachable the LED blinks
red and the display says so. A press then is refused on the spot (red LED, "Nie wyslano")
and dropped; it is never queued. To make sure paho does not re-send an unacknowledged
command after a reconnect minutes later, the device connection (:mod:`protocol.device`, the
one every role uses) throws its MQTT client away whenever the connection drops and connects
with a fresh one (clean start, no session), so nothing from before the outage can be
replayed. After reconnecting the retained state is the truth.

A press that does reach a server which then freezes must not be carried out after the
unit told the clerk "Brak odpowiedzi". So every command carries ``expires_at``: the moment,
on the server's clock, when the unit gives up waiting. The Pi has no real-time clock, so
the unit learns the server's clock (:class:`protocol.clock.ServerClock`) from the ``server_time`` of live
state and replies, with ``time.monotonic()`` in between.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from gpiozero import RGBLED, Button

from counter.config import CounterConfig, CounterUnitConfig, DisplayConfig, TransferButton
from counter.presenter import LED_COLOURS, OFFLINE_BLINK_S, Indicator, Presenter, Refusal
from counter.texts import text
from hardware.number_display import ConsoleDisplay, HD44780Display, MemoryDisplay, NumberDisplay
from protocol.device import DeviceConnection, Incoming
from protocol.messages import CounterAction, CounterCommand, CounterReply, CounterState, CounterStatus, ErrorCode
from protocol.topics import RouteKind

log = logging.getLogger(__name__)


class UnitFailed(RuntimeError):
    """The unit's MQTT thread ended without a stop request: the buttons are dead.

    ``numerek-counter`` turns this into a non-zero exit so that systemd's
    ``Restart=on-failure`` brings the unit back instead of leaving it silently useless.
    """


# Actions about the ticket being served carry ``current`` (see CounterCommand).
ABOUT_CURRENT = {
    CounterAction.NEXT,
    CounterAction.RECALL,
    CounterAction.NO_SHOW,
    CounterAction.FINISH,
    CounterAction.TRANSFER,
}


def transfer_text(t: TransferButton) -> str:
    """The notice after a transfer: where the ticket went (the button's label, or its target)."""
    if t.label:
        return t.label
    if t.service:
        return text("transferred_to_service", service=t.service)
    return text("transferred_to_counter", counter=t.counter)


def make_display(counter_id: str, cfg: DisplayConfig) -> NumberDisplay:
    if cfg.kind == "lcd":
        return HD44780Display(cfg.address, cfg.port, cfg.expander, cfg.cols, cfg.rows, cfg.charmap)
    if cfg.kind == "console":
        return ConsoleDisplay(f"counter {counter_id}", cfg.cols, cfg.rows)
    return MemoryDisplay(cfg.cols, cfg.rows)


class Debounce:
    """Contact-bounce filter that works the same with every gpiozero pin factory.

    A press counts only if the contact was quiet for ``bounce_s`` before it closed; every
    edge (counted or not) restarts the quiet period. So the burst of edges a mechanical
    switch makes when it closes or opens yields one press, and the first edge acts at once.
    (gpiozero's own ``bounce_time`` depends on the pin factory: MockFactory ignores it.)
    """

    def __init__(self, bounce_s: float) -> None:
        self.bounce_s = bounce_s
        self._last_edge = float("-inf")
        self._lock = threading.Lock()

    def edge(self) -> bool:
        """Record an edge; True if it counts (a real press or release, not bounce)."""
        now = time.monotonic()
        with self._lock:
            quiet = now - self._last_edge >= self.bounce_s
            self._last_edge = now
        return quiet


@dataclass
class _Pending:
    station: Station
    action: CounterAction
    deadline: float
    quiet: bool = False  # the unit's own sync: no notice either way
    done_text: str | None = None  # the notice when it is accepted (a transfer's target)


class Station:
    """One counter driven by this unit: its buttons, LED, display and last known state."""

    def __init__(self, unit: CounterUnit, cfg: CounterConfig, display: NumberDisplay, pin_factory=None) -> None:
        self.unit = unit
        self.cfg = cfg
        self.id = cfg.id
        self.display = display
        self.presenter = Presenter(cols=display.cols, name=cfg.name or "", message_s=unit.config.unit.message_s)
        self.led: RGBLED | None = None
        self.buttons: dict[str, Button] = {}
        self._shown_indicator: Indicator | None = None
        self._last_press: dict[str, tuple[float, str]] = {}  # button -> (time, current sent)
        self._held = False
        if cfg.led:
            self.led = RGBLED(
                cfg.led.red,
                cfg.led.green,
                cfg.led.blue,
                active_high=cfg.led.active_high,
                pwm=False,
                pin_factory=pin_factory,
            )
        b = cfg.buttons
        for name, action in (
            ("next", CounterAction.NEXT),
            ("recall", CounterAction.RECALL),
            ("no_show", CounterAction.NO_SHOW),
            ("finish", CounterAction.FINISH),
        ):
            pin = getattr(b, name)
            if pin:
                self._button(name, pin, b.pull_up, pin_factory, functools.partial(self.press, action, name))
        for i, t in enumerate(cfg.transfer):
            self._button(
                f"transfer{i}",
                t.pin,
                b.pull_up,
                pin_factory,
                functools.partial(
                    self.press,
                    CounterAction.TRANSFER,
                    f"transfer{i}",
                    done_text=transfer_text(t),
                    target_service=t.service,
                    target_counter=t.counter,
                ),
            )
        for f in cfg.feedback:
            self._button(f"rate{f.rating}", f.pin, b.pull_up, pin_factory, functools.partial(self.rate, f.rating))
        if b.pause:
            btn = self._button("pause", b.pause, b.pull_up, pin_factory, self._pause_pressed, hold=True)
            btn.when_held = self._pause_held

    def _button(
        self, name: str, pin: str, pull_up: bool, pin_factory, on_press: Callable[[], None], hold: bool = False
    ) -> Button:
        button = Button(pin, pull_up=pull_up, bounce_time=None, hold_time=self.cfg.hold_s, pin_factory=pin_factory)
        debounce = Debounce(self.cfg.bounce_ms / 1000)

        def pressed() -> None:
            if debounce.edge():
                on_press()

        def released() -> None:
            counted = debounce.edge()
            if hold and counted:
                self._pause_released()

        button.when_pressed = pressed
        button.when_released = released
        self.buttons[name] = button
        return button

    # ------------------------------------------------------------------ presses

    def press(self, action: CounterAction, button: str, done_text: str | None = None, **fields) -> None:
        """A clerk's button: send the command about the ticket shown now."""
        current = None
        if action in ABOUT_CURRENT:
            now = time.monotonic()
            with self.unit.lock:
                shown = self.shown_ticket() or ""
                last = self._last_press.get(button)
                if last is not None and now - last[0] < self.cfg.double_press_s:
                    current = last[1]  # the same press again: about the same ticket, so refused as stale
                else:
                    current = shown
                    self._last_press[button] = (now, shown)
        log.info("counter %s: %s pressed (current %r)", self.id, button, current)
        self.unit.send(self, action, done_text=done_text, current=current, **fields)

    def rate(self, rating: int) -> None:
        now = time.monotonic()
        last = self._last_press.get("rate")
        if last is not None and now - last[0] < self.cfg.double_press_s:
            log.info("counter %s: rating %d ignored: a double press", self.id, rating)
            return  # one client, one rating: the server would refuse the second anyway
        self._last_press["rate"] = (now, "")
        log.info("counter %s: client rated %d", self.id, rating)
        self.unit.send(self, CounterAction.RATE, rating=rating)

    def _pause_pressed(self) -> None:
        self._held = False

    def _pause_held(self) -> None:
        self._held = True
        with self.unit.lock:
            status = self.state.status if self.state else None
        action = CounterAction.PAUSE if status == CounterStatus.OPEN else CounterAction.OPEN
        log.info("counter %s: pause held -> %s", self.id, action.value)
        self.unit.send(self, action)

    def _pause_released(self) -> None:
        if not self._held:
            self.notice("Przytrzymaj", error=False)  # a short press of PAUSE does nothing: say how

    # ------------------------------------------------------------------ results

    @property
    def state(self) -> CounterState | None:
        """The server's retained state of this counter (None until it came)."""
        return self.presenter.state

    @state.setter
    def state(self, value: CounterState | None) -> None:
        self.presenter.state = value

    def accepted(self, action: CounterAction, reply: CounterReply, done_text: str | None = None) -> None:
        with self.unit.lock:
            self.presenter.accepted(action, reply, done_text)
        self.render()

    def refused(self, code: str, message: str = "", action: CounterAction | None = None) -> None:
        with self.unit.lock:
            how = self.presenter.refused(code, action)
        what = action.value if action else "press"
        if how == Refusal.ERROR:
            log.warning("counter %s: %s refused: %s %s", self.id, what, code, message)
        else:  # the client's press, or not the clerk's mistake: a notice, no red LED
            log.info("counter %s: %s refused: %s %s", self.id, what, code, message)
        if how == Refusal.GENTLE and code == ErrorCode.STALE:
            self.unit.resync(self)  # what we show is behind the server: fetch the truth again
        self.render()

    def notice(self, text: str, error: bool) -> None:
        with self.unit.lock:
            self.presenter.notice(text, error)
        self.render()

    # ------------------------------------------------------------------ output

    def shown_ticket(self) -> str | None:
        return self.presenter.shown_ticket()

    def indicator(self) -> Indicator:
        return self.presenter.indicator(self.unit.online, self.display.fault is None)

    def lines(self) -> tuple[str, str]:
        return self.presenter.lines(self.unit.online)

    def render(self) -> None:
        with self.unit.lock:
            self.presenter.expire()
            lines = self.lines()
            indicator = self.indicator()
            self.display.show(lines)
            if self.led is not None and indicator != self._shown_indicator:
                if indicator == Indicator.OFFLINE:
                    self.led.blink(OFFLINE_BLINK_S, OFFLINE_BLINK_S, on_color=(1, 0, 0), off_color=(0, 0, 0))
                else:
                    self.led.color = LED_COLOURS[indicator]
            self._shown_indicator = indicator

    def close(self) -> None:
        for b in self.buttons.values():
            b.close()
        if self.led is not None:
            self.led.close()
        self.display.close()


class CounterUnit:
    """All stations of one Pi and their one MQTT connection.

    Two threads: the device connection's network thread (:mod:`protocol.device`) and the
    unit's own, which the connection hands every message and connection change over to, in
    order, and which also times out unanswered presses and expires notices (about every
    0.1 s). Presses come from gpiozero's threads and publish directly.
    """

    TICK_S = 0.1

    def __init__(
        self,
        config: CounterUnitConfig,
        displays: dict[str, NumberDisplay] | None = None,
        pin_factory=None,
    ) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.broker_connected = False
        self.server_online = False
        self._pending: dict[str, _Pending] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.failure: BaseException | None = None  # what ended a thread, if not a stop
        self.conn = DeviceConnection(config.mqtt, config.device, wake=self._wake.set)
        self.topics = self.conn.topics
        self.server_clock = self.conn.clock
        self.stations: dict[str, Station] = {}
        displays = displays or {}
        try:
            for c in config.counters:
                display = displays.get(c.id) or make_display(c.id, c.display)
                self.stations[c.id] = Station(self, c, display, pin_factory)
        except Exception:
            for s in self.stations.values():
                s.close()
            raise
        self.conn.on(RouteKind.COUNTER_STATE, self._state)
        self.conn.on(RouteKind.COUNTER_REPLY, self._reply_message)
        self.conn.on_connection = self._broker
        self.conn.on_server = self._server
        for sid in self.stations:
            self.conn.subscribe(self.topics.counter_state(sid))
            self.conn.subscribe(self.topics.counter_reply(sid))
        self.render_all()

    @property
    def online(self) -> bool:
        """Commands can reach the server now."""
        return self.broker_connected and self.server_online

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> CounterUnit:
        self._thread = threading.Thread(target=self._thread_main, name="counter-unit", daemon=True)
        self._thread.start()
        self.conn.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.conn.stop()  # says "offline" first
        if self._thread:
            self._thread.join(timeout=10)
        for s in self.stations.values():
            s.close()

    def run_forever(self) -> None:
        """Run until :meth:`stop` (or SIGTERM); raise :class:`UnitFailed` if a thread died instead."""
        self.start()
        try:
            while not self._stop.is_set() and self._thread and self._thread.is_alive() and self.conn.alive:
                self._stop.wait(0.5)
        finally:
            stopped = self._stop.is_set()
            self.stop()
        if not stopped:
            failure = self.failure or self.conn.failure
            raise UnitFailed(f"the counter unit's MQTT thread ended unexpectedly: {failure!r}")

    def _thread_main(self) -> None:
        """The unit's thread: what the connection handed over, then housekeeping, until stopped."""
        try:
            while not self._stop.is_set():
                self._wake.wait(self.TICK_S)
                self._wake.clear()
                self.conn.drain()  # guarded: a handler's exception is logged, the unit goes on
                self._guarded("housekeeping", self.housekeeping)
        except BaseException as exc:
            self.failure = exc
            log.critical("the counter unit's thread failed; the buttons no longer work", exc_info=True)
            raise

    @staticmethod
    def _guarded(what: str, fn: Callable[[], None]) -> None:
        """Run ``fn``; an unexpected exception is logged with its traceback and the unit goes on.

        Why: a bug in one rendering path must not kill the thread that carries every button
        press of the unit.
        """
        try:
            fn()
        except Exception:
            log.exception("unexpected error in %s; the unit carries on", what)

    # ------------------------------------------------------------------ MQTT (on the unit's thread)

    def _broker(self, connected: bool) -> None:
        if connected:
            with self.lock:
                self.broker_connected = True
            log.info("connected to the broker; waiting for the server's retained state")
            self.render_all()
            return
        with self.lock:
            was_connected = self.broker_connected
            self.broker_connected = False
            self.server_online = False
            pending, self._pending = self._pending, {}
        if was_connected and not self._stop.is_set():
            log.warning("lost the broker; showing offline and reconnecting")
        for p in pending.values():
            if not p.quiet:
                p.station.refused("timeout", "connection lost", p.action)
        self.render_all()

    def _server(self, online: bool) -> None:
        with self.lock:
            came_online = online and not self.server_online
            self.server_online = online
        if came_online:
            self.sync_clock()
            self._check_counters()
        self.render_all()

    def _state(self, m: Incoming) -> None:
        station = self.stations.get(m.route.id or "")
        if station is None:
            return
        with self.lock:
            station.state = m.message
        station.render()

    def _reply_message(self, m: Incoming) -> None:
        if m.route.id in self.stations and m.route.sub is None:
            self._reply(m.message)

    def _reply(self, reply: CounterReply) -> None:
        with self.lock:
            pending = self._pending.pop(reply.id or "", None)
        if pending is None:
            return  # an answer to someone else (another unit of this counter, a test peer)
        code = reply.error.code if reply.error and not reply.ok else None
        if code == ErrorCode.UNKNOWN_COUNTER:
            # Without this a unit configured with the wrong id just shows "Laczenie..." forever.
            log.error(
                "the server has no counter %r: check `id` in this unit's counter.toml against the "
                "[[counters]] of the server's site config (%s)",
                pending.station.id,
                reply.error.message if reply.error else "",
            )
        if pending.quiet:
            return
        if reply.ok:
            pending.station.accepted(pending.action, reply, pending.done_text)
        else:
            pending.station.refused(
                reply.error.code if reply.error else "internal",
                reply.error.message if reply.error else "",
                pending.action,
            )

    # ------------------------------------------------------------------ commands

    def send(
        self, station: Station, action: CounterAction, quiet: bool = False, done_text: str | None = None, **fields
    ) -> str | None:
        """Publish one command now, or refuse it visibly; never queue it for later.

        The command expires (``expires_at``, server time) when this unit stops waiting for
        its reply, so a server that reads it later refuses it instead of acting behind the
        clerk's back. Without a clock estimate yet, it goes without a deadline.
        """
        timeout = self.config.unit.reply_timeout_s
        with self.lock:
            refused = not self.online
            if not refused:
                server_now = self.server_clock.now()
                expires_at = server_now + timedelta(seconds=timeout) if server_now is not None else None
                cmd = CounterCommand(id=uuid.uuid4().hex, action=action, expires_at=expires_at, **fields)
                if self.conn.publish(self.topics.counter_command(station.id), cmd.to_json()):
                    deadline = time.monotonic() + timeout
                    self._pending[cmd.id] = _Pending(station, action, deadline, quiet, done_text)
                else:
                    refused = True
        if refused:
            if not quiet:
                station.refused("offline", "not sent", action)
            return None
        return cmd.id

    def sync_clock(self) -> None:
        """Ask the server for a live reply (``sync`` changes nothing) to learn its clock from."""
        first = next(iter(self.stations.values()))
        self.send(first, CounterAction.SYNC, quiet=True)

    def _check_counters(self) -> None:
        """A quiet ``sync`` for each counter but the first (sync_clock asks for that one): a counter
        the server does not know answers ``unknown_counter``, which :meth:`_reply` logs."""
        for station in list(self.stations.values())[1:]:
            self.send(station, CounterAction.SYNC, quiet=True)

    def resync(self, station: Station) -> None:
        """Subscribe to the station's state again: the broker re-sends the retained truth."""
        self.conn.subscribe(self.topics.counter_state(station.id))

    def housekeeping(self) -> None:
        """Time out unanswered commands and let notices expire (runs about every 0.1 s)."""
        now = time.monotonic()
        with self.lock:
            expired = [k for k, p in self._pending.items() if p.deadline <= now]
            late = [self._pending.pop(k) for k in expired]
        for p in late:
            if not p.quiet:
                p.station.refused("timeout", "no reply", p.action)
        self.render_all()

    def render_all(self) -> None:
        for s in self.stations.values():
            s.render()
