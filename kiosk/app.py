"""The kiosk's touch screen (Kivy): choose a service, get a ticket on paper and on screen.

Screens: ``home`` (one big button per service, language switch, priority toggle),
``busy`` (waiting for the server and the printer), ``ticket`` (the number, QR code,
printer outcome) and ``message`` (a refusal or "the system is not answering").

Design rules, for elderly residents and people with poor sight: white on black, large
type (nothing under ~26 px at 1280x720), targets at least ~100 px high there, plain words,
a clear colour for "not available" *plus* the reason in words (never colour alone).

Any screen size: all sizes are design pixels at 1280x720 times the scaling unit ``u`` of
the real window (see :func:`unit`), and each text shrinks until it fits its box, whole
words included, so the 7" 800x480 panel and a Full HD screen show the same layout.

Double taps: the first tap switches to ``busy`` at once and later taps are ignored
until the kiosk is back home; the request id is reused on any redelivery (see link.py).
Every screen change also ignores touches for ``TOUCH_GUARD_S``, so a tap meant for the
old screen never lands on whatever the new one has in that spot.

Import this module only after ``kiosk.cli`` has set Kivy's environment.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from datetime import datetime
from io import BytesIO
from pathlib import Path

import qrcode
from kivy.app import App
from kivy.clock import Clock
from kivy.core.image import Image as CoreImage
from kivy.core.text import LabelBase
from kivy.core.window import Window
from kivy.graphics import Color, Rectangle
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.button import Button
from kivy.uix.gridlayout import GridLayout
from kivy.uix.image import Image
from kivy.uix.label import Label
from kivy.uix.widget import Widget

from hardware.printer import Fault, PrinterStatus, TicketLayout, TicketPrinter
from kiosk.config import KioskConfig
from kiosk.link import KioskLink
from kiosk.texts import LANGUAGE_NAMES, LANGUAGES, PRINT_TEXTS, service_name, t
from protocol.messages import ServiceInfo, ServicesMessage, TicketIssued, TicketResponse

log = logging.getLogger(__name__)

FONT = "NumerekSans"
BLACK = (0, 0, 0, 1)
WHITE = (1, 1, 1, 1)
YELLOW = (1, 0.85, 0, 1)
BLUE = (0.05, 0.25, 0.62, 1)
GREY = (0.22, 0.22, 0.22, 1)
LIGHT_GREY = (0.85, 0.85, 0.85, 1)
RED = (0.7, 0.05, 0.05, 1)
GREEN = (0.0, 0.45, 0.15, 1)
PRINTER_CHECK_S = 30.0
TOUCH_GUARD_S = 0.6
"""Touches this soon after a screen change are ignored: the second tap of a double tap on
"Gotowe" would otherwise land on the new home screen (the priority toggle sits where
"Gotowe" was) and give the next visitor a priority ticket."""
REPORT_DELAY_S = TOUCH_GUARD_S + 0.1  # the trace says a screen is there once it takes touches
_MARKUP = re.compile(r"\[/?[a-z]+(=[^\]]*)?\]")
_SIZE_TAG = re.compile(r"\[size=(\d+)\]")


def _bg(widget: Widget, color: tuple) -> None:
    """Paint a solid background behind ``widget`` (Kivy layouts have none)."""
    with widget.canvas.before:
        c = Color(*color)
        r = Rectangle(pos=widget.pos, size=widget.size)
    widget.bind(pos=lambda w, v: setattr(r, "pos", v), size=lambda w, v: setattr(r, "size", v))
    widget._bg_color = c  # type: ignore[attr-defined]


BASE_W, BASE_H = 1280, 720
"""The layout's design size: every size in this module is in pixels at 1280x720 and is
multiplied by the scaling unit ``u`` (see :func:`unit`) for the real window."""
MIN_FONT = 18
"""The smallest type we choose on purpose (the 7" 800x480 panel); only fitting a too-long
text into its box may go below it, down to MIN_FIT_FONT."""
MIN_FIT_FONT = 14


def unit(width: float, height: float) -> float:
    """The scaling unit for a ``width`` x ``height`` window: 1.0 at 1280x720.

    The smaller of the two ratios, so the whole design fits both ways (800x480: 0.625,
    1024x600: 0.8, 1920x1080: 1.5). An upright screen (the Touch Display 2 mounted
    portrait, 720x1280) is measured against the upright design size, 1.0 at 720x1280:
    its layout stacks what sits side by side in landscape (see ``portrait``).
    """
    if height > width:
        return max(0.3, min(width / BASE_H, height / BASE_W))
    return max(0.3, min(width / BASE_W, height / BASE_H))


def _fit(widget: Label, pad_x: float, pad_y: float) -> None:
    """Wrap ``widget``'s text to its width and shrink its type until the text fits its box.

    The text box is (width, unbounded) so ``texture_size`` is the space the text really
    needs; Kivy would otherwise cut off the lines that do not fit. On every resize the
    chosen size is tried again first, so a box that grows gets its big type back.
    """
    widget.fit_font = widget.font_size  # type: ignore[attr-defined]

    def resize(w: Label, size) -> None:
        w.font_size = w.fit_font
        w.text_size = (max(1, size[0] - pad_x), None)

    def too_big(w: Label) -> bool:
        tex = w.texture_size
        over = tex[1] > w.height - pad_y or tex[0] > w.width - pad_x / 2
        return over or _widest_word(w) > w.width - pad_x  # Kivy would break the word

    def shrink(w: Label, _tex) -> None:
        # A loop, rendering each step at once: a smaller size often leaves texture_size
        # unchanged (the wrapped text still fills the width), and Kivy only reports changes.
        if getattr(w, "_fitting", False) or w.width <= 1:
            return
        w._fitting = True
        try:
            while w.font_size > MIN_FIT_FONT and too_big(w):
                w.font_size = max(MIN_FIT_FONT, w.font_size * 0.92)
                w.texture_update()
        finally:
            w._fitting = False

    widget.bind(size=resize, texture_size=shrink)


def _widest_word(w: Label) -> float:
    """The width of ``w``'s widest word at its type size (bold and ``[size=]`` included).

    Kivy wraps a word that is wider than the line in the middle ("Українськ/а"), which
    reads as a broken word, not as a long one; so a box must hold its widest word.
    """
    core = getattr(w, "_label", None)
    plain = _MARKUP.sub("", w.text)
    if core is None or not plain.strip():
        return 0.0
    saved = dict(core.options)
    sizes = [int(v) for v in _SIZE_TAG.findall(w.text)]
    core.options["bold"] = saved.get("bold", False) or "[b]" in w.text
    core.options["font_size"] = max(sizes) if sizes else w.font_size
    try:  # the bold face is a file of its own: pick it as Kivy's markup renderer does
        core.resolve_font_name()
        return 1.03 * max(core.get_extents(word)[0] for word in plain.split())
    except Exception:  # a provider without extents: say nothing rather than crash the screen
        return 0.0
    finally:
        core.options.clear()
        core.options.update(saved)


def _label(text: str, size: float, color=WHITE, bold: bool = False, **kw) -> Label:
    lbl = Label(
        text=f"[b]{text}[/b]" if bold else text,
        markup=True,
        font_name=FONT,
        font_size=size,
        color=color,
        halign=kw.pop("halign", "center"),
        valign="middle",
        **kw,
    )
    _fit(lbl, 16, 2)
    return lbl


def _button(text: str, size: float, bg=BLUE, color=WHITE, fit: bool = True, **kw) -> Button:
    b = Button(
        text=text,
        markup=True,
        font_name=FONT,
        font_size=size,
        color=color,
        background_normal="",
        background_color=bg,
        background_disabled_normal="",
        halign="center",
        valign="middle",
        **kw,
    )
    if fit:
        _fit(b, 24, 8)
    else:
        b.bind(size=lambda w, s: setattr(w, "text_size", (max(1, s[0] - 24), None)))
    return b


def qr_texture(url: str):
    """The QR code for the screen, drawn with the ``qrcode`` package (crisp, no smoothing)."""
    img = qrcode.make(url, box_size=10, border=2)
    buf = BytesIO()
    img.save(buf, format="PNG")
    buf.seek(0)
    tex = CoreImage(buf, ext="png").texture
    tex.mag_filter = "nearest"
    return tex


CONNECT_GRACE_S = 15.0
"""How long the kiosk says "connecting" at start before it says the system is not working."""


class KioskApp(App):
    def __init__(
        self, config: KioskConfig, printer: TicketPrinter, trace: Path | None = None, shots: Path | None = None
    ) -> None:
        super().__init__()
        self.cfg = config
        self.printer = printer
        self.trace_path = trace
        self.shots = shots
        self.shot_seq = 0
        self.lang = config.kiosk.default_language
        self.priority = False
        self.services: ServicesMessage | None = None
        self._started = time.monotonic()  # for the "connecting" grace period (reset when the app builds)
        self.broker_up = False
        self.server_up = False
        self.screen = "home"
        self.busy = False
        self.current_request: str | None = None
        self.last_touch = time.monotonic()
        self.shown_at = 0.0  # monotonic time of the last screen change (touch guard)
        self.printer_status = PrinterStatus(Fault.OK, known=False)
        self._printed_at = -PRINTER_CHECK_S  # when the last ticket's own status round ended
        self._checking = True  # the start-up check, begun in build()
        self.ticket: TicketIssued | None = None
        self.print_outcome: PrinterStatus | None = None
        self.message: str = ""
        self._service_buttons: dict[str, Button] = {}
        self.root_box: BoxLayout | None = None
        self.u = 1.0  # the scaling unit of the current window (see unit())
        self.portrait = False  # an upright screen: the top bar and the ticket stack vertically
        # Every callback of the link runs on Kivy's thread, in arrival order (the link's hand-over).
        self.link = KioskLink(
            config.kiosk.id,
            config.mqtt,
            on_services=self._services,
            on_connection=self._connection,
            on_late_response=self._late_response,
            wake=Clock.create_trigger(lambda _dt: self.link.drain()),
        )

    # ------------------------------------------------------------------ lifecycle

    def build(self):
        self.title = "Numerek"
        Window.clearcolor = BLACK
        Window.bind(on_touch_down=self._touched)
        Window.bind(size=lambda _w, _s: self.show(self.screen, guard=False) if self.root_box else None)
        self.root_box = BoxLayout()
        _bg(self.root_box, BLACK)
        self.show("home")
        Clock.schedule_interval(self._tick, 1.0)
        self._started = time.monotonic()
        # If nothing answers within the grace period, "connecting…" becomes "not working, ask
        # at the information desk": a resident should not wait in front of a kiosk that never connects.
        Clock.schedule_once(
            lambda _dt: self._connection(self.broker_up, self.server_up, force=True), CONNECT_GRACE_S + 0.5
        )
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
        self.last_touch = time.monotonic()
        if self.last_touch - self.shown_at < TOUCH_GUARD_S:
            log.info("touch ignored: %.2f s after the %s screen appeared", self.last_touch - self.shown_at, self.screen)
            return True
        return False

    # ------------------------------------------------------------------ MQTT events (UI thread)

    def _services(self, msg: ServicesMessage) -> None:
        old = self.services
        self.services = msg
        self._update_clock()  # a live services message may be the first to tell the time
        if self.screen == "home":
            if old is None or [s.id for s in old.services] != [s.id for s in msg.services]:
                self.show("home", guard=False)
            else:
                self._refresh_home()
                Clock.schedule_once(lambda _dt: self._report("home"), REPORT_DELAY_S)

    def _connection(self, broker: bool, server: bool, force: bool = False) -> None:
        changed = (broker, server) != (self.broker_up, self.server_up)
        self.broker_up, self.server_up = broker, server
        if (changed or force) and self.screen == "home":
            self.show("home", guard=False)

    def _late_response(self, response: TicketResponse) -> None:
        """A ticket the server issued after we had given up: still real, so show it if its
        requester is plausibly still looking at our "not answering" message."""
        if self.screen == "message" and response.ok and response.ticket and response.id == self.current_request:
            self._got_ticket(response.ticket)

    # ------------------------------------------------------------------ time (the server's)

    def server_now(self) -> datetime | None:
        """The link's estimate (live messages only: a retained services list may be hours old)."""
        return self.link.clock.now()

    def _update_clock(self) -> None:
        """Show the server's time, or nothing while there is no estimate: never a wrong time."""
        now = self.server_now()
        if hasattr(self, "clock_label"):
            self.clock_label.text = f"[b]{now:%H:%M}[/b]" if now is not None else ""

    def _tick(self, _dt) -> None:
        self._update_clock()
        idle = time.monotonic() - self.last_touch
        if idle > self.idle_limit() and not self.busy:
            if self.screen != "home" or self.lang != self.cfg.kiosk.default_language or self.priority:
                self.go_home(reset=True)

    def idle_limit(self) -> float:
        """How long the current screen stays untouched before going home.

        Longer on the ticket screen after a printer fault: the number and the QR code on
        screen are the resident's only copy, and noting or photographing them takes time.
        """
        k = self.cfg.kiosk
        fault = self.screen == "ticket" and self.print_outcome is not None and not self.print_outcome.can_print
        return max(k.idle_timeout_s, k.fault_timeout_s) if fault else k.idle_timeout_s

    # ------------------------------------------------------------------ actions

    def go_home(self, reset: bool = False) -> None:
        """Back home; the priority toggle is always switched off. ``reset`` (the visit is
        over: "Gotowe" or the idle timeout) also goes back to the default language, so the
        next visitor inherits neither; "Wróć" after a failure keeps the resident's language."""
        self.busy = False
        self.ticket = None
        self.priority = False
        if reset:
            self.lang = self.cfg.kiosk.default_language
        self.show("home")

    def set_lang(self, lang: str) -> None:
        if lang != self.lang:
            self.lang = lang
            self.show(self.screen)

    def toggle_priority(self) -> None:
        self.priority = not self.priority
        self.show("home")

    def take(self, service: ServiceInfo) -> None:
        """A tap on a service. The first tap wins; the rest are ignored until home again."""
        if self.busy or self.screen != "home":
            return
        if not service.available:
            return
        self.busy = True
        self.show("busy")
        if not self.server_up:  # the server said goodbye (or its last will did): nobody would answer
            self._fail(t("unreachable", self.lang))
            return
        rid = self.link.request_ticket(
            service.id,
            self.priority,
            self.lang,
            self.cfg.kiosk.response_timeout_s,
            self._answered,
        )
        self.current_request = rid
        if rid is None:  # the broker is down: no point waiting
            self._fail(t("unreachable", self.lang))

    def _answered(self, response: TicketResponse | None) -> None:
        if self.screen != "busy":
            return
        if response is None or (response.error is not None and response.error.code == "expired"):
            # expired: the server read the request only after its deadline (it was stalled), so
            # it issued nothing; for the resident that is the same as no answer.
            self._fail(t("unreachable", self.lang))
        elif not response.ok or response.ticket is None:
            code = response.error.code.value if response.error else ""
            reason = t(code, self.lang) if code in ("service_closed", "cut_off", "limit_reached") else ""
            self._fail(t("refused", self.lang) + ("\n" + reason if reason else ""))
        else:
            self._got_ticket(response.ticket)

    def _fail(self, text: str) -> None:
        self.busy = False
        self.message = text
        self.show("message")

    def _got_ticket(self, ticket: TicketIssued) -> None:
        self.busy = False
        self.ticket = ticket
        self.print_outcome = None
        self.last_touch = time.monotonic()
        self.show("ticket")
        layout = self.layout_for_print(ticket, self.lang)
        threading.Thread(target=self._print, args=(ticket.number, layout), daemon=True).start()

    def _print(self, number: str, layout: TicketLayout) -> None:
        status = self.printer.print_ticket(layout)
        self._printed_at = time.monotonic()
        self.link.report_fault(status.fault.value, status.message)
        Clock.schedule_once(lambda _dt: self._printed(number, status))

    def _printed(self, number: str, status: PrinterStatus) -> None:
        self._set_printer_status(status)
        if self.screen == "ticket" and self.ticket is not None and self.ticket.number == number:
            self.print_outcome = status
            self.show("ticket")

    def _maybe_check_printer(self) -> None:
        """The idle check (every PRINTER_CHECK_S): one status round per ticket is enough.

        Skipped right after a ticket (its own status round is fresher) and while a check is
        still out; the printer itself lets a ticket go first if one comes mid-check.
        """
        fresh = time.monotonic() - self._printed_at < PRINTER_CHECK_S
        if self.screen == "home" and not self.busy and not fresh and not self._checking:
            self._checking = True
            threading.Thread(target=self._check_printer, daemon=True).start()

    def _check_printer(self) -> None:
        try:
            status = self.printer.status()
        finally:
            self._checking = False
        self.link.report_fault(status.fault.value, status.message)
        Clock.schedule_once(lambda _dt: self._printer_checked(status))

    def _printer_checked(self, status: PrinterStatus) -> None:
        self._set_printer_status(status)

    def _set_printer_status(self, status: PrinterStatus) -> None:
        """Keep the printer's state; rebuild home when whether it can print changed.

        Both answers (a ticket's print and the idle check) come here: a resident may tap
        "Gotowe" before the print result arrives, and home, built while the printer still
        looked fine, must then show the warning; the next idle check sees no change.
        """
        changed = status.can_print != self.printer_status.can_print
        self.printer_status = status
        if changed and self.screen == "home":
            self.show("home", guard=False)

    # ------------------------------------------------------------------ the printed ticket

    def layout_for_print(self, ticket: TicketIssued, lang: str) -> TicketLayout:
        """Polish first (the office's language), then the visitor's language if different."""

        def both(key: str, **kw: object) -> list[str]:
            out = [PRINT_TEXTS[key]["pl"].format(**kw)]
            if lang != "pl":
                out.append(PRINT_TEXTS[key][lang].format(**kw))
            return out

        lines: list[str] = []
        if ticket.priority:
            lines += both("priority")
        names = [ticket.service_name.get("pl") or ticket.service]
        other = ticket.service_name.get(lang)
        if lang != "pl" and other and other not in names:
            names.append(other)
        lines += names
        lines.append(f"{ticket.issued_at:%d.%m.%Y  %H:%M}")
        lines += both("people_ahead", n=ticket.people_ahead)
        lines += both("est_wait", m=ticket.estimated_wait_min)
        lines += both("scan")
        office = self.services.office if self.services else ""
        return TicketLayout(header=office, number=ticket.number, lines=lines, qr_url=self.status_url(ticket))

    def status_url(self, ticket: TicketIssued) -> str:
        url = self.cfg.kiosk.public_url + ticket.status_path
        return url if self.lang == "pl" else f"{url}?lang={self.lang}"

    # ------------------------------------------------------------------ screens

    def show(self, screen: str, guard: bool = True) -> None:
        """Build ``screen``. ``guard=False`` for rebuilds nobody tapped for (the server's
        news): those keep the layout, and swallowing a tap there would only lose it."""
        self.screen = screen
        if guard:
            self.shown_at = time.monotonic()
        self.u = unit(*Window.size)
        self.portrait = Window.height > Window.width
        self.root_box.clear_widgets()
        self._service_buttons = {}
        self.buttons: dict[str, Widget] = {}
        build = {"home": self._home, "busy": self._busy, "ticket": self._ticket, "message": self._message}[screen]
        self.root_box.add_widget(build())
        Clock.schedule_once(lambda _dt: self._report(screen), REPORT_DELAY_S)

    def px(self, v: float) -> float:
        """``v`` design pixels (at 1280x720) in this window's pixels."""
        return v * self.u

    def fs(self, v: float) -> float:
        """A type size: scaled like everything, but never below MIN_FONT."""
        return max(MIN_FONT, v * self.u)

    def _top_bar(self) -> BoxLayout:
        px, fs = self.px, self.fs
        bar = BoxLayout(size_hint_y=None, height=px(96), spacing=px(10), padding=(px(16), px(8)))
        _bg(bar, (0.1, 0.1, 0.1, 1))
        office = self.services.office if self.services else "Numerek"
        row = bar
        if self.portrait:  # office and clock above, the three languages below: each gets room
            bar.orientation, bar.height, bar.padding = "vertical", px(180), (px(16), px(4), px(16), px(10))
            row = BoxLayout(spacing=px(10))
            bar.add_widget(row)
        row.add_widget(_label(office, fs(32), bold=True, halign="left", size_hint_x=0.40))
        self.clock_label = _label("", fs(40), YELLOW, bold=True, size_hint_x=0.12)
        self._update_clock()
        row.add_widget(self.clock_label)
        if self.portrait:
            row.children[1].size_hint_x = 0.62  # the office name
            row.children[0].size_hint_x = 0.24  # the clock
            row = BoxLayout(spacing=px(10))
            bar.add_widget(row)
        for lang in LANGUAGES:
            chosen = lang == self.lang
            b = _button(
                f"[b]{LANGUAGE_NAMES[lang]}[/b]" if chosen else LANGUAGE_NAMES[lang],
                fs(26),
                bg=YELLOW if chosen else GREY,
                color=BLACK if chosen else WHITE,
                size_hint_x=0.16,
            )
            b.bind(on_release=lambda _b, lang=lang: self.set_lang(lang))
            self.buttons[f"lang:{lang}"] = b
            row.add_widget(b)
        return bar

    def _home(self) -> Widget:
        px, fs = self.px, self.fs
        box = BoxLayout(orientation="vertical", spacing=px(12), padding=(0, 0, 0, px(12)))
        box.add_widget(self._top_bar())
        problem = None
        if not self.broker_up or not self.server_up:
            # Just connected, the server's retained availability not yet here: no false alarm.
            starting = (self.broker_up and not self.link.server_known) or (not self.broker_up and not self.services)
            starting = starting and time.monotonic() - self._started < CONNECT_GRACE_S
            problem = t("connecting", self.lang) if starting else t("system_down", self.lang)
        if problem:
            banner = _label(problem, fs(34), WHITE, bold=True, size_hint_y=None, height=px(120))
            _bg(banner, RED)
            box.add_widget(banner)
        else:  # the banner replaces the title: the buttons keep their room
            title = t("priority_hint", self.lang) if self.priority else t("choose", self.lang)
            box.add_widget(
                _label(title, fs(36), YELLOW if self.priority else WHITE, bold=True, size_hint_y=None, height=px(60))
            )
        if not self.printer_status.can_print:
            warn = _label(t("printer_down_home", self.lang), fs(28), BLACK, bold=True, size_hint_y=None, height=px(64))
            _bg(warn, YELLOW)
            box.add_widget(warn)
        services = self.services.services if self.services else []
        n = len(services)
        cols = (1 if n <= 5 else 2) if self.portrait else (1 if n <= 2 else 2 if n <= 6 else 3)
        grid = GridLayout(cols=cols, spacing=px(14), padding=(px(16), 0))
        for s in services:
            b = _button("", fs(34), fit=False)
            b.bind(on_release=lambda _b, sid=s.id: self._tap(sid), size=self._resize_service)
            b.bind(texture_size=self._shrink_service)
            self._service_buttons[s.id] = b
            self.buttons[f"service:{s.id}"] = b
            grid.add_widget(b)
        if not services and self.broker_up:
            grid.add_widget(_label(t("no_services", self.lang) if self.services else "", fs(34)))
        box.add_widget(grid)
        self._refresh_home()
        prio = _button(
            t("priority_on" if self.priority else "priority_off", self.lang),
            fs(32),
            bg=YELLOW if self.priority else (0.35, 0.1, 0.5, 1),
            color=BLACK if self.priority else WHITE,
            size_hint=(1, None),
            height=px(112),
        )
        prio.bind(on_release=lambda _b: self.toggle_priority())
        self.buttons["priority"] = prio
        wrap = BoxLayout(size_hint_y=None, height=px(112), padding=(px(16), 0))
        wrap.add_widget(prio)
        box.add_widget(wrap)
        return box

    def _tap(self, service_id: str) -> None:
        for s in self.services.services if self.services else []:
            if s.id == service_id:
                self.take(s)

    def _refresh_home(self) -> None:
        """Update the service buttons in place (no rebuild under a finger)."""
        for s in self.services.services if self.services else []:
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
                if not (over or _widest_word(b) > b.width - self.px(24)):
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
        name = service_name(s.name, self.lang)
        # With the server or the broker down no ticket can be issued: the buttons must not
        # look live (the banner above says why and where to go instead).
        down = not (self.broker_up and self.server_up)
        if s.available and not down:
            if self.priority and s.priority_ahead is not None and s.priority_estimated_wait_min is not None:
                # Only the other priority tickets are ahead of a priority ticket: its own figures.
                count, minutes = t("ahead_priority", self.lang, n=s.priority_ahead), s.priority_estimated_wait_min
            else:
                count, minutes = t("waiting", self.lang, n=s.waiting), s.estimated_wait_min
            detail = count + "   •   " + t("wait_min", self.lang, m=minutes)
            b.text = f"[size={big}][b]{s.prefix}  {name}[/b][/size]\n[size={small}]{detail}[/size]"
            b.background_color = (0.55, 0.45, 0, 1) if self.priority else BLUE
            b.color = WHITE
            b.disabled = False
        else:
            reason = t("system_down_short", self.lang) if down else self._reason(s)
            b.text = f"[size={big}][b]{name}[/b][/size]\n[size={small}]{reason}[/size]"
            b.disabled = True
            b.background_color = GREY
            b.disabled_color = LIGHT_GREY

    def _reason(self, s: ServiceInfo) -> str:
        code = s.reason.value if s.reason else ""
        if code == "service_closed":
            return t("service_closed_opens", self.lang, t=s.opens_at) if s.opens_at else t("service_closed", self.lang)
        if code in ("cut_off", "limit_reached"):
            return t(code, self.lang)
        return t("unavailable", self.lang)

    def _busy(self) -> Widget:
        box = BoxLayout(orientation="vertical")
        box.add_widget(_label(t("please_wait", self.lang), self.fs(56), YELLOW, bold=True))
        return box

    def _message(self) -> Widget:
        px, fs = self.px, self.fs
        box = BoxLayout(orientation="vertical", padding=px(40), spacing=px(30))
        msg = _label(self.message, fs(40), WHITE, bold=True)
        _bg(msg, RED)
        box.add_widget(msg)
        back = _button(
            f"[b]{t('back', self.lang)}[/b]", fs(44), size_hint=(0.5, None), height=px(130), pos_hint={"center_x": 0.5}
        )
        back.bind(on_release=lambda _b: self.go_home())
        self.buttons["back"] = back
        box.add_widget(back)
        return box

    def _ticket(self) -> Widget:
        px, fs = self.px, self.fs
        tk = self.ticket
        assert tk is not None
        lang = self.lang
        outer = BoxLayout(orientation="vertical", padding=(px(24), px(12)), spacing=px(10))
        office = self.services.office if self.services else ""
        outer.add_widget(_label(office, fs(30), bold=True, size_hint_y=None, height=px(50)))
        body = BoxLayout(spacing=px(20), orientation="vertical" if self.portrait else "horizontal")
        left = BoxLayout(orientation="vertical", spacing=px(4))
        head = t("priority_ticket", lang) if tk.priority else t("your_number", lang)
        left.add_widget(
            _label(head, fs(34), YELLOW if tk.priority else WHITE, bold=True, size_hint_y=None, height=px(44))
        )
        fault_shown = self.print_outcome is not None and not self.print_outcome.can_print
        left.add_widget(_label(tk.number, px(140 if fault_shown else 190), YELLOW, bold=True))
        name = service_name(tk.service_name, lang)
        left.add_widget(_label(name, fs(40), bold=True, size_hint_y=None, height=px(56)))
        issued = t("issued", lang, t=f"{tk.issued_at:%d.%m.%Y %H:%M}")
        left.add_widget(_label(issued, fs(30), size_hint_y=None, height=px(42)))
        left.add_widget(_label(t("people_ahead", lang, n=tk.people_ahead), fs(34), size_hint_y=None, height=px(46)))
        left.add_widget(_label(t("est_wait", lang, m=tk.estimated_wait_min), fs(34), size_hint_y=None, height=px(46)))
        body.add_widget(left)
        side = px(250 if fault_shown else 300)
        if self.portrait:  # the QR code and its hint below the number, across the width
            right = BoxLayout(orientation="vertical", size_hint_y=None, height=side + px(80), spacing=px(6))
        else:
            right = BoxLayout(orientation="vertical", size_hint_x=None, width=px(340), spacing=px(6))
        qr = Image(
            texture=qr_texture(self.status_url(tk)), size_hint=(None, None), size=(side, side), fit_mode="contain"
        )
        qr_row = BoxLayout(size_hint_y=None, height=side)
        qr_row.add_widget(Widget())
        qr_row.add_widget(qr)
        qr_row.add_widget(Widget())
        right.add_widget(qr_row)
        right.add_widget(_label(t("scan", lang), fs(26)))
        self.qr_widget = qr
        body.add_widget(right)
        outer.add_widget(body)
        outcome = self.print_outcome
        if outcome is None:
            status_text, color = t("please_wait", lang), GREY
        elif outcome.can_print:
            status_text, color = t("printed", lang), GREEN
        else:
            why = (
                t(f"fault_{outcome.fault.value}", lang)
                if f"fault_{outcome.fault.value}" in _FAULT_KEYS
                else outcome.fault.value
            )
            status_text, color = t("printer_fault", lang, why=why), RED
        status = _label(status_text, fs(30), WHITE, bold=True, size_hint_y=None, height=px(130 if color == RED else 70))
        _bg(status, color)
        outer.add_widget(status)
        done = _button(
            f"[b]{t('done', lang)}[/b]", fs(44), size_hint=(0.4, None), height=px(100), pos_hint={"center_x": 0.5}
        )
        done.bind(on_release=lambda _b: self.go_home(reset=True))
        self.buttons["done"] = done
        outer.add_widget(done)
        return outer

    # ------------------------------------------------------------------ trace + screenshots (tests, support)

    def _report(self, screen: str) -> None:
        """Write what is on screen (texts, button centres in X11 pixels) and a screenshot.

        Only with ``--trace`` / ``--screenshot-dir``: tests and remote support read it.
        Written once the screen takes touches (after the touch guard), so a reader that taps
        what it sees is never ignored.
        """
        if screen != self.screen:
            return
        left = TOUCH_GUARD_S - (time.monotonic() - self.shown_at)
        if left > 0:  # Kivy's clock counts from the frame's start, which can be long ago
            Clock.schedule_once(lambda _dt: self._report(screen), left + 0.05)
            return
        if self.trace_path is not None:
            texts = [_MARKUP.sub("", w.text) for w in self.root_box.walk() if isinstance(w, Label) and w.text]
            buttons, boxes = {}, {}
            for key, w in self.buttons.items():
                x, y = w.to_window(w.center_x, w.center_y)
                buttons[key] = [int(x), int(Window.height - y), not w.disabled]
                left, bottom = w.to_window(w.x, w.y)
                boxes[key] = [int(left), int(Window.height - bottom - w.height), int(w.width), int(w.height)]
            clipped = [
                _MARKUP.sub("", w.text)
                for w in self.root_box.walk()
                if isinstance(w, Label) and w.text.strip() and not (_fits(w) and _on_screen(w))
            ]
            entry = {
                "screen": screen,
                "lang": self.lang,
                "priority": self.priority,
                "texts": texts,
                "buttons": buttons,
                "ticket": self.ticket.number if self.ticket and screen == "ticket" else None,
                "qr": self.status_url(self.ticket) if self.ticket and screen == "ticket" else None,
                "printer": self.print_outcome.fault.value if self.print_outcome and screen == "ticket" else None,
                "window": [Window.left, Window.top, Window.width, Window.height],
                "boxes": boxes,
                "clipped": clipped,
                "smallest_font": _smallest_font(self.root_box),
            }
            with self.trace_path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(entry, ensure_ascii=False) + "\n")
        if self.shots is not None:
            self.shot_seq += 1
            target = self.shots / f"{self.shot_seq:03d}-{screen}.png"
            made = Window.screenshot(name=str(target))
            if made:
                Path(made).replace(target)


