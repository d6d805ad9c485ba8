"""The hall display: a Kivy app that shows the zone's call board and announces live calls.

Layout ("calls", landscape; portrait stacks the two panels; "counters" has a column per
counter instead). Type sizes are designed for reading from 10 m on a 43-inch TV (the constants
below, docs/display.md "Reading from 10 m"):

    [logo] Office name                                   date     HH:MM
    +------------------------------------+  Numer     Stanowisko
    |  Wywołany numer · Now calling       |  Number    Counter
    |            A023                     |  A022      2
    |        → Stanowisko 4               |  B007      1
    +------------------------------------+
    Oczekuje · Waiting:  Rejestracja pojazdów 3   Prawo jazdy 1
    <<< scrolling info line <<<

MQTT messages arrive on the device connection's thread (:mod:`protocol.device`), are
validated there (a bad payload is logged and dropped) and handed to Kivy's main thread in
arrival order; :class:`display.board.BoardState` decides what is new. Announcements go to :class:`hardware.audio.Announcer`'s own thread.

Kivy must be configured (window size, fonts) before this module is imported: use
``display.cli``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from functools import partial
from pathlib import Path

from kivy.app import App
from kivy.clock import Clock
from kivy.core.text import DEFAULT_FONT, LabelBase
from kivy.core.text import Label as CoreLabel
from kivy.core.window import Window
from kivy.graphics.opengl import GL_SAMPLES, glGetIntegerv
from kivy.lang import Builder
from kivy.properties import BooleanProperty, ListProperty, NumericProperty, StringProperty
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.floatlayout import FloatLayout
from kivy.uix.label import Label
from kivy.uix.stencilview import StencilView

from display.board import ARROW, BoardState, call_line, counter_labels
from display.config import DisplayConfig, make_announcer
from display.texts import BOARD_LANGUAGES, caption
from hardware.audio import (
    Announcement,
    Announcer,
    AudioError,
)
from protocol.device import DeviceConnection
from protocol.messages import BoardMessage, CallMessage, ServicesMessage
from protocol.topics import RouteKind, Topics

log = logging.getLogger(__name__)

PROBE_ENV = "NUMEREK_DISPLAY_PROBE"
"""A directory: the app writes what it shows to screen.json there and exports <name>.png
for every <name>.shot file put there. For tests and for checking a display remotely."""

KV = """
#:import TICKET_FONT display.app.TICKET_FONT
#:import COUNTER_FONT display.app.COUNTER_FONT
#:import RECENT_FONT display.app.RECENT_FONT
#:import PLACE_FONT display.app.PLACE_FONT
#:import HEADING_FONT display.app.HEADING_FONT
#:import HEADING_ROW display.app.HEADING_ROW
#:import ROW_GAP display.app.ROW_GAP
#:set BG (0, 0, 0, 1)
#:set FG (1, 1, 1, 1)
#:set ACCENT (1, 0.83, 0, 1)
#:set DIM (0.72, 0.72, 0.72, 1)
#:set PANEL (0.09, 0.09, 0.11, 1)

<BoardLabel@Text>:
    color: FG
    halign: 'left'
    valign: 'middle'
    text_size: self.size
    shorten: True
    shorten_from: 'right'

<ColumnBox>:
    canvas.before:
        Color:
            rgba: ACCENT if self.lit else PANEL
        RoundedRectangle:
            pos: self.pos
            size: self.size
            radius: [self.radius]

