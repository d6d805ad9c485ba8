"""The kiosk's touch screen (Kivy): the thin shell over the visit model.

What the resident can do and what each screen says is :mod:`kiosk.visit` (plain Python, fast
tests); this module builds the screens it describes — ``home`` (one big button per service,
language switch, priority toggle, the booking check-in), ``booking`` (the code's keypad),
``busy``, ``ticket`` (the number, where to go, QR code, printer outcome) and ``message`` —
hands it every tap, message and printer answer, and carries out the :class:`~kiosk.visit.Step`
it returns (redraw, send, print). The building blocks (labels whose text always fits, the
scaling unit, the legibility measurements) are :mod:`kiosk.widgets`; the colours and the
readability rules :mod:`kiosk.style`.

Any screen size: all sizes are design pixels at 1280x720 times the scaling unit ``u`` of
the real window (see :func:`kiosk.widgets.unit`); no text is smaller than 22 px (3 mm
capitals on the 7" 800x480 panel).

Import this module only after ``kiosk.cli`` has set Kivy's environment.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from pathlib import Path

from kivy.app import App
from kivy.clock import Clock
from kivy.core.window import Window
from kivy.graphics.opengl import GL_SAMPLES, glGetIntegerv
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.button import Button
from kivy.uix.gridlayout import GridLayout
from kivy.uix.image import Image
from kivy.uix.label import Label
from kivy.uix.widget import Widget

from hardware.printer import TicketLayout, TicketPrinter
from kiosk.config import KioskConfig
from kiosk.link import KioskLink
from kiosk.style import BAR_GREY, BLACK, STYLES, YELLOW
from kiosk.texts import LANGUAGE_NAMES, LANGUAGES, t
from kiosk.visit import (
    CODE_LENGTH,
    KEYPAD,
    PHONE_KEYS,
    PICKUP_KEYS,
    PRINTER_CHECK_S,
    TOUCH_GUARD_S,
    PrintPlan,
    Screen,
    Step,
    Visit,
)
from kiosk.widgets import (
    MARKUP,
    MIN_FIT_FONT,
    MIN_FONT,
    button,
    fits,
    label,
    legibility,
    on_screen,
    paint,
    qr_texture,
    screenshot,
    smallest_font,
    unit,
    widest_word,
)
from protocol.messages import ServiceInfo, ServicesMessage, TicketResponse

log = logging.getLogger(__name__)

REPORT_DELAY_S = TOUCH_GUARD_S + 0.1  # the trace says a screen is there once it takes touches


class KioskApp(App):
    """The Kivy shell over :class:`kiosk.visit.Visit`: builds the screens the model describes,
    hands it every tap, message and printer answer, and does what its :class:`Step` says."""

    def __init__(
        self, config: KioskConfig, printer: TicketPrinter, trace: Path | None = None, shots: Path | None = None
    ) -> None:
        super().__init__()
        self.cfg = config
        self.printer = printer
        self.trace_path = trace
        self.shots = shots
        self.shot_seq = 0
        self.visit = Visit(config.kiosk)
        self.buttons: dict[str, Widget] = {}
        self._service_buttons: dict[str, Button] = {}
        self.root_box: BoxLayout = BoxLayout()
        self.clock_label: Label | None = None
        self.code_label: Label | None = None  # the booking keypad's code line and note
        self.note_label: Label | None = None
        self.qr_widget: Image | None = None
        self.u = 1.0  # the scaling unit of the current window (see unit())
        self.portrait = False  # an upright screen: the top bar and the ticket stack vertically
        self._built = 0  # how many times a screen was built: a report is about the newest only
        self._printing: str | None = None  # the ticket whose print the answer started (network thread)
        self.compact = False  # too narrow for office, clock and three languages in one row
        # Every callback of the link runs on Kivy's thread, in arrival order (the link's hand-over).
        self.link: KioskLink = KioskLink(
            config.kiosk.id,
            config.mqtt,
            on_services=self._services,
            on_connection=self._connection,
            on_late_response=lambda r: self._do(self.visit.late_response(r)),
            wake=Clock.create_trigger(lambda _dt: self.link.drain()),
        )

    @property
    def screen(self) -> str:
        return self.visit.screen.value

    @property
    def lang(self) -> str:
        return self.visit.lang

    # ------------------------------------------------------------------ lifecycle

    def build(self):
        self.title = "Numerek"
        Window.clearcolor = BLACK
        Window.bind(on_touch_down=self._touched)
        # A 2D scanner acting as a USB keyboard "types" a booking's code and presses Enter.
        Window.bind(on_textinput=lambda _w, text: self.visit.typed(text))
        Window.bind(on_key_down=self._key_down)
        Window.bind(size=lambda _w, _s: self.show(guard=False))
        Window.bind(on_flip=lambda *_a: self.visit.drawn())  # the touch guard counts from the first frame
        paint(self.root_box, BLACK)
        self.visit.started = self.visit.monotonic()
        self.show()
        Clock.schedule_interval(self._tick, 1.0)  # also ends the "connecting…" grace period
        self.link.start()
        threading.Thread(target=self._check_printer, daemon=True).start()
        Clock.schedule_interval(lambda _dt: self._maybe_check_printer(), PRINTER_CHECK_S)
        return self.root_box

    def on_stop(self) -> None:
        self.link.stop()

    def _touched(self, *_a) -> bool:
        """Every touch keeps the screen awake; one right after a screen change is swallowed.

        Returning True stops Kivy from passing the touch to the widgets, so the button
        under it never sees the press (nor, therefore, the release).
        """
        if self.visit.touched():
            log.info(
                "touch ignored: %.2f s after the %s screen appeared",
                self.visit.last_touch - self.visit.shown_at,
                self.screen,
            )
            return True
        return False

    def _on_tap(self, b: Button, action: Callable[[], Step]) -> None:
        """``b``'s release asks the model for ``action()``, unless ``b``'s screen is leaving.

        A screen is leaving once another was built: Kivy still hands a release to the button
        the press landed on (it grabbed the touch), even when the screen it belonged to was
        replaced between the press and the release (a fast answer, the server's news). Such
        a tap belongs to a screen the resident no longer sees: it is dropped, never applied to
        the new one (a "Gotowe" release must not become the new home's priority toggle)."""
        built = self._built

        def release(_b: Button) -> None:
            if built != self._built:
                log.info("tap on a screen that has left (%s now): ignored", self.screen)
                return
            self._do(action())

        b.bind(on_release=release)

    def _key_down(self, _window, key: int, *_args) -> bool:
        if key in (13, 271):  # Enter, keypad Enter: the end of a scanned code
            self._do(self.visit.entered())
            return True
        return False

    def _do(self, step: Step) -> None:
        """Carry out what the model asked for: print, send, then redraw or refresh in place.

        Issue 14: the resident waits for the paper, not for pictures. The request leaves the
        moment the tap is seen, before the busy screen is built and drawn, and the answer
        starts the printer on the network thread (:meth:`_print_at_once`) without waiting for
        this thread's next frame; a ticket whose print already started is not printed again
        here. A fast answer may now change the screen between a tap's press and its release:
        :meth:`_on_tap` drops a release on a screen that has left."""
        if step.layout is not None and self.visit.ticket is not None:
            number = self.visit.ticket.number
            if number != self._printing:
                self._start_print(number, step.layout)
        if step.ask is not None:
            a = step.ask
            log.info("ticket for %s: tap", a.service or "a pick-up")
            rid = self.link.request_ticket(
                a.service,
                a.priority,
                a.lang,
                self.cfg.kiosk.response_timeout_s,
                self._answered,
                booking=a.booking,
                pickup=a.pickup,
                phone=a.phone,
                on_ticket=partial(self._print_at_once, self.visit.print_plan()),
            )
            # never the number; whether one was given is enough for support
            log.info("ticket for %s: asked%s", a.service or "a pick-up", " (with SMS)" if a.phone else "")
            after = self.visit.sent(rid)
            if after.redraw:  # could not send: the message screen instead of the busy one
                step = after
        if step.redraw:
            self.show(guard=step.guard)
        elif step.refresh and self.visit.screen in (Screen.BOOKING, Screen.PHONE, Screen.PICKUP):
            self._refresh_booking()
        elif step.refresh:
            self._refresh_home()
            built = self._built
            Clock.schedule_once(lambda _dt: self._report(Screen.HOME, built), REPORT_DELAY_S)

    def _print_at_once(self, plan: PrintPlan, response: TicketResponse) -> None:
        """On the network thread, the moment the ticket arrives: print it (the link calls this
        before the UI thread hears of the answer; the ticket screen follows on its own)."""
        assert response.ticket is not None
        self._printing = response.ticket.number
        self._start_print(response.ticket.number, plan.layout(response.ticket, response.phone))

    def _start_print(self, number: str, layout: TicketLayout) -> None:
        log.info("ticket %s: printing", number)
        threading.Thread(target=self._print, args=(number, layout), daemon=True).start()

    # ------------------------------------------------------------------ MQTT events (UI thread)

    def _services(self, msg: ServicesMessage) -> None:
        self._update_clock()  # a live services message may be the first to tell the time
        self._do(self.visit.services_arrived(msg))

    def _connection(self, broker: bool, server: bool) -> None:
        self._do(self.visit.connection(broker, server, self.link.server_known))

    def _answered(self, response: TicketResponse | None) -> None:
        self._do(self.visit.answered(response))

    # ------------------------------------------------------------------ time (the server's)

    def server_now(self) -> datetime | None:
        """The link's estimate (live messages only: a retained services list may be hours old)."""
        return self.link.clock.now()

    def _update_clock(self) -> None:
        """Show the server's time, or nothing while there is no estimate: never a wrong time."""
        now = self.server_now()
        if self.clock_label is not None:
            self.clock_label.text = f"[b]{now:%H:%M}[/b]" if now is not None else ""

    def _tick(self, _dt) -> None:
        self._update_clock()
        self._do(self.visit.tick())

    # ------------------------------------------------------------------ the printer (threads)

    def _print(self, number: str, layout: TicketLayout) -> None:
        status = self.printer.print_ticket(layout)
        self.link.report_fault(status.fault.value, status.message)
        # Through the link's queue: after the answer that started this print (the screen
        # must know the ticket before it can show how its printing went).
        self.link.hand_over(lambda: self._do(self.visit.printed(number, status)))

    def _maybe_check_printer(self) -> None:
        """The idle check (every PRINTER_CHECK_S), when the model says one is due."""
        if self.visit.check_due():
            threading.Thread(target=self._check_printer, daemon=True).start()

    def _check_printer(self) -> None:
        try:
            status = self.printer.status()
        finally:
            self.visit.checking = False
        self.link.report_fault(status.fault.value, status.message)
        Clock.schedule_once(lambda _dt: self._do(self.visit.printer_checked(status)))

    # ------------------------------------------------------------------ screens

    def show(self, guard: bool = True) -> None:
        """Build the model's current screen. ``guard=False`` for rebuilds nobody tapped for
        (the server's news, a resized window): swallowing a tap there would only lose it."""
        screen = self.visit.screen
        self.visit.showing(guard)
        self.u = unit(*Window.size)
        self.portrait = Window.height > Window.width
        self.compact = self.portrait or self.u < 0.9
        self.root_box.clear_widgets()
        self._service_buttons = {}
        self.buttons = {}
        self.clock_label = self.code_label = self.note_label = None
        self._built += 1  # before building: the new buttons belong to this build (_on_tap)
        build = {
            Screen.HOME: self._home,
            Screen.BUSY: self._busy,
            Screen.TICKET: self._ticket,
            Screen.MESSAGE: self._message,
            Screen.BOOKING: self._booking,
            Screen.PHONE: self._phone,
            Screen.PICKUP: self._pickup,
        }
        self.root_box.add_widget(build[screen]())
        built = self._built
        log.info("screen %s built", screen.value)
        Clock.schedule_once(lambda _dt: self._report(screen, built), REPORT_DELAY_S)

    def px(self, v: float) -> float:
        """``v`` design pixels (at 1280x720) in this window's pixels."""
        return v * self.u

    def row(self, v: float, lines: int = 1) -> float:
        """The height of a text row: ``v`` design pixels, but room for ``lines`` of the smallest type."""
        return max(self.px(v), lines * 1.25 * MIN_FONT + 6)

    def fs(self, v: float) -> float:
        """A type size: scaled like everything, but never below MIN_FONT."""
        return max(MIN_FONT, v * self.u)

    def _top_bar(self) -> BoxLayout:
        px, fs = self.px, self.fs
        bar = BoxLayout(size_hint_y=None, height=px(96), spacing=px(10), padding=(px(16), px(8)))
        paint(bar, BAR_GREY)
        row = bar
        if self.compact:  # office and clock above, the three languages below: each gets room
            bar.orientation, bar.height, bar.padding = "vertical", px(180), (px(16), px(4), px(16), px(10))
            row = BoxLayout(spacing=px(10))
            bar.add_widget(row)
        office = label(self.visit.office or "Numerek", fs(32), bold=True, halign="left", size_hint_x=0.40)
        row.add_widget(office)
        clock = label("", fs(40), YELLOW, bold=True, size_hint_x=0.12)
        self.clock_label = clock
        self._update_clock()
        row.add_widget(clock)
        if self.compact:
            office.size_hint_x, clock.size_hint_x = 0.62, 0.24
            row = BoxLayout(spacing=px(10))
            bar.add_widget(row)
        for lang in LANGUAGES:
            chosen = lang == self.lang
            b = button(
                f"[b]{LANGUAGE_NAMES[lang]}[/b]" if chosen else LANGUAGE_NAMES[lang],
                fs(26),
                style="chosen" if chosen else "choice",
                size_hint_x=0.16,
            )
            self._on_tap(b, partial(self.visit.set_lang, lang))
            self.buttons[f"lang:{lang}"] = b
            row.add_widget(b)
        return bar

    def _home(self) -> Widget:
        px, fs = self.px, self.fs
        v = self.visit
        box = BoxLayout(orientation="vertical", spacing=px(12), padding=(0, 0, 0, px(12)))
        box.add_widget(self._top_bar())
        problem = v.problem()
        if problem:  # the banner replaces the title: the buttons keep their room
            box.add_widget(label(problem, fs(34), style="alarm", bold=True, size_hint_y=None, height=self.row(120, 3)))
        else:
            title, style = v.title()
            box.add_widget(label(title, fs(36), style=style, bold=True, size_hint_y=None, height=self.row(60)))
        warning = v.printer_warning()
        if warning:
            box.add_widget(label(warning, fs(28), style="warning", bold=True, size_hint_y=None, height=self.row(64, 2)))
        services = v.services.services if v.services else []
        n = len(services)
        if self.portrait:
            cols = 1 if n <= 5 else 2
        elif self.compact:  # one row for up to three: a short screen has no height for two
            cols = max(1, n) if n <= 3 else 2 if n == 4 else 3
        else:
            cols = 1 if n <= 2 else 2 if n <= 6 else 3
        grid = GridLayout(cols=cols, spacing=px(14), padding=(px(16), 0))
        for s in services:
            b = button("", fs(34), fit=False)
            self._on_tap(b, partial(self.visit.take, s.id))
            b.bind(size=self._resize_service)
            b.bind(texture_size=self._shrink_service)
            self._service_buttons[s.id] = b
            self.buttons[f"service:{s.id}"] = b
            grid.add_widget(b)
        if not services and v.broker_up:
            grid.add_widget(label(t("no_services", self.lang) if v.services else "", fs(34)))
        box.add_widget(grid)
        self._refresh_home()
        # The bottom row holds the "paths": the priority toggle and, where the office takes
        # bookings, the check-in (the service grid above stays where residents know it).
        lines = 3 if v.settings.bookings or v.settings.pickups else 2
        text, style = v.priority_button()
        prio = button(text, fs(32), style=style, size_hint=(1, None), height=self.row(112, lines))
        self._on_tap(prio, lambda: self.visit.toggle_priority())
        self.buttons["priority"] = prio
        wrap = BoxLayout(size_hint_y=None, height=self.row(112, lines), padding=(px(16), 0), spacing=px(14))
        wrap.add_widget(prio)
        if v.settings.bookings:
            booking = button(
                f"[b]{t('booking_button', self.lang)}[/b]",
                fs(32),
                style="booking" if v.bookings_open else "disabled",
                size_hint=(1, None),
                height=self.row(112, lines),
                disabled=not v.bookings_open,
            )
            booking.disabled_color = STYLES["disabled"][0]
            self._on_tap(booking, lambda: self.visit.start_booking())
            self.buttons["booking"] = booking
            wrap.add_widget(booking)
        if v.settings.pickups:
            pickup = button(
                f"[b]{t('pickup_button', self.lang)}[/b]",
                fs(32),
                style="booking" if v.pickups_open else "disabled",
                size_hint=(1, None),
                height=self.row(112, lines),
                disabled=not v.pickups_open,
            )
            pickup.disabled_color = STYLES["disabled"][0]
            self._on_tap(pickup, lambda: self.visit.start_pickup())
            self.buttons["pickup"] = pickup
            wrap.add_widget(pickup)
        box.add_widget(wrap)
        return box

    def _refresh_booking(self) -> None:
        """The code line and its note (of any keypad), updated in place: a keypad rebuilt under a
        fast typist's finger would lose the next key (it would land on widgets not yet laid out)."""
        v = self.visit
        line, note = {
            Screen.BOOKING: (v.code_text(), v.code_note),
            Screen.PHONE: (v.phone_text(), v.phone_note),
            Screen.PICKUP: (v.reference or "_", v.reference_note),
        }.get(v.screen, ("", None))
        if self.code_label is not None and self.note_label is not None:
            self.code_label.text = f"[b]{line}[/b]"
            if v.screen == Screen.PHONE:  # the note takes the title's place: no row of its own on a 7" panel
                self.note_label.text = f"[b]{note or t('sms_title', self.lang)}[/b]"
                self.note_label.color = STYLES["accent" if note else "screen"][0]
            else:
                self.note_label.text = f"[b]{note}[/b]" if note else ""
        built, screen = self._built, v.screen
        Clock.schedule_once(lambda _dt: self._report(screen, built), REPORT_DELAY_S)

    def _phone(self) -> Widget:
        """The mobile number's keypad; "Bilet bez SMS", the default, is the biggest button."""
        px, fs = self.px, self.fs
        box = BoxLayout(orientation="vertical", padding=(px(24), px(8)), spacing=px(8))
        # the title says what to do, or (in yellow) what is wrong with the number typed
        self.note_label = label("", fs(30), bold=True, size_hint_y=None, height=self.row(84, 2))
        self.code_label = label("", fs(52), style="accent", bold=True, size_hint_y=None, height=self.row(70))
        box.add_widget(self.note_label)
        box.add_widget(self.code_label)
        self._refresh_booking()
        body = BoxLayout(spacing=px(24))
        keys = GridLayout(cols=3, spacing=px(10), size_hint_x=0.5)
        for ch in PHONE_KEYS:
            k = button(f"[b]{ch}[/b]", fs(44), style="key")
            self._on_tap(k, partial(self.visit.phone_key, ch))
            self.buttons[f"key:{ch}"] = k
            keys.add_widget(k)
        erase = button(f"[b]{t('erase', self.lang)}[/b]", fs(30), style="key")
        self._on_tap(erase, lambda: self.visit.phone_erase())
        self.buttons["erase"] = erase
        keys.add_widget(erase)
        body.add_widget(keys)
        side = BoxLayout(orientation="vertical", spacing=px(14), size_hint_x=0.5)
        for name, caption, style, action, weight in (
            ("sms_skip", t("sms_skip", self.lang), "good", self.visit.phone_skip, 1.6),
            ("sms_send", t("sms_send", self.lang), "booking", self.visit.phone_submit, 1.0),
            ("phone_back", t("back", self.lang), "button", lambda: self.visit.go_home(), 0.8),
        ):
            b = button(f"[b]{caption}[/b]", fs(40 if name == "sms_skip" else 32), style=style, size_hint_y=weight)
            self._on_tap(b, action)
            self.buttons[name] = b
            side.add_widget(b)
        body.add_widget(side)
        box.add_widget(body)
        box.add_widget(label(t("sms_consent", self.lang), fs(24), size_hint_y=None, height=self.row(60, 2)))
        return box

    def _pickup(self) -> Widget:
        """The case reference's keypad; a scanner's Enter sends a reference from here too."""
        v = self.visit
        return self._keypad(
            t("pickup_title", self.lang), PICKUP_KEYS, v.pickup_key, ("pickup_back", v.pickup_erase, v.pickup_submit),
            cols=13, code=(56, 76, 44), key_font=40, gap=8,
        )  # fmt: skip  # 39 characters: 3 rows

    def _booking(self) -> Widget:
        """The keypad for a booking's code; a scanner's Enter sends a code from here too."""
        v = self.visit
        return self._keypad(
            t("booking_title", self.lang, n=CODE_LENGTH), KEYPAD, v.key, ("booking_back", v.erase, v.submit),
            cols=8, code=(64, 84, 48), key_font=44, gap=10,
        )  # fmt: skip  # 31 characters: 4 rows

    def _keypad(
        self,
        title: str,
        keys: str | Sequence[str],
        key: Callable[[str], Step],
        row: tuple[str, Callable[[], Step], Callable[[], Step]],
        cols: int,
        code: tuple[int, int, int],
        key_font: int,
        gap: int,
    ) -> Widget:
        """A typing screen: title, the typed text and a note under it, the keys, back/erase/confirm.
        ``code``: the typed text's font size, its row height and the note's row height."""
        px, fs = self.px, self.fs
        code_font, code_height, note_height = code
        box = BoxLayout(orientation="vertical", padding=(px(24), px(12)), spacing=px(10))
        box.add_widget(label(title, fs(32), bold=True, size_hint_y=None, height=self.row(96, 2)))
        self.code_label = label(
            "", fs(code_font), style="accent", bold=True, size_hint_y=None, height=self.row(code_height)
        )
        self.note_label = label("", fs(28), style="accent", bold=True, size_hint_y=None, height=self.row(note_height))
        box.add_widget(self.code_label)
        box.add_widget(self.note_label)
        self._refresh_booking()
        grid = GridLayout(cols=cols, spacing=px(gap))
        for ch in keys:
            k = button(f"[b]{ch}[/b]", fs(key_font), style="key")
            self._on_tap(k, partial(key, ch))
            self.buttons[f"key:{ch}"] = k
            grid.add_widget(k)
        box.add_widget(grid)
        back, erase, submit = row
        bar = BoxLayout(size_hint_y=None, height=self.row(100), spacing=px(20))
        for name, caption, style, action in (
            (back, t("back", self.lang), "button", lambda: self.visit.go_home()),
            ("erase", t("erase", self.lang), "key", erase),
            ("confirm", t("booking_send", self.lang), "good", submit),
        ):
            b = button(f"[b]{caption}[/b]", fs(36), style=style)
            self._on_tap(b, action)
            self.buttons[name] = b
            bar.add_widget(b)
        box.add_widget(bar)
        return box

    def _refresh_home(self) -> None:
        """Update the service buttons in place (no rebuild under a finger)."""
        for s in self.visit.services.services if self.visit.services else []:
            b = self._service_buttons.get(s.id)
            if b is None:
                continue
            b.service = s
            b.fit_scale = 1.0
            self._paint_service(b)

    def _resize_service(self, b: Button, size) -> None:
        b.text_size = (max(1, size[0] - self.px(24)), None)
        b.fit_scale = 1.0  # a new size: try the full type size again
        self._paint_service(b)

    def _shrink_service(self, b: Button, _tex) -> None:
        """The service's text is sized by markup; shrink that until it fits the button
        (a loop rendering each step at once, as in :func:`_fit`)."""
        if getattr(b, "_fitting", False) or b.width <= 1:
            return
        b._fitting = True
        try:
            while getattr(b, "fit_scale", 1.0) > 0.4:
                tex = b.texture_size
                over = tex[1] > b.height - self.px(8) or tex[0] > b.width - self.px(12)
                if not (over or widest_word(b) > b.width - self.px(24)):
                    break
                b.fit_scale = getattr(b, "fit_scale", 1.0) * 0.92
                self._paint_service(b)
                b.texture_update()
        finally:
            b._fitting = False

    def _paint_service(self, b: Button, *_a) -> None:
        """Text sized to the button: fewer services get bigger type, never clipped."""
        s: ServiceInfo | None = getattr(b, "service", None)
        if s is None:
            return
        k = getattr(b, "fit_scale", 1.0)
        big = int(max(MIN_FIT_FONT, max(self.fs(26), min(self.px(44), b.height * 0.24)) * k))
        small = int(max(MIN_FIT_FONT, max(self.fs(24), min(self.px(32), b.height * 0.18)) * k))
        view = self.visit.service_view(s)
        b.text = f"[size={big}][b]{view.title}[/b][/size]\n[size={small}]{view.detail}[/size]"
        fg, bg = STYLES[view.style]
        b.style = view.style
        b.disabled = not view.enabled
        b.background_color = bg
        b.color = fg
        b.disabled_color = fg

    def _busy(self) -> Widget:
        box = BoxLayout(orientation="vertical")
        box.add_widget(label(t("please_wait", self.lang), self.fs(56), style="accent", bold=True))
        return box

    def _message(self) -> Widget:
        px, fs = self.px, self.fs
        box = BoxLayout(orientation="vertical", padding=px(40), spacing=px(30))
        box.add_widget(label(self.visit.message, fs(40), style="alarm", bold=True))
        back = button(
            f"[b]{t('back', self.lang)}[/b]", fs(44), size_hint=(0.5, None), height=px(130), pos_hint={"center_x": 0.5}
        )
        self._on_tap(back, lambda: self.visit.go_home())
        self.buttons["back"] = back
        box.add_widget(back)
        return box

    def _ticket(self) -> Widget:
        px, fs = self.px, self.fs
        tk = self.visit.ticket
        assert tk is not None
        view = self.visit.ticket_view()
        outer = BoxLayout(orientation="vertical", padding=(px(24), px(12)), spacing=px(10))
        outer.add_widget(label(self.visit.office, fs(30), bold=True, size_hint_y=None, height=self.row(50)))
        body = BoxLayout(spacing=px(20), orientation="vertical" if self.portrait else "horizontal")
        left = BoxLayout(orientation="vertical", spacing=px(4))
        left.add_widget(
            label(view.head, fs(34), style=view.head_style, bold=True, size_hint_y=None, height=self.row(44))
        )
        left.add_widget(label(view.number, px(140 if view.fault else 190), style="accent", bold=True))
        left.add_widget(label(view.service, fs(40), bold=True, size_hint_y=None, height=self.row(56)))
        if view.place:
            left.add_widget(label(view.place, fs(34), style="accent", bold=True, size_hint_y=None, height=self.row(48)))
        left.add_widget(label(view.issued, fs(30), size_hint_y=None, height=self.row(42)))
        left.add_widget(label(view.ahead, fs(34), size_hint_y=None, height=self.row(46)))
        left.add_widget(label(view.wait, fs(34), size_hint_y=None, height=self.row(46)))
        if view.sms:
            left.add_widget(
                label(view.sms, fs(28), style="accent", bold=True, size_hint_y=None, height=self.row(64, 2))
            )
        body.add_widget(left)
        side = px(250 if view.fault else 300)
        if self.portrait:  # the QR code and its hint below the number, across the width
            right = BoxLayout(orientation="vertical", size_hint_y=None, height=side + px(80), spacing=px(6))
        else:
            right = BoxLayout(
                orientation="vertical", size_hint_x=None, width=max(px(340), 11 * MIN_FONT), spacing=px(6)
            )
        qr = Image(
            texture=qr_texture(self.visit.status_url(tk)), size_hint=(None, None), size=(side, side), fit_mode="contain"
        )
        qr_row = BoxLayout(size_hint_y=None, height=side)
        qr_row.add_widget(Widget())
        qr_row.add_widget(qr)
        qr_row.add_widget(Widget())
        right.add_widget(qr_row)
        right.add_widget(label(t("scan", self.lang), fs(26)))
        self.qr_widget = qr
        body.add_widget(right)
        outer.add_widget(body)
        outer.add_widget(
            label(
                view.status,
                fs(30),
                style=view.status_style,
                bold=True,
                size_hint_y=None,
                height=self.row(130, 3) if view.fault else self.row(70),
            )
        )
        done = button(
            f"[b]{t('done', self.lang)}[/b]", fs(44), size_hint=(0.4, None), height=px(100), pos_hint={"center_x": 0.5}
        )
        self._on_tap(done, lambda: self.visit.go_home(reset=True))
        self.buttons["done"] = done
        outer.add_widget(done)
        return outer

    # ------------------------------------------------------------------ trace + screenshots (tests, support)

    def _report(self, screen: str, built: int) -> None:
        """Write what is on screen (texts, button centres in X11 pixels) and a screenshot.

        Only with ``--trace`` / ``--screenshot-dir``: tests and remote support read it.
        Written once the screen takes touches (after the touch guard), so a reader that taps
        what it sees is never ignored.
        """
        v = self.visit
        if screen != self.screen or built != self._built:
            return  # a newer build of the screen reports itself once it is laid out
        left = TOUCH_GUARD_S - (v.monotonic() - v.shown_at)
        if v.undrawn:  # not on the glass yet: its first frame starts the guard again
            left = TOUCH_GUARD_S
        if left > 0:  # Kivy's clock counts from the frame's start, which can be long ago
            Clock.schedule_once(lambda _dt: self._report(screen, built), left + 0.05)
            return
        if self.trace_path is not None:
            texts = [MARKUP.sub("", w.text) for w in self.root_box.walk() if isinstance(w, Label) and w.text]
            buttons, boxes = {}, {}
            for key, w in self.buttons.items():
                x, y = w.to_window(w.center_x, w.center_y)
                buttons[key] = [int(x), int(Window.height - y), not w.disabled]
                left, bottom = w.to_window(w.x, w.y)
                boxes[key] = [int(left), int(Window.height - bottom - w.height), int(w.width), int(w.height)]
            clipped = [
                MARKUP.sub("", w.text)
                for w in self.root_box.walk()
                if isinstance(w, Label) and w.text.strip() and not (fits(w) and on_screen(w))
            ]
            entry = {
                "screen": screen,
                "lang": self.lang,
                "priority": v.priority,
                "texts": texts,
                "buttons": buttons,
                "ticket": v.ticket.number if v.ticket and screen == "ticket" else None,
                "qr": v.status_url(v.ticket) if v.ticket and screen == "ticket" else None,
                "printer": v.print_outcome.fault.value if v.print_outcome and screen == "ticket" else None,
                "window": [Window.left, Window.top, Window.width, Window.height],
                "boxes": boxes,
                "clipped": clipped,
                "smallest_font": smallest_font(self.root_box),
                "legibility": legibility(self.root_box),
                "gl_samples": glGetIntegerv(GL_SAMPLES)[0],  # multisampling, off (kiosk.cli)
            }
            with self.trace_path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(entry, ensure_ascii=False) + "\n")
        if self.shots is not None:
            self.shot_seq += 1
            screenshot(self.shots / f"{self.shot_seq:03d}-{screen}.png")