def _fits(w: Label) -> bool:
    """Whether all of ``w``'s text is inside its box (one pixel of rounding allowed)."""
    tw, th = w.texture_size
    return tw <= w.width + 1 and th <= w.height + 1 and _widest_word(w) <= (w.text_size[0] or w.width) + 1


def _on_screen(w: Widget) -> bool:
    """Whether ``w``'s whole box is inside the window (a layout too tall pushes it out)."""
    left, bottom = w.to_window(w.x, w.y)
    return left >= -1 and bottom >= -1 and left + w.width <= Window.width + 1 and bottom + w.height <= Window.height + 1


def _smallest_font(root: Widget) -> int:
    """The smallest type on screen: font sizes and the ``[size=]`` of marked-up runs."""
    sizes = []
    for w in root.walk():
        if isinstance(w, Label) and w.text.strip():
            tags = [int(v) for v in _SIZE_TAG.findall(w.text)]
            sizes += tags if tags else [int(w.font_size)]
    return min(sizes, default=0)


_FAULT_KEYS = {"fault_offline", "fault_paper_out", "fault_cover_open", "fault_error"}


def register_fonts(cfg: KioskConfig) -> None:
    """DejaVu Sans: Kivy's default Roboto lacks glyphs we need (Ukrainian ї, є, ґ...)."""
    s = cfg.screen
    LabelBase.register(FONT, fn_regular=s.font, fn_bold=s.font_bold)