<DisplayRoot>:
    canvas.before:
        Color:
            rgba: BG
        Rectangle:
            pos: self.pos
            size: self.size
    BoxLayout:
        orientation: 'vertical'
        padding: root.u * 28, root.u * 16
        spacing: root.u * 16
        pos: root.pos
        size: root.size

        BoxLayout:  # header
            size_hint_y: None
            height: root.u * 100
            spacing: root.u * 20
            Image:
                id: logo
                source: root.logo
                size_hint_x: None
                width: root.u * 100 if root.logo else 0
                opacity: 1 if root.logo else 0
                fit_mode: 'contain'
            BoxLayout:
                orientation: 'vertical'
                FitText:  # the whole name: in two lines and smaller on a narrow (portrait) screen
                    role: 'office'
                    full_text: root.office
                    bold: True
                    halign: 'left'
                    max_font: root.u * 46
                    min_font: root.u * 28
                BoardLabel:  # the offline mark: under the office name, beside the logo, never over the call
                    role: 'offline'
                    size_hint_y: None
                    height: (root.u * 34) if root.offline_text else 0
                    opacity: 1 if root.offline_text else 0
                    text: root.offline_text
                    color: (1, 0.45, 0.4, 1)
                    font_size: root.u * 24
            BoxLayout:
                orientation: 'vertical'
                size_hint_x: None
                # As wide as today's date needs: "poniedziałek, 30 października 2026" in full.
                width: max(root.u * 300, root.header_width)
                BoardLabel:
                    role: 'clock'
                    text: root.clock
                    bold: True
                    halign: 'right'
                    font_size: root.u * 72
                BoardLabel:
                    role: 'date'
                    text: root.date
                    halign: 'right'
                    color: DIM
                    font_size: root.u * 32

        BoxLayout:  # body: the "calls" layout; the app swaps in CountersView for "counters"
            id: body
            orientation: 'vertical' if root.portrait else 'horizontal'
            spacing: root.u * 24
            BoxLayout:  # the newest call
                orientation: 'vertical'
                size_hint: (1, 0.42) if root.portrait else (0.5, 1)
                padding: root.u * 24
                canvas.before:
                    Color:
                        rgba: ACCENT if root.highlight else PANEL
                    RoundedRectangle:
                        pos: self.pos
                        size: self.size
                        radius: [root.u * 18]
                BoardLabel:
                    size_hint_y: 0.1
                    role: 'caption'
                    text: root.current_caption
                    halign: 'center'
                    color: BG if root.highlight else DIM
                    font_size: root.u * 36
                BoardLabel:
                    id: current_ticket
                    role: 'ticket'
                    size_hint_y: 0.48
                    text: root.current_ticket
                    bold: True
                    halign: 'center'
                    color: BG if root.highlight else ACCENT
                    font_size: min(root.u * TICKET_FONT, self.width / max(1, len(self.text)) * 1.45)
                FitText:
                    id: current_counter
                    role: 'counter'
                    size_hint_y: 0.27
                    full_text: root.current_counter
                    bold: True
                    halign: 'center'
                    color: BG if root.highlight else FG
                    max_font: root.u * COUNTER_FONT
                    min_font: root.u * RECENT_FONT
                FitText:
                    id: current_place
                    role: 'place'
                    size_hint_y: 0.15 if root.current_place else 0.001
                    opacity: 1 if root.current_place else 0
                    full_text: root.current_place
                    max_lines: 1
                    halign: 'center'
                    color: BG if root.highlight else FG
                    max_font: root.u * PLACE_FONT
                    min_font: root.u * PLACE_FONT * 0.7
            BoxLayout:  # recent calls: a table "Numer | Stanowisko"
                orientation: 'vertical'
                size_hint: (1, 0.58) if root.portrait else (0.5, 1)
                spacing: root.u * 6
                BoxLayout:
                    size_hint_y: None
                    height: root.u * HEADING_ROW
                    spacing: root.u * 24
                    BoardLabel:
                        id: recent_heading
                        role: 'recent-heading'
                        size_hint_x: None
                        width: root.ticket_column
                        text: root.number_heading
                        shorten: False
                        color: DIM
                        font_size: root.u * HEADING_FONT
                    BoardLabel:
                        role: 'recent-heading'
                        text: root.counter_heading
                        shorten: False
                        color: DIM
                        font_size: root.u * HEADING_FONT
                BoxLayout:
                    id: recent
                    orientation: 'vertical'
                    spacing: root.u * ROW_GAP
                BoxLayout:  # calls of other zones (display.other_zones), with where to go
                    id: others
                    orientation: 'vertical'
                    spacing: root.u * ROW_GAP
                    size_hint_y: None
                    height: 0
                    opacity: 0

        BoxLayout:  # waiting per service
            id: waiting
            size_hint_y: None
            height: root.u * 110 * root.waiting_lines
            spacing: root.u * 16
            canvas.before:
                Color:
                    rgba: PANEL
                Rectangle:
                    pos: self.pos
                    size: self.size

        InfoLine:
            id: info
            size_hint_y: None
            height: (root.u * 64) if root.info_text else 0
            opacity: 1 if root.info_text else 0
            text: root.info_text
            font_size: root.u * 40
            speed: root.info_speed * root.u * 160
            fps: root.info_fps
"""


# Type sizes, in u (1 u = 1 px on a 1080-pixel short side). The design rule (docs/display.md,
# "Reading from 10 m"): capital height >= 1 cm per 3 m of viewing distance, the conservative
# end of the United States Sign Council's legibility index (25-29 ft of distance per inch of
# capital height for Helvetica-like capitals). DejaVu Sans capitals and digits are 0.729 of
# the font size; a 43-inch 16:9 panel has 0.496 mm pixels at 1080 px (1920x1080 or 1080x1920).
TICKET_FONT = 250.0
"""The newest ticket: 182 px capitals = 90 mm, readable from ~27 m."""
COUNTER_FONT = 104.0
"""Where the newest ticket goes ("→ Stanowisko 4"): 76 px = 37 mm (11 m); at least RECENT_FONT."""
RECENT_FONT = 96.0
"""Recent calls, both columns, and the per-counter columns' names: 70 px = 34.7 mm (10.4 m)."""
PLACE_FONT = 80.0
"""Where the newest call's place is ("pokój 12, I piętro"): 58 px = 29 mm (8.7 m), at least 70%."""
HEADING_FONT = 40.0
"""Column headings (two lines, Polish and English): 29 px = 14 mm, near reading (~4 m); they
never change, so they are recognised by shape from further away."""
RECENT_ROW = 118.0
"""Height of a recent-calls row. Rows never shrink below this: a list longer than the screen
has room for shows its newest rows (``display.last_calls`` is a maximum)."""
HEADING_ROW = 100.0
OTHER_ROWS = 3
"""Other zones' calls listed at the side (``display.other_zones``), newest first."""
OTHER_FONT = 72.0
"""Their tickets: 52 px = 26 mm (~8 m); the place beside them OTHER_PLACE_FONT, 2 lines."""
OTHER_PLACE_FONT = 52.0
OTHER_ROW = 104.0
ROW_GAP = 4.0
MM_PER_U = 535.5 / 1080
"""Millimetres of one u on a 43-inch 16:9 panel (535.5 x 952 mm)."""

