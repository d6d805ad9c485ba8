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

from hardware.printer import TicketLayout, TicketPrinter
from kiosk.config import KioskConfig
from kiosk.link import KioskLink
from kiosk.style import BAR_GREY, BLACK, MIN_TEXT_PX, STYLES, YELLOW, contrast
from kiosk.texts import LANGUAGE_NAMES, LANGUAGES, t
from kiosk.visit import CONNECT_GRACE_S, PRINTER_CHECK_S, TOUCH_GUARD_S, Screen, Step, Visit
from protocol.messages import ServiceInfo, ServicesMessage, TicketResponse

log = logging.getLogger(__name__)

FONT = "NumerekSans"
REPORT_DELAY_S = TOUCH_GUARD_S + 0.1  # the trace says a screen is there once it takes touches
_MARKUP = re.compile(r"\[/?[a-z]+(=[^\]]*)?\]")
_SIZE_TAG = re.compile(r"\[size=(\d+)\]")


def _bg(widget: Widget, color: tuple) -> None:
    """Paint a solid background behind ``widget`` (Kivy layouts have none)."""
    with widget.canvas.before:
        c = Color(*color)
        r = Rectangle(pos=widget.pos, size=widget.size)
    widget.bind(pos=lambda w, v: setattr(r, "pos", v), size=lambda w, v: setattr(r, "size", v))
    widget._bg_color = c


BASE_W, BASE_H = 1280, 720
"""The layout's design size: every size in this module is in pixels at 1280x720 and is
multiplied by the scaling unit ``u`` (see :func:`unit`) for the real window."""
MIN_FONT = MIN_TEXT_PX
"""The smallest type on any screen: 3.0 mm capitals on the 7" 800x480 panel (kiosk/style.py)."""
MIN_FIT_FONT = MIN_TEXT_PX
"""Fitting a too-long text into its box shrinks it, but never below the readable minimum:
the boxes are sized (:meth:`KioskApp.row`) so that the smallest type fits."""


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
    widget.fit_font = widget.font_size

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


def _label(text: str, size: float, color=None, bold: bool = False, style: str = "screen", **kw) -> Label:
    """A text in one of the kiosk's styles (kiosk/style.py); a style with its own background paints it."""
    fg, bg = STYLES[style]
    lbl = Label(
        text=f"[b]{text}[/b]" if bold else text,
        markup=True,
        font_name=FONT,
        font_size=size,
        color=color or fg,
        halign=kw.pop("halign", "center"),
        valign="middle",
        **kw,
    )
    lbl.style = style
    if bg != BLACK:
        _bg(lbl, bg)
    _fit(lbl, 16, 2)
    return lbl


