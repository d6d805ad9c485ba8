"""The kiosk's colours and the readability rules they are held to, without Kivy.

Every text on the kiosk is drawn in one of the :data:`STYLES` (text colour on background
colour), so the contrast of every screen can be checked from here and, under Xvfb, from the
widget tree itself (``tests/test_kiosk_style.py``, ``tests/test_kiosk.py``).

Rules (WCAG 2.1 AA, and a size rule of our own for a touch kiosk read at arm's length):

* contrast of text to its background at least 4.5:1 (WCAG 1.4.3; we aim for 7:1, AAA);
* capital letters at least :data:`MIN_CAP_MM` = 3.0 mm tall on the official 7-inch 800x480
  panel: 20 minutes of arc at 50 cm, the preferred minimum of ISO 9241-303, for residents
  with poor sight. The panel has 0.19 mm pixels and DejaVu Sans' capitals are 0.73 of the
  type size, so no text on it may be set below :data:`MIN_TEXT_PX` = 22 px.
"""

from __future__ import annotations

import math

RGBA = tuple[float, float, float, float]

BLACK: RGBA = (0, 0, 0, 1)
WHITE: RGBA = (1, 1, 1, 1)
YELLOW: RGBA = (1, 0.85, 0, 1)
BLUE: RGBA = (0.05, 0.25, 0.62, 1)
GREY: RGBA = (0.22, 0.22, 0.22, 1)
BAR_GREY: RGBA = (0.1, 0.1, 0.1, 1)
LIGHT_GREY: RGBA = (0.85, 0.85, 0.85, 1)
RED: RGBA = (0.7, 0.05, 0.05, 1)
GREEN: RGBA = (0.0, 0.45, 0.15, 1)
PURPLE: RGBA = (0.35, 0.1, 0.5, 1)
AMBER_DARK: RGBA = (0.36, 0.26, 0.0, 1)
"""The service buttons while the priority toggle is on: a colour of their own (the resident
sees the mode changed) that holds white text at 9:1 (the old olive gave 4.6:1)."""

TEAL: RGBA = (0.0, 0.3, 0.36, 1)
"""The check-in button ("Mam rezerwację"): a path of its own, not one more service."""

STYLES: dict[str, tuple[RGBA, RGBA]] = {
    "screen": (WHITE, BLACK),
    "accent": (YELLOW, BLACK),
    "top_bar": (WHITE, BAR_GREY),
    "clock": (YELLOW, BAR_GREY),
    "button": (WHITE, BLUE),
    "service": (WHITE, BLUE),
    "service_priority": (WHITE, AMBER_DARK),
    "disabled": (LIGHT_GREY, GREY),
    "choice": (WHITE, GREY),
    "chosen": (BLACK, YELLOW),
    "priority_off": (WHITE, PURPLE),
    "priority_on": (BLACK, YELLOW),
    "alarm": (WHITE, RED),
    "warning": (BLACK, YELLOW),
    "good": (WHITE, GREEN),
    "pending": (WHITE, GREY),
    "key": (WHITE, GREY),
    "booking": (WHITE, TEAL),
}

MIN_CONTRAST = 4.5
PANEL_MM_PER_PX = 177.8 / math.hypot(800, 480)  # the 7-inch 800x480 panel: 0.19 mm
CAP_HEIGHT = 0.729  # DejaVu Sans: capital height / type size
MIN_CAP_MM = 3.0
MIN_TEXT_PX = math.ceil(MIN_CAP_MM / (CAP_HEIGHT * PANEL_MM_PER_PX))  # 22


def luminance(c: tuple[float, ...]) -> float:
    """WCAG 2.1 relative luminance of an sRGB colour (components 0..1)."""

    def lin(v: float) -> float:
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(float(v)) for v in c[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(fg: tuple[float, ...], bg: tuple[float, ...]) -> float:
    """WCAG 2.1 contrast ratio, 1..21."""
    a, b = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def cap_height_mm(font_px: float, mm_per_px: float = PANEL_MM_PER_PX) -> float:
    """How tall a capital letter of ``font_px`` type is on a screen with ``mm_per_px`` pixels."""
    return font_px * CAP_HEIGHT * mm_per_px