ELLIPSIS = "\u2026"
WAITING_COUNT_ROOM = "999"
"""The waiting count's cell is always wide enough for this, so a count of 100 or more is shown
in full and the bar does not jump when a count gains a digit."""


class Text(Label):
    """A label that says what it is on the board (``role``), for the probe's layout dump."""

    role = StringProperty("")


def text_width(text: str, font_size: float, bold: bool = False) -> float:
    """Width in pixels of ``text`` on one line in the board's font (DejaVu, see register_fonts)."""
    core = CoreLabel(text=text, font_size=font_size, bold=bold)
    return float(core.render()[0])


def _fits(text: str, font_size: float, width: float, height: float, max_lines: int, bold: bool) -> bool:
    """True if ``text`` wraps at spaces into at most ``max_lines`` lines inside width x height,
    with no word broken across lines (Kivy breaks a word that is wider than the box)."""
    core = CoreLabel(text=text, font_size=font_size, bold=bold, text_size=(width, None))
    _w, h = core.render()
    lines = [line for line in core._cached_lines if line.words]
    drawn = " ".join("".join(word.text for word in line.words).strip() for line in lines)
    return (
        len(lines) <= max_lines
        and h <= height
        and all(line.w <= width for line in lines)
        and drawn == " ".join(text.split())
    )


def fit_text(
    text: str, width: float, height: float, max_font: float, min_font: float, max_lines: int = 2, bold: bool = False
) -> tuple[float, str]:
    """(font size, text) for a name that must stay readable in a box: the largest font from
    ``max_font`` down to ``min_font`` at which the whole name fits in ``max_lines`` lines; if
    it does not fit even at ``min_font``, the name keeps its beginning and ends with "…"
    (people recognise a service by its first words, never by its middle)."""
    text = " ".join(text.split())
    if not text or width <= 1 or height <= 1:
        return max_font, text
    size = max_font
    step = max(0.5, (max_font - min_font) / 24)
    while size >= min_font:
        if _fits(text, size, width, height, max_lines, bold):
            return size, text
        size -= step
    size = min_font
    words = text.split(" ")
    for k in range(len(words) - 1, 0, -1):
        candidate = " ".join(words[:k]) + ELLIPSIS
        if _fits(candidate, size, width, height, max_lines, bold):
            return size, candidate
    first = words[0]
    for n in range(len(first) - 1, 0, -1):
        candidate = first[:n] + ELLIPSIS
        if _fits(candidate, size, width, height, 1, bold):
            return size, candidate
    return size, ELLIPSIS


class FitText(Text):
    """A service name in the waiting bar: see :func:`fit_text`. ``full_text`` is the name;
    ``text`` and ``font_size`` follow the box size."""

    full_text = StringProperty("")
    max_font = NumericProperty(34)
    min_font = NumericProperty(20)
    max_lines = NumericProperty(2)

    def __init__(self, **kw) -> None:
        kw.setdefault("valign", "middle")
        super().__init__(**kw)
        self.bind(full_text=self._refit, size=self._refit, max_font=self._refit, min_font=self._refit)
        self._refit()

    def _refit(self, *_a) -> None:
        self.font_size, self.text = fit_text(
            self.full_text, self.width, self.height, self.max_font, self.min_font, int(self.max_lines), self.bold
        )
        self.text_size = self.size


INFO_PAGE_S = 8.0
"""With ``info_fps = 0``, how long each part of a too-long info line stays on screen."""


