"""The kiosk's Kivy building blocks: labels and buttons in the kiosk's styles whose text always
fits its box, the scaling unit, the QR texture, and what a screen's widgets show (for the trace).

Kept apart from :mod:`kiosk.app` so the app is the shell it should be: screens built from the
visit model (:mod:`kiosk.visit`). Import only after ``kiosk.cli`` has set Kivy's environment.
"""

from __future__ import annotations

import re
import struct
import zlib
from io import BytesIO
from pathlib import Path

import qrcode
from kivy.core.image import Image as CoreImage
from kivy.core.text import LabelBase
from kivy.core.window import Window
from kivy.graphics import Color, Rectangle
from kivy.graphics.opengl import GL_RGB, GL_UNSIGNED_BYTE, glReadPixels
from kivy.uix.button import Button
from kivy.uix.label import Label
from kivy.uix.widget import Widget

from kiosk.config import KioskConfig
from kiosk.style import BLACK, MIN_TEXT_PX, STYLES, contrast

FONT = "NumerekSans"
MARKUP = re.compile(r"\[/?[a-z]+(=[^\]]*)?\]")
SIZE_TAG = re.compile(r"\[size=(\d+)\]")


def paint(widget: Widget, color: tuple) -> None:
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


def fit_text(widget: Label, pad_x: float, pad_y: float) -> None:
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
        return over or widest_word(w) > w.width - pad_x  # Kivy would break the word

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


def widest_word(w: Label) -> float:
    """The width of ``w``'s widest word at its type size (bold and ``[size=]`` included).

    Kivy wraps a word that is wider than the line in the middle ("Українськ/а"), which
    reads as a broken word, not as a long one; so a box must hold its widest word.
    """
    core = getattr(w, "_label", None)
    plain = MARKUP.sub("", w.text)
    if core is None or not plain.strip():
        return 0.0
    saved = dict(core.options)
    sizes = [int(v) for v in SIZE_TAG.findall(w.text)]
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


def label(text: str, size: float, color=None, bold: bool = False, style: str = "screen", **kw) -> Label:
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
        paint(lbl, bg)
    fit_text(lbl, 16, 2)
    return lbl


def button(text: str, size: float, style: str = "button", fit: bool = True, **kw) -> Button:
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
        fit_text(b, 24, 8)
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


def fits(w: Label) -> bool:
    """Whether all of ``w``'s text is inside its box (one pixel of rounding allowed)."""
    tw, th = w.texture_size
    return tw <= w.width + 1 and th <= w.height + 1 and widest_word(w) <= (w.text_size[0] or w.width) + 1


def on_screen(w: Widget) -> bool:
    """Whether ``w``'s whole box is inside the window (a layout too tall pushes it out)."""
    left, bottom = w.to_window(w.x, w.y)
    return left >= -1 and bottom >= -1 and left + w.width <= Window.width + 1 and bottom + w.height <= Window.height + 1


def _font_sizes(w: Label) -> list[int]:
    tags = [int(v) for v in SIZE_TAG.findall(w.text)]
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


def legibility(root: Widget) -> list[list]:
    """Each text on screen with its contrast to its background (WCAG 2.1) and its smallest type
    size in px, as drawn: tests hold every screen to kiosk/style.py's rules with this."""
    out: list[list] = []
    for w in root.walk():
        if isinstance(w, Label) and w.text.strip():
            fg = w.disabled_color if w.disabled else w.color
            out.append([MARKUP.sub("", w.text), round(contrast(fg, _background(w)), 2), min(_font_sizes(w))])
    return out


def smallest_font(root: Widget) -> int:
    """The smallest type on screen: font sizes and the ``[size=]`` of marked-up runs."""
    sizes = []
    for w in root.walk():
        if isinstance(w, Label) and w.text.strip():
            tags = [int(v) for v in SIZE_TAG.findall(w.text)]
            sizes += tags if tags else [int(w.font_size)]
    return min(sizes, default=0)


def register_fonts(cfg: KioskConfig) -> None:
    """DejaVu Sans: Kivy's default Roboto lacks glyphs we need (Ukrainian ї, є, ґ...)."""
    s = cfg.screen
    LabelBase.register(FONT, fn_regular=s.font, fn_bold=s.font_bold)


def screenshot(path: Path) -> None:
    """Save the window as drawn to ``path`` as a PNG (``--screenshot-dir``: tests, remote support).

    Why not ``Window.screenshot``: SDL_image compresses hard, 42 ms of CPU at 1280x720 and 75 ms at
    1920x1080, a fifth of the kiosk's CPU in the tests, which keep every screen. Rows left unfiltered
    and zlib at level 1 take 10-20 ms for the same pixels; the files are ~15 % larger. Written with
    the standard library (PNG's three chunks): the kiosk role has no Pillow, and gains none for this.
    """
    width, height = Window.size
    data = glReadPixels(0, 0, width, height, GL_RGB, GL_UNSIGNED_BYTE)  # bottom row first
    stride = len(data) // height  # rows may be padded to 4 bytes
    rows = b"".join(b"\0" + data[y * stride : y * stride + 3 * width] for y in range(height - 1, -1, -1))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 1)) + chunk(b"IEND", b"")
    path.write_bytes(png)
