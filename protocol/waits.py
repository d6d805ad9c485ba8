"""How a wait estimate is shown to a resident: a range rounded outward, in their language.

Why a range: even a perfect predictor cannot know how long the j people ahead will take;
the spread of a sum of j+1 service times is about 1/sqrt(j+1) of the wait (Whitt 1999).
A printed "ok. 23 min" pretends to a precision nobody has; "15–30 min" does not. The server
sends ``estimated_wait_range_min: [lo, hi]`` already rounded (:func:`round_outward`); kiosks,
the ticket page and the clerk panel turn it into words with :func:`wait_text`. ``None``
means the server cannot estimate the wait now (no counter serves the service today, or
none is open and none is expected): devices say so instead of a number.

No dependencies beyond the standard library: the kiosk and display import this.
"""

from __future__ import annotations

import math

GRID_MIN = (0, 5, 10, 15, 20, 25, 30, 40, 50, 60, 75, 90, 120, 180, 240, 300, 360, 480, 600, 720)
"""Printed range bounds: 5-minute steps up to half an hour, coarser beyond (a resident plans
by the quarter hour at best when the wait is long)."""

MAX_PRINTED_WAIT_MIN = GRID_MIN[-1]
"""No printed range goes beyond 12 hours: a longer one is not an estimate but "we cannot estimate
the wait now" (``None``); it also keeps every range inside the protocol's bounds."""


def round_outward(lo_s: float, hi_s: float) -> tuple[int, int]:
    """Minutes on :data:`GRID_MIN` with ``lo`` rounded down and ``hi`` up (at least 5 min wide).

    Rounding outward never makes the range promise more than the estimate knows.
    """
    lo_m = max(0.0, lo_s / 60)
    hi_m = max(lo_m, hi_s / 60)
    lo = max((g for g in GRID_MIN if g <= lo_m + 1e-9), default=0)
    hi = next((g for g in GRID_MIN if g >= hi_m - 1e-9), None)
    if hi is None:  # beyond the grid: whole hours
        hi = int(math.ceil(hi_m / 60) * 60)
    if hi <= lo:
        hi = next((g for g in GRID_MIN if g > lo), lo + 60)
    return lo, hi


TEXTS: dict[str, dict[str, str]] = {
    "unknown": {
        "pl": "nie możemy teraz oszacować czasu oczekiwania",
        "en": "we cannot estimate the wait now",
        "uk": "зараз не можемо оцінити час очікування",
    },
    "up_to": {"pl": "do {hi} min", "en": "up to {hi} min", "uk": "до {hi} хв"},
    "between": {"pl": "{lo}–{hi} min", "en": "{lo}–{hi} min", "uk": "{lo}–{hi} хв"},
    "between_h": {"pl": "{lo}–{hi} godz.", "en": "{lo}–{hi} h", "uk": "{lo}–{hi} год"},
}


def wait_text(range_min: tuple[int, int] | list[int] | None, lang: str = "pl") -> str:
    """ "do 5 min", "15–30 min", "2–3 godz.", or the language's "cannot estimate now"."""
    lang = lang if lang in ("pl", "en", "uk") else "en"
    if range_min is None:
        return TEXTS["unknown"][lang]
    lo, hi = int(range_min[0]), int(range_min[1])
    if lo == 0:
        return TEXTS["up_to"][lang].format(hi=hi)
    if lo >= 120 and lo % 60 == 0 and hi % 60 == 0:
        return TEXTS["between_h"][lang].format(lo=lo // 60, hi=hi // 60)
    return TEXTS["between"][lang].format(lo=lo, hi=hi)