class InfoLine(StencilView):
    """The information line at the bottom, drawn only when it changes.

    Kivy redraws the whole window for any change, so a ticker moving at 30 frames a second cost
    a Raspberry Pi (and the test machine) a third of a core for ever (issue 14). Now a text that
    fits is drawn once and stands still; a longer one scrolls at ``fps`` frames a second, or
    with ``fps = 0`` is shown a part at a time, each for ``INFO_PAGE_S`` seconds.
    """

    text = StringProperty("")
    font_size = NumericProperty(40)
    speed = NumericProperty(160.0)  # pixels per second
    fps = NumericProperty(15)  # frames a second of the scrolling; 0: parts in turn, no scrolling
    mode = StringProperty("")  # "", "static", "scroll" or "pages": what the line does now (for the probe)

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.label = Label(color=(1, 0.83, 0, 1), size_hint=(None, None), halign="left", valign="middle")
        self.add_widget(self.label)
        self._offset = 0.0
        self._event = None  # the scrolling or paging clock, only while one runs
        self._pages: list[str] = []
        self._page = 0
        self.bind(text=self._restyle, font_size=self._restyle, size=self._restyle, fps=self._restyle, pos=self._place)

    def _restyle(self, *_a) -> None:
        if self._event is not None:
            self._event.cancel()
            self._event = None
        self._offset = 0.0
        self._pages, self._page = [], 0
        self._set(self.text)
        if not self.text or self.width <= 1:
            self.mode = ""
        elif self.label.width <= self.width:
            self.mode = "static"
        elif self.fps > 0:
            self.mode = "scroll"
            self._event = Clock.schedule_interval(self._step, 1 / self.fps)
        else:
            self.mode = "pages"
            self._pages = self._split(self.text)
            self._set(self._pages[0])
            if len(self._pages) > 1:
                self._event = Clock.schedule_interval(self._next_page, INFO_PAGE_S)
        self._place()

    def _set(self, text: str) -> None:
        self.label.text = text
        self.label.font_size = self.font_size
        self.label.texture_update()
        self.label.size = self.label.texture_size

    def _split(self, text: str) -> list[str]:
        """The words of ``text`` in runs that each fit the line (a word too long is its own run)."""
        pages: list[str] = []
        for word in text.split():
            if pages and text_width(f"{pages[-1]} {word}", self.font_size) <= self.width:
                pages[-1] += f" {word}"
            else:
                pages.append(word)
        return pages or [""]

    def _place(self, *_a) -> None:
        self.label.y = self.y + (self.height - self.label.height) / 2
        if self.mode == "scroll":
            self.label.x = self.x + self.width - self._offset
        else:  # standing still: centred
            self.label.x = self.x + (self.width - self.label.width) / 2

    def _step(self, dt: float) -> None:
        self._offset += self.speed * dt
        if self._offset > self.width + self.label.width:
            self._offset = 0.0
        self._place()

    def _next_page(self, _dt: float) -> None:
        self._page = (self._page + 1) % len(self._pages)
        self._set(self._pages[self._page])
        self._place()


