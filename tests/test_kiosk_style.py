"""The kiosk's colours and type sizes against its readability rules (kiosk/style.py).

Every screen is also measured as drawn, widget by widget, under Xvfb at 800x480, 1024x600,
1280x720, 1920x1080 and 720x1280 (tests/test_kiosk.py, ``assert_fits``).
"""

from __future__ import annotations

from kiosk.style import (
    BLACK,
    MIN_CAP_MM,
    MIN_CONTRAST,
    MIN_TEXT_PX,
    STYLES,
    WHITE,
    YELLOW,
    cap_height_mm,
    contrast,
)


def test_contrast_is_computed_as_wcag_defines_it():
    assert round(contrast(WHITE, BLACK), 1) == 21.0
    assert round(contrast(BLACK, BLACK), 1) == 1.0
    assert round(contrast((0.466, 0.466, 0.466, 1), WHITE), 1) == 4.5  # #777 on white: the AA limit


def test_every_kiosk_style_meets_wcag_aa_contrast_for_text():
    weak = {name: round(contrast(fg, bg), 2) for name, (fg, bg) in STYLES.items() if contrast(fg, bg) < MIN_CONTRAST}
    assert weak == {}


def test_the_priority_mode_service_buttons_are_no_longer_white_on_olive():
    old_olive = (0.55, 0.45, 0, 1)
    assert contrast(WHITE, old_olive) < 4.7  # what residents got before: 4.6:1
    fg, bg = STYLES["service_priority"]
    assert contrast(fg, bg) >= 7.0, "as readable as the normal service buttons (AAA)"
    assert bg != STYLES["service"][1], "the buttons still change colour in priority mode"
    assert contrast(*STYLES["priority_on"]) >= 7.0 and STYLES["priority_on"][1] == YELLOW


def test_the_smallest_type_gives_3_mm_capitals_on_the_7_inch_800x480_panel():
    assert MIN_CAP_MM == 3.0
    assert cap_height_mm(MIN_TEXT_PX) >= 3.0 > cap_height_mm(MIN_TEXT_PX - 1)
    assert cap_height_mm(18) < 2.6  # the old minimum: 2.5 mm, which the review measured