def _button(text: str, size: float, style: str = "button", fit: bool = True, **kw) -> Button:
    fg, bg = STYLES[style]
    b = Button(
        text=text,
        markup=True,
        font_name=FONT,
        font_size=size,
        color=fg,
        background_normal="",
        background_color=bg,
        background_disabled_normal="",
        halign="center",
        valign="middle",
        **kw,
    )
    b.style = style
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
        self.qr_widget: Image | None = None
        self.u = 1.0  # the scaling unit of the current window (see unit())
        self.portrait = False  # an upright screen: the top bar and the ticket stack vertically
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
        Window.bind(size=lambda _w, _s: self.show(guard=False))
        _bg(self.root_box, BLACK)
        self.visit.started = self.visit.monotonic()
        self.show()
        Clock.schedule_interval(self._tick, 1.0)
        # If nothing answers within the grace period, "connecting…" becomes "not working, ask
        # at the information desk": a resident should not wait in front of a kiosk that never connects.
        Clock.schedule_once(self._grace_over, CONNECT_GRACE_S + 0.5)
        self.link.start()
        threading.Thread(target=self._check_printer, daemon=True).start()
        Clock.schedule_interval(lambda _dt: self._maybe_check_printer(), PRINTER_CHECK_S)
        return self.root_box

    def _grace_over(self, _dt: float) -> None:
        """The start-up grace period is over: "connecting…" becomes "not working" if still down.

        Kivy's clock counts from the last frame, which during start-up can be a second or more
        before build(): on a busy machine the callback came early and "connecting…" stayed."""
        left = self.visit.started + CONNECT_GRACE_S - self.visit.monotonic()
        if left > 0:
            Clock.schedule_once(self._grace_over, left + 0.05)
            return
        self._connection(self.visit.broker_up, self.visit.server_up, force=True)

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

    def _do(self, step: Step) -> None:
        """Carry out what the model asked for: print, then redraw or refresh home in place, send.

        The printer goes first: building the ticket screen (its QR texture, the labels) takes
        tens of milliseconds of this thread, and the resident waits for the paper, not the
        picture (issue 14)."""
        if step.layout is not None and self.visit.ticket is not None:
            number = self.visit.ticket.number
            log.info("ticket %s: printing", number)
            threading.Thread(target=self._print, args=(number, step.layout), daemon=True).start()
        if step.redraw:
            self.show(guard=step.guard)
        elif step.refresh:
            self._refresh_home()
            Clock.schedule_once(lambda _dt: self._report(Screen.HOME), REPORT_DELAY_S)
        if step.ask is not None:
            a = step.ask
            rid = self.link.request_ticket(
                a.service, a.priority, a.lang, self.cfg.kiosk.response_timeout_s, self._answered
            )
            self._do(self.visit.sent(rid))

    # ------------------------------------------------------------------ MQTT events (UI thread)

    def _services(self, msg: ServicesMessage) -> None:
        self._update_clock()  # a live services message may be the first to tell the time
        self._do(self.visit.services_arrived(msg))

    def _connection(self, broker: bool, server: bool, force: bool = False) -> None:
        self._do(self.visit.connection(broker, server, self.link.server_known, force))

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
        Clock.schedule_once(lambda _dt: self._do(self.visit.printed(number, status)))

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
        self.clock_label = None
        build = {
            Screen.HOME: self._home,
            Screen.BUSY: self._busy,
            Screen.TICKET: self._ticket,
            Screen.MESSAGE: self._message,
        }
        self.root_box.add_widget(build[screen]())
        log.info("screen %s built", screen.value)
        Clock.schedule_once(lambda _dt: self._report(screen), REPORT_DELAY_S)

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
        _bg(bar, BAR_GREY)
        row = bar
        if self.compact:  # office and clock above, the three languages below: each gets room
            bar.orientation, bar.height, bar.padding = "vertical", px(180), (px(16), px(4), px(16), px(10))
            row = BoxLayout(spacing=px(10))
            bar.add_widget(row)
        office = _label(self.visit.office or "Numerek", fs(32), bold=True, halign="left", size_hint_x=0.40)
        row.add_widget(office)
        clock = _label("", fs(40), YELLOW, bold=True, size_hint_x=0.12)
        self.clock_label = clock
        self._update_clock()
        row.add_widget(clock)
        if self.compact:
            office.size_hint_x, clock.size_hint_x = 0.62, 0.24
            row = BoxLayout(spacing=px(10))
            bar.add_widget(row)
        for lang in LANGUAGES:
            chosen = lang == self.lang
            b = _button(
                f"[b]{LANGUAGE_NAMES[lang]}[/b]" if chosen else LANGUAGE_NAMES[lang],
                fs(26),
                style="chosen" if chosen else "choice",
                size_hint_x=0.16,
            )
            b.bind(on_release=lambda _b, lang=lang: self._do(self.visit.set_lang(lang)))
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
            box.add_widget(_label(problem, fs(34), style="alarm", bold=True, size_hint_y=None, height=self.row(120, 3)))
        else:
            title, style = v.title()
            box.add_widget(_label(title, fs(36), style=style, bold=True, size_hint_y=None, height=self.row(60)))
        warning = v.printer_warning()
        if warning:
            box.add_widget(
                _label(warning, fs(28), style="warning", bold=True, size_hint_y=None, height=self.row(64, 2))
            )
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
            b = _button("", fs(34), fit=False)
            b.bind(on_release=lambda _b, sid=s.id: self._do(self.visit.take(sid)), size=self._resize_service)
            b.bind(texture_size=self._shrink_service)
            self._service_buttons[s.id] = b
            self.buttons[f"service:{s.id}"] = b
            grid.add_widget(b)
        if not services and v.broker_up:
            grid.add_widget(_label(t("no_services", self.lang) if v.services else "", fs(34)))
        box.add_widget(grid)
        self._refresh_home()
        text, style = v.priority_button()
        prio = _button(text, fs(32), style=style, size_hint=(1, None), height=self.row(112, 2))
        prio.bind(on_release=lambda _b: self._do(self.visit.toggle_priority()))
        self.buttons["priority"] = prio
        wrap = BoxLayout(size_hint_y=None, height=self.row(112, 2), padding=(px(16), 0))
        wrap.add_widget(prio)
        box.add_widget(wrap)
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
        box.add_widget(_label(t("please_wait", self.lang), self.fs(56), style="accent", bold=True))
        return box

    def _message(self) -> Widget:
        px, fs = self.px, self.fs
        box = BoxLayout(orientation="vertical", padding=px(40), spacing=px(30))
        box.add_widget(_label(self.visit.message, fs(40), style="alarm", bold=True))
        back = _button(
            f"[b]{t('back', self.lang)}[/b]", fs(44), size_hint=(0.5, None), height=px(130), pos_hint={"center_x": 0.5}
        )
        back.bind(on_release=lambda _b: self._do(self.visit.go_home()))
        self.buttons["back"] = back
        box.add_widget(back)
        return box

    def _ticket(self) -> Widget:
        px, fs = self.px, self.fs
        tk = self.visit.ticket
        assert tk is not None
        view = self.visit.ticket_view()
        outer = BoxLayout(orientation="vertical", padding=(px(24), px(12)), spacing=px(10))
        outer.add_widget(_label(self.visit.office, fs(30), bold=True, size_hint_y=None, height=self.row(50)))
        body = BoxLayout(spacing=px(20), orientation="vertical" if self.portrait else "horizontal")
        left = BoxLayout(orientation="vertical", spacing=px(4))
        left.add_widget(
            _label(view.head, fs(34), style=view.head_style, bold=True, size_hint_y=None, height=self.row(44))
        )
        left.add_widget(_label(view.number, px(140 if view.fault else 190), style="accent", bold=True))
        left.add_widget(_label(view.service, fs(40), bold=True, size_hint_y=None, height=self.row(56)))
        if view.place:
            left.add_widget(
                _label(view.place, fs(34), style="accent", bold=True, size_hint_y=None, height=self.row(48))
            )
        left.add_widget(_label(view.issued, fs(30), size_hint_y=None, height=self.row(42)))
        left.add_widget(_label(view.ahead, fs(34), size_hint_y=None, height=self.row(46)))
        left.add_widget(_label(view.wait, fs(34), size_hint_y=None, height=self.row(46)))
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
        right.add_widget(_label(t("scan", self.lang), fs(26)))
        self.qr_widget = qr
        body.add_widget(right)
        outer.add_widget(body)
        outer.add_widget(
            _label(
                view.status,
                fs(30),
                style=view.status_style,
                bold=True,
                size_hint_y=None,
                height=self.row(130, 3) if view.fault else self.row(70),
            )
        )
        done = _button(
            f"[b]{t('done', self.lang)}[/b]", fs(44), size_hint=(0.4, None), height=px(100), pos_hint={"center_x": 0.5}
        )
        done.bind(on_release=lambda _b: self._do(self.visit.go_home(reset=True)))
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
        v = self.visit
        if screen != self.screen:
            return
        left = TOUCH_GUARD_S - (v.monotonic() - v.shown_at)
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
                "priority": v.priority,
                "texts": texts,
                "buttons": buttons,
                "ticket": v.ticket.number if v.ticket and screen == "ticket" else None,
                "qr": v.status_url(v.ticket) if v.ticket and screen == "ticket" else None,
                "printer": v.print_outcome.fault.value if v.print_outcome and screen == "ticket" else None,
                "window": [Window.left, Window.top, Window.width, Window.height],
                "boxes": boxes,
                "clipped": clipped,
                "smallest_font": _smallest_font(self.root_box),
                "legibility": _legibility(self.root_box),
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