class DisplayRoot(FloatLayout):
    u = NumericProperty(1.0)
    office = StringProperty("")
    logo = StringProperty("")
    clock = StringProperty("")
    date = StringProperty("")
    header_width = NumericProperty(0.0)
    """Width the clock and date need in full (the date is up to ~34 characters long)."""
    current_caption = StringProperty(caption("now_calling"))
    current_ticket = StringProperty("")
    current_counter = StringProperty("")
    highlight = BooleanProperty(False)
    info_text = StringProperty("")
    info_speed = NumericProperty(1.0)
    info_fps = NumericProperty(15)
    offline_text = StringProperty("")
    current_place = StringProperty("")
    portrait = BooleanProperty(False)
    waiting_lines = NumericProperty(1)
    counter_heading = StringProperty(caption("counter", "\n"))
    number_heading = StringProperty(caption("number", "\n"))
    ticket_column = NumericProperty(300.0)
    counter_word_en = StringProperty("counter")
    languages = ListProperty(list(BOARD_LANGUAGES))
    """The board's languages (``[display] languages``), in the order every caption shows them."""
    recent_lines = ListProperty([])
    recent_shown = ListProperty([])
    """(ticket, counter name) of the rows on screen: the newest of ``recent_lines`` that fit."""
    other_lines = ListProperty([])
    """(ticket, "Stanowisko 3, pokój 12, I piętro") of other zones' calls (``display.other_zones``)."""
    columns = ListProperty([])
    """The per-counter layout: (counter name, ticket or "", has the newest call) per column."""
    waiting_rows = ListProperty([])

    def caption(self, key: str, sep: str = " \u00b7 ") -> str:
        """``key`` in the board's languages: "Wywołany numer · Now calling" (``sep="\\n"``: one per line)."""
        return caption(key, sep, self.languages)

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        # The recent list's height is known only after layout: fill it when it is.
        self._recent_key: tuple = ()
        self.ids.recent.bind(size=self._fill_recent)

    def on_size(self, *_a) -> None:
        # Landscape 1920x1080 and portrait 1080x1920 are both u = 1: sizes follow the short side
        # (the same millimetres on a 43-inch panel either way), bounded by the long one.
        self.portrait = self.height > self.width
        long_side, short_side = max(self.width, self.height), min(self.width, self.height)
        self.u = max(0.2, min(short_side / 1080.0, long_side / 1920.0))
        self.ticket_column = text_width("A000", self.u * RECENT_FONT, bold=True) + self.u * 16
        self._fill_others()
        self._measure_header()
        self._fill_recent()
        self._fill_waiting()

    def on_clock(self, *_a) -> None:
        self._measure_header()

    def on_date(self, *_a) -> None:
        self._measure_header()

    def _measure_header(self) -> None:
        pad = self.u * 8
        self.header_width = pad + max(
            text_width(self.clock, self.u * 72, bold=True) if self.clock else 0.0,
            text_width(self.date, self.u * 32) if self.date else 0.0,
        )

    def on_recent_lines(self, *_a) -> None:
        self._fill_recent()

    def on_other_lines(self, *_a) -> None:
        self._fill_others()

    def _fill_others(self) -> None:
        """The side list of other zones' calls, under the recent calls: ticket and where to go."""
        box = self.ids.get("others")
        if box is None:
            return
        box.clear_widgets()
        u = self.u
        if not self.other_lines:
            box.height, box.opacity = 0, 0
            return
        heading = _label(
            self.caption("other_rooms"), u * HEADING_FONT, role="others-heading", color=(0.72, 0.72, 0.72, 1)
        )
        heading.size_hint_y = None
        heading.height = u * HEADING_ROW * 0.6
        box.add_widget(heading)
        for ticket, where in self.other_lines:
            row = BoxLayout(size_hint_y=None, height=u * OTHER_ROW, spacing=u * 24)
            row.add_widget(
                _label(
                    ticket,
                    u * OTHER_FONT,
                    role="other-ticket",
                    bold=True,
                    shorten=False,
                    color=(1, 0.83, 0, 1),
                    size_hint_x=None,
                    width=text_width("A000", u * OTHER_FONT, bold=True) + u * 8,
                )
            )
            row.add_widget(
                FitText(
                    full_text=where,
                    role="other-place",
                    halign="left",
                    max_font=u * OTHER_PLACE_FONT,
                    min_font=u * OTHER_PLACE_FONT * 0.7,
                    max_lines=2,
                )
            )
            box.add_widget(row)
        box.height = heading.height + len(self.other_lines) * (u * OTHER_ROW + box.spacing)
        box.opacity = 1

    def on_waiting_rows(self, *_a) -> None:
        self._fill_waiting()

    def _fill_recent(self, *_a) -> None:
        """Rows of "A023 | 4" at the 10-metre size, as many of the newest as the list has room for."""
        box = self.ids.get("recent")
        if box is None:
            return
        labels = counter_labels([name for _t, name in self.recent_lines])
        self.counter_heading = labels.heading(self.counter_word_en, self.languages).replace(" \u00b7 ", "\n")
        row = self.u * RECENT_ROW
        gap = box.spacing
        room = max(0, int((box.height + gap) // (row + gap))) if box.height > 1 else len(self.recent_lines)
        shown = self.recent_lines[:room]
        key = (tuple(shown), self.u, labels.word)
        if key == self._recent_key:
            return
        self._recent_key = key
        self.recent_shown = list(shown)
        box.clear_widgets()
        for ticket, name in shown:
            box.add_widget(_recent_row(self.u, self.ticket_column, ticket, labels.labels[name]))
        box.add_widget(Label(size_hint_y=1))  # keeps rows at the top

    def _fill_waiting(self) -> None:
        box = self.ids.get("waiting")
        if box is None:
            return
        box.clear_widgets()
        # Portrait is too narrow for five services in one row: two per row, under the caption.
        per_row = 2 if self.portrait else len(self.waiting_rows) + 1
        self.waiting_lines = 1 + (len(self.waiting_rows) // 2 if self.portrait else 0)
        box.orientation = "vertical"
        line = BoxLayout(spacing=self.u * 16)
        box.add_widget(line)
        line.add_widget(
            _label(
                self.caption("waiting", "\n"),
                self.u * 30,
                role="waiting-caption",
                color=(0.72, 0.72, 0.72, 1),
                shorten=False,
                size_hint_x=None,
                width=self.u * 190,
            )
        )
        count_font = self.u * 64
        for name, count in self.waiting_rows:
            text = str(count)
            # Wide enough for "999" (and for any longer count): never "1…".
            room = max(text_width(WAITING_COUNT_ROOM, count_font, bold=True), text_width(text, count_font, bold=True))
            cell = BoxLayout(spacing=self.u * 10)
            cell.add_widget(
                FitText(
                    full_text=name,
                    role="waiting-name",
                    halign="right",
                    max_font=self.u * 34,
                    min_font=self.u * 20,
                    padding=(0, self.u * 6),
                )
            )
            cell.add_widget(
                _label(
                    text,
                    count_font,
                    role="waiting-count",
                    bold=True,
                    shorten=False,
                    color=(1, 0.83, 0, 1),
                    size_hint_x=None,
                    width=room + self.u * 4,
                )
            )
            if len(line.children) >= per_row:
                line = BoxLayout(spacing=self.u * 16)
                box.add_widget(line)
            line.add_widget(cell)


def _label(text: str, size: float, **kw) -> Text:
    kw.setdefault("halign", "left")
    kw.setdefault("shorten", True)
    lbl = Text(text=text, font_size=size, valign="middle", **kw)
    lbl.bind(size=lambda w, s: setattr(w, "text_size", s))
    return lbl


def _fit_one_line(max_font: float, pad: float, label: Label, width: float) -> None:
    """The largest font up to ``max_font`` at which ``label``'s text fits its width on one line
    (a ticket number is never wrapped: "A01" over "0" reads as another number)."""
    if label.text and width > pad:
        label.font_size = min(max_font, max_font * (width - pad) / text_width(label.text, max_font, label.bold))


def _recent_row(u: float, ticket_column: float, ticket: str, counter: str) -> BoxLayout:
    row = BoxLayout(size_hint_y=None, height=u * RECENT_ROW, spacing=u * 24)
    row.add_widget(
        _label(
            ticket,
            u * RECENT_FONT,
            role="recent-ticket",
            bold=True,
            shorten=False,
            color=(1, 0.83, 0, 1),
            size_hint_x=None,
            width=ticket_column,
        )
    )
    row.add_widget(
        FitText(
            full_text=counter,
            role="recent-counter",
            bold=True,
            halign="left",
            max_font=u * RECENT_FONT,
            min_font=u * RECENT_FONT * 0.6,
            max_lines=2,
        )
    )
    return row


class ColumnBox(BoxLayout):
    lit = BooleanProperty(False)
    radius = NumericProperty(12.0)


class CountersView(BoxLayout):
    """The per-counter layout (``display.layout = "counters"``, banks ask for it): a column per
    counter with its name and the ticket it called last, both at the 10-metre size or larger;
    the newest call's column is highlighted like the newest call of the "calls" layout."""

    def __init__(self, root: DisplayRoot, **kw) -> None:
        super().__init__(orientation="vertical", spacing=root.u * 12, **kw)
        self.root = root
        self.heading = _label("", root.u * HEADING_FONT, role="columns-heading", color=(0.72, 0.72, 0.72, 1))
        self.heading.size_hint_y = None
        self.row = BoxLayout(spacing=root.u * 16)
        self.add_widget(self.heading)
        self.add_widget(self.row)
        root.bind(columns=self._fill, u=self._fill, highlight=self._fill)
        self._fill()

    def _fill(self, *_a) -> None:
        u = self.root.u
        self.heading.font_size = u * HEADING_FONT
        self.heading.height = u * HEADING_ROW * 0.6
        self.spacing = u * 12
        self.row.spacing = u * 16
        labels = counter_labels([name for name, _t, _lit in self.root.columns])
        self.heading.text = labels.heading(self.root.counter_word_en, self.root.languages)
        self.row.clear_widgets()
        for name, ticket, newest in self.root.columns:
            lit = newest and self.root.highlight
            col = ColumnBox(orientation="vertical", padding=u * 12, lit=lit, radius=u * 18)
            ink = (0, 0, 0, 1) if lit else (1, 1, 1, 1)
            col.add_widget(
                FitText(
                    full_text=labels.labels[name],
                    role="column-counter",
                    bold=True,
                    halign="center",
                    color=ink,
                    max_font=u * RECENT_FONT,
                    min_font=u * RECENT_FONT * 0.6,
                    size_hint_y=0.35,
                )
            )
            ticket_label = _label(
                ticket,
                u * TICKET_FONT * 0.8,
                role="column-ticket",
                bold=True,
                halign="center",
                shorten=False,
                color=(0, 0, 0, 1) if lit else (1, 0.83, 0, 1),
                size_hint_y=0.65,
            )
            ticket_label.bind(width=partial(_fit_one_line, u * TICKET_FONT * 0.8, u * 24))
            col.add_widget(ticket_label)
            self.row.add_widget(col)


class DisplayApp(App):
    """The Kivy app. ``cfg`` is the validated display config."""

    def __init__(self, cfg: DisplayConfig, **kw) -> None:
        super().__init__(**kw)
        self.cfg = cfg
        self.title = f"Numerek - {cfg.device_id}"
        self.topics = Topics(cfg.mqtt.topic_base)
        self.state = BoardState(zone=cfg.display.zone, other_zones=tuple(cfg.display.other_zones))
        self.announcer: Announcer | None = None
        self.broker_online = False
        self.server_online = True
        self.connection: DeviceConnection | None = None
        self.probe = Path(os.environ[PROBE_ENV]) if os.environ.get(PROBE_ENV) else None
        self._last_probe = ""
        self._settled_frame = 3
        self._warned_zones: list[str] | None = None  # the service zones last warned about

    # ------------------------------------------------------------------ start / stop

    def build(self) -> DisplayRoot:
        Window.clearcolor = (0, 0, 0, 1)
        Builder.load_string(KV)
        root = DisplayRoot()
        d = self.cfg.display
        root.logo = d.logo
        root.office = d.office_name
        root.info_text = d.info_text
        root.info_speed = d.info_speed
        root.info_fps = d.info_fps
        root.languages = list(d.languages)
        root.current_caption = root.caption("now_calling")
        root.number_heading = root.caption("number", "\n")
        root.counter_heading = root.caption("counter", "\n")
        root.offline_text = "\u25cf " + root.caption("offline")
        root.counter_word_en = self.cfg.audio.counter_word_en
        if d.layout == "counters":
            body = root.ids.body
            parent = body.parent
            index = parent.children.index(body)
            parent.remove_widget(body)
            parent.add_widget(CountersView(root), index=index)
        self.root = root
        self.announcer = self._make_announcer()
        self._start_mqtt()
        Clock.schedule_interval(self._tick, 0.25)
        return root

    def _make_announcer(self) -> Announcer | None:
        a = self.cfg.audio
        if not a.enabled:
            log.info("audio is off in the config; calls are shown, not spoken")
            return None
        try:
            return make_announcer(a)
        except AudioError as exc:
            log.error("audio disabled: %s", exc)
            return None

    def _start_mqtt(self) -> None:
        """The device connection every role shares; its hand-over drains on Kivy's thread, in
        arrival order: a call must be seen before the board that follows it, or its seq would
        already be "known" and it would not be announced."""
        cfg, zone = self.cfg, self.cfg.display.zone
        conn: DeviceConnection = DeviceConnection(
            cfg.mqtt, cfg.device_id, wake=Clock.create_trigger(lambda _dt: conn.drain()), clock=self.state.clock
        )
        conn.on(RouteKind.ZONE_CALL, lambda m: self._call(m.message))
        conn.on(RouteKind.ZONE_BOARD, lambda m: self._board(m.message))
        conn.on(RouteKind.SERVICES, lambda m: self._services(m.message))
        conn.on_connection = self._set_broker
        conn.on_server = self._set_server
        conn.on_failure = lambda _exc: self.stop()  # numerek-display then exits 1: systemd restarts it
        for topic in (conn.topics.zone_board(zone), conn.topics.zone_call(zone), conn.topics.services):
            conn.subscribe(topic)
        for other in cfg.display.other_zones:  # listed at the side, never announced
            conn.subscribe(conn.topics.zone_board(other))
            conn.subscribe(conn.topics.zone_call(other))
        self.connection = conn.start()

    def on_stop(self) -> None:
        if self.connection is not None:
            self.connection.stop()
        if self.announcer is not None:
            self.announcer.close()

    # ------------------------------------------------------------------ main thread

    def _set_broker(self, online: bool) -> None:
        self.broker_online = online
        self._show_offline()

    def _set_server(self, online: bool) -> None:
        self.server_online = online
        self._show_offline()

    def _show_offline(self) -> None:
        if not self.broker_online:
            text = "\u25cf " + self.root.caption("offline")
        elif not self.server_online:
            text = "\u25cf " + self.root.caption("server_offline")
        else:
            text = ""
        self.root.offline_text = text

    def _board(self, board: BoardMessage) -> None:
        if self.state.apply_board(board):
            self._render()

    def _services(self, msg: ServicesMessage) -> None:
        self.state.apply_services(msg)
        self._check_zone(msg)
        self._render()

    def _check_zone(self, msg: ServicesMessage) -> None:
        """Warn (once per change) when no service of the server is in this display's zone.

        A ``display.zone`` the server does not have passes ``--check`` (the display cannot
        know the server's zones before it connects) and leaves the screen empty without a
        word; this says so in the journal, with the zones the server's services are in.
        """
        zones = sorted({s.zone for s in msg.services})
        problem = self.cfg.display.zone not in zones
        if problem and zones != self._warned_zones:
            log.warning(
                "no service of the server is in zone %r (display.zone); its services are in %s: "
                "this display shows no waiting counts, and no calls unless a counter is in that zone",
                self.cfg.display.zone,
                ", ".join(repr(z) for z in zones) or "no zone",
            )
        self._warned_zones = zones if problem else None

    def _call(self, call: CallMessage) -> None:
        if not self.state.apply_call(call, self.cfg.display.highlight_seconds):
            if call.zone in self.state.other_zones:
                self._render()  # the side list of other zones' calls
            return
        log.info(
            "call %s -> %s (seq %d%s)", call.ticket, call.counter_name, call.seq, ", recall" if call.recall else ""
        )
        if self.announcer is not None:
            self.announcer.announce(Announcement(call.seq, call.ticket, call.counter, call.counter_name, call.recall))
        self._render()

    def _render(self) -> None:
        root, s = self.root, self.state
        root.office = self.cfg.display.office_name or s.office
        newest = s.newest
        root.current_ticket = newest.ticket if newest else ""
        root.current_counter = f"{ARROW} {newest.counter_name}" if newest else ""
        root.current_place = (newest.place.get("pl") or "") if newest and newest.place else ""
        root.other_lines = s.other_rows("pl")[:OTHER_ROWS]
        recall = newest is not None and newest.recall and s.highlighted
        root.current_caption = root.caption("called_again" if recall else "now_calling")
        root.recent_lines = [(c.ticket, c.counter_name) for c in s.calls[1 : 1 + self.cfg.display.last_calls]]
        if self.cfg.display.layout == "counters":
            root.columns = [
                (
                    col.name,
                    col.call.ticket if col.call else "",
                    bool(col.call and newest and col.call.seq == newest.seq),
                )
                for col in s.counter_columns(self.cfg.display.counters)
            ]
        root.waiting_rows = s.waiting_rows("pl")
        self._settled_frame = Clock.frames + 3
        self._tick(0)

    def _tick(self, _dt: float) -> None:
        root, s = self.root, self.state
        root.clock, root.date = s.clock_text()
        was = root.highlight
        root.highlight = s.highlighted
        if was and not root.highlight:
            root.current_caption = root.caption("now_calling")
        if self.probe is not None:
            self._write_probe()

    # ------------------------------------------------------------------ probe

    def _write_probe(self) -> None:
        probe = self.probe
        if probe is None:
            return
        root, s = self.root, self.state
        newest = s.newest
        shown = {
            "office": root.office,
            "clock": root.clock,
            "date": root.date,
            "newest": call_line(newest) if newest else "",
            "newest_seq": newest.seq if newest else 0,
            "highlighted": root.highlight,
            "caption": root.current_caption,
            "recent": [f"{t} {ARROW} {c}" for t, c in root.recent_shown],
            "columns": [[n, t] for n, t, _lit in root.columns],
            "others": [f"{t} {ARROW} {w}" for t, w in root.other_lines],
            "place": root.current_place,
            "waiting": [[n, c] for n, c in root.waiting_rows],
            "offline": root.offline_text,
            "info": root.info_text,
            "info_mode": root.ids.info.mode,
            "known_seq": s.known_seq,
            "window": [Window.width, Window.height],
            "gl_samples": glGetIntegerv(GL_SAMPLES)[0],  # multisampling, off (display.cli)
        }
        text = json.dumps(shown, ensure_ascii=False)
        try:
            probe.mkdir(parents=True, exist_ok=True)
            if text != self._last_probe:
                tmp = probe / "screen.json.tmp"
                tmp.write_text(text, encoding="utf-8")
                tmp.replace(probe / "screen.json")
                self._last_probe = text
            if Clock.frames < self._settled_frame:
                return  # new data is laid out and drawn on the next frames: shoot it then
            for req in sorted(probe.glob("*.shot")):
                req.unlink()
                tmp = probe / f"tmp-{req.stem}.png"
                t0 = time.monotonic()
                root.export_to_png(str(tmp))
                log.info("screenshot %s in %.2f s", req.stem, time.monotonic() - t0)
                layout = probe / f"tmp-{req.stem}.json"
                layout.write_text(json.dumps(drawn_layout(root), ensure_ascii=False), encoding="utf-8")
                layout.replace(probe / f"{req.stem}.json")
                tmp.replace(probe / f"{req.stem}.png")
        except OSError as exc:
            log.warning("probe directory %s: %s", probe, exc)


def drawn_layout(root: DisplayRoot) -> dict:
    """What the screenshot shows, as geometry a test can check: every visible text with its
    box, the lines the font actually drew (after wrapping and shortening) and where, and the
    logo's box. Window coordinates, y upwards. Written next to each probe screenshot."""
    texts = []
    for w in root.walk(restrict=True):
        if not isinstance(w, Label) or not w.text or w.opacity <= 0 or isinstance(w.parent, InfoLine):
            continue
        core = w._label  # the core label holds the laid-out lines of the texture on screen
        tw, th = w.texture_size
        left, top = w.center_x - tw / 2, w.center_y + th / 2
        lines = [
            {
                "text": "".join(word.text for word in line.words),
                "box": [left + line.x, top - line.y - line.h, line.w, line.h],
            }
            for line in (core._cached_lines if core is not None else [])
            if line.words
        ]
        texts.append(
            {
                "role": getattr(w, "role", ""),
                "text": w.text,
                "box": [w.x, w.y, w.width, w.height],
                "font_size": w.font_size,
                "shortened": bool(w.is_shortened),
                "lines": lines,
            }
        )
    logo, recent = root.ids.logo, root.ids.recent
    return {
        "window": [root.width, root.height],
        "texts": texts,
        "logo": [logo.x, logo.y, logo.width, logo.height] if root.logo else None,
        "recent_box": [recent.x, recent.y, recent.width, recent.height],
    }


def register_fonts(cfg: DisplayConfig) -> None:
    """DejaVu Sans as Kivy's default font: it has Polish diacritics and the → arrow (Roboto has no →)."""
    LabelBase.register(DEFAULT_FONT, fn_regular=cfg.screen.font, fn_bold=cfg.screen.font_bold)