def _font_sizes(w: Label) -> list[int]:
    tags = [int(v) for v in _SIZE_TAG.findall(w.text)]
    return tags if tags else [int(w.font_size)]


def _background(w: Widget) -> tuple[float, ...]:
    """The colour behind ``w``'s text: a button's own, else the nearest painted box around it."""
    if isinstance(w, Button):
        return tuple(w.background_color)
    node: Widget | None = w
    while node is not None:
        painted = getattr(node, "_bg_color", None)
        if painted is not None:
            return tuple(painted.rgba)
        node = node.parent if node.parent is not node else None
    return tuple(Window.clearcolor)


def _legibility(root: Widget) -> list[list]:
    """Each text on screen with its contrast to its background (WCAG 2.1) and its smallest type
    size in px, as drawn: tests hold every screen to kiosk/style.py's rules with this."""
    out: list[list] = []
    for w in root.walk():
        if isinstance(w, Label) and w.text.strip():
            fg = w.disabled_color if w.disabled else w.color
            out.append([_MARKUP.sub("", w.text), round(contrast(fg, _background(w)), 2), min(_font_sizes(w))])
    return out


def _smallest_font(root: Widget) -> int:
    """The smallest type on screen: font sizes and the ``[size=]`` of marked-up runs."""
    sizes = []
    for w in root.walk():
        if isinstance(w, Label) and w.text.strip():
            tags = [int(v) for v in _SIZE_TAG.findall(w.text)]
            sizes += tags if tags else [int(w.font_size)]
    return min(sizes, default=0)


def register_fonts(cfg: KioskConfig) -> None:
    """DejaVu Sans: Kivy's default Roboto lacks glyphs we need (Ukrainian ї, є, ґ...)."""
    s = cfg.screen
    LabelBase.register(FONT, fn_regular=s.font, fn_bold=s.font_bold)
